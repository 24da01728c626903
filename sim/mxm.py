# Golden model of one MXM (weight-stationary int8 MAC array), written from docs/units.md
# section 2 (LW, IW, ABC, ACC) and the unit-contract twin API of section 1. Everything is
# event-based on cycle numbers: an element scheduled for cycle t reads the state "during t",
# and every state change happens "at the end of" its cycle, after all reads of that cycle.
# Choices where the spec is silent are listed in docs/mxm.md ("Spec choices"). A busy-engine
# LW/ABC/ACC is dropped and raises ENGINE_BUSY in its issue cycle.
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sim.units import check_unit_args
from tsp.config import TspConfig, split_sg4
from tsp.hostmap import ERR_BITS
from tsp.isa import Instr

__all__ = ["ENGINE_BUSY", "MxmModel"]

ENGINE_BUSY = 1 << ERR_BITS["ENGINE_BUSY"]

_MXM = ("LW", "IW", "ABC", "ACC")


@dataclass
class _Run:
    """One accepted LW/ABC/ACC: element k (k < count) at cycle t0 + k."""

    t0: int
    count: int
    base: int        # first row (already reduced mod n or R)
    s: int           # 6-bit stream operand
    mode: int = 0

    @property
    def last(self) -> int:
        return self.t0 + self.count - 1

    def k(self, t: int) -> int | None:
        """Element index at cycle t, or None."""
        return t - self.t0 if self.t0 <= t <= self.last else None


class MxmModel:
    """Cycle-exact model of one MXM at `position` (see docs/mxm.md)."""

    def __init__(self, config: TspConfig, position: int) -> None:
        check_unit_args("MxmModel", "mxm", config, position)
        self.config = config
        self.position = position
        self.n = config.vec_bytes
        self.rows = 4 * self.n
        self.streams = config.streams
        # Persistent state (START does not clear it).
        self.shadow = np.zeros((self.n, self.n), dtype=np.int8)     # shadow[i][j]
        self.weights = np.zeros((self.n, self.n), dtype=np.int8)    # active W[i][j]
        self.accum = np.zeros((self.rows, self.n), dtype=np.int32)
        self.reset()

    # ---- contract API ----------------------------------------------------------------------
    def reset(self) -> None:
        """START: drop running instructions and everything in flight (weights and
        accumulator rows persist)."""
        self.lw: _Run | None = None
        self.abc: _Run | None = None
        self.acc: _Run | None = None
        self.iw_at: int | None = None
        self._reads: dict[int, tuple[int, np.ndarray, int]] = {}   # u+1 -> (row, y, mode)
        self._writes: dict[int, tuple[int, np.ndarray]] = {}       # end of cycle -> (row, val)
        self._outs: dict[int, tuple[int, np.ndarray]] = {}         # cycle -> (s, int32 row)

    def issue(self, t: int, instr: Instr, fields: dict, flags: int) -> int:
        """An MXM instruction issues at t (called before `cycle(t)`). Returns the error bits
        of the issue: ENGINE_BUSY for an LW/ABC/ACC whose engine still has an element at t
        (it is dropped and the running one goes on, docs/mxm.md), else 0.
        Zero counts are treated as 1. CONFIG flags have no effect on the MXM.
        """
        if instr.name not in _MXM:
            raise ValueError(f"MxmModel.issue: {instr.name} at cycle {t} is not an MXM "
                             f"instruction (position {self.position})")
        if instr.name == "IW":
            self.iw_at = t
            return 0
        count = max(1, fields["count"])
        eng = {"LW": self.lw, "ABC": self.abc, "ACC": self.acc}[instr.name]
        if eng is not None and eng.last >= t:
            return ENGINE_BUSY                         # engine busy: dropped
        if instr.name == "LW":
            self.lw = _Run(t, count, fields["row"] % self.n, fields["s"])
        elif instr.name == "ABC":
            self.abc = _Run(t, count, fields["acc"] % self.rows, fields["s"], fields["mode"])
        else:
            self.acc = _Run(t, count, fields["acc"] % self.rows, fields["s"])
        return 0

    def cycle(self, t: int, east: np.ndarray, west: np.ndarray) -> tuple[list, int]:
        """Cycle t with the stream registers `east`/`west` (streams, n) uint8 at this position.
        Call it for every cycle t = 0, 1, 2, ... in order (after `issue` of that cycle).

        Returns the stream loads at the end of t [(direction, stream, uint8[n]), ...] and the
        error bits of t (always 0: the MXM's only error, ENGINE_BUSY, comes from `issue`).
        """
        n, R = self.n, self.rows

        def operand(s: int) -> np.ndarray:
            idx = s & 31
            if idx >= self.streams:
                return np.zeros(n, dtype=np.int8)
            return np.asarray((west if s >> 5 else east)[idx], dtype=np.uint8).view(np.int8)

        # -- reads of the state during t --
        shadow_write = None
        if self.lw is not None and (k := self.lw.k(t)) is not None:
            shadow_write = ((self.lw.base + k) % n, operand(self.lw.s).copy())
        if self.abc is not None and (k := self.abc.k(t)) is not None:
            x = operand(self.abc.s).astype(np.int64)
            y = self.weights.astype(np.int64).T @ x        # y[j] = sum_i W[i][j] x[i]
            self._reads[t + 1] = ((self.abc.base + k) % R, y, self.abc.mode)
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
            self.weights = self.shadow.copy()
        if shadow_write is not None:
            self.shadow[shadow_write[0]] = shadow_write[1]
        if t in self._writes:
            row, val = self._writes.pop(t)
            self.accum[row] = val
        return loads, 0

    def engines_at(self, t: int) -> tuple[str, ...]:
        """Read-only: the engines ("LW", "IW", "ABC", "ACC") with an element (IW: the install
        pulse) in cycle t; call after `issue` of cycle t (for activity records)."""
        out = tuple(name for name, r in (("LW", self.lw), ("ABC", self.abc), ("ACC", self.acc))
                    if r is not None and r.t0 <= t <= r.last)
        return out + ("IW",) if self.iw_at == t else out

    def active(self, t: int) -> bool:
        """Whether an LW/ABC/ACC has an element at >= t or an ABC write-back or ACC output
        is still in flight at >= t."""
        if any(r is not None and r.last >= t for r in (self.lw, self.abc, self.acc)):
            return True
        return any(c >= t for d in (self._reads, self._writes, self._outs) for c in d)


def _wrap32(values: np.ndarray) -> np.ndarray:
    """int64 -> int32 with two's complement wrap-around."""
    return (np.asarray(values, dtype=np.int64) & 0xFFFFFFFF).astype(np.uint32).view(np.int32)
