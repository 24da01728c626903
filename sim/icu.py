# Golden model of one instruction queue (ICU): program counter, the one-word-ahead prefetch
# buffer, occupancy (next issue cycle), SYNC parking, HALT, REPEAT memory and pending IFETCH
# writes. See docs/architecture.md section 3. The cycle loop lives in sim/model.py.
from __future__ import annotations

import numpy as np

__all__ = ["Queue"]


class Queue:
    """State of the instruction queue at one position.

    Prefetch: `w_issue` is the word that issues next (at `next_t`, address `pc`); `w_ahead` is
    the word at `pc + 1`, read at the end of cycle `next_t - 1` before that cycle's
    instruction-memory writes (the model calls `prefetch` then).
    """

    def __init__(self, position: int, kind: str) -> None:
        self.position = position
        self.kind = kind            # unit kind: "mem", "vxm", "sxm", "mxm"

    def start(self, imem_row: np.ndarray) -> None:
        """START: prime the queue (words 0 and 1 read) so word 0 issues at cycle 0."""
        depth = len(imem_row)
        self.pc = 0
        self.w_issue = int(imem_row[0])
        self.w_ahead = int(imem_row[1 % depth])
        self.next_t: int | None = 0
        self.halted = False
        self.parked = False
        self.last_unit: tuple | None = None        # (Instr, fields) of the last unit instruction
        self.rep_next: int | None = None           # cycle of the next REPEAT copy
        self.rep_left = 0
        self.rep_d = 1
        self.imem_writes: list[tuple[int, int, int]] = []   # (cycle, address, word)

    def active(self) -> bool:
        """Active in the current cycle (call at the start of the cycle)."""
        return not self.halted and not self.parked

    def advance(self, depth: int) -> int:
        """Take the word at `pc` into issue: return it and move to the next address."""
        word = self.w_issue
        self.pc = (self.pc + 1) % depth
        self.w_issue = self.w_ahead
        return word

    def prefetch(self, imem_row: np.ndarray) -> None:
        """Read the word after the next one to issue (end of cycle `next_t - 1`)."""
        self.w_ahead = int(imem_row[(self.pc + 1) % len(imem_row)])
