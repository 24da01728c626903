# Static schedule checker: simulates every queue's timing (NOP, REPEAT, SYNC/NOTIFY, IFETCH, HALT),
# every MEM engine's loop accesses and the MXM/SXM/VXM elements from docs/architecture.md,
# docs/units.md, docs/mxm.md, docs/sxm.md and docs/vxm.md, then checks streams (nothing arrives /
# two producers; events derived from asm/units.py), bank conflicts, engine-busy, address ranges,
# MXM engine-busy and accumulator hazards, SXM maps, illegal VXM configurations, VXM shifts by a
# known constant outside 0..31 (RANGE), deadlock and the cycle limit, and computes the Done-rule cycle count. Written from the spec alone (not from
# hdl/ or sim/model.py).
"""The schedule checker: `check(program)`; `field_problem` is shared with the Builder."""
from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass, field

from sim.sxm import map_problem  # the one map check, shared with the model
from tsp import isa, vxm
from tsp.config import TspConfig

from .program import AsmError, Program, ScheduleEntry
from .units import STREAM_USE, operand_streams

__all__ = ["DEFAULT_MAX_CYCLES", "check", "field_problem"]

DEFAULT_MAX_CYCLES = 10_000_000
_READS = ("READ", "GATHER")
_WRITES = ("WRITE", "SCATTER")
# MXM instruction -> the engine it occupies (docs/units.md section 2)
_MXM_ENGINE = {"LW": "LW", "LWG": "LW", "LXG": "LW", "ABC": "ABC", "ABX": "ABC", "ACC": "ACC"}


def _from(line: int | None) -> str:
    return "" if line is None else f" (from line {line})"


def _pname(config: TspConfig, p: int) -> str:
    return f"{config.positions[p]} (position {p})"


def field_problem(config: TspConfig, position: int, instr: isa.Instr,
                  values: dict[str, int]) -> str | None:
    """Why `instr` with field `values` cannot run on `position`'s queue, or None if it can.

    Checks the unit, every field's range, stream indices against `config.streams`, IFETCH
    streams (E0/W0 only) and addresses against `queue_depth`, and READ/WRITE addresses against
    the slice size. (Illegal
    VXM configurations are schedule errors: `_Checker.vxm_problem`, raised at issue.)
    """
    kind = config.unit_kind(position)
    if instr.unit == kind and kind != "mem" and kind not in config.units:
        return (f"{instr.name} is a {instr.unit} instruction and profile {config.name!r} has no "
                f"{instr.unit} unit (TspConfig.units = {config.units!r})")
    if not isa.valid_on(instr, kind, config.units):
        return (f"{instr.name} is a {instr.unit} instruction; the queue of "
                f"{_pname(config, position)} ({kind} unit) cannot run it")
    for f in instr.fields:
        v = values[f.name]
        if f.kind == "stream":
            if not 0 <= v < 64:
                return f"{instr.name}: stream field {f.name}={v} is not a stream operand"
            if instr.name == "IFETCH" and v & 31:
                return (f"IFETCH reads the instruction stream E0 or W0, not "
                        f"{isa.format_stream(v)}: the hardware treats an IFETCH on any other "
                        f"stream as ILLEGAL and fetches nothing")
            if v & 31 >= config.streams:
                return (f"{instr.name}: stream {isa.format_stream(v)} out of range: profile "
                        f"{config.name} has {config.streams} streams per direction "
                        f"(E0..E{config.streams - 1}, W0..W{config.streams - 1})")
        elif not f.min <= v <= f.max:
            if instr.name == "VCONST" and f.name == "imm" and -(1 << 31) <= v < 1 << 32:
                return _vconst_split(values["c"], v)
            return f"{instr.name}: field {f.name}={v} out of range [{f.min}, {f.max}]"
    if instr.name == "IFETCH" and values["addr"] >= config.queue_depth:
        return (f"IFETCH: address {values['addr']} out of range: the queue has "
                f"{config.queue_depth} words (0..{config.queue_depth - 1})")
    if instr.name in ("READ", "WRITE") and values["addr"] >= config.slice_words:
        return (f"{instr.name}: address {values['addr']} out of range "
                f"0..{config.slice_words - 1} of a MEM slice")
    return None


def _vconst_split(c: int, v: int) -> str:
    """The error for a VCONST immediate that is a 32-bit value but not a 20-bit one."""
    w = v & 0xFFFF_FFFF
    cn = f"c{c}" if 0 <= c < 4 else str(c)
    return (f"VCONST: imm={v} ({w:#010x}) does not fit the 20-bit signed field "
            f"[-524288, 524287]; load a 32-bit constant with two instructions: "
            f"VCONST {cn}, {w & 0xFFFF:#x} then VCONSTH {cn}, {w >> 16:#x} (2 cycles; the "
            f"value is complete from the cycle after the VCONSTH)")


# ---- simulation state ------------------------------------------------------------------------

@dataclass
class _Run:
    """One memory instruction's accesses: cycles t0 + k*d, addresses addr + k*step (k < n)."""

    name: str
    t0: int
    n: int
    d: int
    addr: int | None        # None for GATHER/SCATTER (data-dependent address)
    step: int
    line: int | None
    note: str

    @property
    def end(self) -> int:
        return self.t0 + (self.n - 1) * self.d

    def addr_at(self, u: int) -> int | None:
        if self.addr is None:
            return None
        return self.addr + ((u - self.t0) // self.d) * self.step


@dataclass
class _Slice:
    n: int = 1
    step: int = 1
    d: int = 1
    runs: dict[str, list[_Run]] = field(default_factory=lambda: {"read": [], "write": []})
    last: dict[str, int] = field(default_factory=lambda: {"read": -1, "write": -1})
    last_line: dict[str, int | None] = field(default_factory=lambda: {"read": None,
                                                                       "write": None})


@dataclass
class _Queue:
    pos: int
    words: list[int]        # padded to queue_depth with HALT
    lines: list[int | None]
    pc: int = 0
    state: str = "run"      # run, parked, halted, unknown
    halt_t: int = -1
    sync_t: int = -1
    sync_line: int | None = None
    cur_line: int | None = None


@dataclass(eq=False)
class _Ev:
    """A stream event: a producer (a value appears at x at cycle c) or a consumer (reads x at c).

    src:  for a consumer, the producer the stream check attributes it to.
    meta: for a READ producer, (position, address, access cycle) of the word it carries.
    """

    dirn: int
    idx: int
    x: int
    c: int
    desc: str
    line: int | None
    issued: int
    src: _Ev | None = None
    meta: tuple[int, int, int] | None = None


@dataclass
class _Mxm:
    """Per-MXM state: engine ends, last ABC write per accumulator row, activity end."""

    # engine name -> (first element cycle, last element cycle, line)
    busy: dict[str, tuple[int, int, int | None]] = field(default_factory=dict)
    writes: dict[int, tuple[int, int | None, str]] = field(default_factory=dict)  # row -> (u,..)
    end: int = 0
    end_line: int | None = None


@dataclass
class _Vxm:
    """Per-VXM state: activity end (a VRUN is active until its result is driven) and, for the
    RANGE check, the configuration and constant instructions and the VRUNs, in issue order
    (the VXM's one queue issues them in cycle order, REPEAT copies included)."""

    end: int = 0
    end_line: int | None = None
    # (issue cycle, k, op code, y, line) of each legal VCFG
    cfgs: list[tuple[int, int, int, int, int | None]] = field(default_factory=list)
    # (issue cycle, c, what, value, line): what = VCONST / VCONSTH (value: imm) / VLOADC
    consts: list[tuple[int, int, str, int, int | None]] = field(default_factory=list)
    # (issue cycle, line, description) of each VRUN
    runs: list[tuple[int, int | None, str]] = field(default_factory=list)


@dataclass
class _MapLoad:
    """A SETMAP: issue cycle, line, description and its map-stream consumer event."""

    t: int
    line: int | None
    desc: str
    event: _Ev


@dataclass
class _Sxm:
    """Per-SXM state: the last SETMAP of each slot in this program, activity end."""

    maps: dict[int, _MapLoad] = field(default_factory=dict)
    end: int = 0
    end_line: int | None = None


class _Checker:
    def __init__(self, prog: Program, max_cycles: int) -> None:
        self.prog = prog
        self.cfg = prog.config
        self.fn = prog.filename
        self.max_cycles = max_cycles
        self.producers: list[_Ev] = []
        self.consumers: list[_Ev] = []
        self.schedule: list[tuple[int, int, int, str, int | None, int, str]] = []
        self.seq = 0
        self.unknown_from: int | None = None
        self.notifies: set[int] = set()
        self.parked: list[_Queue] = []
        self.flags: dict[int, list[tuple[int, int]]] = defaultdict(list)  # pos -> (from, flags)
        self.permutes: list[tuple[_MapLoad, int, int, int | None, str, int]] = []

    def err(self, msg: str, line: int | None = None, cycle: int | None = None,
            position: int | None = None) -> AsmError:
        return AsmError(msg, self.fn, line, cycle, position)

    def pn(self, p: int) -> str:
        return _pname(self.cfg, p)

    # ---- static checks on the words -------------------------------------------------------
    def static(self) -> dict[int, list[int]]:
        cfg, prog = self.cfg, self.prog
        qd = cfg.queue_depth
        queues: dict[int, list[int]] = {}
        for p in prog.queues:
            if not isinstance(p, int) or not 0 <= p < cfg.num_positions:
                raise self.err(f"no position {p!r} in profile {cfg.name!r} "
                               f"(0..{cfg.num_positions - 1})")
        for p in range(cfg.num_positions):
            words = list(prog.queues.get(p, [0]))
            line_of = (lambda a, p=p: prog.line_of(p, a))
            if not words:
                raise self.err(f"the queue of {self.pn(p)} is empty (it must end with HALT)",
                               position=p)
            if len(words) > qd:
                known = [ln for ln in (line_of(a) for a in range(len(words))) if ln is not None]
                line = line_of(qd) if line_of(qd) is not None else (known[-1] if known else None)
                raise self.err(f"program too large for the queue of {self.pn(p)}: "
                               f"{len(words)} words (including the final HALT), the queue "
                               f"holds {qd}", line,
                               position=p)
            for a, w in enumerate(words):
                if isinstance(w, bool) or not isinstance(w, int) or not 0 <= w < 1 << 32:
                    raise self.err(f"word {a} of {self.pn(p)} is not a 32-bit word: {w!r}",
                                   line_of(a), position=p)
                instr, vals = isa.decode(w)
                if instr is None:
                    raise self.err(f"undefined opcode {w & 63} (word {w:#010x}) at address "
                                   f"{a} of {self.pn(p)}", line_of(a), position=p)
                if isa.encode(instr.name, **vals) != w:
                    raise self.err(f"word {w:#010x} ({instr.name}) at address {a} of "
                                   f"{self.pn(p)} has bits set outside its fields",
                                   line_of(a), position=p)
                why = field_problem(cfg, p, instr, vals)
                if why:
                    raise self.err(why, line_of(a), position=p)
                if instr.name == "REPEAT":
                    prev = isa.decode(words[a - 1])[0] if a > 0 else None
                    if prev is None or not prev.is_unit:
                        what = "the start of the queue" if prev is None else prev.name
                        raise self.err(f"REPEAT on {self.pn(p)} must directly follow a unit "
                                       f"instruction (it follows {what})", line_of(a),
                                       position=p)
                if instr.name == "IFETCH":
                    written = {(vals["addr"] + j) % qd for j in range(cfg.ifetch_words)}
                    hit = sorted(written & {(a + 1) % qd, (a + 2) % qd})
                    if hit:
                        raise self.err(
                            f"IFETCH at address {a} of {self.pn(p)} writes word {hit[0]}, one "
                            f"of the two words after itself, which the queue has already "
                            f"prefetched (prefetch rule)", line_of(a), position=p)
            if isa.decode(words[-1])[0].name != "HALT":
                raise self.err(f"the program of {self.pn(p)} does not end with HALT",
                               line_of(len(words) - 1), position=p)
            queues[p] = words
        seen = set()
        for i, item in enumerate(prog.data):
            line = prog.data_lines[i] if i < len(prog.data_lines) else None
            try:
                p, addr, value = item
            except (TypeError, ValueError):
                raise self.err(f"data entry {i} is not (position, addr, bytes)", line) from None
            problem = data_problem(cfg, p, addr, value)
            if problem:
                raise self.err(problem, line, position=p if isinstance(p, int) else None)
            if (p, addr) in seen:
                raise self.err(f".data: word {addr} of {self.pn(p)} is given twice", line,
                               position=p)
            seen.add((p, addr))
        return queues

    # ---- timing simulation ----------------------------------------------------------------
    def sched(self, t: int, p: int, word: int, line: int | None, note: str = "") -> None:
        self.schedule.append((t, p, self.seq, isa.decode(word)[0].name, line, word, note))
        self.seq += 1

    def simulate(self, queues: dict[int, list[int]]) -> int | None:
        cfg, prog = self.cfg, self.prog
        qd = cfg.queue_depth
        self.qs = {}
        for p, words in queues.items():
            lines = [prog.line_of(p, a) for a in range(len(words))]
            self.qs[p] = _Queue(p, words + [0] * (qd - len(words)), lines + [None] * (qd - len(
                words)))
        self.slices = {p: _Slice() for p in cfg.mem_positions}
        self.mxms = {p: _Mxm() for p in range(cfg.num_positions) if cfg.unit_kind(p) == "mxm"}
        self.sxms = {p: _Sxm() for p in range(cfg.num_positions) if cfg.unit_kind(p) == "sxm"}
        self.vxms = {p: _Vxm() for p in range(cfg.num_positions) if cfg.unit_kind(p) == "vxm"}
        heap = [(0, p) for p in sorted(self.qs)]
        parked = self.parked
        while heap:
            t, p = heapq.heappop(heap)
            if self.unknown_from is not None and t >= self.unknown_from:
                # an unpredictable queue may NOTIFY from now on: parked queues become unknown
                for r in parked:
                    r.state = "unknown"
                parked.clear()
            q = self.qs[p]
            if q.state != "run":
                continue
            if t >= self.max_cycles:
                raise self.err(f"the program does not finish within {self.max_cycles} cycles: "
                               f"the queue of {self.pn(p)} is still running at cycle "
                               f"{self.max_cycles}", q.cur_line, self.max_cycles, p)
            nxt = self.issue(q, t, parked)
            if nxt is not None:
                heapq.heappush(heap, (nxt, p))
            if q.state == "run" and nxt is None:  # pragma: no cover - defensive
                raise RuntimeError("queue without a next issue")
            for r in list(parked):
                if r.state == "run":      # released by a NOTIFY in this issue
                    parked.remove(r)
                    heapq.heappush(heap, (t + 2, r.pos))
        if parked:
            if self.unknown_from is None:
                q = min(parked, key=lambda r: (r.sync_t, r.pos))
                raise self.err(f"deadlock: the queue of {self.pn(q.pos)} parks in SYNC at "
                               f"cycle {q.sync_t} and no NOTIFY ever releases it",
                               q.sync_line, q.sync_t, q.pos)
            for r in parked:
                r.state = "unknown"
        if self.unknown_from is not None:
            return None
        ends: list[tuple[int, int | None, str]] = []
        for q in self.qs.values():
            ends.append((q.halt_t + 1, q.cur_line, f"the queue of {self.pn(q.pos)}"))
        for p, sl in self.slices.items():
            if sl.last["read"] >= 0:
                ends.append((sl.last["read"] + 2, sl.last_line["read"],
                             f"the read engine of {self.pn(p)}"))
            if sl.last["write"] >= 0:
                ends.append((sl.last["write"] + 1, sl.last_line["write"],
                             f"the write engine of {self.pn(p)}"))
        for units in (self.mxms, self.sxms, self.vxms):
            for p, st in units.items():
                ends.append((st.end, st.end_line, f"the unit of {self.pn(p)}"))
        total, line, who = max(ends, key=lambda e: e[0])
        if total > self.max_cycles:
            raise self.err(f"the program does not finish within {self.max_cycles} cycles: "
                           f"{who} is still active at cycle {self.max_cycles} (until cycle "
                           f"{total - 1})", line, self.max_cycles)
        return total

    def go_unknown(self, q: _Queue, t: int) -> None:
        q.state = "unknown"
        self.unknown_from = t if self.unknown_from is None else min(self.unknown_from, t)

    def issue(self, q: _Queue, t: int, parked: list[_Queue]) -> int | None:
        """Issue the instruction at q.pc in cycle t; return the next issue cycle (or None)."""
        cfg = self.cfg
        a = q.pc
        word = q.words[a]
        line = q.lines[a]
        instr, vals = isa.decode(word)
        name = instr.name
        q.cur_line = line
        self.sched(t, q.pos, word, line)
        q.pc = (a + 1) % cfg.queue_depth
        if name == "HALT":
            q.state = "halted"
            q.halt_t = t
            return None
        if name == "NOP":
            return t + vals["n"]
        if name == "CONFIG":
            self.flags[q.pos].append((t + 1, vals["flags"]))
            return t + 1
        if name == "NOTIFY":
            self.notifies.add(t)
            for r in parked:
                r.state = "run"
            return t + 1
        if name == "SYNC":
            q.sync_t, q.sync_line = t, line
            if self.unknown_from is not None:
                # an unpredictable queue may NOTIFY at any time: this queue's timing is unknown
                self.go_unknown(q, t)
                return None
            if t - 1 in self.notifies:
                return t + 1
            if t in self.notifies:
                return t + 2
            q.state = "parked"
            parked.append(q)
            return None
        if name == "REPEAT":
            prev = q.words[(a - 1) % cfg.queue_depth]
            pname = isa.decode(prev)[0].name
            for k in range(1, vals["n"] + 1):
                tc = t - 1 + k * vals["d"]
                note = f"REPEAT copy {k}/{vals['n']}"
                self.sched(tc, q.pos, prev, line, note)
                self.unit(q, prev, tc, line, f"{pname} ({note}, line {line})")
            return t + vals["n"] * vals["d"]
        if name == "IFETCH":
            k = cfg.ifetch_words
            self.events(q.pos, instr, vals, [(t, None)], "IFETCH", line)
            written = {(vals["addr"] + j) % cfg.queue_depth for j in range(k)}
            # words the queue still executes: a+3 .. the next HALT (a+1, a+2 are prefetched)
            h = (a + 1) % cfg.queue_depth
            later = []
            for _ in range(cfg.queue_depth):
                if h not in ((a + 1) % cfg.queue_depth, (a + 2) % cfg.queue_depth):
                    later.append(h)
                if isa.decode(q.words[h])[0].name == "HALT":
                    break
                h = (h + 1) % cfg.queue_depth
            if written & set(later):
                self.go_unknown(q, t + k)
                return None
            return t + k
        self.unit(q, word, t, line, f"{name} (line {line})" if line is not None else name)
        return t + 1

    def unit(self, q: _Queue, word: int, t: int, line: int | None, desc: str) -> None:
        """Execute a unit instruction issued (or re-issued by REPEAT) at cycle t."""
        instr, vals = isa.decode(word)
        if instr.unit == "vxm":
            why = self.vxm_problem(instr, vals)
            if why:
                effect = {"VRUN": "nothing runs", "VLOADC": "the constant is unchanged"}.get(
                    instr.name, "the configuration is unchanged")
                raise self.err(f"ILLEGAL: {desc} on {self.pn(q.pos)} at cycle {t}: {why}; the "
                               f"hardware raises ILLEGAL (error bit 3) and {effect}", line, t,
                               q.pos)
        if instr.unit == "mxm":
            why = self.mxm_problem(instr, vals)
            if why:
                raise self.err(f"ILLEGAL: {desc} on {self.pn(q.pos)} at cycle {t}: {why}; the "
                               f"hardware raises ILLEGAL (error bit 3) and drops it", line, t,
                               q.pos)
        for produced, ops in ((False, STREAM_USE[instr.name].consumes),
                              (True, STREAM_USE[instr.name].produces)):
            for op in ops:
                why = operand_streams(self.cfg, instr, op, vals, produced)[2]
                if why:
                    raise self.err(f"{desc} on {self.pn(q.pos)} at cycle {t}: {why}", line, t,
                                   q.pos)
        if instr.unit == "mem":
            elements = self.mem(q, instr, vals, t, line, desc)
        elif instr.unit == "mxm":
            elements = self.mxm(q, instr, vals, t, line, desc)
        elif instr.unit == "vxm":
            elements = self.vxm(q, instr, vals, t, line, desc)
        else:
            elements = self.sxm(q, instr, vals, t, line, desc)
        cons = self.events(q.pos, instr, vals, elements, desc, line)
        if instr.name == "SETMAP":
            self.sxms[q.pos].maps[vals["slot"]] = _MapLoad(t, line, desc, cons[0])

    def events(self, x: int, instr: isa.Instr, vals: dict[str, int],
               elements: list[tuple[int, tuple[int, int, int] | None]], desc: str,
               line: int | None) -> list[_Ev]:
        """Add the stream events of `instr` at position x (table asm/units.py): element at u
        consumes at u + dskew and produces at u + dfunc. Returns the consumer events."""
        use = STREAM_USE[instr.name]
        dfunc = isa.dfunc_of(instr, self.cfg)
        cons: list[_Ev] = []
        for u, meta in elements:
            for produced, ops in ((False, use.consumes), (True, use.produces)):
                for op in ops:
                    dirn, idx, _ = operand_streams(self.cfg, instr, op, vals, produced)
                    what = desc + (" " + op.role if op.role else "")
                    for i in idx:
                        if produced:
                            self.producers.append(_Ev(dirn, i, x, u + dfunc, what, line, u,
                                                      meta=meta))
                        else:
                            ev = _Ev(dirn, i, x, u + instr.dskew, what, line, u)
                            self.consumers.append(ev)
                            cons.append(ev)
        return cons

    def mem(self, q: _Queue, instr: isa.Instr, vals: dict[str, int], t: int, line: int | None,
            desc: str) -> list[tuple[int, tuple[int, int, int] | None]]:
        """A MEM instruction: loop registers, engine-busy, address range; returns its accesses
        (cycle, (position, address, cycle) for READ, else None)."""
        name = instr.name
        sl = self.slices[q.pos]
        if name == "ITERATIONS":
            sl.n = vals["n"]
            return []
        if name == "STEP":
            sl.step = vals["s"]
            return []
        if name == "COUNTDOWN":
            sl.d = vals["d"]
            return []
        eng = "read" if name in _READS else "write"
        if sl.last[eng] >= t:
            raise self.err(f"ENGINE_BUSY: {desc} issues at cycle {t} on {self.pn(q.pos)} while "
                           f"its {eng} engine still has accesses until cycle {sl.last[eng]}"
                           f"{_from(sl.last_line[eng])}", line, t, q.pos)
        n, d, step = sl.n, sl.d, sl.step
        end = t + (n - 1) * d
        if end >= self.max_cycles:
            raise self.err(f"the program does not finish within {self.max_cycles} cycles: "
                           f"{desc} on {self.pn(q.pos)} still accesses memory at cycle "
                           f"{self.max_cycles} (its last access is at cycle {end})",
                           line, self.max_cycles, q.pos)
        addr = None
        if name in ("READ", "WRITE"):
            addr = vals["addr"]
            sw = self.cfg.slice_words
            last_addr = addr + (n - 1) * step
            if not (0 <= addr < sw and 0 <= last_addr < sw):
                if step > 0:
                    k = (sw - addr + step - 1) // step
                else:
                    k = addr // -step + 1
                bad = addr + k * step
                raise self.err(f"{desc} on {self.pn(q.pos)}: access {k} (of {n}) at cycle "
                               f"{t + k * d} is to address {bad}, outside 0..{sw - 1} (loop: "
                               f"ITERATIONS {n}, STEP {step}, COUNTDOWN {d})", line, t + k * d,
                               q.pos)
        sl.runs[eng].append(_Run(name, t, n, d, addr, step, line, desc))
        sl.last[eng] = end
        sl.last_line[eng] = line
        if name == "READ":
            return [(t + k * d, (q.pos, addr + k * step, t + k * d)) for k in range(n)]
        return [(t + k * d, None) for k in range(n)]

    def mxm_problem(self, instr: isa.Instr, vals: dict[str, int]) -> str | None:
        """Why an MXM instruction is ILLEGAL in this profile (docs/units.md section 2), or None:
        LWG/LXG with w > mxm_load_width, LXG/ABX when mxm_xbuf = 0."""
        name, cfg = instr.name, self.cfg
        if name in ("LXG", "ABX") and cfg.mxm_xbuf == 0:
            return (f"{name} needs the MXM activation buffer and profile {cfg.name!r} has "
                    f"none (TspConfig.mxm_xbuf = 0)")
        if name in ("LWG", "LXG") and vals["w"] > cfg.mxm_load_width:
            return (f"w={vals['w']} is more than TspConfig.mxm_load_width = "
                    f"{cfg.mxm_load_width} of profile {cfg.name!r} (the most vectors one "
                    f"{name} element takes in one cycle)")
        return None

    def mxm(self, q: _Queue, instr: isa.Instr, vals: dict[str, int], t: int, line: int | None,
            desc: str) -> list[tuple[int, None]]:
        """An MXM instruction (docs/mxm.md, docs/units.md section 2): engine-busy (LWG/LXG share
        the LW engine, ABX the ABC engine), accumulator hazards (ABX elements like ABC ones, at
        t + k*d), activity."""
        name, x = instr.name, q.pos
        st = self.mxms[x]
        if name == "IW":
            return []
        eng = _MXM_ENGINE[name]
        first, last, last_line = st.busy.get(eng, (-1, -1, None))
        if last >= t:
            shared = {"LW": " (shared by LW, LWG and LXG)",
                      "ABC": " (shared by ABC and ABX)"}.get(eng, "")
            raise self.err(f"ENGINE_BUSY (MXM engine busy): {desc} issues at cycle {t} on "
                           f"{self.pn(x)} while its {eng} engine{shared} is busy from cycle "
                           f"{first} until cycle {last}{_from(last_line)}; the hardware would "
                           f"drop it and raise ENGINE_BUSY", line, t, x)
        count = max(1, vals["count"])
        d = max(1, vals["d"]) if name == "ABX" else 1
        elements = [t + k * d for k in range(count)]
        st.busy[eng] = (t, elements[-1], line)
        rows = 4 * self.cfg.vec_bytes
        if name in ("ABC", "ABX"):
            for k, u in enumerate(elements):
                r = (vals["acc"] + k) % rows
                prev = st.writes.get(r)
                if vals["mode"] == 1 and prev is not None and prev[0] + 2 >= u + 1:
                    raise self.err(
                        f"accumulator hazard: {desc} (mode 1) on {self.pn(x)}, element {k} "
                        f"(entering at cycle {u}), reads row {r} at cycle {u + 1} before the "
                        f"previous write of that row has ended: {prev[2]} writes it at the end "
                        f"of cycle {prev[0] + 2} (a mode-1 read at u + 1 sees only writes "
                        f"that ended by u)", line, u + 1, x)
                st.writes[r] = (u, line, f"the element entering at cycle {u} of {desc}")
            end = elements[-1] + 3       # read at u + 1, write at the end of u + 2
        elif name == "ACC":
            for k, u in enumerate(elements):
                r = (vals["acc"] + k) % rows
                prev = st.writes.get(r)
                if prev is not None and prev[0] + 2 >= u:
                    raise self.err(
                        f"accumulator hazard: {desc} on {self.pn(x)}, element {k}, reads row "
                        f"{r} at cycle {u} before its last ABC write has ended: {prev[2]} "
                        f"writes it at the end of cycle {prev[0] + 2} (an ACC read at cycle u "
                        f"sees only writes that ended by u - 1)", line, u, x)
            end = elements[-1] + 2       # driven out during u + 1
        else:  # LW, LWG, LXG
            end = elements[-1] + 1
        if end > st.end:
            st.end, st.end_line = end, line
        return [(u, None) for u in elements]

    def sxm(self, q: _Queue, instr: isa.Instr, vals: dict[str, int], t: int, line: int | None,
            desc: str) -> list[tuple[int, None]]:
        """An SXM instruction (docs/sxm.md): map slots, activity."""
        name, x = instr.name, q.pos
        st = self.sxms[x]
        if name == "SETMAP":
            return [(t, None)]
        if name in ("PERMUTE", "DISTRIBUTE"):
            slot = vals["slot"]
            load = st.maps.get(slot)
            if load is None:
                raise self.err(f"{desc} on {self.pn(x)} at cycle {t} uses map slot {slot}, which "
                               f"no SETMAP of this program has loaded before it (map registers "
                               f"keep what an earlier program left, zeros at power-on)",
                               line, t, x)
            if name == "PERMUTE":
                self.permutes.append((load, slot, t, line, desc, x))
        if t + 2 > st.end:             # the result is driven in t + 1
            st.end, st.end_line = t + 2, line
        return [(t, None)]

    def vxm_problem(self, instr: isa.Instr, vals: dict[str, int]) -> str | None:
        """Why a VXM instruction is ILLEGAL in the hardware (docs/vxm.md sections 3-5), or None."""
        name, alus = instr.name, self.cfg.vxm_alus
        types = "0 i8, 1 i16, 2 i32"
        regs = [("dst", "a result register"), ("x", "an operand register")]
        if name == "VCFG":
            k, code = vals["k"], vals["op"]
            if k >= alus:
                return (f"ALU stage k={k} does not exist: profile {self.cfg.name!r} has "
                        f"vxm_alus = {alus} stages (k = 0..{alus - 1})")
            op = vxm.ALU_BY_CODE.get(code)
            if op is None:
                return (f"operation code op={code} is undefined (tsp/vxm.py ALU_OPS: "
                        f"{', '.join(f'{o.code} {o.name}' for o in vxm.ALU_OPS)})")
            kind = self.cfg.vxm_stages[k]
            if not op.runs_on(kind):
                return (f"{op.name} at stage k={k}: stage {k} is a {vxm.STAGE_KINDS[kind]} "
                        f"stage ({kind}; profile {self.cfg.name!r} has vxm_stages = "
                        f"{self.cfg.vxm_stages!r}) and {op.name} needs a "
                        f"{' or '.join(vxm.STAGE_KINDS[c] for c in op.kinds)} stage")
            if vals["type"] == vxm.TYPE_NONE:
                return f"type=3 is not a stage type ({types})"
        if name in ("VCFG", "VFUNC"):
            for f, what in regs:
                if vals[f] == 3:
                    return f"{f}=3 is not {what} (r0..r2 = 0..2)"
        if name == "VLOADC" and vals["t"] == vxm.TYPE_NONE:
            return f"type t=3 (none) is not allowed for VLOADC ({types})"
        if name == "VRUN":
            for f in ("ta", "td"):
                if vals[f] == vxm.TYPE_NONE:
                    return (f"type {f}=3 (none) is allowed only for operand b (tb); {f} must be "
                            f"{types}")
        return None

    def vxm(self, q: _Queue, instr: isa.Instr, vals: dict[str, int], t: int,
            line: int | None, desc: str) -> list[tuple[int, None]]:
        """A (legal) VXM instruction (docs/vxm.md): its stream element and activity; records
        the configuration, constants and VRUNs for the RANGE check (`ranges`)."""
        st = self.vxms[q.pos]
        name = instr.name
        if name == "VCFG":
            st.cfgs.append((t, vals["k"], vals["op"], vals["y"], line))
        elif name in ("VCONST", "VCONSTH", "VLOADC"):
            st.consts.append((t, vals["c"], name, vals.get("imm", 0), line))
        if name == "VLOADC":
            return [(t, None)]
        if name != "VRUN":
            return []          # VCFG, VFUNC, VCONST, VCONSTH: state only, no stream
        st.runs.append((t, line, desc))
        end = t + isa.dfunc_of(instr, self.cfg)   # active through t + A + 3 (docs/vxm.md)
        if end > st.end:
            st.end, st.end_line = end, line
        return [(t, None)]

    # ---- VXM shift ranges ------------------------------------------------------------------
    def ranges(self) -> list[AsmError]:
        """VRUNs whose S stage shifts (SHL SHRA SHRL RDIVPOT) by a constant whose value is
        statically known (START: 0; VCONST, VCONSTH) and outside 0..31 (docs/vxm.md section 3:
        the hardware raises RANGE in the cycle the stage acts). Shifts from r0..r2 or from a
        VLOADC'ed constant are data and are not checked. The state a stage uses is the one in
        effect in its cycle u = t + 1 + k: set by instructions issued before u."""
        shifts = {vxm.ALU_BY_NAME[n].code for n in ("SHL", "SHRA", "SHRL", "RDIVPOT")}
        first_c = vxm.SRC_NAMES.index("c0")
        errors: list[AsmError] = []

        def at_line(n: int | None) -> str:
            return "" if n is None else f" (line {n})"
        for p, st in self.vxms.items():
            if not st.runs:
                continue
            limit = None                # a queue with unknown timing: only what is known
            if self.qs[p].state == "unknown":
                limit = max(e[0] for e in self.schedule if e[1] == p) + 1
            queries = sorted((t + 1 + k, k, t, line, desc) for t, line, desc in st.runs
                             for k in range(self.cfg.vxm_alus)
                             if self.cfg.vxm_stages[k] == "S")
            stage: dict[int, tuple[int, int, int, int | None]] = {}   # k -> (op, y, t, line)
            const: list[tuple[int | None, str, int, int | None]] = \
                [(0, "START", 0, None)] * 4                  # c -> (value or None, what, t, line)
            ic = ik = 0
            for u, k, t, line, desc in queries:
                if limit is not None and u > limit:
                    break
                while ik < len(st.cfgs) and st.cfgs[ik][0] < u:
                    tk, kk, op, y, ln = st.cfgs[ik]
                    stage[kk] = (op, y, tk, ln)
                    ik += 1
                while ic < len(st.consts) and st.consts[ic][0] < u:
                    tc, c, what, imm, ln = st.consts[ic]
                    old = const[c][0]
                    if what == "VCONST":
                        v = imm & 0xFFFFF
                        v = v - (1 << 20) if v & 0x80000 else v
                    elif what == "VCONSTH" and old is not None:
                        v = (imm & 0xFFFF) << 16 | (old & 0xFFFF)
                        v = v - (1 << 32) if v >> 31 else v
                    else:                                    # VLOADC, or VCONSTH of unknown
                        v = None
                    const[c] = (v, what, tc, ln)
                    ic += 1
                if k not in stage:
                    continue                                 # PASS since START
                op, y, tk, kline = stage[k]
                if op not in shifts or not first_c <= y < first_c + 4:
                    continue
                c = y - first_c
                v, what, tc, cline = const[c]
                if v is None or 0 <= v <= 31:
                    continue
                shown = f"{v}" if -256 < v < 256 else f"{v} ({v & 0xFFFFFFFF:#010x})"
                errors.append(self.err(
                    f"RANGE: {desc} on {self.pn(p)} at cycle {t}: stage {k} "
                    f"{vxm.ALU_BY_CODE[op].name} shift c{c} = {shown} is outside 0..31; c{c} "
                    f"is set by {what} at cycle {tc}{at_line(cline)}, stage {k} by VCFG at cycle "
                    f"{tk}{at_line(kline)}; the hardware would raise RANGE (error bit 5) in cycle "
                    f"{u} and shift by {v} & 31 = {v & 31}", line, t, p))
        return errors

    # ---- SXM maps -------------------------------------------------------------------------
    def written_before(self, p: int, addr: int, u: int) -> bool:
        """Whether slice p's write engine may have written word `addr` before cycle u."""
        for run in self.slices[p].runs["write"]:
            for k in range(run.n):
                w = run.t0 + k * run.d
                if w >= u:
                    break
                if run.addr is None or run.addr_at(w) == addr:
                    return True
        return False

    def flags_at(self, p: int, u: int) -> int:
        flags = 0
        for start, f in self.flags.get(p, []):
            if start <= u:
                flags = f
        return flags

    def maps(self) -> list[AsmError]:
        """PERMUTEs whose map is statically known (SETMAP fed by a READ of a `.data` word not
        written since) and is not a bijection."""
        cfg = self.cfg
        data = {(p, a): bytes(v) for p, a, v in self.prog.data}
        errors: list[AsmError] = []
        for load, slot, t, line, desc, x in self.permutes:
            src = load.event.src
            if src is None or src.meta is None:
                continue
            p, a, u = src.meta
            value = data.get((p, a))
            if value is None or self.written_before(p, a, u):
                continue
            flags = self.flags_at(p, u)
            value = bytearray(value)
            for sl in range(cfg.superlanes):
                if flags >> sl & 1:
                    value[sl * cfg.lanes:(sl + 1) * cfg.lanes] = bytes(cfg.lanes)
            why = map_problem(cfg, bytes(value), True)
            if why:
                errors.append(self.err(
                    f"BAD_MAP: {desc} on {self.pn(x)} at cycle {t} uses map slot {slot}, loaded "
                    f"by {load.desc} at cycle {load.t} from word {a} of "
                    f"{cfg.positions[p]} (.data, read at cycle {u}): {why}; the hardware "
                    f"would write zeros", line, t, x))
        return errors

    # ---- stream check ---------------------------------------------------------------------
    def streams(self) -> list[AsmError]:
        """Nothing-arrives and two-producer errors (see docs/assembly.md for the attribution)."""
        groups: dict[tuple[int, int, int], list[tuple[int, int, _Ev]]] = defaultdict(list)
        for kind, evs in ((0, self.producers), (1, self.consumers)):
            for e in evs:
                east = e.dirn == isa.EAST
                key = e.c - e.x if east else e.c + e.x
                groups[(e.dirn, e.idx, key)].append((e.x if east else -e.x, kind, e))
        errors: list[AsmError] = []
        first_nothing: tuple[_Ev, str] | None = None   # message built once (it scans producers)
        for (dirn, idx, _key), evs in groups.items():
            evs.sort(key=lambda v: (v[0], v[1]))
            st = isa.format_stream((dirn << 5) | idx)
            prods: list[list] = []   # [event, order, live_end_order, consumer]
            for order, kind, e in evs:
                if kind == 0:
                    prods.append([e, order, None, None])
                    continue
                if not prods:
                    checked = self.unknown_from is None or e.c < self.unknown_from
                    if checked and (first_nothing is None or (e.c, e.x) < (first_nothing[0].c,
                                                                            first_nothing[0].x)):
                        first_nothing = (e, st)
                    continue
                target = next((pr for pr in prods if pr[3] is None), prods[-1])
                e.src = target[0]
                if target[2] is None or order >= target[2]:
                    target[2], target[3] = order, e
            best = None   # producer with the farthest live end so far
            for pr in prods:
                if best is not None and best[2] is not None and best[2] >= pr[1]:
                    e, old, c = pr[0], best[0], best[3]
                    errors.append(self.err(
                        f"two producers: {e.desc} on {self.pn(e.x)} puts a value on {st} at "
                        f"cycle {e.c} (issued at cycle {e.issued}), where the live value of "
                        f"{old.desc} from {self.cfg.positions[old.x]} sits: {c.desc} on "
                        f"{self.pn(c.x)} consumes it at cycle {c.c}", e.line, e.c, e.x))
                if pr[2] is not None and (best is None or best[2] is None or pr[2] > best[2]):
                    best = pr
        if first_nothing is not None:
            errors.append(self.nothing(*first_nothing))
        return errors

    def nothing(self, e: _Ev, st: str) -> AsmError:
        hint = ""
        east = e.dirn == isa.EAST
        arrivals = [(abs(p.c + abs(e.x - p.x) - e.c), p) for p in self.producers
                    if p.dirn == e.dirn and p.idx == e.idx and (p.x <= e.x if east else
                                                                 p.x >= e.x)]
        if arrivals:
            _, p = min(arrivals, key=lambda v: v[0])
            hint = (f" (the nearest in time is {p.desc} from {self.cfg.positions[p.x]}, which "
                    f"reaches {self.cfg.positions[e.x]} at cycle {p.c + abs(e.x - p.x)})")
        return self.err(f"nothing arrives: {e.desc} on {self.pn(e.x)} reads {st} at cycle "
                        f"{e.c}, but no produced value is on {st} there{hint}", e.line, e.c,
                        e.x)

    # ---- bank check -----------------------------------------------------------------------
    def banks(self) -> list[AsmError]:
        """Read/write accesses of one slice on one bank (or unprovable) in one cycle."""
        errors: list[AsmError] = []
        bd = self.cfg.bank_depth
        for p, sl in self.slices.items():
            for r in sl.runs["read"]:
                for w in sl.runs["write"]:
                    lo, hi = max(r.t0, w.t0), min(r.end, w.end)
                    if lo > hi:
                        continue
                    a, b = (r, w) if r.d >= w.d else (w, r)
                    k = max(0, -(-(lo - a.t0) // a.d))
                    u = a.t0 + k * a.d
                    while u <= hi:
                        if (u - b.t0) % b.d == 0:
                            ra, wa = r.addr_at(u), w.addr_at(u)
                            if ra is None or wa is None or ra // bd == wa // bd:
                                errors.append(self.bank_error(p, u, r, w, ra, wa))
                                break
                        u += a.d
        return errors

    def bank_error(self, p: int, u: int, r: _Run, w: _Run, ra: int | None,
                   wa: int | None) -> AsmError:
        bd = self.cfg.bank_depth
        late = r if r.t0 > w.t0 else w

        def what(run: _Run, a: int | None, verb: str) -> str:
            if a is None:
                return f"{run.note} {verb} an address that depends on data"
            return f"{run.note} {verb} bank {a // bd} (address {a})"
        text = f"{what(r, ra, 'reads')} while {what(w, wa, 'writes')}"
        if ra is None or wa is None:
            return self.err(f"possible bank conflict on {self.pn(p)} at cycle {u}: {text}; "
                            f"GATHER/SCATTER banks cannot be proven different, so they may not "
                            f"access in a cycle in which the other engine of the slice "
                            f"accesses", late.line, u, p)
        return self.err(f"bank conflict on {self.pn(p)} at cycle {u}: {text}", late.line, u, p)


def data_problem(config: TspConfig, position: object, addr: object, value: object) -> str | None:
    """Why a `.data` entry is invalid, or None."""
    if isinstance(position, bool) or not isinstance(position, int) or not (
            0 <= position < config.num_positions):
        return f".data: no position {position!r} in profile {config.name!r}"
    if position not in config.mem_positions:
        return (f".data: {_pname(config, position)} is not a MEM slice; initial data goes to "
                f"MEM positions only")
    if isinstance(addr, bool) or not isinstance(addr, int) or not 0 <= addr < config.slice_words:
        return (f".data: address {addr!r} out of range 0..{config.slice_words - 1} of "
                f"{_pname(config, position)}")
    if not isinstance(value, (bytes, bytearray)):
        return f".data: the value must be bytes, not {type(value).__name__}"
    if len(value) != config.vec_bytes:
        return (f".data: {len(value)} bytes given for {_pname(config, position)} word {addr}; "
                f"a word is {config.vec_bytes} bytes (vec_bytes) in profile {config.name!r}")
    return None


def check(prog: Program, max_cycles: int = DEFAULT_MAX_CYCLES) -> None:
    """Check `prog` against the timing rules; raise `AsmError` on the first problem.

    On success, sets ``prog.predicted_cycles`` and ``prog.schedule`` (and the listing's words).
    Order: per-word and data checks, then the timing simulation (ENGINE_BUSY, address ranges,
    deadlock, cycle limit, in cycle order), then the earliest stream or bank error.
    """
    if not isinstance(prog, Program):
        raise TypeError(f"check() needs a Program, not {type(prog).__name__}")
    c = _Checker(prog, max_cycles)
    queues = c.static()
    total = c.simulate(queues)
    errors = c.streams() + c.banks()
    errors += c.maps()
    errors += c.ranges()
    if errors:
        raise min(errors, key=lambda e: (e.cycle if e.cycle is not None else -1,
                                          e.position if e.position is not None else -1))
    c.schedule.sort(key=lambda s: (s[0], s[1], s[2]))
    prog.schedule = [ScheduleEntry(t, p, name, line) for t, p, _, name, line, _, _ in c.schedule]
    prog.schedule_words = [w for *_, w, _ in c.schedule]
    prog.schedule_notes = [n for *_, n in c.schedule]
    prog.predicted_cycles = total
