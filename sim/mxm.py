# Golden model of one MXM (weight-stationary int8 MAC array), written from docs/units.md
# section 2 (LW, IW, ABC, ACC, and the wide loads / activation buffer LWG, LXG, ABX) and the
# unit-contract twin API of section 1. Everything is event-based on cycle numbers: an element
# scheduled for cycle t reads the state "during t", and every state change happens "at the end
# of" its cycle, after all reads of that cycle. Choices where the spec is silent are listed in
# docs/mxm.md ("Spec choices"). A busy-engine instruction is dropped and raises ENGINE_BUSY in
# its issue cycle; an LWG/LXG wider than mxm_load_width, or an LXG/ABX without an activation
# buffer, is dropped and raises ILLEGAL.
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.units import check_unit_args
from tsp.config import TspConfig, split_sg4
from tsp.hostmap import ERR_BITS
from tsp.isa import Instr

__all__ = ["ENGINE_BUSY", "ILLEGAL", "MxmModel"]

ENGINE_BUSY = 1 << ERR_BITS["ENGINE_BUSY"]
ILLEGAL = 1 << ERR_BITS["ILLEGAL"]

_MXM = ("LW", "IW", "ABC", "ACC", "LWG", "LXG", "ABX")
# instruction -> the engine it runs on (LWG/LXG share the LW engine, ABX the ABC engine)
_ENGINE = {"LW": "LW", "LWG": "LW", "LXG": "LW", "ABC": "ABC", "ABX": "ABC", "ACC": "ACC"}


@dataclass
class _Run:
    """One accepted LW/LWG/LXG/ABC/ABX/ACC: element k (k < count) at cycle t0 + k*d."""

    t0: int
    count: int
    base: int        # first row (already reduced mod n, B or R)
    s: int           # 6-bit stream operand (ABX: the buffer row, reduced mod B)
    mode: int = 0
    name: str = ""   # the instruction
    w: int = 1       # LWG/LXG: vectors per element
    iw: int = 0      # LWG: install after an element that writes row n-1
    d: int = 1       # ABX: cycles between elements

    @property
    def last(self) -> int:
        return self.t0 + (self.count - 1) * self.d

    def k(self, t: int) -> int | None:
        """Element index at cycle t, or None (also in an ABX's gap cycles)."""
        if not self.t0 <= t <= self.last or (t - self.t0) % self.d:
            return None
        return (t - self.t0) // self.d


class MxmModel:
    """Cycle-exact model of one MXM at `position` (see docs/mxm.md)."""

    def __init__(self, config: TspConfig, position: int) -> None:
        check_unit_args("MxmModel", "mxm", config, position)
        self.config = config
        self.position = position
        self.n = config.vec_bytes
        self.rows = 4 * self.n
        self.streams = config.streams
        self.load_width = config.mxm_load_width
        self.nbuf = config.mxm_xbuf
        # Persistent state (START does not clear it).
        self.shadow = np.zeros((self.n, self.n), dtype=np.int8)     # shadow[i][j]
        self.weights = np.zeros((self.n, self.n), dtype=np.int8)    # active W[i][j]
        self.accum = np.zeros((self.rows, self.n), dtype=np.int32)
        self.xbuf = np.zeros((self.nbuf, self.n), dtype=np.int8)    # activation buffer
        self.reset()

    # ---- contract API ----------------------------------------------------------------------
    def reset(self) -> None:
        """START: drop running instructions and everything in flight (weights, activation
        buffer and accumulator rows persist)."""
        self.lw: _Run | None = None
        self.abc: _Run | None = None
        self.acc: _Run | None = None
        self.iw_at: int | None = None
        self._reads: dict[int, tuple[int, np.ndarray, int]] = {}   # u+1 -> (row, y, mode)
        self._writes: dict[int, tuple[int, np.ndarray]] = {}       # end of cycle -> (row, val)
        self._outs: dict[int, tuple[int, np.ndarray]] = {}         # cycle -> (s, int32 row)

    def illegal(self, instr: Instr, fields: dict) -> str | None:
        """Why an MXM instruction is ILLEGAL in this profile (docs/units.md section 2), or
        None: an LWG/LXG with w > mxm_load_width, an LXG/ABX when mxm_xbuf = 0."""
        name = instr.name
        if name in ("LXG", "ABX") and self.nbuf == 0:
            return f"{name} needs the activation buffer and mxm_xbuf = 0"
        if name in ("LWG", "LXG") and max(1, fields["w"]) > self.load_width:
            return (f"{name} w={fields['w']} is more than mxm_load_width = "
                    f"{self.load_width}")
        return None

    def issue(self, t: int, instr: Instr, fields: dict, flags: int) -> int:
        """An MXM instruction issues at t (called before `cycle(t)`). Returns the error bits
        of the issue: ILLEGAL for an instruction `illegal` names (dropped), ENGINE_BUSY for one
        whose engine (LW: LW/LWG/LXG, ABC: ABC/ABX, ACC) is still busy at t (dropped, the
        running one goes on; an ABX keeps its engine busy through its gap cycles), else 0.
        Zero count / w / d fields are treated as 1. CONFIG flags have no effect on the MXM.
        """
        name = instr.name
        if name not in _MXM:
            raise ValueError(f"MxmModel.issue: {name} at cycle {t} is not an MXM "
                             f"instruction (position {self.position})")
        if name == "IW":
            self.iw_at = t
            return 0
        if self.illegal(instr, fields) is not None:
            return ILLEGAL
        count = max(1, fields["count"])
        eng = _ENGINE[name]
        run = {"LW": self.lw, "ABC": self.abc, "ACC": self.acc}[eng]
        if run is not None and run.last >= t:
            return ENGINE_BUSY                         # engine busy: dropped
        if name == "LW":
            self.lw = _Run(t, count, fields["row"] % self.n, fields["s"], name=name)
        elif name == "LWG":
            self.lw = _Run(t, count, fields["row"] % self.n, fields["s"], name=name,
                           w=max(1, fields["w"]), iw=fields["iw"])
        elif name == "LXG":
            self.lw = _Run(t, count, fields["row"] % self.nbuf, fields["s"], name=name,
                           w=max(1, fields["w"]))
        elif name == "ABC":
            self.abc = _Run(t, count, fields["acc"] % self.rows, fields["s"], fields["mode"],
                            name=name)
        elif name == "ABX":
            self.abc = _Run(t, count, fields["acc"] % self.rows, fields["b"] % self.nbuf,
                            fields["mode"], name=name, d=max(1, fields["d"]))
        else:
            self.acc = _Run(t, count, fields["acc"] % self.rows, fields["s"], name=name)
        return 0

    def _lwg_rows(self, run: _Run, k: int) -> list[int]:
        """The shadow rows (LWG) or buffer rows (LXG) element k writes, for j < w."""
        size = self.nbuf if run.name == "LXG" else self.n
        return [(run.base + k * run.w + j) % size for j in range(run.w)]

    def _installs(self, t: int) -> bool:
        """Whether an LWG element with iw = 1 installs the weights at the end of t."""
        run = self.lw
        if run is None or run.name != "LWG" or not run.iw or (k := run.k(t)) is None:
            return False
        return self.n - 1 in self._lwg_rows(run, k)

    def cycle(self, t: int, east: np.ndarray, west: np.ndarray) -> tuple[list, int]:
        """Cycle t with the stream registers `east`/`west` (streams, n) uint8 at this position.
        Call it for every cycle t = 0, 1, 2, ... in order (after `issue` of that cycle).

        Returns the stream loads at the end of t [(direction, stream, uint8[n]), ...] and the
        error bits of t (always 0: the MXM's errors, ENGINE_BUSY and ILLEGAL, come from
        `issue`).
        """
        n, R = self.n, self.rows

        def operand(s: int, j: int = 0) -> np.ndarray:
            """Stream (s & 31) + j of s's direction (an index >= streams reads zeros)."""
            idx = (s & 31) + j
            if idx >= self.streams:
                return np.zeros(n, dtype=np.int8)
            return np.asarray((west if s >> 5 & 1 else east)[idx],
                              dtype=np.uint8).view(np.int8)

        # -- reads of the state during t --
        shadow_writes: list[tuple[int, np.ndarray]] = []
        buf_writes: list[tuple[int, np.ndarray]] = []
        install = False
        lw = self.lw
        if lw is not None and (k := lw.k(t)) is not None:
            if lw.name == "LW":
                shadow_writes.append(((lw.base + k) % n, operand(lw.s).copy()))
            else:
                rows = self._lwg_rows(lw, k)
                vecs = [operand(lw.s, j).copy() for j in range(lw.w)]
                (buf_writes if lw.name == "LXG" else shadow_writes).extend(zip(rows, vecs))
                install = self._installs(t)
        abc = self.abc
        if abc is not None and (k := abc.k(t)) is not None:
            src = self.xbuf[abc.s] if abc.name == "ABX" else operand(abc.s)
            x = src.astype(np.int64)
            y = self.weights.astype(np.int64).T @ x        # y[j] = sum_i W[i][j] x[i]
            self._reads[t + 1] = ((abc.base + k) % R, y, abc.mode)
        if t in self._reads:                               # row read at u + 1
            row, y, mode = self._reads.pop(t)
            val = y + (self.accum[row].astype(np.int64) if mode else 0)
            self._writes[t + 1] = (row, _wrap32(val))      # written at the end of u + 2
        if self.acc is not None and (k := self.acc.k(t)) is not None:
            self._outs[t + 1] = (self.acc.s, self.accum[(self.acc.base + k) % R].copy())
        loads = []
        if t in self._outs:
            s, val = self._outs.pop(t)
            direction, first = s >> 5, s & 31
            for b, vec in enumerate(split_sg4(val)):
                if first + b < self.streams:
                    loads.append((direction, first + b, vec))
        # -- state changes at the end of t --
        if self.iw_at == t:
            self.weights = self.shadow.copy()              # the shadow as during t
        for row, vec in shadow_writes:
            self.shadow[row] = vec
        for row, vec in buf_writes:
            self.xbuf[row] = vec
        if install:                                        # LWG iw: with its own rows; it
            self.weights = self.shadow.copy()              # overrides an IW of the same cycle
        if t in self._writes:
            row, val = self._writes.pop(t)
            self.accum[row] = val
        return loads, 0

    def engines_at(self, t: int) -> tuple[str, ...]:
        """Read-only: the engines ("LW", "IW", "ABC", "ACC") with an element in cycle t (LW also
        for LWG/LXG elements, ABC also for ABX elements but not an ABX's gap cycles; IW: the
        install pulse of an IW or of an LWG element with iw = 1); call after `issue` of cycle
        t (for activity records)."""
        out = tuple(name for name, r in (("LW", self.lw), ("ABC", self.abc), ("ACC", self.acc))
                    if r is not None and r.k(t) is not None)
        return out + ("IW",) if self.iw_at == t or self._installs(t) else out

    def active(self, t: int) -> bool:
        """Whether an engine is busy at >= t (an element at >= t, an ABX's gap cycles
        included) or an ABC/ABX write-back or ACC output is still in flight at >= t."""
        if any(r is not None and r.last >= t for r in (self.lw, self.abc, self.acc)):
            return True
        return any(c >= t for d in (self._reads, self._writes, self._outs) for c in d)


def _wrap32(values: np.ndarray) -> np.ndarray:
    """int64 -> int32 with two's complement wrap-around."""
    return (np.asarray(values, dtype=np.int64) & 0xFFFFFFFF).astype(np.uint32).view(np.int32)
