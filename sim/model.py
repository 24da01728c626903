# Cycle-exact numpy golden model of the TSP slice (docs/architecture.md is the contract).
#
# It executes the binary program (32-bit words, decoded with tsp.isa.decode) of every queue,
# cycle by cycle. In cycle t every read (stream registers, MEM, instruction memory) sees the
# values held *during* t; every update (stream register loads, MEM writes, IMEM writes, CONFIG
# flags) takes effect at t+1. Per cycle: (1) queues issue (and REPEAT copies; a compute-unit
# instruction goes to the unit's `issue`), (2) MEM engines access memory and every compute unit
# runs `cycle(t, east, west)` on the registers at its position, (3) stream registers shift and
# load produced values (MEM and unit writes), (4) NOTIFY releases, instruction prefetch, then
# IMEM/MEM/flag writes are applied.
#
# Compute units (docs/units.md section 1) are the model twins in `UNIT_MODELS` (kind -> class).
# A unit kind is instantiated when it is in the configuration's `units` (TspConfig.units);
# a unit keeps its persistent state (weights, accumulators, maps) across runs.
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from tsp.config import TspConfig
from tsp.hostmap import DEADLOCK_POSITION, ERR_BITS, ERR_WIDTH
from tsp.isa import INSTRUCTIONS, decode, valid_on

from .icu import Queue
from .mem import MemSlice
from .mxm import MxmModel
from .sxm import SxmModel
from .vxm import VxmModel

__all__ = [
    "ACTIVITY_BITS",
    "ACTIVITY_MNEMONICS",
    "BAD_MAP",
    "BANK_CONFLICT",
    "DEADLOCK",
    "DEADLOCK_POSITION",
    "ENGINE_BUSY",
    "ILLEGAL",
    "UNIT_MODELS",
    "Activity",
    "ModelError",
    "RunResult",
    "Trace",
    "TspModel",
]

# Error flag bits (docs/architecture.md section 4).
BIT_BANK_CONFLICT, BIT_ENGINE_BUSY, BIT_DEADLOCK, BIT_ILLEGAL, BIT_BAD_MAP = (
    ERR_BITS[n] for n in ("BANK_CONFLICT", "ENGINE_BUSY", "DEADLOCK", "ILLEGAL", "BAD_MAP"))
BANK_CONFLICT = 1 << BIT_BANK_CONFLICT
ENGINE_BUSY = 1 << BIT_ENGINE_BUSY
DEADLOCK = 1 << BIT_DEADLOCK
ILLEGAL = 1 << BIT_ILLEGAL
BAD_MAP = 1 << BIT_BAD_MAP

# Compute-unit model twins (docs/units.md section 1), by unit kind.
UNIT_MODELS = {"mxm": MxmModel, "sxm": SxmModel, "vxm": VxmModel}


# Activity record (opt-in: `TspModel.run(activity=True)`). `Activity.bits[t, p]` is a bitmask of
# what the unit at position p did in cycle t; bit i of a position of kind k means
# ACTIVITY_BITS[k][i]:
#   OUT       (every kind) the position loaded a stream register at the end of t (MEM: the data
#             of the previous cycle's read access; a unit: one of its results)
#   mem: RD   the read engine accesses memory (READ or GATHER; GATHER also sets GATHER)
#        WR   the write engine has an access slot (WRITE or SCATTER; SCATTER also sets SCATTER)
#        CONFLICT  that write was suppressed by a bank conflict
#   mxm: LW, ABC, ACC  the engine has an element in t; IW  the install pulse
#   sxm: the instruction that reads its operands in t (dskew 0: its issue cycle)
#   vxm: VRUN / VLOADC  reads its operand vector in t (a VRUN vector enters the pipeline);
#        CFG  a configuration instruction (VCFG VFUNC VCONST VCONSTH) is accepted in t;
#        PIPE  a vector is in an ALU stage or the function stage in t (t0+1 .. t0+A+2 of a
#              VRUN at t0, A = vxm_alus)
# `Activity.issued[t, p]` indexes ACTIVITY_MNEMONICS: the mnemonic the queue at p issued in t
# (a REPEAT copy logs the copied instruction), 0 ("") = none.
ACTIVITY_BITS: dict[str, tuple[str, ...]] = {
    "mem": ("OUT", "RD", "GATHER", "WR", "SCATTER", "CONFLICT"),
    "mxm": ("OUT", "LW", "IW", "ABC", "ACC"),
    "sxm": ("OUT", "SETMAP", "SHIFT", "PERMUTE", "DISTRIBUTE", "ROTATE", "TRANSPOSE"),
    "vxm": ("OUT", "VRUN", "VLOADC", "CFG", "PIPE"),
}
ACTIVITY_MNEMONICS: tuple[str, ...] = ("",) + tuple(i.name for i in INSTRUCTIONS) + ("ILLEGAL",)
_ABIT = {(k, n): 1 << i for k, names in ACTIVITY_BITS.items() for i, n in enumerate(names)}
_MNEMONIC_INDEX = {n: i for i, n in enumerate(ACTIVITY_MNEMONICS)}
_ACT_CHUNK = 4096


def _bits(flags: int) -> list[int]:
    """The bit numbers set in an error word (only the defined flags, < ERR_WIDTH)."""
    return [b for b in range(ERR_WIDTH) if flags >> b & 1]


class ModelError(ValueError):
    """Bad use of the golden model (bad position, address, data, or max_cycles exceeded)."""


@dataclass
class Trace:
    """Stream-register contents: `east[t, p, s]` / `west[t, p, s]` is the vector held by the
    register of stream s at position p during cycle t, for t = 0 .. T inclusive."""

    east: np.ndarray
    west: np.ndarray
    config: TspConfig

    def first_divergence(self, east: np.ndarray, west: np.ndarray
                         ) -> tuple[int, str, int | None, int | None,
                                    np.ndarray | None, np.ndarray | None] | None:
        """Compare `east`/`west` (actual, e.g. from an RTL run; same shape as this trace's
        arrays) with this trace (expected).

        Returns None if equal, else (cycle, "E"/"W", position, stream, expected, actual) of the
        first differing register (earliest cycle, then east before west, then lowest position,
        then lowest stream). If one side has fewer cycles and all common cycles agree, returns
        (first missing cycle, "E", None, None, None, None).
        """
        got = {}
        for name, arr, ref in (("east", east, self.east), ("west", west, self.west)):
            a = np.asarray(arr)
            if a.ndim != 4 or a.shape[1:] != ref.shape[1:]:
                raise ModelError(f"first_divergence: {name} has shape {a.shape}, expected "
                                 f"(cycles, {', '.join(map(str, ref.shape[1:]))})")
            got[name] = a.astype(np.uint8, copy=False)
        if len(got["east"]) != len(got["west"]):
            raise ModelError(f"first_divergence: east has {len(got['east'])} cycles but west "
                             f"has {len(got['west'])}")
        n = min(len(self.east), len(got["east"]))
        best = None
        for d, ref, act in (("E", self.east, got["east"]), ("W", self.west, got["west"])):
            bad = np.argwhere((ref[:n] != act[:n]).any(axis=3))   # (cycle, p, s), sorted
            if len(bad):
                c, p, s = (int(x) for x in bad[0])
                if best is None or c < best[0]:
                    best = (c, d, p, s, ref[c, p, s].copy(), act[c, p, s].copy())
        if best is None and len(self.east) != len(got["east"]):
            return (n, "E", None, None, None, None)
        return best

    def format(self, cycles: Sequence[int] | range | None = None,
               positions: Sequence[int] | None = None) -> str:
        """Human-readable table of the non-zero registers (bytes in hex, lane 0 first)."""
        cyc = range(len(self.east)) if cycles is None else cycles
        pos = range(self.east.shape[1]) if positions is None else positions
        lines = [f"{'cycle':>6}  {'position':<12} {'stream':<6} bytes (hex, lane 0 first)"]
        for t in cyc:
            if not 0 <= t < len(self.east):
                raise ModelError(f"Trace.format: cycle {t} outside 0..{len(self.east) - 1}")
            for p in pos:
                if not 0 <= p < self.east.shape[1]:
                    raise ModelError(f"Trace.format: no position {p}")
                for d, arr in (("E", self.east), ("W", self.west)):
                    for s in range(arr.shape[2]):
                        v = arr[t, p, s]
                        if v.any():
                            name = f"{self.config.positions[p]}({p})"
                            lines.append(f"{t:>6}  {name:<12} {d}{s:<5} "
                                         + " ".join(f"{b:02x}" for b in v))
        return "\n".join(lines)


@dataclass
class Activity:
    """What every unit did in every cycle of a run (see ACTIVITY_BITS): `bits` (T, P) uint16
    bitmasks, `issued` (T, P) uint8 indices into ACTIVITY_MNEMONICS."""

    bits: np.ndarray
    issued: np.ndarray
    config: TspConfig

    @property
    def cycles(self) -> int:
        return int(self.bits.shape[0])

    def _pos(self, position: int | str) -> int:
        if isinstance(position, str):
            try:
                return self.config.position_index(position)
            except ValueError as e:
                raise ModelError(f"Activity: {e}") from None
        if isinstance(position, bool) or not isinstance(position, (int, np.integer)) \
                or not 0 <= position < self.config.num_positions:
            raise ModelError(f"Activity: position {position!r} outside "
                             f"0..{self.config.num_positions - 1}")
        return int(position)

    def mask(self, position: int | str, name: str) -> int:
        """The bit of activity `name` (e.g. "RD", "ABC") at `position` (index or name)."""
        p = self._pos(position)
        kind = self.config.unit_kind(p)
        if (kind, name) not in _ABIT:
            raise ModelError(f"Activity: no activity {name!r} at position {p} "
                             f"({self.config.positions[p]}, a {kind} position); it has "
                             f"{', '.join(ACTIVITY_BITS.get(kind, ())) or 'none'}")
        return _ABIT[kind, name]

    def busy(self, position: int | str, name: str) -> np.ndarray:
        """Bool array (T,): the cycles in which activity `name` happened at `position`."""
        return (self.bits[:, self._pos(position)] & self.mask(position, name)) != 0

    def issues(self, position: int | str, mnemonic: str | None = None) -> np.ndarray:
        """Bool array (T,): the cycles in which `position`'s queue issued `mnemonic` (None:
        anything)."""
        col = self.issued[:, self._pos(position)]
        if mnemonic is None:
            return col != 0
        if mnemonic not in _MNEMONIC_INDEX:
            raise ModelError(f"Activity.issues: unknown mnemonic {mnemonic!r}")
        return col == _MNEMONIC_INDEX[mnemonic]


@dataclass
class RunResult:
    """Outcome of `TspModel.run` (`activity` only with `run(activity=True)`)."""

    cycles: int
    err_flags: int
    err_position: int | None
    err_bit: int | None
    err_cycle: int | None
    trace: Trace | None
    issue_log: list[tuple[int, int, str]] = field(default_factory=list)
    activity: Activity | None = None

    @property
    def deadlocked(self) -> bool:
        return bool(self.err_flags & DEADLOCK)


class TspModel:
    """Golden model of one TSP slice configured by `config` (a `TspConfig`)."""

    def __init__(self, config: TspConfig) -> None:
        if not isinstance(config, TspConfig):
            raise TypeError(f"TspModel needs a TspConfig, not {config!r}")
        self.config = c = config
        self.P, self.S, self.V = c.num_positions, c.streams, c.vec_bytes
        self.Q, self.W, self.BD = c.queue_depth, c.slice_words, c.bank_depth
        self.imem = np.zeros((self.P, self.Q), dtype=np.uint32)
        self.mem = np.zeros((self.P, self.W, self.V), dtype=np.uint8)
        self._queues = [Queue(p, c.unit_kind(p)) for p in range(self.P)]
        self._slices = {p: MemSlice(p, c.lanes, c.superlanes) for p in c.mem_positions}
        self._units: dict = {}       # position -> unit model twin (created at START)
        self._flags = [0] * self.P
        self.east = np.zeros((self.P, self.S, self.V), dtype=np.uint8)
        self.west = np.zeros_like(self.east)
        self._zero = np.zeros(self.V, dtype=np.uint8)
        self._act: list[np.ndarray] | None = None     # activity chunks while recording

    # ---- host-side access --------------------------------------------------------------
    def _position(self, position: int | str, what: str, mem: bool = False) -> int:
        if isinstance(position, str):
            try:
                position = self.config.position_index(position)
            except ValueError as e:
                raise ModelError(f"{what}: {e}") from None
        if isinstance(position, bool) or not isinstance(position, (int, np.integer)):
            raise ModelError(f"{what}: position must be an integer, not {position!r}")
        position = int(position)
        if not 0 <= position < self.P:
            raise ModelError(f"{what}: position {position} outside 0..{self.P - 1}")
        if mem and position not in self._slices:
            raise ModelError(
                f"{what}: position {position} ({self.config.positions[position]}) is not a MEM "
                f"slice; MEM slices are at {list(self.config.mem_positions)}")
        return position

    def _addr(self, addr: int, what: str, position: int) -> int:
        if isinstance(addr, bool) or not isinstance(addr, (int, np.integer)) \
                or not 0 <= addr < self.W:
            raise ModelError(f"{what}: address {addr!r} at position {position} outside "
                             f"0..{self.W - 1}")
        return int(addr)

    def load_queue(self, position: int | str, words: Sequence[int], base: int = 0) -> None:
        """Write instruction words to the instruction memory of `position` from `base` on."""
        p = self._position(position, "load_queue")
        words = list(words)
        if isinstance(base, bool) or not isinstance(base, int) or base < 0 \
                or base + len(words) > self.Q:
            raise ModelError(f"load_queue: {len(words)} words at base {base!r} do not fit in "
                             f"the {self.Q}-word instruction memory of position {p}")
        for i, w in enumerate(words):
            if isinstance(w, bool) or not isinstance(w, (int, np.integer)) \
                    or not 0 <= w < 1 << 32:
                raise ModelError(f"load_queue: word {i} ({w!r}) for position {p} is not a "
                                 f"32-bit unsigned integer")
        self.imem[p, base:base + len(words)] = np.asarray(words, dtype=np.uint64)

    def write_mem(self, position: int | str, addr: int, data) -> None:
        """Write one vector word (`vec_bytes` bytes) to MEM slice `position`, address `addr`."""
        p = self._position(position, "write_mem", mem=True)
        a = self._addr(addr, "write_mem", p)
        if isinstance(data, (bytes, bytearray)):
            arr = np.frombuffer(bytes(data), dtype=np.uint8)
        else:
            raw = np.asarray(data)
            if raw.ndim != 1 or not (np.issubdtype(raw.dtype, np.integer) or raw.size == 0) \
                    or (raw.size and (raw.min() < 0 or raw.max() > 255)):
                raise ModelError(f"write_mem: data for position {p} address {a} must be bytes "
                                 f"or a 1-D array of values 0..255")
            arr = raw.astype(np.uint8)
        if arr.shape != (self.V,):
            raise ModelError(f"write_mem: data for position {p} address {a} has {arr.size} "
                             f"bytes, expected vec_bytes={self.V}")
        self.mem[p, a] = arr

    def read_mem(self, position: int | str, addr: int) -> np.ndarray:
        """A copy of the vector word at `addr` of MEM slice `position` (uint8, vec_bytes)."""
        p = self._position(position, "read_mem", mem=True)
        return self.mem[p, self._addr(addr, "read_mem", p)].copy()

    # ---- running -------------------------------------------------------------------------
    def _start(self) -> None:
        """Host START: clear streams, flags, engines, loop registers; prime the queues."""
        self.east[:] = 0
        self.west[:] = 0
        self._nxt_e = np.zeros_like(self.east)
        self._nxt_w = np.zeros_like(self.west)
        self._flags = [0] * self.P
        for q in self._queues:
            q.start(self.imem[q.position])
        for sl in self._slices.values():
            sl.reset()
        for p in range(self.P):
            kind = self.config.unit_kind(p)
            if kind in UNIT_MODELS and kind in self.config.units and p not in self._units:
                self._units[p] = UNIT_MODELS[kind](self.config, p)
        for u in self._units.values():
            u.reset()
        self._err_flags = 0
        self._first_err: tuple[int, int, int] | None = None    # (cycle, position, bit)
        self._notify_prev = False
        self._log: list[tuple[int, int, str]] = []

    def _active(self, t: int) -> bool:
        return any(q.active() for q in self._queues) or \
            any(sl.active(t) for sl in self._slices.values()) or \
            any(u.active(t) for u in self._units.values())

    def run(self, max_cycles: int = 1_000_000, trace: bool = False,
            activity: bool = False) -> RunResult:
        """Run the loaded program from START until done (cycle count T, see the "Done" rule).
        With `activity`, the result's `activity` records what every unit did in every cycle.

        Raises ModelError if the program is still running after `max_cycles` cycles.
        """
        if isinstance(max_cycles, bool) or not isinstance(max_cycles, int) or max_cycles < 0:
            raise ModelError(f"run: max_cycles must be a non-negative integer, "
                             f"not {max_cycles!r}")
        self._start()
        self._act = [] if activity else None
        tr_e: list[np.ndarray] = []
        tr_w: list[np.ndarray] = []
        t = 0
        while self._active(t):
            if t >= max_cycles:
                busy = [self.config.positions[q.position] for q in self._queues if q.active()]
                busy += [self.config.positions[p] + " (engines)"
                         for p, sl in self._slices.items() if sl.active(t)]
                busy += [self.config.positions[p] + " (unit)"
                         for p, u in self._units.items() if u.active(t)]
                raise ModelError(f"run: program still running after max_cycles={max_cycles} "
                                 f"cycles; active: {', '.join(busy)}")
            if trace:
                tr_e.append(self.east.copy())
                tr_w.append(self.west.copy())
            self._step(t)
            t += 1
        if trace:
            tr_e.append(self.east.copy())
            tr_w.append(self.west.copy())
        if any(q.parked for q in self._queues):
            self._err_flags |= DEADLOCK
            if self._first_err is None:
                self._first_err = (t, DEADLOCK_POSITION, BIT_DEADLOCK)
        fe = self._first_err
        return RunResult(
            cycles=t, err_flags=self._err_flags,
            err_position=None if fe is None else fe[1],
            err_bit=None if fe is None else fe[2],
            err_cycle=None if fe is None else fe[0],
            trace=Trace(np.stack(tr_e), np.stack(tr_w), self.config) if trace else None,
            issue_log=self._log, activity=self._activity(t) if activity else None)

    # ---- one cycle -----------------------------------------------------------------------
    def _sval(self, p: int, v: int) -> np.ndarray:
        """The value on stream operand `v` (6-bit field) at position p during this cycle;
        an index >= streams reads as zero."""
        if v & 31 >= self.S:
            return self._zero
        return (self.west if (v >> 5) & 1 else self.east)[p, v & 31]

    def _legal(self, q: Queue, instr, f: dict) -> bool:
        """Whether the decoded word runs on q: a defined opcode valid for q's unit, and an
        IFETCH reads an instruction stream (E0 or W0: stream index 0)."""
        if instr is None or not valid_on(instr, q.kind, self.config.units):
            return False
        return instr.name != "IFETCH" or f["s"] & 31 == 0

    def _step(self, t: int) -> None:
        errs: list[tuple[int, int]] = []
        self._notify_now = False
        self._pending_flags: list[tuple[int, int]] = []
        # (1) issue
        for q in self._queues:
            if q.halted or q.parked:
                continue
            if q.next_t == t:
                self._issue(q, t, q.advance(self.Q), errs)
            if q.rep_next == t:
                instr, f = q.last_unit
                self._log.append((t, q.position, instr.name))
                self._unit(q, t, instr, f, errs)
                q.rep_left -= 1
                q.rep_next = t + q.rep_d if q.rep_left else None
        if self._act is not None:
            self._act_row = self._activity_pre(t)
        # (2) MEM engines and compute units; produced = (position, direction, index, vector)
        produced: list[tuple[int, int, int, np.ndarray]] = []
        mem_writes: list[tuple[int, int, np.ndarray, np.ndarray | None]] = []
        for p, sl in self._slices.items():
            mask = sl.keep_mask(self._flags[p])
            new_inflight = None
            rbank = None
            e = sl.read
            k = None if e is None else e.access(t)
            if k is not None:
                if e.name == "READ":
                    a = (e.addr + k * e.step) % self.W
                else:
                    m = self._sval(p, e.m)
                    a = (int(m[0]) | int(m[1]) << 8) % self.W
                data = self.mem[p, a].copy()
                if mask is not None:
                    data[~mask] = 0
                new_inflight = (e.s, data)
                rbank = a // self.BD
            e = sl.write
            k = None if e is None else e.access(t)
            if k is not None:
                if e.name == "WRITE":
                    a = (e.addr + k * e.step) % self.W
                else:
                    m = self._sval(p, e.m)
                    a = (int(m[0]) | int(m[1]) << 8) % self.W
                if rbank is not None and a // self.BD == rbank:
                    errs.append((p, BIT_BANK_CONFLICT))
                else:
                    mem_writes.append((p, a, self._sval(p, e.s).copy(), mask))
            if sl.inflight is not None:
                s, data = sl.inflight
                produced.append((p, s >> 5 & 1, s & 31, data))
            sl.inflight = new_inflight
        for p, u in self._units.items():
            loads, err = u.cycle(t, self.east[p], self.west[p])
            produced += [(p, d, s, np.asarray(v, dtype=np.uint8).copy()) for d, s, v in loads]
            errs += [(p, b) for b in _bits(err)]
        if self._act is not None:
            self._activity_post(t, produced, errs)
        # (3) streams: shift one position, zeros enter at the edges, producers overwrite
        ne, nw = self._nxt_e, self._nxt_w
        ne[1:] = self.east[:-1]
        ne[0] = 0
        nw[:-1] = self.west[1:]
        nw[-1] = 0
        for p, d, s, data in produced:
            if s < self.S:                    # an index >= streams writes nothing
                (nw if d else ne)[p, s] = data
        self._nxt_e, self.east = self.east, ne
        self._nxt_w, self.west = self.west, nw
        # (4) NOTIFY release, prefetch (before this cycle's IMEM writes), then the writes
        if self._notify_now:
            for q in self._queues:
                if q.parked:
                    q.parked = False
                    q.next_t = t + 2
        self._notify_prev = self._notify_now
        for q in self._queues:
            if q.halted:
                continue
            if q.next_t == t + 1:
                q.prefetch(self.imem[q.position])
            if q.imem_writes:
                while q.imem_writes and q.imem_writes[0][0] == t:
                    _, a, w = q.imem_writes.pop(0)
                    self.imem[q.position, a] = w
        for p, a, data, mask in mem_writes:
            if mask is None:
                self.mem[p, a] = data
            else:
                self.mem[p, a, mask] = data[mask]
        for p, f in self._pending_flags:
            self._flags[p] = f
        # errors of this cycle: sticky flags, first error = lowest position, then lowest bit
        if errs:
            for _, b in errs:
                self._err_flags |= 1 << b
            if self._first_err is None:
                p, b = min(errs)
                self._first_err = (t, p, b)

    # ---- activity record (only with run(activity=True)) -----------------------------------
    def _activity_pre(self, t: int) -> list[int]:
        """The activity bits of cycle t known after the issue phase."""
        row = [0] * self.P
        for p, sl in self._slices.items():
            r, w = sl.accesses(t)
            if r is not None:
                row[p] |= _ABIT["mem", "RD"] | (_ABIT["mem", "GATHER"] if r == "GATHER" else 0)
            if w is not None:
                row[p] |= _ABIT["mem", "WR"] | (_ABIT["mem", "SCATTER"] if w == "SCATTER" else 0)
        for p, u in self._units.items():
            if isinstance(u, MxmModel):
                for name in u.engines_at(t):
                    row[p] |= _ABIT["mxm", name]
            elif isinstance(u, SxmModel):
                name = u.reading(t)
                if name is not None:
                    row[p] |= _ABIT["sxm", name]
            elif isinstance(u, VxmModel):
                name = u.reading(t)
                if name is not None:
                    row[p] |= _ABIT["vxm", name]
                if u.configuring(t):
                    row[p] |= _ABIT["vxm", "CFG"]
                if u.in_pipeline(t):
                    row[p] |= _ABIT["vxm", "PIPE"]
        return row

    def _activity_post(self, t: int, produced: list, errs: list) -> None:
        """Add the stream loads and bank conflicts of cycle t and store its row."""
        row = self._act_row
        for p, *_ in produced:
            row[p] |= 1                                   # OUT is bit 0 of every kind
        for p, b in errs:
            if b == BIT_BANK_CONFLICT and p in self._slices:
                row[p] |= _ABIT["mem", "CONFLICT"]
        if any(row):
            i, j = divmod(t, _ACT_CHUNK)
            while len(self._act) <= i:
                self._act.append(np.zeros((_ACT_CHUNK, self.P), dtype=np.uint16))
            self._act[i][j] = row

    def _activity(self, T: int) -> Activity:
        """The Activity of the run that just ended after T cycles."""
        chunks = self._act or [np.zeros((0, self.P), dtype=np.uint16)]
        bits = np.concatenate(chunks)[:T]
        if len(bits) < T:
            bits = np.concatenate([bits, np.zeros((T - len(bits), self.P), dtype=np.uint16)])
        issued = np.zeros((T, self.P), dtype=np.uint8)
        for c, p, name in self._log:
            issued[c, p] = _MNEMONIC_INDEX[name]
        self._act = None
        return Activity(bits, issued, self.config)

    def _issue(self, q: Queue, t: int, word: int, errs: list) -> None:
        """Issue `word` from queue q at cycle t; sets q.next_t (occupancy)."""
        p = q.position
        instr, f = decode(word)
        if not self._legal(q, instr, f):
            self._log.append((t, p, "ILLEGAL"))
            errs.append((p, BIT_ILLEGAL))
            q.next_t = t + 1
            return
        name = instr.name
        self._log.append((t, p, name))
        if name == "HALT":
            q.halted = True
            q.next_t = None
        elif name == "NOP":
            q.next_t = t + max(1, f["n"])
        elif name == "REPEAT":
            n, d = max(1, f["n"]), max(1, f["d"])
            q.next_t = t + n * d
            if q.last_unit is not None:
                q.rep_next, q.rep_left, q.rep_d = t - 1 + d, n, d
        elif name == "SYNC":
            if self._notify_prev:          # a NOTIFY at t-1 is seen at t: released at once
                q.next_t = t + 1
            else:
                q.parked = True
                q.next_t = None
        elif name == "NOTIFY":
            self._notify_now = True
            q.next_t = t + 1
        elif name == "CONFIG":
            self._pending_flags.append((p, f["flags"]))
            q.next_t = t + 1
        elif name == "IFETCH":
            vec = self._sval(p, f["s"])
            words = np.ascontiguousarray(vec).view("<u4")
            q.imem_writes.extend((t + j, (f["addr"] + j) % self.Q, int(w))
                                 for j, w in enumerate(words))
            q.next_t = t + len(words)
        else:                               # a unit instruction
            q.last_unit = (instr, f)
            self._unit(q, t, instr, f, errs)
            q.next_t = t + 1

    def _unit(self, q: Queue, t: int, instr, f: dict, errs: list) -> None:
        """Hand a unit instruction (original or REPEAT copy) to the unit at q's position."""
        p = q.position
        if p in self._units:           # a compute unit (its kind is built: checked by _legal)
            errs += [(p, b) for b in _bits(self._units[p].issue(t, instr, f, self._flags[p]))]
            return
        sl = self._slices[p]
        name = instr.name
        if name == "ITERATIONS":
            sl.n = max(1, f["n"])
        elif name == "STEP":
            sl.step = f["s"]
        elif name == "COUNTDOWN":
            sl.d = max(1, f["d"])
        elif sl.busy(name, t):
            errs.append((p, BIT_ENGINE_BUSY))
        else:
            sl.start(name, t, f.get("addr", 0), f["s"], f.get("m", -1))
