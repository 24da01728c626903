"""Random valid programs that exercise the compute units (MXM, SXM, VXM) for tb/test_top.py.

`random_unit_program(cfg, seed)` builds a program with `asm.Builder` (so the schedule checker
validates it) out of *episodes*, one per compute unit it picks:

  MXM  LW (one or two parts covering all n shadow rows) -> IW -> ABC mode 0 -> optionally a
       second tile (LW during the ABC, IW possibly while the ABC still streams) -> ABC mode 0
       or 1 (row hazards respected) -> ACC (SG4 out) -> WRITEs capturing the int32 bytes
  wide after every other episode, from a random stream of its own (so the instructions of the
       other episodes are placed as before; only random MEM data differs), at each MXM with
       probability 1/2: a full tile by LWG (row 0, iw = 1, w up to mxm_load_width) -> LXG of
       activation-buffer rows (w up to mxm_load_width) -> ABX mode 0 (count, d random) ->
       optionally a second tile by LWG while the ABX runs -> optionally ABX mode 1 on the same
       rows -> ACC; in profiles without an activation buffer (mxm_xbuf = 0): LWG with w = 1 ->
       ABC mode 0 -> ACC
  SXM  SETMAP, SHIFT, PERMUTE (bijective maps; in some programs a non-bijective map loaded
       through SHIFT 0 -> SETMAP, which the checker cannot see statically: BAD_MAP), DISTRIBUTE,
       ROTATE, TRANSPOSE; sources are MEM READs or an earlier SXM result at the unit; results
       are captured by MEM WRITEs
  VXM  VCONST / VCONSTH / VLOADC (i8, i16, i32) constants, VCFG of random legal operations
       (each on a stage whose kind runs it), VFUNC (OFF, EXP, TANH, RSQRT), VRUN with random
       ta / tb (or none) / td / sat whose operand groups are fed by MEM READs arriving exactly at
       the VRUN and whose result group is captured by MEM WRITEs at t + vxm_alus + 4 + hops,
       REPEAT'd VRUNs (one vector per cycle) with reconfiguration issued while they are in
       flight; in some programs one or two VCFGs are patched after the checker into illegal
       words (stage k >= vxm_alus, undefined operation, operation the stage's kind cannot run),
       which the hardware flags ILLEGAL at that cycle (the assembler rejects them statically);
       shifts by data (registers, VLOADC'ed constants) outside 0..31 raise RANGE, which the
       generator does not predict (`UnitProgram.err_problem` allows it); a program that shifts
       by a known constant outside 0..31 is rejected by the checker and regenerated

Every operand is placed by the timing law (docs/architecture.md section 2): a READ issued at
`tr` at slice `xp` feeds an operand read at `xc` at `tr + 2 + |xc - xp|`; a result at `x` at
cycle `c` is captured by a WRITE at slice `xw` issued at `c + |xw - x|`. Resource rules kept by
construction: one producer per stream wavefront (so no "two producers" and no attribution
ambiguity), one instruction per queue cycle (MEM instructions take 3 more for ITERATIONS, STEP,
COUNTDOWN), READs from bank 0 and WRITEs to bank 1 (no bank conflicts), engine intervals
disjoint, MXM state defined in the program itself (all n shadow rows loaded before the first
IW; ABC mode 1 and ACC only on rows written earlier, with the checker's row hazards), so a
program's result does not depend on what an earlier program left in the units.

`chain_program(cfg, seed)` builds the fixed-shape integration chain MEM -> SXM -> MXM -> MEM
(and, when the profile has a VXM, MEM -> SXM -> MXM -> VXM -> MEM: requantisation of the int32
results to int8, docs/vxm.md section 3) with its numpy / plain-Python reference.
"""
from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial

import numpy as np

from asm import AsmError, Builder, Program
from tsp import isa, vxm
from tsp.config import TspConfig, join_sg4
from tsp.hostmap import ERR_BITS

__all__ = [
    "VXM_FEATURES",
    "ChainProgram",
    "UnitProgram",
    "chain_program",
    "random_unit_program",
    "read_result",
    "requantize_ref",
    "vxm_coverage_wanted",
]

EAST, WEST = isa.EAST, isa.WEST
SETUP = 3                       # ITERATIONS, STEP, COUNTDOWN before each MEM instruction
READ_DFUNC = isa.BY_NAME["READ"].dfunc
SXM_DFUNC = isa.BY_NAME["SHIFT"].dfunc
ACC_DFUNC = isa.BY_NAME["ACC"].dfunc
DATA_WORDS = 10                 # bank-0 words of random data per slice
MAP_WORDS = 4                   # bank-0 words after them, for maps and chosen contents
OUT_WORDS = 12                  # bank-1 words per slice that WRITEs may use
VXM_MAP_WORDS = 28              # chosen bank-0 words per slice when the VXM is in the profile
VXM_OUT_WORDS = 24              # bank-1 output words per slice when the VXM is in the profile
VRUN = isa.BY_NAME["VRUN"]
BAD_MAP_FLAG = 1 << ERR_BITS["BAD_MAP"]
ILLEGAL_FLAG = 1 << ERR_BITS["ILLEGAL"]
RANGE_FLAG = 1 << ERR_BITS["RANGE"]
# VXM features a run can leave out of the random programs (tb/test_top.py TSP_VXM_SKIP), e.g.
# while the RTL does not implement them yet: the stage-kind ILLEGAL and VRUN's sat = 1.
VXM_FEATURES = ("wrong_kind", "sat")


class _NoFit(Exception):
    """A step does not fit the schedule at the cycle tried."""


@dataclass
class _State:
    """Everything placed so far (cloned per attempt; committed on success)."""

    slots: dict[int, dict[int, tuple]] = field(default_factory=dict)   # pos -> cycle -> entry
    waves: set[tuple[int, int, int]] = field(default_factory=set)      # (dir, stream, key)
    engines: dict[tuple[int, str], list[tuple[int, int]]] = field(default_factory=dict)
    out_next: dict[int, int] = field(default_factory=dict)             # pos -> next out word
    map_next: dict[int, int] = field(default_factory=dict)             # pos -> next map word
    data: dict[tuple[int, int], bytes] = field(default_factory=dict)   # chosen bank-0 words
    notes: list[str] = field(default_factory=list)
    covered: set[str] = field(default_factory=set)
    bad_maps: list[tuple[int, int]] = field(default_factory=list)      # (cycle, position)
    captures: list[tuple[str, int, int, int, int, int]] = field(default_factory=list)
    # (cycle, position, illegal word, what): words patched into the built program
    patches: list[tuple[int, int, int, str]] = field(default_factory=list)

    def clone(self) -> _State:
        return _State({p: dict(d) for p, d in self.slots.items()}, set(self.waves),
                      {k: list(v) for k, v in self.engines.items()}, dict(self.out_next),
                      dict(self.map_next), dict(self.data), list(self.notes),
                      set(self.covered), list(self.bad_maps), list(self.captures),
                      list(self.patches))


def _key(dirn: int, x: int, c: int) -> int:
    """Wavefront of a value at position x in cycle c: constant along its travel."""
    return c - x if dirn == EAST else c + x


def _sname(dirn: int, s: int) -> str:
    return f"{'EW'[dirn]}{s}"


class _Gen:
    """Placement primitives shared by the random unit programs and the chain program."""

    def __init__(self, cfg: TspConfig, rng: random.Random):
        self.cfg = cfg
        self.rng = rng
        self.n = cfg.vec_bytes
        self.S = cfg.streams
        self.mems = list(cfg.mem_positions)
        self.st = _State()
        self.data_words, self.map_words = DATA_WORDS, MAP_WORDS
        self.out_words = OUT_WORDS
        self.word_index: dict[tuple[int, int], int] = {}    # (pos, issue cycle) -> queue word

    # ---- low-level reservations (on a given state) ----------------------------------------
    def slot(self, st: _State, pos: int, t: int, entry: tuple, setup: bool = False,
             span: int = 1) -> None:
        q = st.slots.setdefault(pos, {})
        cycles = range(t - SETUP if setup else t, t + span)
        if cycles[0] < 0 or any(c in q for c in cycles):
            raise _NoFit
        for c in cycles:
            q[c] = ("setup",)
        q[t] = entry

    def engine(self, st: _State, pos: int, name: str, lo: int, hi: int, bank: int) -> None:
        """Reserve the read ("r") or write ("w") engine of a slice for accesses lo..hi to one
        bank: no overlap with the same engine, nor with the other engine on that bank."""
        spans = st.engines.setdefault((pos, name), [])
        other = st.engines.get((pos, "w" if name == "r" else "r"), [])
        if any(not (hi < a or b < lo) for a, b, _ in spans) or any(
                not (hi < a or b < lo) and bk == bank for a, b, bk in other):
            raise _NoFit
        spans.append((lo, hi, bank))

    def produce(self, st: _State, dirn: int, s: int, x: int, c: int) -> None:
        k = (dirn, s, _key(dirn, x, c))
        if k in st.waves:
            raise _NoFit
        st.waves.add(k)

    # ---- MEM feeds and captures -----------------------------------------------------------
    def feed(self, st: _State, xc: int, t0: int, cnt: int, dirn: int, s: int,
             contents: list[bytes] | None = None, xp: int | None = None) -> str:
        """A READ whose `cnt` words are on (dirn, s) at position xc at cycles t0 .. t0+cnt-1.
        With `contents`, the words are new bank-0 words holding exactly these vectors."""
        rng = self.rng
        cands = [x for x in self.mems if (x > xc if dirn == WEST else x < xc)]
        if xp is not None:
            cands = [xp] if xp in cands else []
        rng.shuffle(cands)
        for x in cands:
            tr = t0 - READ_DFUNC - abs(xc - x)
            trial = st.clone()
            try:
                if contents is not None:
                    a0 = self.data_words + trial.map_next.get(x, 0)
                    if a0 + cnt > self.data_words + self.map_words:
                        raise _NoFit
                    trial.map_next[x] = a0 + cnt - self.data_words
                    for k, v in enumerate(contents):
                        trial.data[(x, a0 + k)] = bytes(v)
                    step = 1
                else:
                    step = rng.choice([1, 1, 1, -1, 2, 0]) if cnt > 1 else 1
                    span = (cnt - 1) * abs(step)
                    if span >= DATA_WORDS:
                        step, span = 1, cnt - 1
                    lo = rng.randrange(DATA_WORDS - span)
                    a0 = lo + span if step < 0 else lo
                self.slot(trial, x, tr, ("READ", (a0, _sname(dirn, s)), (cnt, step, 1)), True)
                self.engine(trial, x, "r", tr, tr + cnt - 1, 0)
                for k in range(cnt):
                    self.produce(trial, dirn, s, x, tr + READ_DFUNC + k)
            except _NoFit:
                continue
            st.__dict__.update(trial.__dict__)
            return f"{self.cfg.positions[x]}[{a0}{'+' if step >= 0 else ''}{step}k]"
        raise _NoFit

    def capture(self, st: _State, xp: int, c0: int, cnt: int, dirn: int, s: int,
                what: str, exclude: set[int] = frozenset()) -> int:
        """A WRITE of the `cnt` values on (dirn, s) at xp in cycles c0 .. c0+cnt-1 to new
        bank-1 words of a slice downstream; returns the slice position."""
        cands = [x for x in self.mems if (x > xp if dirn == EAST else x < xp)
                 and x not in exclude]
        self.rng.shuffle(cands)
        for x in cands:
            tw = c0 + abs(x - xp)
            trial = st.clone()
            try:
                a0 = self.cfg.bank_depth + trial.out_next.get(x, 0)
                if trial.out_next.get(x, 0) + cnt > self.out_words:
                    raise _NoFit
                trial.out_next[x] = trial.out_next.get(x, 0) + cnt
                self.slot(trial, x, tw, ("WRITE", (a0, _sname(dirn, s)), (cnt, 1, 1)), True)
                self.engine(trial, x, "w", tw, tw + cnt - 1, 1)
                trial.captures.append((what, x, a0, cnt, dirn, s))
            except _NoFit:
                continue
            st.__dict__.update(trial.__dict__)
            return x
        raise _NoFit

    def place(self, step: Callable[[_State, int], object], lo: int, tries: int = 14):
        """Run `step(state, t)` for t = lo, lo+1, ..: commit the first that fits; (t, result)."""
        for t in range(lo, lo + tries):
            trial = self.st.clone()
            try:
                res = step(trial, t)
            except _NoFit:
                continue
            self.st = trial
            return t, res
        raise _NoFit

    # ---- data -----------------------------------------------------------------------------
    def rand_vec(self) -> bytes:
        rng, n = self.rng, self.n
        kind = rng.random()
        if kind < 0.15:
            return bytes(rng.choice([0x80, 0x7F, 0xFF, 0x81]) for _ in range(n))
        return rng.randbytes(n)

    def perm_map(self) -> bytes:
        p = list(range(self.n))
        self.rng.shuffle(p)
        return bytes(p)

    def any_map(self) -> bytes:
        rng, n = self.rng, self.n
        return bytes(rng.choice([rng.randrange(n), rng.randrange(n), rng.randrange(n, 256)])
                     for _ in range(n))

    def bad_map(self) -> bytes:
        """A map that is not a bijection of 0..n-1 (a repeated lane or a lane >= n)."""
        m = list(self.perm_map())
        i, j = self.rng.sample(range(self.n), 2)
        if self.rng.random() < 0.5:
            m[i] = m[j]
        else:
            m[i] = self.rng.randrange(self.n, 256)
        return bytes(m)

    # ---- emission ---------------------------------------------------------------------------
    def windows(self) -> list[tuple[int, int, int]]:
        """(position, first word, count): the bank-1 words WRITEs use, plus a guard word."""
        return [(x, self.cfg.bank_depth, self.st.out_next[x] + 1)
                for x in self.mems if self.st.out_next.get(x)]

    def builder(self, filename: str) -> Builder:
        cfg, st = self.cfg, self.st
        b = Builder(cfg, filename=filename)
        # initial data: only the words the program reads, and each output window (the words
        # WRITEs use plus one guard word), so the host port has little to transfer
        read: set[tuple[int, int]] = set()
        for x in self.mems:
            for entry in st.slots.get(x, {}).values():
                if entry[0] == "READ":
                    (a0, _), (cnt, step, _) = entry[1], entry[2]
                    read.update((x, a0 + k * step) for k in range(cnt))
        for x, a in sorted(read):
            if a < cfg.bank_depth:
                b.data(x, a, st.data.get((x, a)) or self.rand_vec())
        for x, lo, cnt in self.windows():
            for a in range(lo, lo + cnt):
                b.data(x, a, self.rng.randbytes(self.n))
        for pos in range(cfg.num_positions):
            q = st.slots.get(pos, {})
            cursor = 0
            words = 0
            for t in sorted(q):
                entry = q[t]
                if entry[0] == "setup":
                    continue
                mnem, ops = entry[0], entry[1]
                start = t - SETUP if mnem in ("READ", "WRITE") else t
                if start > cursor:
                    b.add(pos, "NOP", start - cursor)
                    words += 1
                if mnem in ("READ", "WRITE"):
                    cnt, step, d = entry[2]
                    b.add(pos, "ITERATIONS", cnt)
                    b.add(pos, "STEP", step)
                    b.add(pos, "COUNTDOWN", d)
                    words += 3
                self.word_index[(pos, t)] = words
                b.add(pos, mnem, *ops)
                words += 1
                cursor = t + 1
                if len(entry) > 3 and entry[3]:         # REPEAT n, 1 right after
                    b.add(pos, "REPEAT", entry[3], 1)
                    words += 1
                    cursor = t + 1 + entry[3]
        return b


# ---- random unit programs ---------------------------------------------------------------------
@dataclass
class UnitProgram:
    """A built random unit program: seed, program, what it covers, the expected errors.

    bad_map: (cycle, position) of the first BAD_MAP, or None.
    illegal: [(cycle, position)] of the VCFG words patched into illegal ones (ILLEGAL).
    RANGE from data-dependent shift amounts is not predicted: see `err_problem`.
    """

    seed: int
    program: Program
    windows: list[tuple[int, int, int]]
    notes: list[str]
    covered: set[str]
    bad_map: tuple[int, int] | None
    illegal: list[tuple[int, int]] = field(default_factory=list)

    @property
    def expected_err(self) -> tuple[int, int, int] | None:
        """(ERR_FLAGS, position, cycle) of the first error, or None: the flags of every error
        the generator placed, the first by cycle, then position (docs/architecture.md 4)."""
        errs = [(c, p, BAD_MAP_FLAG) for c, p in ([self.bad_map] if self.bad_map else [])]
        errs += [(c, p, ILLEGAL_FLAG) for c, p in self.illegal]
        if not errs:
            return None
        flags = 0
        for _, _, f in errs:
            flags |= f
        c, p, _ = min(errs)
        return flags, p, c

    def err_problem(self, flags: int, position: int | None, bit: int | None,
                    cycle: int | None) -> str | None:
        """Why the recorded errors (ERR_FLAGS and the first-error record) are not the ones the
        generator placed (`expected_err`), or None. RANGE (a shift amount outside 0..31,
        docs/vxm.md section 3) is allowed on top: shifts by register values or VLOADC'ed
        constants depend on the data, which the generator does not follow through the
        pipeline (the hardware and the model are compared with each other exactly). A RANGE
        recorded first must be at the VXM, no later than the first placed error."""
        exp_flags, exp_pos, exp_cycle = self.expected_err or (0, None, None)
        if flags & ~RANGE_FLAG != exp_flags:
            return f"ERR_FLAGS {flags:#x} without RANGE is not the expected {exp_flags:#x}"
        if not flags:
            return None
        if bit == ERR_BITS["RANGE"]:
            vxm_pos = self.program.config.vxm_position
            if position != vxm_pos or (exp_cycle is not None and cycle > exp_cycle):
                return (f"first error RANGE at position {position}, cycle {cycle}: expected at "
                        f"the VXM ({vxm_pos}) no later than cycle {exp_cycle}")
            return None
        if (position, cycle) != (exp_pos, exp_cycle):
            return (f"first error at position {position}, cycle {cycle} (bit {bit}); expected "
                    f"position {exp_pos}, cycle {exp_cycle}")
        return None

    def listing(self) -> str:
        return ("; " + "\n; ".join(self.notes) + "\n" + self.program.listing())


class _UnitGen(_Gen):
    def __init__(self, cfg: TspConfig, rng: random.Random,
                 wide_rng: random.Random | None = None):
        super().__init__(cfg, rng)
        self.wide_rng = wide_rng              # LWG / LXG / ABX episodes (None: none)

    def unit_op(self, st: _State, x: int, t: int, mnem: str, *ops) -> None:
        self.slot(st, x, t, (mnem, ops))
        st.covered.add(mnem)

    # ---- MXM ------------------------------------------------------------------------------
    def acc_step(self, xm: int, cnt: int, acc: int, last_write: dict[int, int],
                 busy: dict[str, int]) -> Callable[[_State, int], None]:
        """A placement step: ACC of `cnt` rows from `acc` at MXM `xm` (rows written at
        `last_write[row]` by ABC/ABX elements, the checker's row hazards), its SG4 output
        captured by WRITEs (at least one byte stream)."""
        rng, S, R = self.rng, self.S, 4 * self.n
        dout = EAST if xm < self.cfg.vxm_position else WEST
        name = self.cfg.positions[xm]

        def step(st: _State, t: int):
            if t <= busy["ACC"]:
                raise _NoFit
            for k in range(cnt):
                r = (acc + k) % R
                if r not in last_write or last_write[r] + 2 >= t + k:
                    raise _NoFit
            g = 4 * rng.randrange(S // 4)
            self.unit_op(st, xm, t, "ACC", _sname(dout, g), acc, cnt)
            for b in range(4):
                for k in range(cnt):
                    self.produce(st, dout, g + b, xm, t + ACC_DFUNC + k)
            used: set[int] = set()
            for b in rng.sample(range(4), 4):
                if rng.random() < 0.9 or not used:
                    try:
                        used.add(self.capture(st, xm, t + ACC_DFUNC, cnt, dout, g + b,
                                              f"{name} ACC byte {b}", used))
                    except _NoFit:
                        if not used and b == 3:
                            raise
            if not used:
                raise _NoFit
            st.notes.append(f"{name} @{t}: ACC {_sname(dout, g)}, {acc}, {cnt} -> "
                            f"{len(used)} byte streams captured")
        return step

    def mxm_episode(self, xm: int, t0: int) -> None:
        rng, n, S = self.rng, self.n, self.S
        R = 4 * n
        din = WEST if xm < self.cfg.vxm_position else EAST
        last_write: dict[int, int] = {}
        busy = {"LW": -1, "ABC": -1, "ACC": -1}
        name = self.cfg.positions[xm]

        def lw(cnt: int, row: int):
            def step(st: _State, t: int):
                if t <= busy["LW"]:
                    raise _NoFit
                s = rng.randrange(S)
                src = self.feed(st, xm, t, cnt, din, s)
                self.unit_op(st, xm, t, "LW", _sname(din, s), row, cnt)
                st.notes.append(f"{name} @{t}: LW {_sname(din, s)}, {row}, {cnt} <- {src}")
            return step

        def iw(st: _State, t: int):
            self.unit_op(st, xm, t, "IW")
            st.notes.append(f"{name} @{t}: IW")

        def abc(cnt: int, acc: int, mode: int):
            def step(st: _State, t: int):
                if t <= busy["ABC"]:
                    raise _NoFit
                for k in range(cnt):
                    r = (acc + k) % R
                    if mode == 1 and (r not in last_write or last_write[r] + 2 > t + k):
                        raise _NoFit
                s = rng.randrange(S)
                src = self.feed(st, xm, t, cnt, din, s)
                self.unit_op(st, xm, t, "ABC", _sname(din, s), acc, cnt, mode)
                st.covered.add(f"ABC{mode}")
                st.notes.append(f"{name} @{t}: ABC {_sname(din, s)}, {acc}, {cnt}, {mode} "
                                f"<- {src}")
            return step

        def accs(cnt: int, acc: int):
            return self.acc_step(xm, cnt, acc, last_write, busy)

        def written(t: int, cnt: int, acc: int) -> None:
            for k in range(cnt):
                last_write[(acc + k) % R] = t + k

        # tile 1: all n shadow rows, in one or two LWs
        row = rng.randrange(64)
        parts = [n] if rng.random() < 0.6 else [k := rng.randrange(1, n), n - k]
        t = t0
        for cnt in parts:
            t, _ = self.place(lw(cnt, row), t)
            busy["LW"] = t + cnt - 1
            row = (row + cnt) % 64
            t += cnt + rng.choice([0, 0, 1, 2])
        t_iw, _ = self.place(iw, t)
        # ABC mode 0 from one cycle after the IW on
        c1 = rng.randrange(1, 7)
        a1 = rng.randrange(256)
        t1, _ = self.place(abc(c1, a1, 0), t_iw + 1 + rng.choice([0, 0, 1, 3]))
        busy["ABC"] = t1 + c1 - 1
        written(t1, c1, a1)
        t = t1 + 1
        if rng.random() < 0.6:
            # second tile: LW while the ABC streams, IW possibly in the middle of it
            cnt = rng.randrange(1, n + 1)
            t, _ = self.place(lw(cnt, rng.randrange(64)), t)
            busy["LW"] = t + cnt - 1
            t, _ = self.place(iw, t + 1 + rng.randrange(cnt + 1))
            t += 1
        # a second ABC: accumulate onto rows just written (mode 1) or a fresh mode 0
        mode = rng.choice([0, 1, 1])
        c2 = rng.randrange(1, c1 + 1) if mode else rng.randrange(1, 7)
        a2 = (a1 + rng.randrange(c1 - c2 + 1)) % R + R * rng.randrange(256 // R) \
            if mode else rng.randrange(256)
        a2 = a2 if a2 < 256 else a2 % R
        try:
            t2, _ = self.place(abc(c2, a2, mode), max(t, busy["ABC"] + 1))
            busy["ABC"] = t2 + c2 - 1
            written(t2, c2, a2)
            t = t2 + 1
        except _NoFit:
            pass
        # ACC of some written rows
        for _ in range(rng.choice([1, 1, 2])):
            rows = sorted(last_write)
            r0 = rng.choice(rows)
            cnt = 1
            while cnt < 6 and (r0 + cnt) % R in last_write and rng.random() < 0.75:
                cnt += 1
            acc = r0 + R * rng.randrange(256 // R)
            lo = max(t, busy["ACC"] + 1,
                     max(last_write[(r0 + k) % R] + 3 - k for k in range(cnt)))
            try:
                t, _ = self.place(accs(cnt, acc if acc < 256 else r0), lo)
                busy["ACC"] = t + cnt - 1
                t += 1
            except _NoFit:
                break

    def wide_episode(self, xm: int, t0: int) -> None:
        """LWG / LXG / ABX at MXM `xm` (docs/units.md section 2), after everything already at
        `xm`. With an activation buffer (mxm_xbuf > 0): a full tile by LWG (w up to
        mxm_load_width, row 0, iw = 1: it installs at the element writing row n-1, when every
        row is loaded), LXG of buffer rows, ABX mode 0 (count, d random), optionally a second
        tile loaded by LWG while the ABX runs and an ABX mode 1 on rows it wrote; ACC. Without
        one: LWG w = 1 (iw = 1) then an ABC mode 0 and ACC. Only state defined here is used."""
        rng, n, S, R = self.rng, self.n, self.S, 4 * self.n
        L, B = self.cfg.mxm_load_width, self.cfg.mxm_xbuf
        din = WEST if xm < self.cfg.vxm_position else EAST
        name = self.cfg.positions[xm]
        last_write: dict[int, int] = {}
        busy = {"LW": -1, "ABC": -1, "ACC": -1}
        bufrows: dict[int, int] = {}              # buffer row -> end of the cycle written

        def load(mnem: str, w: int, cnt: int, row: int, iw: int):
            def step(st: _State, t: int):
                if t <= busy["LW"]:
                    raise _NoFit
                s = rng.randrange(S - w + 1)
                srcs = [self.feed(st, xm, t, cnt, din, s + j) for j in range(w)]
                ops = (row, cnt, w, iw) if mnem == "LWG" else (row, cnt, w)
                self.unit_op(st, xm, t, mnem, _sname(din, s), *ops)
                st.covered.add(f"{mnem}_w{w}" + ("_iw" if iw else ""))
                st.notes.append(f"{name} @{t}: {mnem} {_sname(din, s)}, "
                                f"{', '.join(map(str, ops))} <- {', '.join(srcs)}")
            return step

        def abx(b: int, cnt: int, acc: int, mode: int, d: int):
            def step(st: _State, t: int):
                if t <= busy["ABC"] or bufrows[b % B] >= t:
                    raise _NoFit
                for k in range(cnt):
                    r = (acc + k) % R
                    if mode == 1 and (r not in last_write or last_write[r] + 2 > t + k * d):
                        raise _NoFit
                self.unit_op(st, xm, t, "ABX", b, acc, cnt, mode, d)
                st.covered.add(f"ABX{mode}")
                st.notes.append(f"{name} @{t}: ABX {b}, {acc}, {cnt}, {mode}, {d}")
            return step

        def abc(st: _State, t: int):
            if t <= busy["ABC"]:
                raise _NoFit
            s = rng.randrange(S)
            src = self.feed(st, xm, t, cnt_abc, din, s)
            self.unit_op(st, xm, t, "ABC", _sname(din, s), acc0, cnt_abc, 0)
            st.notes.append(f"{name} @{t}: ABC {_sname(din, s)}, {acc0}, {cnt_abc}, 0 <- {src}")

        def tile(t: int) -> int:
            """A full tile by LWG from row 0 with iw; returns its install cycle."""
            w = rng.randint(1, L) if B else 1
            cnt = -(-n // w)
            t, _ = self.place(load("LWG", w, cnt, 0, 1), t)
            busy["LW"] = t + cnt - 1
            return t + (n - 1) // w

        mine = self.st.slots.get(xm, {})
        t = max([t0] + [c + n + 6 for c in mine])
        t_inst = tile(t)
        acc0 = rng.randrange(256)
        if not B:
            cnt_abc = rng.randrange(1, 5)
            t1, _ = self.place(abc, t_inst + 1 + rng.choice([0, 1]))
            busy["ABC"] = t1 + cnt_abc - 1
            for k in range(cnt_abc):
                last_write[(acc0 + k) % R] = t1 + k
        else:
            wx = rng.randint(1, L)
            cx = rng.randint(1, max(1, B // wx))
            rx = rng.randrange(64)
            tx, _ = self.place(load("LXG", wx, cx, rx, 0), busy["LW"] + 1)
            busy["LW"] = tx + cx - 1
            for i in range(cx * wx):
                bufrows[(rx + i) % B] = tx + i // wx
            c1, d1 = rng.randint(1, 4), rng.randint(1, 4)
            b1 = rng.choice(sorted(bufrows)) + B * rng.randrange(64 // B)
            t1, _ = self.place(abx(b1, c1, acc0, 0, d1),
                               max(t_inst, busy["LW"]) + 1 + rng.choice([0, 0, 2]))
            busy["ABC"] = t1 + (c1 - 1) * d1
            for k in range(c1):
                last_write[(acc0 + k) % R] = t1 + k * d1
            if rng.random() < 0.5:                # a new tile loaded (and installed) meanwhile
                try:
                    tile(max(t1, busy["LW"] + 1))
                except _NoFit:
                    pass
            if rng.random() < 0.6:
                b2 = rng.choice(sorted(bufrows))
                c2 = rng.randint(1, c1)
                d2 = rng.randint(1, 3)
                try:
                    t2, _ = self.place(abx(b2, c2, acc0, 1, d2), busy["ABC"] + 1)
                    busy["ABC"] = t2 + (c2 - 1) * d2
                    for k in range(c2):
                        last_write[(acc0 + k) % R] = t2 + k * d2
                except _NoFit:
                    pass
        rows = [(acc0 + k) % R for k in range(len(last_write))]
        cnt = rng.randint(1, len(rows))
        lo = max(busy["ABC"] + 1, max(last_write[rows[k]] + 3 - k for k in range(cnt)))
        self.place(self.acc_step(xm, cnt, acc0, last_write, busy), lo)

    # ---- SXM ------------------------------------------------------------------------------
    def sxm_episode(self, xs: int, t0: int, with_bad: bool) -> None:
        rng, n, S = self.rng, self.n, self.S
        din = WEST if xs < self.cfg.vxm_position else EAST
        dout = 1 - din
        m = min(S, n)
        name = self.cfg.positions[xs]
        maps: dict[int, str] = {}                     # slot -> "bij" | "any" | "bad"
        outs: dict[int, set[tuple[int, int]]] = {}    # cycle -> {(dir, stream)} at xs

        def source(st: _State, t: int, dirn: int | None, streams: list[int],
                   chain_ok: bool = True) -> tuple[int, str]:
            """Feed streams (relative indices) of one direction at xs at t; return (dir, how)."""
            avail = outs.get(t, set())
            chained = [d for d in (EAST, WEST)
                       if all((d, s) in avail for s in streams)]
            if chain_ok and chained and rng.random() < 0.5:
                d = rng.choice(chained)
                return d, "chained"
            d = din if dirn is None else dirn
            if d != din:
                raise _NoFit
            how = []
            for s in streams:
                if (d, s) in avail:
                    how.append("chained")
                else:
                    how.append(self.feed(st, xs, t, 1, d, s))
            return d, ",".join(how)

        def result(st: _State, t: int, dirn: int, streams: list[int], what: str) -> str:
            for s in streams:
                self.produce(st, dirn, s, xs, t + SXM_DFUNC)
            st_outs = outs.setdefault(t + SXM_DFUNC, set())
            st_outs.update((dirn, s) for s in streams)
            got = 0
            if dirn == dout:
                for s in streams:
                    if rng.random() < 0.85:
                        try:
                            self.capture(st, xs, t + SXM_DFUNC, 1, dirn, s, f"{name} {what}")
                            got += 1
                        except _NoFit:
                            pass
            return f"{got}/{len(streams)} captured"

        def setmap(kind: str, slot: int):
            def step(st: _State, t: int):
                s = rng.randrange(S)
                if kind == "bad":
                    # SHIFT 0 copies the map word, SETMAP loads it two cycles later: the checker
                    # cannot see the map statically, the hardware raises BAD_MAP at a PERMUTE.
                    src = self.feed(st, xs, t, 1, din, s, [self.bad_map()])
                    d = rng.randrange(S)
                    self.unit_op(st, xs, t, "SHIFT", _sname(din, s), _sname(din, d), 0)
                    self.produce(st, din, d, xs, t + SXM_DFUNC)
                    self.unit_op(st, xs, t + SXM_DFUNC, "SETMAP", _sname(din, d), slot)
                    st.notes.append(f"{name} @{t}: SHIFT {_sname(din, s)}, {_sname(din, d)}, 0 "
                                    f"<- {src} (bad map); @{t + 2}: SETMAP {_sname(din, d)}, "
                                    f"{slot}")
                    return t + SXM_DFUNC
                vec = self.perm_map() if kind == "bij" else self.any_map()
                src = self.feed(st, xs, t, 1, din, s, [vec])
                self.unit_op(st, xs, t, "SETMAP", _sname(din, s), slot)
                st.notes.append(f"{name} @{t}: SETMAP {_sname(din, s)}, {slot} ({kind}) <- {src}")
                return t
            return step

        def data_op(op: str):
            def step(st: _State, t: int):
                dd = dout if rng.random() < 0.8 else din
                if op == "TRANSPOSE":
                    srcs, dsts = list(range(m)), list(range(m))
                    sdir, how = source(st, t, None, srcs)
                    sop, dop = (sdir << 5), (dd << 5)
                    self.unit_op(st, xs, t, op, isa.format_stream(sop), isa.format_stream(dop))
                else:
                    avail = sorted(outs.get(t, set()))
                    if avail and rng.random() < 0.5:
                        sdir, s = rng.choice(avail)
                        how = "chained"
                    else:
                        sdir, s = din, rng.randrange(S)
                        how = "chained" if (sdir, s) in avail else self.feed(st, xs, t, 1,
                                                                             sdir, s)
                    d = rng.randrange(S)
                    if op == "ROTATE":
                        k = rng.randrange(1, S - d + 1)
                        dsts, third = list(range(d, d + k)), k
                    else:
                        dsts = [d]
                        if op == "SHIFT":
                            third = rng.choice([rng.randrange(-n - 1, n + 2), rng.choice(
                                [-32, 31, 0, 1, -1])])
                        else:
                            ok = [sl for sl, kd in maps.items()
                                  if op == "DISTRIBUTE" or kd == "bij" or
                                  (kd == "bad" and with_bad)]
                            if not ok:
                                raise _NoFit
                            third = rng.choice(ok)
                            if op == "PERMUTE" and maps[third] == "bad":
                                st.bad_maps.append((t, xs))
                                st.covered.add("PERMUTE_BAD")
                            if op == "PERMUTE" and maps[third] != "bad":
                                st.covered.add("PERMUTE_OK")
                    self.unit_op(st, xs, t, op, _sname(sdir, s), _sname(dd, d), third)
                how2 = result(st, t, dd, dsts, op)
                st.notes.append(f"{name} @{t}: {op} ... <- {how}; -> {'EW'[dd]} {how2}")
                return t
            return step

        t = t0
        ops = rng.choices(["SHIFT", "PERMUTE", "DISTRIBUTE", "ROTATE", "TRANSPOSE", "SETMAP"],
                          [3, 3, 2, 2, 3, 1], k=rng.randrange(3, 8))
        if with_bad:
            ops.insert(rng.randrange(len(ops) + 1), "BAD")
        for op in ops:
            try:
                if op in ("SETMAP", "BAD"):
                    kind = "bad" if op == "BAD" else rng.choice(["bij", "any"])
                    slot = rng.randrange(4)
                    _, tl = self.place(setmap(kind, slot), t)
                    maps[slot] = kind
                    t = tl + 1
                    if op == "BAD":
                        # the PERMUTE with the bad map, soon after
                        t, _ = self.place(data_op("PERMUTE"), t)
                        t += 1
                    continue
                need = (op == "PERMUTE" and "bij" not in maps.values()) or (
                    op == "DISTRIBUTE" and not maps)
                if need:
                    slot = rng.randrange(4)
                    _, tl = self.place(setmap("bij", slot), t)
                    maps[slot] = "bij"
                    t = tl + 1
                t, _ = self.place(data_op(op), t + rng.choice([0, 0, 0, 1, 2]))
                t += 1
            except _NoFit:
                continue

    # ---- VXM ------------------------------------------------------------------------------
    def vxm_values(self, tc: int, cnt: int) -> list[list[int]]:
        """`cnt` vectors of per-lane values of type `tc`: extremes, small values (the
        function tables' range, shift amounts), values near powers of two, random ones."""
        rng, n = self.rng, self.n
        w = vxm.TYPES[tc][1]
        lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1

        def one() -> int:
            r = rng.random()
            if r < 0.15:
                return rng.choice([lo, hi, 0, -1, 1, lo + 1, hi - 1])
            if r < 0.45:
                return max(lo, min(hi, rng.randint(-5000, 5000) >> rng.choice([0, 4, 8])))
            if r < 0.6 and w > 8:
                e = rng.randrange(w - 1)
                return max(lo, min(hi, rng.choice([-1, 1]) * (1 << e) + rng.randint(-2, 2)))
            return rng.randint(lo, hi)
        return [[one() for _ in range(n)] for _ in range(cnt)]

    def vxm_group(self, tc: int) -> int:
        """First stream of a random aligned group of type `tc` (i8 1, i16 2, i32 4 streams)."""
        w = vxm.type_streams(tc)
        return w * self.rng.randrange(self.S // w)

    def vxm_feed(self, st: _State, t: int, cnt: int, dirn: int, s: int, tc: int,
                 fed: set[tuple[int, int]]) -> str:
        """Feed the group of type `tc` at (dirn, s..) to the VXM in cycles t .. t+cnt-1 with
        chosen values (streams already in `fed` carry another operand's bytes)."""
        vals = self.vxm_values(tc, cnt)
        how = []
        for b in range(vxm.type_streams(tc)):
            if (dirn, s + b) in fed:
                how.append("shared")
                continue
            rows = [bytes((v >> (8 * b)) & 0xFF for v in vec) for vec in vals]
            how.append(self.feed(st, self.cfg.vxm_position, t, cnt, dirn, s + b, rows))
            fed.add((dirn, s + b))
        return ",".join(how)

    def vxm_episode(self, t0: int, skip: frozenset[str], n_bad: int) -> None:
        cfg, rng, S = self.cfg, self.rng, self.S
        xv = cfg.vxm_position
        kinds = cfg.vxm_stages
        A = cfg.vxm_alus
        dfunc = isa.dfunc_of(VRUN, cfg)
        tname = {c: nm for c, (nm, _) in vxm.TYPES.items()} | {vxm.TYPE_NONE: "none"}
        pool = list(vxm.ALU_OPS)
        rng.shuffle(pool)                       # operations configured, mostly distinct

        def note(st: _State, t: int, text: str) -> None:
            st.notes.append(f"VXM @{t}: {text}")

        def vop(st: _State, t: int, mnem: str, *ops, rep: int = 0) -> None:
            self.slot(st, xv, t, (mnem, ops, None, rep), span=rep + 1)
            st.covered.add(mnem)

        def const(st: _State, t: int):
            c = rng.randrange(4)
            r = rng.random()
            imm = (rng.randrange(40) if r < 0.35 else rng.choice([-524288, 524287, -1, 0])
                   if r < 0.45 else rng.randint(-524288, 524287))
            vop(st, t, "VCONST", f"c{c}", imm)
            note(st, t, f"VCONST c{c}, {imm}")
            return c

        def consth(c: int):
            def step(st: _State, t: int):
                imm = rng.choice([rng.randrange(0x4000, 0x8000), rng.randrange(0x10000),
                                  0x8000, 0xFFFF])
                vop(st, t, "VCONSTH", f"c{c}", imm)
                note(st, t, f"VCONSTH c{c}, {imm:#x}")
            return step

        def loadc(st: _State, t: int):
            c, tc, dirn = rng.randrange(4), rng.randrange(3), rng.choice([EAST, WEST])
            s = self.vxm_group(tc)
            how = self.vxm_feed(st, t, 1, dirn, s, tc, set())
            vop(st, t, "VLOADC", f"c{c}", _sname(dirn, s), tname[tc])
            st.covered.add(f"VLOADC_{tname[tc]}")
            note(st, t, f"VLOADC c{c}, {_sname(dirn, s)}, {tname[tc]} <- {how}")

        def vcfg(st: _State, t: int):
            op = pool.pop() if pool else rng.choice(vxm.ALU_OPS)
            k = rng.choice([k for k in range(A) if op.runs_on(kinds[k])])
            tc = rng.randrange(3)
            dst = rng.choice([2, 2, 2, 0, 1])
            x = rng.choice([2, 2, 0, 1])
            y = rng.randrange(8)
            ops = (k, op.name, tname[tc], f"r{dst}", f"r{x}", vxm.SRC_NAMES[y])
            vop(st, t, "VCFG", *ops)
            st.covered |= {f"VCFG_{op.name}", f"VCFG_{tname[tc]}"}
            note(st, t, "VCFG " + ", ".join(str(o) for o in ops))

        def bad_vcfg(what: str):
            """A legal VCFG in the program the checker sees, patched to an illegal word."""
            def step(st: _State, t: int):
                k, op = rng.randrange(A), rng.randrange(21)
                if what == "k":
                    k = rng.randrange(A, 8)
                elif what == "op":
                    op = rng.randrange(len(vxm.ALU_OPS), 32)
                else:                           # an operation the stage's kind cannot run
                    k = rng.choice([k for k in range(A) if set(kinds) - {kinds[k]}])
                    op = rng.choice([o.code for o in vxm.ALU_OPS if not o.runs_on(kinds[k])])
                f = {"k": k, "op": op, "type": rng.randrange(3), "dst": rng.randrange(3),
                     "x": rng.randrange(3), "y": rng.randrange(8)}
                word = isa.encode("VCFG", **f)
                vop(st, t, "VCFG", 0, "PASS", "i32", "r2", "r2", "zero")   # changes nothing
                st.patches.append((t, xv, word, f"VCFG {f} ({what})"))
                st.covered.add(f"ILLEGAL_{what}")
                note(st, t, f"VCFG patched to the illegal word {word:#010x} = {f} ({what}); "
                            f"ILLEGAL expected here")
            return step

        def vfunc(st: _State, t: int):
            fn, dst, x = rng.randrange(4), rng.choice([2, 2, 0, 1]), rng.choice([2, 2, 0, 1])
            vop(st, t, "VFUNC", vxm.FUNCS[fn], f"r{dst}", f"r{x}")
            st.covered.add(f"VFUNC_{vxm.FUNCS[fn]}")
            note(st, t, f"VFUNC {vxm.FUNCS[fn]}, r{dst}, r{x}")

        def vrun(rep: int):
            def step(st: _State, t: int):
                ta, tb, td = rng.randrange(3), rng.randrange(4), rng.randrange(3)
                sat = 0 if "sat" in skip else rng.randrange(2)
                fed: set[tuple[int, int]] = set()
                da, a = rng.choice([EAST, WEST]), self.vxm_group(ta)
                how_a = self.vxm_feed(st, t, rep + 1, da, a, ta, fed)
                if tb == vxm.TYPE_NONE:
                    db, b, how_b = rng.choice([EAST, WEST]), rng.randrange(S), "-"
                else:
                    db, b = rng.choice([EAST, WEST]), self.vxm_group(tb)
                    how_b = self.vxm_feed(st, t, rep + 1, db, b, tb, fed)
                dd, d = rng.choice([EAST, WEST]), self.vxm_group(td)
                streams = list(range(d, d + vxm.type_streams(td)))
                for s in streams:
                    for j in range(rep + 1):
                        self.produce(st, dd, s, xv, t + dfunc + j)
                used: set[int] = set()
                for s in streams:
                    used.add(self.capture(st, xv, t + dfunc, rep + 1, dd, s,
                                          f"VXM VRUN@{t} stream {_sname(dd, s)}", used))
                ops = (_sname(da, a), tname[ta], _sname(db, b), tname[tb], _sname(dd, d),
                       tname[td], sat)
                vop(st, t, "VRUN", *ops, rep=rep)
                st.covered |= {f"VRUN_ta_{tname[ta]}", f"VRUN_tb_{tname[tb]}",
                               f"VRUN_td_{tname[td]}", f"VRUN_sat{sat}"}
                if rep:
                    st.covered.add("VRUN_REPEAT")
                note(st, t, "VRUN " + ", ".join(str(o) for o in ops)
                     + (f" + REPEAT {rep}, 1" if rep else "")
                     + f" <- a {how_a}; b {how_b}; -> {len(used)} WRITEs at +{dfunc}+hops")
            return step

        bad = [w for w in ("k", "op", "wrong_kind") if w not in skip]
        bad = rng.sample(bad, min(n_bad, len(bad)))
        bad_what = [("kind" if w == "wrong_kind" else w) for w in bad]
        # set-up: constants and some stages, then VRUNs with reconfiguration in between
        plan: list = [const, const] + [vcfg] * rng.randrange(2, 5) + [vfunc]
        rng.shuffle(plan)
        for _ in range(rng.randrange(2, 6)):
            plan.append(vrun(rng.choice([0, 0, 1, 2, 3, 4])))
            plan += rng.choices([vcfg, vcfg, vcfg, vfunc, const, loadc, "consth"],
                                k=rng.randrange(1, 4))
        for what in bad_what:
            plan.insert(rng.randrange(1, len(plan) + 1), bad_vcfg(what))
        t = t0
        last_c = None
        for stp in plan:
            if stp == "consth":
                if last_c is None:
                    continue
                stp = consth(last_c)
            try:
                tl, res = self.place(stp, t + rng.choice([0, 0, 0, 1]))
            except _NoFit:
                continue
            last_c = res if stp is const else last_c
            entry = self.st.slots[xv][tl]
            t = tl + 1 + entry[3]

    def generate(self, skip: frozenset[str] = frozenset()) -> None:
        cfg, rng = self.cfg, self.rng
        eps = []
        if "mxm" in cfg.units:
            eps += [("mxm", p) for p in (cfg.position_index("MXM_W"),
                                         cfg.position_index("MXM_E"))]
        if "sxm" in cfg.units:
            eps += [("sxm", p) for p in (cfg.position_index("SXM_W"),
                                         cfg.position_index("SXM_E"))]
        if not eps and "vxm" not in cfg.units:
            raise ValueError(f"profile {cfg.name!r} has no MXM, SXM or VXM (TspConfig.units = "
                             f"{cfg.units!r}): no unit programs")
        chosen = [e for e in eps if rng.random() < 0.55]
        if "vxm" in cfg.units:
            self.map_words, self.out_words = VXM_MAP_WORDS, VXM_OUT_WORDS
            if rng.random() < 0.8:
                chosen.append(("vxm", cfg.vxm_position))
        chosen = chosen or [rng.choice(eps)]
        rng.shuffle(chosen)
        with_bad = rng.random() < 0.25
        n_illegal = rng.choice([0, 0, 1, 2])
        for kind, p in chosen:
            t0 = rng.randrange(SETUP + READ_DFUNC + 1, 22)
            try:
                if kind == "mxm":
                    self.mxm_episode(p, t0)
                elif kind == "sxm":
                    self.sxm_episode(p, t0, with_bad)
                    with_bad = False
                else:
                    self.vxm_episode(t0, skip, n_illegal)
            except _NoFit:
                continue
        if "mxm" in cfg.units and self.wide_rng is not None:
            # LWG / LXG / ABX after all the rest, from their own random stream, so the programs
            # of the other instructions stay what they were before these were added
            keep, self.rng = self.rng, self.wide_rng
            try:
                for p in (cfg.position_index("MXM_W"), cfg.position_index("MXM_E")):
                    if self.rng.random() < 0.5:
                        st = self.st.clone()
                        try:
                            self.wide_episode(p, self.rng.randrange(SETUP + READ_DFUNC + 1,
                                                                    22))
                        except _NoFit:
                            self.st = st
            finally:
                self.rng = keep


def _patched(prog: Program, gen: _Gen) -> tuple[Program, list[tuple[int, int]]]:
    """`prog` with the illegal words of `gen.st.patches` in place of the placeholder VCFGs
    the checker saw; returns it and [(cycle, position)] of the patched words."""
    if not gen.st.patches:
        return prog, []
    queues = {p: list(w) for p, w in prog.queues.items()}
    where = []
    for t, pos, word, _ in gen.st.patches:
        queues[pos][gen.word_index[(pos, t)]] = word
        where.append((t, pos))
    return dataclasses.replace(prog, queues=queues), where


def random_unit_program(cfg: TspConfig, seed: int, attempts: int = 30,
                        skip: frozenset[str] | set[str] = frozenset()) -> UnitProgram:
    """A random MXM/SXM/VXM program accepted by the checker (deterministic in `seed`), with
    the illegal VCFG words patched in afterwards. `skip`: VXM features (`VXM_FEATURES`) left
    out."""
    bad = set(skip) - set(VXM_FEATURES)
    if bad:
        raise ValueError(f"random_unit_program: unknown VXM feature(s) {sorted(bad)} in skip; "
                         f"known: {', '.join(VXM_FEATURES)}")
    last: Exception | None = None
    for sub in range(attempts):
        gen = _UnitGen(cfg, random.Random(f"units/{seed}/{sub}"),
                       random.Random(f"units-wide/{seed}/{sub}"))
        gen.generate(frozenset(skip))
        if not gen.st.captures and not gen.st.bad_maps:
            last = RuntimeError("nothing captured")
            continue
        try:
            prog = gen.builder(f"<units seed={seed}>").build()
        except AsmError as e:
            last = e
            continue
        prog, illegal = _patched(prog, gen)
        st = gen.st
        bad_map = min(st.bad_maps) if st.bad_maps else None
        return UnitProgram(seed, prog, gen.windows(), st.notes, st.covered, bad_map, illegal)
    raise RuntimeError(f"random_unit_program(seed={seed}): no valid program in {attempts} "
                       f"attempts; last problem: {last}")


def vxm_coverage_wanted(cfg: TspConfig, skip: frozenset[str] | set[str] = frozenset()
                        ) -> set[str]:
    """The VXM coverage items (`UnitProgram.covered`) a run of enough programs must reach."""
    types = [nm for nm, _ in vxm.TYPES.values()]
    want = {"VCONST", "VCONSTH", "VRUN_REPEAT", "ILLEGAL_k", "ILLEGAL_op"}
    want |= {f"VCFG_{o.name}" for o in vxm.ALU_OPS} | {f"VCFG_{t}" for t in types}
    want |= {f"VFUNC_{f}" for f in vxm.FUNCS.values()} | {f"VLOADC_{t}" for t in types}
    want |= {f"VRUN_{f}_{t}" for f in ("ta", "tb", "td") for t in types} | {"VRUN_tb_none"}
    want |= {"VRUN_sat0"} | (set() if "sat" in skip else {"VRUN_sat1"})
    if "wrong_kind" not in skip and len(set(cfg.vxm_stages)) > 1:
        want.add("ILLEGAL_kind")
    return want


# ---- the integration chain -----------------------------------------------------------------
@dataclass
class ChainProgram:
    """The chain program and its independent numpy expectation.

    expected: name -> (c, n) int32 (or int8 after the VXM) result matrix.
    outputs:  name -> list of (byte stream b, slice position, first word, count): where the
              WRITEs put byte b of the result rows (`read_result` reassembles them).
    """

    program: Program
    expected: dict[str, np.ndarray]
    outputs: dict[str, list[tuple[int, int, int, int]]]
    inputs: dict[str, np.ndarray]
    windows: list[tuple[int, int, int]]


def read_result(cfg: TspConfig, outputs: list[tuple[int, int, int, int]],
                read_word: Callable[[int, int], np.ndarray]) -> np.ndarray:
    """Reassemble a result matrix from MEM (`read_word(pos, a)`): int32 (c, n) from its four SG4
    byte rows, or int8 (c, n) when `outputs` holds one byte stream only."""
    rows: dict[int, list[np.ndarray]] = {}
    for b, pos, a0, cnt in outputs:
        rows[b] = [np.asarray(read_word(pos, a0 + k), dtype=np.uint8) for k in range(cnt)]
    if len(rows) == 1:
        return np.stack(rows[0]).view(np.int8)
    cnt = len(rows[0])
    return np.stack([join_sg4(np.stack([rows[b][k] for b in range(4)])) for k in range(cnt)])


def _srdhm_ref(a: int, b: int) -> int:
    """gemmlowp SaturatingRoundingDoublingHighMul written from docs/vxm.md section 3: a*b/2^31
    rounded to nearest, ties toward +inf (floor(a*b/2^31 + 1/2)), 2^31-1 for -2^31 * -2^31."""
    if a == b == -(1 << 31):
        return (1 << 31) - 1
    return math.floor(Fraction(a * b, 1 << 31) + Fraction(1, 2))


def _rdivpot_ref(a: int, e: int) -> int:
    """RoundingDivideByPOT: a / 2^e rounded to nearest, ties away from zero."""
    q = Fraction(abs(a), 1 << (e & 31))
    r = math.floor(q + Fraction(1, 2))
    return -r if a < 0 else r


def _clamp(v: int, bits: int) -> int:
    return max(-(1 << (bits - 1)), min((1 << (bits - 1)) - 1, v))


def requantize_ref(acc: np.ndarray, bias: np.ndarray, m: int, s: int, z: int) -> np.ndarray:
    """The docs/vxm.md section 3 requantisation of int32 rows `acc` (c, n) with the per-lane
    int32 `bias`, in plain Python integers: sat_8(sat_32(RDIVPOT(SRDHM(acc + bias, m), s) + z))
    (the bias ADD is at i32, wrapping)."""
    out = np.zeros(acc.shape, dtype=np.int8)
    for r in range(acc.shape[0]):
        for i in range(acc.shape[1]):
            x = int(acc[r, i]) + int(bias[i])
            x = ((x + (1 << 31)) % (1 << 32)) - (1 << 31)
            out[r, i] = _clamp(_clamp(_rdivpot_ref(_srdhm_ref(x, m), s) + z, 32), 8)
    return out


def _int8(rng: random.Random, shape: tuple[int, int]) -> np.ndarray:
    a = np.array([[rng.randrange(-128, 128) for _ in range(shape[1])] for _ in range(shape[0])],
                 dtype=np.int8)
    a.flat[rng.randrange(a.size)] = -128               # the extreme product -128 * -128
    return a


class _ChainGen(_Gen):
    """The chain program (see `chain_program`), placed with the same primitives."""

    def feed_at(self, st: _State, xc: int, t0: int, dirn: int, s: int, xp: int,
                addr: int) -> None:
        """A one-word READ of `addr` (bank 1: a word the program wrote) at slice xp, on
        (dirn, s) at xc in cycle t0."""
        tr = t0 - READ_DFUNC - abs(xc - xp)
        self.slot(st, xp, tr, ("READ", (addr, _sname(dirn, s)), (1, 1, 1)), True)
        self.engine(st, xp, "r", tr, tr, addr // self.cfg.bank_depth)
        self.produce(st, dirn, s, xp, tr + READ_DFUNC)

    def rows_in(self, st: _State, xm: int, t: int, dirn: int, s: int,
                rows: np.ndarray) -> None:
        """Feed the int8 rows of a matrix to position xm, one per cycle from t on."""
        self.feed(st, xm, t, len(rows), dirn, s, [r.tobytes() for r in rows])

    def acc_out(self, st: _State, xm: int, t: int, acc: int, cnt: int, dirn: int,
                what: str) -> list[tuple[int, int, int, int]]:
        """ACC of `cnt` rows at xm in cycle t onto SG4 group 0 of `dirn`, every byte stream
        captured by a WRITE at its own slice: [(byte, slice, first word, count)]."""
        self.slot(st, xm, t, ("ACC", (_sname(dirn, 0), acc, cnt)))
        used: set[int] = set()
        out = []
        for b in range(4):
            for k in range(cnt):
                self.produce(st, dirn, b, xm, t + ACC_DFUNC + k)
            x = self.capture(st, xm, t + ACC_DFUNC, cnt, dirn, b, f"{what} byte {b}", used)
            used.add(x)
            _, _, a0, _, _, _ = st.captures[-1]
            out.append((b, x, a0, cnt))
        return out

    def west(self, st: _State, t: int, x1: np.ndarray, w1: np.ndarray, perm: bytes,
             rq: tuple[int, int, int, np.ndarray] | None = None) -> tuple[list, list | None]:
        """LW W1 at t, IW; SETMAP perm; PERMUTE (+ REPEAT) of X1 rows at SXM_W so that they
        reach MXM_W when the ABC reads them; ACC -> MEM. With `rq` = (m, s, z, bias) (a profile
        with the VXM): the ACC rows are also requantised to int8 by a VRUN (+ REPEAT) at the
        VXM as they pass it, configured before by the docs/vxm.md section 3 recipe, and the
        int8 rows are captured by one WRITE. Returns the ACC captures and the int8 capture."""
        cfg, n = self.cfg, self.n
        xm, xs = cfg.position_index("MXM_W"), cfg.position_index("SXM_W")
        c = len(x1)
        self.rows_in(st, xm, t, WEST, 0, w1)
        self.slot(st, xm, t, ("LW", ("W0", 0, n)))
        self.slot(st, xm, t + n, ("IW", ()))
        self.feed(st, xs, t, 1, WEST, 1, [perm])
        self.slot(st, xs, t, ("SETMAP", ("W1", 2)))
        tp = t + n - 2                       # PERMUTE results reach MXM_W at tp + 3
        self.rows_in(st, xs, tp, WEST, 2, x1)
        self.slot(st, xs, tp, ("PERMUTE", ("W2", "W3", 2), None, c - 1), span=c)
        for k in range(c):
            self.produce(st, WEST, 3, xs, tp + SXM_DFUNC + k)
        ta = tp + SXM_DFUNC + (xs - xm)
        self.slot(st, xm, ta, ("ABC", ("W3", 5, c, 0)))
        y1 = self.acc_out(st, xm, ta + 3, 5, c, EAST, "Y1")
        if rq is None:
            return y1, None
        # VXM step: the ACC rows (SG4 E0..E3) pass the VXM at tv; VRUN E0, i32 -> E4, i8, sat
        m, sh, z, bias = rq
        xv = cfg.vxm_position
        tv = ta + 3 + ACC_DFUNC + (xv - xm)
        bias_rows = [bytes((int(v) >> (8 * b)) & 0xFF for v in bias) for b in range(4)]
        # VLOADC c3 <- the bias (SG4 W4..W7 from the east slices) early, out of the east
        # chain's way; the rest just before the VRUN
        for b in range(4):
            self.feed(st, xv, t, 1, WEST, 4 + b, [bias_rows[b]])
        self.slot(st, xv, t, ("VLOADC", ("c3", "W4", "i32")))
        prog = [("VCONST", ("c0", m & 0xFFFF)), ("VCONSTH", ("c0", m >> 16)),
                ("VCONST", ("c1", sh)), ("VCONST", ("c2", z)),
                ("VCFG", (0, "ADD", "i32", "r0", "r0", "c3")),
                ("VCFG", (1, "SRDHM", "i32", "r2", "r0", "c0")),
                ("VCFG", (2, "RDIVPOT", "i32", "r2", "r2", "c1")),
                ("VCFG", (3, "ADDS", "i32", "r2", "r2", "c2"))]
        for k, (mnem, ops) in enumerate(prog):
            self.slot(st, xv, tv - len(prog) + k, (mnem, ops))
        self.slot(st, xv, tv, ("VRUN", ("E0", "i32", "E0", "none", "E4", "i8", "sat"), None,
                               c - 1), span=c)
        dfunc = isa.dfunc_of(VRUN, cfg)
        for k in range(c):
            self.produce(st, EAST, 4, xv, tv + dfunc + k)
        x = self.capture(st, xv, tv + dfunc, c, EAST, 4, "Z1 (int8)")
        return y1, [(0, x, st.captures[-1][2], c)]

    def east(self, st: _State, t: int, x2: np.ndarray, x3: np.ndarray, w2a: np.ndarray,
             w2b: np.ndarray) -> list:
        """X2 stored column-wise (column j in slice j) -> TRANSPOSE at SXM_E -> rows written to
        eight slices -> read back one per cycle -> ABC (tile W2a, mode 0) at MXM_E; tile W2b
        loaded during it, IW at the ABC's last element, ABC mode 1 over X3: Y2 = X2 @ W2a +
        X3 @ W2b; ACC -> MEM. Returns the ACC captures."""
        cfg, n = self.cfg, self.n
        xm, xs = cfg.position_index("MXM_E"), cfg.position_index("SXM_E")
        m = min(cfg.streams, n)
        slices = sorted(self.mems, key=lambda x: -x)[:m]          # nearest to SXM_E first
        for j in range(m):
            self.feed(st, xs, t, 1, EAST, j, [x2[:, j].tobytes()], xp=slices[j])
        self.slot(st, xs, t, ("TRANSPOSE", ("E0", "W0")))
        rows = []                                                  # row a: (slice, addr, tw)
        for a in range(m):
            self.produce(st, WEST, a, xs, t + SXM_DFUNC)
            x = self.capture(st, xs, t + SXM_DFUNC, 1, WEST, a, f"X2 row {a}",
                             {r[0] for r in rows})
            rows.append((x, st.captures[-1][2], t + SXM_DFUNC + abs(xs - x)))
        # ABC 1 at ta: row a must be read after it was written (a read sees writes of
        # earlier cycles)
        # (and its ITERATIONS/STEP/COUNTDOWN come after the WRITE in the slice's queue)
        ta = max(tw + 1 + SETUP + READ_DFUNC + (xm - x) - a
                 for a, (x, _, tw) in enumerate(rows))
        ta = max(ta, t + 2 * n + 4)
        for a, (x, addr, _) in enumerate(rows):
            self.feed_at(st, xm, ta + a, EAST, 4, x, addr)
        self.rows_in(st, xm, ta - n - 2, EAST, 5, w2a)
        self.slot(st, xm, ta - n - 2, ("LW", ("E5", 0, n)))
        self.slot(st, xm, ta - 2, ("IW", ()))
        self.rows_in(st, xm, ta - 1, EAST, 6, w2b)
        self.slot(st, xm, ta - 1, ("LW", ("E6", 0, n)))
        self.slot(st, xm, ta, ("ABC", ("E4", 9, m, 0)))
        self.slot(st, xm, ta + m - 1, ("IW", ()))                  # last element: old tile
        self.rows_in(st, xm, ta + m, EAST, 7, x3)
        self.slot(st, xm, ta + m, ("ABC", ("E7", 9, m, 1)))
        return self.acc_out(st, xm, ta + m + 3, 9, m, WEST, "Y2")


def chain_program(cfg: TspConfig, seed: int) -> ChainProgram:
    """MEM -> SXM -> MXM -> MEM on both hemispheres (and -> VXM -> MEM when the profile has
    the VXM), with the expected results computed in numpy / plain Python from the inputs alone.

    West: activations X1 (c x n int8, one row per word) READ -> PERMUTE at SXM_W with map P
    (`PERMUTE` + `REPEAT c-1, 1`) -> ABC at MXM_W with weights W1 (LW, IW) -> ACC -> four
    WRITEs (one per SG4 byte stream). Expected Y1 = X1[:, P] @ W1 (int32).
    VXM (profiles with "vxm"): the same ACC rows pass the VXM, which requantises them (docs/vxm.md
    section 3, GMSG recipe: ADD per-lane bias from VLOADC, SRDHM by m, RDIVPOT by s, ADDS zero
    point z; VRUN ... i8, sat + REPEAT c-1, 1) -> one WRITE. Expected Z1 = `requantize_ref`(Y1,
    bias, m, s, z), written from the spec independently of the golden model.
    East: X2 (n x n) stored column-wise, column j in its own slice; TRANSPOSE at SXM_E turns
    the columns into rows, which eight WRITEs store and eight READs bring to MXM_E one per
    cycle; ABC mode 0 with weight tile W2a, the next tile W2b loaded meanwhile and installed
    by an IW issued with the ABC's last element, ABC mode 1 with X3 on the same rows; ACC.
    Expected Y2 = X2 @ W2a + X3 @ W2b (K = 2n products per element).
    """
    if not {"mxm", "sxm"} <= set(cfg.units):
        raise ValueError(f"chain_program needs the MXM and SXM; profile {cfg.name!r} has "
                         f"units {cfg.units!r}")
    n = cfg.vec_bytes
    if min(cfg.streams, n) != n or cfg.streams < 8:
        raise ValueError(f"chain_program needs streams >= 8 and TRANSPOSE covering the whole "
                         f"vector (min(streams, vec_bytes) == vec_bytes); profile {cfg.name!r}"
                         f" has {cfg.streams} streams and {n} lanes")
    with_vxm = "vxm" in cfg.units
    if with_vxm and not cfg.vxm_stages.startswith("GMSG"):
        raise ValueError(f"chain_program's requantisation needs VXM stages starting GMSG "
                         f"(docs/vxm.md section 3); profile {cfg.name!r} has vxm_stages = "
                         f"{cfg.vxm_stages!r}")
    for sub in range(40):
        rng = random.Random(f"chain/{seed}/{sub}")
        c = 5
        x1, w1 = _int8(rng, (c, n)), _int8(rng, (n, n))
        x2, x3 = _int8(rng, (n, n)), _int8(rng, (n, n))
        w2a, w2b = _int8(rng, (n, n)), _int8(rng, (n, n))
        perm = list(range(n))
        rng.shuffle(perm)
        # requantisation: Q31 multiplier m in [2^30, 2^31), right shift s, zero point z, and a
        # per-lane bias (one lane large enough to saturate the int8 output)
        m = rng.choice([1 << 30, (1 << 31) - 1, rng.randrange(1 << 30, 1 << 31)])
        sh = rng.choice([6, 7, 7, 8, 8, 9, 10])
        z = rng.randint(-30, 30)
        bias = np.array([rng.randint(-(1 << 14), 1 << 14) for _ in range(n)], dtype=np.int64)
        bias[rng.randrange(n)] = rng.choice([-1, 1]) * (1 << 22)
        rq = (m, sh, z, bias) if with_vxm else None
        gen = _ChainGen(cfg, rng)
        gen.data_words, gen.map_words = 0, 3 * n
        try:
            west, z1 = gen.place(partial(gen.west, x1=x1, w1=w1, perm=bytes(perm), rq=rq),
                                 SETUP + 8)[1]
            east = gen.place(partial(gen.east, x2=x2, x3=x3, w2a=w2a, w2b=w2b), SETUP + 8, 60)[1]
        except _NoFit:
            continue
        prog = gen.builder(f"<chain seed={seed}/{sub}>").build()
        break
    else:
        raise RuntimeError(f"chain_program(seed={seed}): no schedule found")
    i32 = np.int32
    y1 = x1[:, perm].astype(i32) @ w1.astype(i32)
    expected = {"Y1": y1,
                "Y2": x2.astype(i32) @ w2a.astype(i32) + x3.astype(i32) @ w2b.astype(i32)}
    outputs = {"Y1": west, "Y2": east}
    inputs = {"X1": x1, "W1": w1, "P": np.array(perm), "X2": x2, "X3": x3, "W2a": w2a,
              "W2b": w2b}
    if with_vxm:
        expected["Z1"] = requantize_ref(y1, bias, m, sh, z)
        outputs["Z1"] = z1
        inputs.update({"bias": bias, "m": np.array(m), "s": np.array(sh), "z": np.array(z)})
    return ChainProgram(prog, expected, outputs, inputs, gen.windows())
