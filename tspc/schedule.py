# The static scheduler's bookkeeping: every hardware resource an instruction uses in a cycle is a
# *cell* (resource key, cycle), and two instructions may never claim one cell. A lowered piece of
# work is a `Template` of instructions and cells at cycles relative to an offset; `Timeline.place`
# finds the earliest offset at which none of its cells is taken, records them and emits the
# instructions into an `asm.TimedBuilder`, whose checker verifies the whole program again.
"""Resource cells, templates and the first-fit placement of templates on a timeline."""
from __future__ import annotations

from dataclasses import dataclass, field

from asm import TimedBuilder
from asm.timed import occupancy
from tsp import isa
from tsp.config import TspConfig

__all__ = ["SelfConflict", "Template", "Timeline"]

_NOP_MAX = isa.BY_NAME["NOP"].field("n").max


class SelfConflict(Exception):
    """A template needs one resource cell twice (e.g. two reads of one slice at once)."""

    def __init__(self, key: tuple, cycle: int) -> None:
        self.key, self.cycle = key, cycle
        super().__init__(f"resource {key} claimed twice at relative cycle {cycle}")


@dataclass
class Template:
    """Instructions and resource cells at cycles relative to the template's offset."""

    instrs: list[tuple[int, int, str, tuple, str]] = field(default_factory=list)
    cells: dict[tuple, set[int]] = field(default_factory=dict)

    def claim(self, key: tuple, cycle: int, count: int = 1) -> None:
        """Resource `key` is busy in cycles `cycle .. cycle + count - 1`. A template that
        claims one cell twice can never be placed: `SelfConflict`."""
        cells = self.cells.setdefault(key, set())
        new = range(cycle, cycle + count)
        if any(c in cells for c in new):
            raise SelfConflict(key, next(c for c in new if c in cells))
        cells.update(new)

    def instr(self, cycle: int, pos: int, mnemonic: str, *ops, note: str = "",
              occupancy_cycles: int = 1) -> None:
        """Issue an instruction from `pos`'s queue (its queue cells are claimed)."""
        self.instrs.append((cycle, pos, mnemonic, ops, note))
        self.claim(("q", pos), cycle, occupancy_cycles)

    def stream(self, direction: int, s: int, p_from: int, p_to: int, cycle: int,
               count: int = 1) -> None:
        """`count` consecutive vectors on stream `s` (0 east, 1 west) that are at position
        `p_from` during `cycle + k` and travel to `p_to` (inclusive): one cell per register."""
        step = 1 if p_to >= p_from else -1
        if (step == 1) != (direction == 0) and p_to != p_from:
            raise ValueError(f"stream {'EW'[direction]}{s} cannot flow from position {p_from} "
                             f"to {p_to}")
        for hop, p in enumerate(range(p_from, p_to + step, step)):
            self.claim(("s", direction, s, p), cycle + hop, count)

    @staticmethod
    def merged(templates: list[Template]) -> Template:
        """All instructions of `templates` in one (for capacity estimates only)."""
        t = Template()
        for u in templates:
            t.instrs += u.instrs
        return t

    def earliest(self) -> int:
        """The smallest relative cycle of any instruction or cell."""
        lo = [c for c, *_ in self.instrs] + [min(v) for v in self.cells.values() if v]
        return min(lo) if lo else 0

    def latest(self) -> int:
        hi = [c for c, *_ in self.instrs] + [max(v) for v in self.cells.values() if v]
        return max(hi) if hi else 0


class Timeline:
    """The cells taken so far in one program (a *segment*) and its instructions."""

    def __init__(self, config: TspConfig, filename: str) -> None:
        self.config = config
        self.busy: dict[tuple, set[int]] = {}
        self.tb = TimedBuilder(config, filename=filename)
        self.items: dict[int, list[tuple[int, int]]] = {}   # queue -> [(cycle, occupancy)]
        self.end = 0                                        # last cycle any cell is claimed
        self.placed = 0

    def fits(self, t: Template, offset: int) -> tuple | None:
        """None when every cell of `t` at `offset` is free, else the first taken cell's key."""
        for key, rels in t.cells.items():
            taken = self.busy.get(key)
            if taken and any(r + offset in taken for r in rels):
                return key
        return None

    def find(self, t: Template, lowest: int) -> int:
        """The smallest offset >= `lowest` at which `t` fits (and no cycle is negative)."""
        off = max(lowest, -t.earliest())
        while self.fits(t, off) is not None:
            off += 1
        return off

    def commit(self, t: Template, offset: int) -> None:
        for key, rels in t.cells.items():
            self.busy.setdefault(key, set()).update(r + offset for r in rels)
        for c, pos, mn, ops, note in t.instrs:
            self.tb.at(c + offset, pos, mn, *ops, note=note)
            self.items.setdefault(pos, []).append(
                (c + offset, occupancy(self.config, mn, ops)))
        self.end = max(self.end, t.latest() + offset)
        self.placed += 1

    def words(self, pos: int, extra: list[tuple[int, int]] = ()) -> int:
        """Instruction words `pos`'s queue needs: instructions, NOP gap fillers and the HALT
        (with `extra` (cycle, occupancy) items added)."""
        now, n = 0, 1
        for c, occ in sorted(self.items.get(pos, []) + list(extra)):
            if c > now:
                n += -(-(c - now) // _NOP_MAX)
            n += 1
            now = c + occ
        return n

    def room(self, t: Template) -> bool:
        """True when `t`'s instructions fit every queue whatever their cycles (each may need a
        NOP before it): the conservative test used before placing a template."""
        per: dict[int, int] = {}
        for _, pos, *_ in t.instrs:
            per[pos] = per.get(pos, 0) + 2
        return all(self.words(p) + n <= self.config.queue_depth for p, n in per.items())

    def room_at(self, t: Template, offset: int, more: Template | None = None) -> bool:
        """True when `t` placed at `offset` (exact words, NOPs included) plus `more` (any
        cycles: two words per instruction) fits every queue."""
        extra: dict[int, list[tuple[int, int]]] = {}
        for c, pos, mn, ops, _ in t.instrs:
            extra.setdefault(pos, []).append((c + offset, occupancy(self.config, mn, ops)))
        loose: dict[int, int] = {}
        for _, pos, *_ in (more.instrs if more is not None else []):
            loose[pos] = loose.get(pos, 0) + 2
        return all(self.words(p, extra.get(p, [])) + loose.get(p, 0) <= self.config.queue_depth
                   for p in set(extra) | set(loose))

    def max_words(self) -> tuple[int, int]:
        """(words, position) of the fullest queue."""
        return max(((self.words(p), p) for p in self.items), default=(0, 0))
