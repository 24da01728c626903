"""Random valid programs that exercise the compute units (MXM, SXM) for tb/test_top.py.

`random_unit_program(cfg, seed)` builds a program with `asm.Builder` (so the schedule checker
validates it) out of *episodes*, one per compute unit it picks:

  MXM  LW (one or two parts covering all n shadow rows) -> IW -> ABC mode 0 -> optionally a
       second tile (LW during the ABC, IW possibly while the ABC still streams) -> ABC mode 0
       or 1 (row hazards respected) -> ACC (SG4 out) -> WRITEs capturing the int32 bytes
  SXM  SETMAP, SHIFT, PERMUTE (bijective maps; in some programs a non-bijective map loaded
       through SHIFT 0 -> SETMAP, which the checker cannot see statically: BAD_MAP), DISTRIBUTE,
       ROTATE, TRANSPOSE; sources are MEM READs or an earlier SXM result at the unit; results
       are captured by MEM WRITEs

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
(and, once the profile has a VXM, MEM -> SXM -> MXM -> VXM -> MEM) with its numpy reference.
"""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from asm import AsmError, Builder, Program
from tsp import isa
from tsp.config import TspConfig, join_sg4

__all__ = ["ChainProgram", "UnitProgram", "chain_program", "random_unit_program",
           "read_result"]

EAST, WEST = isa.EAST, isa.WEST
SETUP = 3                       # ITERATIONS, STEP, COUNTDOWN before each MEM instruction
READ_DFUNC = isa.BY_NAME["READ"].dfunc
SXM_DFUNC = isa.BY_NAME["SHIFT"].dfunc
ACC_DFUNC = isa.BY_NAME["ACC"].dfunc
DATA_WORDS = 10                 # bank-0 words of random data per slice
MAP_WORDS = 4                   # bank-0 words after them, for maps and chosen contents
OUT_WORDS = 12                  # bank-1 words per slice that WRITEs may use


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

    def clone(self) -> _State:
        return _State({p: dict(d) for p, d in self.slots.items()}, set(self.waves),
                      {k: list(v) for k, v in self.engines.items()}, dict(self.out_next),
                      dict(self.map_next), dict(self.data), list(self.notes),
                      set(self.covered), list(self.bad_maps), list(self.captures))


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
                if trial.out_next.get(x, 0) + cnt > OUT_WORDS:
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
            for t in sorted(q):
                entry = q[t]
                if entry[0] == "setup":
                    continue
                mnem, ops = entry[0], entry[1]
                start = t - SETUP if mnem in ("READ", "WRITE") else t
                if start > cursor:
                    b.add(pos, "NOP", start - cursor)
                if mnem in ("READ", "WRITE"):
                    cnt, step, d = entry[2]
                    b.add(pos, "ITERATIONS", cnt)
                    b.add(pos, "STEP", step)
                    b.add(pos, "COUNTDOWN", d)
                b.add(pos, mnem, *ops)
                cursor = t + 1
                if len(entry) > 3 and entry[3]:         # REPEAT n, 1 right after
                    b.add(pos, "REPEAT", entry[3], 1)
                    cursor = t + 1 + entry[3]
        return b


# ---- random unit programs ---------------------------------------------------------------------
@dataclass
class UnitProgram:
    """A built random unit program: seed, program, what it covers, the expected BAD_MAP."""

    seed: int
    program: Program
    windows: list[tuple[int, int, int]]
    notes: list[str]
    covered: set[str]
    bad_map: tuple[int, int] | None      # (cycle, position) of the first BAD_MAP, or None

    def listing(self) -> str:
        return ("; " + "\n; ".join(self.notes) + "\n" + self.program.listing())


class _UnitGen(_Gen):
    def unit_op(self, st: _State, x: int, t: int, mnem: str, *ops) -> None:
        self.slot(st, x, t, (mnem, ops))
        st.covered.add(mnem)

    # ---- MXM ------------------------------------------------------------------------------
    def mxm_episode(self, xm: int, t0: int) -> None:
        rng, n, S = self.rng, self.n, self.S
        R = 4 * n
        din = WEST if xm < self.cfg.vxm_position else EAST
        dout = 1 - din
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

    def generate(self) -> None:
        cfg, rng = self.cfg, self.rng
        eps = []
        if "mxm" in cfg.units:
            eps += [("mxm", p) for p in (cfg.position_index("MXM_W"),
                                         cfg.position_index("MXM_E"))]
        if "sxm" in cfg.units:
            eps += [("sxm", p) for p in (cfg.position_index("SXM_W"),
                                         cfg.position_index("SXM_E"))]
        if not eps:
            raise ValueError(f"profile {cfg.name!r} has no MXM or SXM (TspConfig.units = "
                             f"{cfg.units!r}): no unit programs")
        chosen = [e for e in eps if rng.random() < 0.55] or [rng.choice(eps)]
        rng.shuffle(chosen)
        with_bad = rng.random() < 0.25
        for kind, p in chosen:
            t0 = rng.randrange(SETUP + READ_DFUNC + 1, 22)
            try:
                if kind == "mxm":
                    self.mxm_episode(p, t0)
                else:
                    self.sxm_episode(p, t0, with_bad)
                    with_bad = False
            except _NoFit:
                continue


def random_unit_program(cfg: TspConfig, seed: int, attempts: int = 30) -> UnitProgram:
    """A random MXM/SXM program accepted by the checker (deterministic in `seed`)."""
    last: Exception | None = None
    for sub in range(attempts):
        gen = _UnitGen(cfg, random.Random(f"units/{seed}/{sub}"))
        gen.generate()
        if not gen.st.captures and not gen.st.bad_maps:
            last = RuntimeError("nothing captured")
            continue
        try:
            prog = gen.builder(f"<units seed={seed}>").build()
        except AsmError as e:
            last = e
            continue
        st = gen.st
        bad = min(st.bad_maps) if st.bad_maps else None
        return UnitProgram(seed, prog, gen.windows(), st.notes, st.covered, bad)
    raise RuntimeError(f"random_unit_program(seed={seed}): no valid program in {attempts} "
                       f"attempts; last problem: {last}")


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
    """Reassemble an int32 (c, n) matrix from its SG4 byte rows in MEM (`read_word(pos, a)`)."""
    rows: dict[int, list[np.ndarray]] = {}
    for b, pos, a0, cnt in outputs:
        rows[b] = [np.asarray(read_word(pos, a0 + k), dtype=np.uint8) for k in range(cnt)]
    cnt = len(rows[0])
    return np.stack([join_sg4(np.stack([rows[b][k] for b in range(4)])) for k in range(cnt)])


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

    def west(self, st: _State, t: int, x1: np.ndarray, w1: np.ndarray, perm: bytes) -> list:
        """LW W1 at t, IW; SETMAP perm; PERMUTE (+ REPEAT) of X1 rows at SXM_W so that they
        reach MXM_W when the ABC reads them; ACC -> MEM. Returns the ACC captures."""
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
        # VXM step (once the profile lists "vxm"): instead of capturing the four byte streams,
        # configure the requantisation (VCONST c0..c2; VCFG 0..3 SRDHM, RDIVPOT, ADD, SAT i8:
        # docs/vxm.md) before, issue VRUN E0, i32, -, none, E4, i8 + REPEAT c-1, 1 at the VXM
        # when the ACC rows pass it (ta + 3 + ACC_DFUNC + vxm_position - xm), capture E4 with
        # one WRITE at vxm dfunc later, and compare with a numpy requantisation of Y1.
        return self.acc_out(st, xm, ta + 3, 5, c, EAST, "Y1")

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
    """MEM -> SXM -> MXM -> MEM on both hemispheres, with the expected results computed in
    numpy from the inputs alone.

    West: activations X1 (c x n int8, one row per word) READ -> PERMUTE at SXM_W with map P
    (`PERMUTE` + `REPEAT c-1, 1`) -> ABC at MXM_W with weights W1 (LW, IW) -> ACC -> four
    WRITEs (one per SG4 byte stream). Expected Y1 = X1[:, P] @ W1 (int32).
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
    for sub in range(40):
        rng = random.Random(f"chain/{seed}/{sub}")
        c = 5
        x1, w1 = _int8(rng, (c, n)), _int8(rng, (n, n))
        x2, x3 = _int8(rng, (n, n)), _int8(rng, (n, n))
        w2a, w2b = _int8(rng, (n, n)), _int8(rng, (n, n))
        perm = list(range(n))
        rng.shuffle(perm)
        gen = _ChainGen(cfg, rng)
        gen.data_words, gen.map_words = 0, 3 * n
        try:
            west = gen.place(partial(gen.west, x1=x1, w1=w1, perm=bytes(perm)), SETUP + 8)[1]
            east = gen.place(partial(gen.east, x2=x2, x3=x3, w2a=w2a, w2b=w2b), SETUP + 8, 30)[1]
        except _NoFit:
            continue
        prog = gen.builder(f"<chain seed={seed}/{sub}>").build()
        break
    else:
        raise RuntimeError(f"chain_program(seed={seed}): no schedule found")
    i32 = np.int32
    expected = {"Y1": x1[:, perm].astype(i32) @ w1.astype(i32),
                "Y2": x2.astype(i32) @ w2a.astype(i32) + x3.astype(i32) @ w2b.astype(i32)}
    return ChainProgram(prog, expected, {"Y1": west, "Y2": east},
                        {"X1": x1, "W1": w1, "P": np.array(perm), "X2": x2, "X3": x3,
                         "W2a": w2a, "W2b": w2b}, gen.windows())
