# Golden model of one MEM slice: two banks of `bank_depth` vector words, a read engine
# (READ, GATHER: dfunc 2) and a write engine (WRITE, SCATTER: dskew 0), the three loop
# registers (ITERATIONS, STEP, COUNTDOWN) and the CONFIG superlane power-down mask.
# See docs/architecture.md section 4. The cycle loop lives in sim/model.py.
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Engine", "MemSlice"]


@dataclass
class Engine:
    """One running memory instruction: access k at cycle t0 + k*d, k < n."""

    name: str          # READ / WRITE / GATHER / SCATTER
    t0: int
    n: int
    step: int
    d: int
    addr: int          # base address (READ/WRITE)
    s: int             # data stream operand (6-bit field value)
    m: int             # map stream operand (GATHER/SCATTER), else -1

    @property
    def last(self) -> int:
        """Cycle of the last access."""
        return self.t0 + (self.n - 1) * self.d

    def access(self, t: int) -> int | None:
        """Index k of the access in cycle t, or None."""
        dt = t - self.t0
        if dt < 0 or dt % self.d:
            return None
        k = dt // self.d
        return k if k < self.n else None


class MemSlice:
    """State of one MEM slice apart from its memory array (kept in `TspModel.mem`)."""

    def __init__(self, position: int, lanes: int, superlanes: int) -> None:
        self.position = position
        self.lanes = lanes
        self.superlanes = superlanes
        self.reset()

    def reset(self) -> None:
        """START: loop registers to (n=1, step=1, d=1), flags 0, engines idle."""
        self.n, self.step, self.d = 1, 1, 1
        self.read: Engine | None = None
        self.write: Engine | None = None
        # Read data of the access in the previous cycle, (stream field, vector) or None;
        # it is loaded into the stream register at the end of the current cycle.
        self.inflight: tuple[int, np.ndarray] | None = None

    def active(self, t: int) -> bool:
        """Whether the slice counts as active in cycle t (the "Done" rule)."""
        if self.read is not None and self.read.last >= t - 1:
            return True
        return self.write is not None and self.write.last >= t

    def busy(self, name: str, t: int) -> bool:
        """Whether the engine that runs `name` still has an access at cycle t or later."""
        eng = self.read if name in ("READ", "GATHER") else self.write
        return eng is not None and eng.last >= t

    def start(self, name: str, t: int, addr: int, s: int, m: int) -> None:
        """Start a memory instruction issued at t, latching the loop registers."""
        eng = Engine(name, t, self.n, self.step, self.d, addr, s, m)
        if name in ("READ", "GATHER"):
            self.read = eng
        else:
            self.write = eng

    def accesses(self, t: int) -> tuple[str | None, str | None]:
        """Read-only: the instruction names (READ/GATHER, WRITE/SCATTER) of the read and the
        write engine if that engine accesses memory in cycle t, else None (for activity)."""
        r, w = self.read, self.write
        return (None if r is None or r.access(t) is None else r.name,
                None if w is None or w.access(t) is None else w.name)

    def keep_mask(self, flags: int) -> np.ndarray | None:
        """Byte mask (True = powered up) for CONFIG `flags`, or None if all are up."""
        down = flags & ((1 << self.superlanes) - 1)
        if not down:
            return None
        up = np.array([not (down >> j) & 1 for j in range(self.superlanes)], dtype=bool)
        return np.repeat(up, self.lanes)
