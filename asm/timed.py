# Building a program from issue cycles: `TimedBuilder.at(cycle, position, mnemonic, ...)` records
# when each instruction must issue; `build()` orders each queue by cycle, fills the gaps with NOPs
# and hands the result to the ordinary Builder, whose checker verifies the whole schedule. This
# is the layer a scheduler (the compiler, the benchmarks) writes to instead of counting NOPs.
"""`TimedBuilder`: place instructions at absolute issue cycles."""
from __future__ import annotations

from tsp import isa
from tsp.config import TspConfig

from .parser import DEFAULT_MAX_CYCLES, Builder
from .program import AsmError, Program

__all__ = ["TimedBuilder", "occupancy"]

_NOP_MAX = isa.BY_NAME["NOP"].field("n").max


def occupancy(config: TspConfig, mnemonic: str, operands: tuple) -> int:
    """Cycles a queue spends on one instruction before it issues the next one (docs/isa.md):
    NOP n -> n, REPEAT n, d -> n*d, IFETCH -> vec_bytes/4, every other instruction 1."""
    name = mnemonic.upper()
    if name == "NOP":
        return int(operands[0])
    if name == "REPEAT":
        return int(operands[0]) * int(operands[1])
    if name == "IFETCH":
        return config.ifetch_words
    if name in ("SYNC", "HALT"):
        raise AsmError(f"TimedBuilder cannot place {name}: its duration is not a fixed number "
                       "of cycles", "<timed>")
    return 1


class TimedBuilder:
    """Collects (cycle, position, instruction) and builds a checked `Program`."""

    def __init__(self, config: TspConfig, filename: str = "<timed>"):
        self.config = config
        self.filename = filename
        self._items: dict[int, list[tuple[int, int, str, tuple, str]]] = {}
        self._data: list[tuple[int | str, int, bytes]] = []
        self._builder = Builder(config, filename=filename)
        self._seq = 0

    def at(self, cycle: int, position: int | str, mnemonic: str, *operands: int | str,
           note: str = "") -> None:
        """Issue `mnemonic operands` from `position`'s queue at exactly `cycle`."""
        if isinstance(cycle, bool) or not isinstance(cycle, int) or cycle < 0:
            raise AsmError(f"{mnemonic} on {position}: issue cycle must be an integer >= 0, "
                           f"not {cycle!r}", self.filename)
        p = self._builder.position(position)
        self._seq += 1
        self._items.setdefault(p, []).append((cycle, self._seq, mnemonic, operands, note))

    def data(self, position: int | str, addr: int, value: bytes) -> None:
        """Initial contents of one MEM word (as `Builder.data`)."""
        self._data.append((position, addr, value))

    def queue_end(self, position: int | str) -> int:
        """First cycle at which `position`'s queue is free after what was placed so far."""
        p = self._builder.position(position)
        end = 0
        for c, _, mn, ops, _ in self._items.get(p, []):
            end = max(end, c + occupancy(self.config, mn, ops))
        return end

    def build(self, max_cycles: int = DEFAULT_MAX_CYCLES) -> Program:
        """Order every queue by cycle, insert NOPs, build and check. Two instructions of one
        queue that overlap (the second placed before the first one's occupancy ends) are an
        error naming both."""
        b = self._builder
        cfg = self.config
        for p in sorted(self._items):
            now = 0
            prev = None
            for c, _, mn, ops, note in sorted(self._items[p], key=lambda x: (x[0], x[1])):
                if c < now:
                    raise AsmError(
                        f"{cfg.positions[p]}: {mn} {', '.join(map(str, ops))} at cycle {c} "
                        f"collides with {prev} (the queue is busy until cycle {now})",
                        self.filename, cycle=c, position=p)
                while c > now:
                    gap = min(c - now, _NOP_MAX)
                    b.add(p, "NOP", gap, source=f"NOP {gap} (gap)")
                    now += gap
                text = f"{mn} {', '.join(map(str, ops))}".strip()
                b.add(p, mn, *ops, source=text + (f"  ; {note}" if note else ""))
                prev = f"{text} at cycle {c}"
                now = c + occupancy(cfg, mn, ops)
        for pos, addr, value in self._data:
            b.data(pos, addr, value)
        return b.build(max_cycles)
