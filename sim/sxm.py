# Golden model of one SXM (shifter / permuter), written from docs/units.md section 3 and
# docs/sxm.md: SHIFT, SETMAP, PERMUTE, DISTRIBUTE, ROTATE, TRANSPOSE with dskew 0 and dfunc 2,
# four persistent map registers, the BAD_MAP error. `SxmModel` follows the model-twin API of
# docs/units.md section 1; `map_problem` is the map check the assembler uses.
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tsp.config import TspConfig
from tsp.hostmap import ERR_BITS
from tsp.isa import Instr

__all__ = ["BAD_MAP", "BIT_BAD_MAP", "MAP_SLOTS", "SxmModel", "map_problem", "transpose_size"]

BIT_BAD_MAP = ERR_BITS["BAD_MAP"]
BAD_MAP = 1 << BIT_BAD_MAP
MAP_SLOTS = 4
EAST, WEST = 0, 1
_DATA_OPS = ("SHIFT", "PERMUTE", "DISTRIBUTE", "ROTATE", "TRANSPOSE")


def transpose_size(config: TspConfig) -> int:
    """TRANSPOSE block size m = min(streams, vec_bytes)."""
    return min(config.streams, config.vec_bytes)


def map_problem(config: TspConfig, map_bytes: Sequence[int] | bytes | np.ndarray,
                bijective: bool) -> str | None:
    """What is wrong with `map_bytes` as a map register value, or None if it is fine.

    A map has `vec_bytes` entries, each a byte; entry i names the source lane of output lane i
    (a value >= vec_bytes means "zero"). With `bijective` (PERMUTE) the map must be a
    permutation of 0..vec_bytes-1; without it (DISTRIBUTE) any byte values are allowed.
    """
    n = config.vec_bytes
    vals = list(map_bytes)
    if len(vals) != n:
        return f"the map has {len(vals)} entries, expected {n} (one per lane)"
    for i, v in enumerate(vals):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            return f"lane {i} holds {v!r}, not an integer"
        if not 0 <= int(v) <= 255:
            return f"lane {i} holds {int(v)}, not a byte (0..255)"
    if not bijective:
        return None
    first: dict[int, int] = {}
    for i, v in enumerate(int(x) for x in vals):
        if v >= n:
            return (f"not a bijection: lane {i} holds {v}, which is not a source lane "
                    f"(0..{n - 1}); a PERMUTE map must use every lane exactly once")
        if v in first:
            return (f"not a bijection: lane {first[v]} and lane {i} both take source lane {v}")
        first[v] = i
    return None


class SxmModel:
    """Cycle-exact model of the SXM at `position` (model-twin API of docs/units.md)."""

    def __init__(self, config: TspConfig, position: int):
        self.config = config
        self.position = position
        n = config.vec_bytes
        # maps persist across programs; at power-on they are zero (not a bijection)
        self.maps = np.zeros((MAP_SLOTS, n), dtype=np.uint8)
        self.reset()

    def reset(self) -> None:
        """START: drop instructions in flight. Maps persist."""
        self._reads: dict[int, tuple[Instr, dict]] = {}     # read cycle -> instruction
        self._writes: dict[int, list] = {}                  # drive cycle -> writes
        self._spans: list[tuple[int, int]] = []             # (issue, last drive) of data ops

    def map_ok(self, slot: int) -> bool:
        """Whether map register `slot` holds a bijection of 0..vec_bytes-1."""
        return map_problem(self.config, self.maps[slot], True) is None

    def issue(self, t: int, instr: Instr, fields: dict, flags: int) -> int:
        """An SXM instruction issues at t (before `cycle(t)`); returns the error bits of t."""
        if instr.unit != "sxm":
            raise ValueError(f"SxmModel.issue at cycle {t}: {instr.name} is not an SXM "
                             f"instruction (position {self.position})")
        read_t = t + instr.dskew
        if read_t in self._reads:
            raise ValueError(f"SxmModel.issue at cycle {t}: a second instruction reads in "
                             f"cycle {read_t} (position {self.position})")
        bad = instr.name == "PERMUTE" and not self.map_ok(fields["slot"])
        self._reads[read_t] = (instr, dict(fields, _bad=bad, _t=t))
        if instr.name in _DATA_OPS:
            self._spans.append((t, t + instr.dfunc - 1))
        return BAD_MAP if bad else 0

    def active(self, t: int) -> bool:
        """An instruction issued before t still drives a result in t or later."""
        return any(t0 < t <= t1 for t0, t1 in self._spans)

    def reading(self, t: int) -> str | None:
        """Read-only: the name of the instruction that reads its operands in cycle t, or None;
        call after `issue` and before `cycle` of cycle t (for activity records)."""
        job = self._reads.get(t)
        return None if job is None else job[0].name

    # ---- one cycle --------------------------------------------------------------------
    def _stream(self, east: np.ndarray, west: np.ndarray, direction: int, index: int
                ) -> np.ndarray:
        if index >= self.config.streams:
            return np.zeros(self.config.vec_bytes, dtype=np.uint8)
        return np.asarray((west if direction else east)[index], dtype=np.uint8)

    def cycle(self, t: int, east: np.ndarray, west: np.ndarray) -> tuple[list, int]:
        """Cycle t: read operands of instructions reading now, return the writes driven in t."""
        self._spans = [sp for sp in self._spans if sp[1] >= t]
        job = self._reads.pop(t, None)
        if job is not None:
            instr, f = job
            out = self._execute(instr, f, east, west)
            if out is not None:
                self._writes.setdefault(f["_t"] + instr.dfunc - 1, []).extend(out)
        return self._writes.pop(t, []), 0

    def _execute(self, instr: Instr, f: dict, east, west) -> list | None:
        cfg = self.config
        n, S = cfg.vec_bytes, cfg.streams
        name = instr.name
        if name == "SETMAP":
            m = f["m"]
            self.maps[f["slot"]] = self._stream(east, west, m >> 5, m & 31)
            return None
        s, d = f["s"], f["d"]
        sdir, sidx, ddir, didx = s >> 5, s & 31, d >> 5, d & 31
        x = self._stream(east, west, sdir, sidx)
        zero = np.zeros(n, dtype=np.uint8)
        results: list[np.ndarray] = []            # results[j] goes to stream d + j
        if name == "SHIFT":
            k = f["n"]
            y = zero.copy()
            for i in range(n):
                if 0 <= i - k < n:
                    y[i] = x[i - k]
            results = [y]
        elif name in ("PERMUTE", "DISTRIBUTE"):
            mp = self.maps[f["slot"]]
            y = zero.copy()
            if not f["_bad"]:
                for i in range(n):
                    if mp[i] < n:
                        y[i] = x[mp[i]]
            results = [y]
        elif name == "ROTATE":
            k = max(1, f["k"])
            results = [np.array([x[(i + j) % n] for i in range(n)], dtype=np.uint8)
                       for j in range(k)]
        elif name == "TRANSPOSE":
            mm = transpose_size(cfg)
            src = [self._stream(east, west, sdir, sidx + c) for c in range(mm)]
            for a in range(mm):
                y = zero.copy()
                for lane in range(n):
                    b, c = divmod(lane, mm)
                    if b * mm + a < n:
                        y[lane] = src[c][b * mm + a]
                results.append(y)
        else:
            raise ValueError(f"SxmModel: unknown SXM instruction {name}")
        return [(ddir, didx + j, v) for j, v in enumerate(results) if didx + j < S]
