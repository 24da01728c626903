"""Random valid TSP programs for the integration testbench (tb/test_top.py).

`random_program(cfg, seed)` schedules random *transfers* between MEM slices of both
hemispheres and builds them with `asm.Builder`, so the schedule checker validates every program
(a rejected candidate is regenerated with the next sub-seed). Transfers:

  copy     READ (slice A) -> stream -> WRITE (slice B), with loop registers (ITERATIONS, STEP,
           COUNTDOWN) and optionally REPEAT on both sides
  gather   READ of an address map (slice M) -> GATHER (slice A) -> WRITE (slice B)
  scatter  READ (slice A) -> SCATTER (slice B) with the address map READ from slice M

Every memory instruction is placed at an absolute cycle, preceded by its three loop-register
instructions; gaps are filled with NOPs. Some programs start with a SYNC barrier released by a
NOTIFY from the VXM queue. All addresses stay in a small window per slice (the first `W` words of
each bank), which the initial data fills completely; the last `MAP_WORDS` words of the bank-1
window hold address maps and are never written. The test reads back `RandomProgram.windows`.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from asm import AsmError, Builder, Program
from tsp.config import TspConfig
from tsp.isa import BY_NAME

__all__ = ["RandomProgram", "random_program", "window_words"]

MAP_WORDS = 2
READ_DFUNC = BY_NAME["READ"].dfunc        # 2
GATHER_DFUNC = BY_NAME["GATHER"].dfunc    # 2
SETUP = 3                                 # ITERATIONS, STEP, COUNTDOWN before each instruction


def window_words(cfg: TspConfig) -> int:
    """Words per bank used by random programs (few, so read-back through AXI is cheap)."""
    return min(cfg.bank_depth, 8 if cfg.vec_bytes <= 4 else 4)


@dataclass
class RandomProgram:
    """A built random program, its seed, and the MEM windows (position, first word, count)."""

    seed: int
    program: Program
    windows: list[tuple[int, int, int]]
    transfers: list[str] = field(default_factory=list)

    def listing(self) -> str:
        return "; transfers: " + "; ".join(self.transfers) + "\n" + self.program.listing()


@dataclass
class _Placed:
    """One memory instruction at an absolute cycle (with its loop registers and REPEAT)."""

    t: int
    mnemonic: str
    operands: tuple
    loop: tuple[int, int, int]            # iterations, step, countdown
    repeat: tuple[int, int] | None = None

    @property
    def start(self) -> int:
        return self.t - SETUP

    @property
    def end(self) -> int:
        """First cycle at which the queue is free again."""
        return self.t + 1 + (self.repeat[0] * self.repeat[1] if self.repeat else 0)


class _Schedule:
    """Resource bookkeeping: queue slots, engines, banks, stream cells."""

    def __init__(self, cfg: TspConfig, origin: int):
        self.cfg = cfg
        self.origin = origin
        self.queue: dict[int, list[_Placed]] = {p: [] for p in cfg.mem_positions}
        self.engine: dict[tuple[int, str], list[tuple[int, int]]] = {}
        self.bank: dict[tuple[int, str, int], int] = {}
        self.live: set[tuple[int, int, int, int]] = set()      # (dir, stream, position, cycle)
        self.prod: set[tuple[int, int, int, int]] = set()

    def queue_free(self, pos: int, p: _Placed) -> bool:
        if p.start < self.origin:
            return False
        return all(p.end <= q.start or q.end <= p.start for q in self.queue[pos])

    def engine_free(self, pos: int, eng: str, lo: int, hi: int) -> bool:
        return all(hi < a or b < lo for a, b in self.engine.get((pos, eng), []))

    def banks_free(self, pos: int, eng: str, accesses: list[tuple[int, int]]) -> bool:
        other = "w" if eng == "r" else "r"
        return all(self.bank.get((pos, other, u)) != b for u, b in accesses)

    def cells_free(self, prod: list[tuple], live: list[tuple]) -> bool:
        return (not any(c in self.live or c in self.prod for c in prod)
                and not any(c in self.prod for c in live))

    def commit(self, pos: int, p: _Placed, eng: str, span: tuple[int, int],
               accesses: list[tuple[int, int]]) -> None:
        self.queue[pos].append(p)
        self.engine.setdefault((pos, eng), []).append(span)
        for u, b in accesses:
            self.bank[(pos, eng, u)] = b


def _accesses(p: _Placed, addr_of) -> list[tuple[int, int]]:
    """(cycle, address) of every access of `p` and its REPEAT copies."""
    n, _step, d = p.loop
    starts = [p.t] + ([p.t + k * p.repeat[1] for k in range(1, p.repeat[0] + 1)]
                      if p.repeat else [])
    return [(t0 + k * d, addr_of(k)) for t0 in starts for k in range(n)]


class _Gen:
    def __init__(self, cfg: TspConfig, rng: random.Random):
        self.cfg = cfg
        self.rng = rng
        self.W = window_words(cfg)
        self.bd = cfg.bank_depth
        self.mems = list(cfg.mem_positions)
        self.maps: dict[int, list[int]] = {}   # position -> map-word addresses (bank 1)

    # -- address helpers -----------------------------------------------------------------
    def bank_of(self, a: int) -> int:
        return a // self.bd

    def data_words(self, bank: int, writable: bool) -> list[int]:
        base = bank * self.bd
        n = self.W - (MAP_WORDS if bank == 1 and writable else 0)
        return [base + i for i in range(n)]

    def map_words(self) -> list[int]:
        return [self.bd + self.W - MAP_WORDS + i for i in range(MAP_WORDS)]

    def run_addrs(self, writable: bool, n: int) -> tuple[int, int, list[int]] | None:
        """A start address and step whose n accesses stay in one bank's window."""
        rng = self.rng
        bank = rng.randrange(2)
        words = self.data_words(bank, writable)
        for _ in range(8):
            step = rng.choice([1, 1, -1, 0, 2, -2]) if n > 1 else rng.choice([0, 1, 3])
            a = rng.choice(words)
            seq = [a + k * step for k in range(n)]
            if all(x in words for x in seq):
                return a, step, seq
        return None

    @staticmethod
    def stream_name(d: int, s: int) -> str:
        return f"{'EW'[d]}{s}"

    def cells(self, d: int, s: int, x0: int, x1: int, t0: int) -> tuple[list, list]:
        """Producer cell and live cells of a value put on (d, s) at x0 at t0, consumed at x1."""
        step = 1 if x1 >= x0 else -1
        live = [(d, s, x, t0 + abs(x - x0)) for x in range(x0, x1 + step, step)]
        return [live[0]], live

    # -- transfers -----------------------------------------------------------------------
    def loop_params(self) -> tuple[int, int, tuple[int, int] | None]:
        rng = self.rng
        n = rng.choice([1, 1, 1, 2, 3, 4])
        d = rng.choice([1, 1, 2, 3])
        rep = None
        if rng.random() < 0.25:
            r = rng.choice([1, 2])
            rep = (r, (n - 1) * d + 1 + rng.randrange(3))
        return n, d, rep

    def direction(self, xp: int, xc: int) -> int:
        if xc > xp:
            return 0
        if xc < xp:
            return 1
        return self.rng.randrange(2)

    def try_copy(self, sch: _Schedule, t: int) -> str | None:
        rng, cfg = self.rng, self.cfg
        xp, xc = rng.choice(self.mems), rng.choice(self.mems)
        n, d, rep = self.loop_params()
        src = self.run_addrs(False, n)
        dst = self.run_addrs(True, n)
        if src is None or dst is None:
            return None
        di, s = self.direction(xp, xc), rng.randrange(cfg.streams)
        tc = t + READ_DFUNC + abs(xc - xp)
        rd = _Placed(t, "READ", (src[0], self.stream_name(di, s)), (n, src[1], d), rep)
        wr = _Placed(tc, "WRITE", (dst[0], self.stream_name(di, s)), (n, dst[1], d), rep)
        if xp == xc and not self._disjoint(rd, wr):
            return None
        racc = [(u, self.bank_of(a)) for u, a in _accesses(rd, lambda k: src[2][k])]
        wacc = [(u, self.bank_of(a)) for u, a in _accesses(wr, lambda k: dst[2][k])]
        prod, live = [], []
        for (u, _), _w in zip(racc, wacc):
            pc, lc = self.cells(di, s, xp, xc, u + READ_DFUNC)
            prod += pc
            live += lc
        if not self._fits(sch, [(xp, rd, "r", racc), (xc, wr, "w", wacc)], prod, live, racc,
                          wacc, xp, xc):
            return None
        sch.commit(xp, rd, "r", (racc[0][0], racc[-1][0]), racc)
        sch.commit(xc, wr, "w", (wacc[0][0], wacc[-1][0]), wacc)
        sch.prod.update(prod)
        sch.live.update(live)
        return (f"copy {cfg.positions[xp]}[{src[0]}] -> {self.stream_name(di, s)} -> "
                f"{cfg.positions[xc]}[{dst[0]}] n={n} d={d} @{t}")

    def try_gather(self, sch: _Schedule, t: int, scatter: bool) -> str | None:
        """gather: map READ at xm -> GATHER at xa -> WRITE at xb.
        scatter: READ at xa -> SCATTER at xb, map READ at xm -> xb."""
        rng, cfg = self.rng, self.cfg
        xm, xa, xb = (rng.choice(self.mems) for _ in range(3))
        if xm == (xb if scatter else xa):
            return None
        n = rng.choice([1, 1, 2])
        d = rng.choice([1, 2])
        mwords = self.map_words()
        mstep = rng.choice([0, 1]) if n <= MAP_WORDS else 0
        ma = mwords[0] if mstep else rng.choice(mwords)
        mseq = [ma + k * mstep for k in range(n)]
        targets = [self.maps[xb if scatter else xa][w - mwords[0]] for w in mseq]
        s_data, s_map = rng.sample(range(cfg.streams), 2) if cfg.streams > 1 else (0, 0)
        if scatter:
            src = self.run_addrs(False, n)
            if src is None:
                return None
            dv, dm = self.direction(xa, xb), self.direction(xm, xb)
            tu = t + READ_DFUNC + abs(xb - xa)           # SCATTER issue
            tm = tu - READ_DFUNC - abs(xb - xm)          # map READ issue
            rd = _Placed(t, "READ", (src[0], self.stream_name(dv, s_data)), (n, src[1], d))
            mr = _Placed(tm, "READ", (ma, self.stream_name(dm, s_map)), (n, mstep, d))
            sc = _Placed(tu, "SCATTER", (self.stream_name(dv, s_data),
                                         self.stream_name(dm, s_map)), (n, 1, d))
            if (dv, s_data) == (dm, s_map):
                return None
            plan = [(xa, rd, "r", [(u, self.bank_of(a)) for u, a in
                                   _accesses(rd, lambda k: src[2][k])]),
                    (xm, mr, "r", [(u, 1) for u, _ in _accesses(mr, lambda k: 0)]),
                    (xb, sc, "w", [(u, self.bank_of(a)) for (u, _), a in
                                   zip(_accesses(sc, lambda k: 0), targets)])]
            flows = [(dv, s_data, xa, xb, rd), (dm, s_map, xm, xb, mr)]
            desc = (f"scatter {cfg.positions[xa]}[{src[0]}] -> {cfg.positions[xb]}"
                    f"[map {cfg.positions[xm]}[{ma}]] n={n} d={d} @{t}")
        else:
            dst = self.run_addrs(True, n)
            if dst is None:
                return None
            dm, dv = self.direction(xm, xa), self.direction(xa, xb)
            tg = t + READ_DFUNC + abs(xa - xm)            # GATHER issue
            tw = tg + GATHER_DFUNC + abs(xb - xa)         # WRITE issue
            mr = _Placed(t, "READ", (ma, self.stream_name(dm, s_map)), (n, mstep, d))
            ga = _Placed(tg, "GATHER", (self.stream_name(dv, s_data),
                                        self.stream_name(dm, s_map)), (n, 1, d))
            wr = _Placed(tw, "WRITE", (dst[0], self.stream_name(dv, s_data)), (n, dst[1], d))
            if xa == xb and not self._disjoint(ga, wr):
                return None
            plan = [(xm, mr, "r", [(u, 1) for u, _ in _accesses(mr, lambda k: 0)]),
                    (xa, ga, "r", [(u, self.bank_of(a)) for (u, _), a in
                                   zip(_accesses(ga, lambda k: 0), targets)]),
                    (xb, wr, "w", [(u, self.bank_of(a)) for u, a in
                                   _accesses(wr, lambda k: dst[2][k])])]
            flows = [(dm, s_map, xm, xa, mr), (dv, s_data, xa, xb, ga)]
            desc = (f"gather {cfg.positions[xa]}[map {cfg.positions[xm]}[{ma}]] -> "
                    f"{cfg.positions[xb]}[{dst[0]}] n={n} d={d} @{t}")
        prod, live = [], []
        for di, s, x0, x1, p in flows:
            for u, _ in _accesses(p, lambda k: 0):
                pc, lc = self.cells(di, s, x0, x1, u + READ_DFUNC)
                prod += pc
                live += lc
        if len(set(prod)) != len(prod) or len(set(live)) != len(live):
            return None
        if not self._fits_plan(sch, plan, prod, live):
            return None
        for pos, p, eng, acc in plan:
            sch.commit(pos, p, eng, (acc[0][0], acc[-1][0]), acc)
        sch.prod.update(prod)
        sch.live.update(live)
        return desc

    # -- constraint checks ---------------------------------------------------------------
    @staticmethod
    def _disjoint(a: _Placed, b: _Placed) -> bool:
        return a.end <= b.start or b.end <= a.start

    def _fits(self, sch, plan, prod, live, racc, wacc, xp, xc) -> bool:
        if xp == xc:
            wb = dict(wacc)
            if any(wb.get(u) == b for u, b in racc):
                return False
        return self._fits_plan(sch, plan, prod, live)

    def _fits_plan(self, sch: _Schedule, plan, prod, live) -> bool:
        # instructions of one plan on the same queue must not overlap either
        for i, (pa, a, _, _) in enumerate(plan):
            for pb, b, _, _ in plan[i + 1:]:
                if pa == pb and not self._disjoint(a, b):
                    return False
        seen: dict[tuple[int, str, int], int] = {}
        for pos, p, eng, acc in plan:
            if not sch.queue_free(pos, p):
                return False
            if not sch.engine_free(pos, eng, acc[0][0], acc[-1][0]):
                return False
            if not sch.banks_free(pos, eng, acc):
                return False
            for u, b in acc:
                other = (pos, "w" if eng == "r" else "r", u)
                if seen.get(other) == b:
                    return False
                seen[(pos, eng, u)] = b
        same_engine = {}
        for pos, p, eng, acc in plan:
            key = (pos, eng)
            if key in same_engine:
                lo, hi = same_engine[key]
                if not (acc[-1][0] < lo or hi < acc[0][0]):
                    return False
            same_engine[key] = (acc[0][0], acc[-1][0])
        return sch.cells_free(prod, live)

    # -- the program ---------------------------------------------------------------------
    def generate(self) -> tuple[Builder, list[str], list[tuple[int, int, int]]]:
        rng, cfg = self.rng, self.cfg
        b = Builder(cfg, filename="<random>")
        # initial data: every window word; map words hold addresses inside the window
        for pos in self.mems:
            wmap = [rng.choice(self.data_words(rng.randrange(2), True))
                    for _ in range(MAP_WORDS)]
            self.maps[pos] = wmap
            for bank in (0, 1):
                for a in self.data_words(bank, False):
                    vec = bytearray(rng.randbytes(cfg.vec_bytes))
                    if a in self.map_words():
                        target = wmap[a - self.map_words()[0]]
                        vec[0], vec[1] = target & 0xFF, target >> 8
                    b.data(pos, a, bytes(vec))
        sync = rng.random() < 0.35
        origin = 0
        host = cfg.vxm_position
        if sync:
            tn = rng.randrange(1, 6)
            if tn > 1:
                b.add(host, "NOP", tn)
            b.add(host, "NOTIFY")
            origin = tn + 2
        sch = _Schedule(cfg, origin)
        wanted = rng.randrange(2, 7)
        transfers: list[str] = []
        horizon = origin + SETUP
        for _ in range(wanted * 6):
            if len(transfers) >= wanted:
                break
            t = rng.randrange(origin + SETUP, horizon + 12)
            kind = rng.random()
            if kind < 0.6:
                desc = self.try_copy(sch, t)
            else:
                desc = self.try_gather(sch, t, scatter=kind >= 0.8)
            if desc:
                transfers.append(desc)
                horizon = max(horizon, t)
        # emit the queues: SYNC (when used), then NOP gaps, loop registers, instruction, REPEAT
        for pos in self.mems:
            placed = sorted(sch.queue[pos], key=lambda p: p.t)
            cursor = 0
            if sync:
                b.add(pos, "SYNC")
                cursor = origin
            for p in placed:
                gap = p.start - cursor
                while gap > 0:
                    k = min(gap, 0xFFFF)
                    b.add(pos, "NOP", k)
                    gap -= k
                n, step, d = p.loop
                b.add(pos, "ITERATIONS", n)
                b.add(pos, "STEP", step)
                b.add(pos, "COUNTDOWN", d)
                b.add(pos, p.mnemonic, *p.operands)
                if p.repeat:
                    b.add(pos, "REPEAT", *p.repeat)
                cursor = p.end
            if rng.random() < 0.2:
                b.add(pos, "NOP", rng.randrange(1, 4))
        windows = []
        for pos in self.mems:
            windows.append((pos, 0, self.W))
            windows.append((pos, self.bd, self.W))
        return b, transfers, windows


def random_program(cfg: TspConfig, seed: int, attempts: int = 50) -> RandomProgram:
    """A random program that the assembler's checker accepts (deterministic in `seed`)."""
    last: Exception | None = None
    for sub in range(attempts):
        rng = random.Random(f"{seed}/{sub}")
        gen = _Gen(cfg, rng)
        b, transfers, windows = gen.generate()
        try:
            prog = b.build()
        except AsmError as e:
            last = e
            continue
        return RandomProgram(seed, prog, windows, transfers)
    raise RuntimeError(f"random_program(seed={seed}): no valid program in {attempts} attempts; "
                       f"last checker error: {last}")
