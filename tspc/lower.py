# Allocation and lowering (docs/compiler.md): a checked `Graph` becomes a sequence of chip
# programs ("segments"). Each matmul is cut into work units (a block of up to 2n output rows x
# n output columns), each unit runs on one MXM (west or east) as a chain of weight tiles
# (READ -> LW, IW, READ -> ABC) and is drained by ACC, either through the VXM (requantisation,
# bias, ReLU) into one MEM slice per hemisphere that needs the result, or as four int32 byte
# planes into four slices. Every piece is a `Template` placed first-fit on a `Timeline`.
"""Lower a `Graph` to scheduled programs: `lower(graph) -> Lowered`."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from asm import AsmError, Program
from tsp import isa
from tsp.config import TspConfig

from .gemv import gemv_plan, lower_gemv, place_weights, place_x
from .graph import Graph, Tensor, TspcError
from .reshape import reshape_pieces
from .schedule import SelfConflict, Template, Timeline

__all__ = ["Copy", "Lowered", "Store", "lower"]

EAST, WEST = 0, 1
SIDES = ("W", "E")


def _op(direction: int, s: int) -> str:
    return f"{'EW'[direction]}{s}"


@dataclass
class Copy:
    """One hemisphere's copy of some blocks of a tensor: `blocks[(mb, cb)]` is the list of
    (position, address) where the block's `mblock` words start: one for int8, four (byte
    planes 0..3, four different slices) for int32."""

    side: str
    blocks: dict[tuple[int, int], list[tuple[int, int]]]

    def has_rows(self, mb: int) -> bool:
        return any(k[0] == mb for k in self.blocks)

    def positions(self) -> set[int]:
        return {p for locs in self.blocks.values() for p, _ in locs}


@dataclass
class Store:
    """Where a tensor lives: row blocks of `mblock` rows, column blocks of n columns."""

    tensor: Tensor
    mblock: int
    mblocks: int
    cblocks: int
    kind: str = "act"                   # "act" (int8), "weights", "int32"
    copies: dict[str, Copy] = field(default_factory=dict)
    written: dict[tuple[int, int], str] = field(default_factory=dict)   # (mb, cb) -> a side

    def rows(self, mb: int) -> int:
        return min(self.mblock, self.tensor.shape[0] - mb * self.mblock)

    def addr(self, side: str, mb: int, cb: int) -> list[tuple[int, int]]:
        """[(position, address)] of block (mb, cb) in `side`'s copy (four for int32)."""
        return self.copies[side].blocks[(mb, cb)]


@dataclass
class Segment:
    """One chip program and what it computes (for listings and reports)."""

    program: Program
    layer: str
    units: int


@dataclass
class Lowered:
    config: TspConfig
    segments: list[Segment]
    stores: dict[str, Store]              # tensor name -> Store
    host: list[Tensor]                    # inputs and consts that the chip reads
    biases: list[tuple[Copy, np.ndarray]]  # int32 bias planes and their values
    zeros: list[tuple[int, int]] = field(default_factory=list)   # (position, address) = 0

    @property
    def predicted_cycles(self) -> int:
        return sum(s.program.predicted_cycles for s in self.segments)


class _Alloc:
    """First-fit allocation of contiguous words inside one bank of one slice."""

    def __init__(self, cfg: TspConfig):
        self.cfg = cfg
        self.free = {p: [0, 0] for p in cfg.mem_positions}     # next free row per bank

    def take(self, pos: int, words: int, banks: tuple[int, ...] = (0, 1)) -> int | None:
        bd = self.cfg.bank_depth
        for b in banks:
            if self.free[pos][b] + words <= bd:
                a = b * bd + self.free[pos][b]
                self.free[pos][b] += words
                return a
        return None


class _Lowerer:
    def __init__(self, graph: Graph):
        self.g = graph
        self.cfg = cfg = graph.config
        self.n = cfg.vec_bytes
        P = cfg.position_index
        self.mxm = {"W": P("MXM_W"), "E": P("MXM_E")}
        self.vxm = P("VXM")
        self.slices = {h: [P(f"MEM_{h}{i}") for i in range(cfg.mem_slices - 1, -1, -1)]
                       for h in SIDES}                      # nearest the MXM first
        self.alloc = _Alloc(cfg)
        self.stores: dict[str, Store] = {}
        self.segments: list[Segment] = []
        self.biases: list[tuple[Copy, np.ndarray]] = []     # (planes, (blocks, n) int32)
        self.salt = {h: 0 for h in SIDES}
        self.zero_words: dict[int, int] = {}                # position -> address of a 0 word
        self.usage: dict[str, dict[str, int]] = {h: {} for h in SIDES}   # words per tensor
        self.mblock_max = 2 * self.n                        # two row blocks in 4n acc rows
        if cfg.streams < 8:
            raise TspcError(f"profile {cfg.name!r} has {cfg.streams} streams per direction; "
                            f"the compiler uses 8 (activations, weights, SG4 results, bias)")

    # ---- stream plan per side (docs/compiler.md, "Streams") ------------------------------
    def into_mxm(self, h: str) -> int:          # direction of streams that flow into MXM_h
        return WEST if h == "W" else EAST

    def hop(self, a: int, b: int) -> int:
        return abs(a - b)

    # ---- graph analysis --------------------------------------------------------------------
    def reachable(self) -> list[Tensor]:
        seen: dict[int, Tensor] = {}
        order: list[Tensor] = []

        def visit(t: Tensor) -> None:
            if id(t) in seen:
                return
            seen[id(t)] = t
            for a in t.args:
                visit(a)
            order.append(t)
        for t in self.g.outputs.values():
            visit(t)
        return order

    def mblock(self, m: int) -> int:
        return min(m, self.mblock_max)

    # ---- allocation ------------------------------------------------------------------------
    def place(self, t: Tensor, st: Store, side: str, keys: list[tuple[int, int]],
              planes: int, avoid: set[int] | dict[int, int], what: str,
              banks: tuple[int, ...] = (0, 1), spread: bool = False,
              slices: list[int] | None = None, partners: tuple[Store, ...] = (),
              sources: tuple[Store, ...] = ()) -> Copy:
        """Allocate `side`'s copy of blocks `keys` ((mb, cb), `mblock` words each) of `t`: one
        slice per block, or four different slices for int32 byte planes. `avoid` maps slices
        to a penalty (a set: penalty 1): the least penalised slices come first, each group in
        the bank order given (host tensors bank 0 first, results bank 1 first, so a layer's
        reads and writes rarely meet in one bank). A block never goes to a slice holding the
        same block of a `partners` store (the other operand of an elementwise op) unless
        nothing else is free."""
        words = st.mblock
        cands = self.slices[side] if slices is None else slices
        pen0 = avoid if isinstance(avoid, dict) else dict.fromkeys(avoid, 1)
        blocks: dict[tuple[int, int], list[tuple[int, int]]] = {}
        bd = self.cfg.bank_depth
        for key in keys:
            pen = dict(pen0)
            for ps in partners:
                c = ps.copies.get(side)
                if c is not None and key in c.blocks:
                    for p, _ in c.blocks[key]:
                        pen[p] = 9
            # a source block with the same key is read while this one is written: not in
            # its bank (a read and a write of one bank in one cycle is a bank conflict)
            clash = {(p, a // bd) for src in sources for c in src.copies.values()
                     if key in c.blocks for p, a in c.blocks[key]}
            free = [p for p in cands if not pen.get(p)]
            # int8 activations: consecutive column blocks go to different slices, so a
            # unit's stream of K-blocks alternates between slices and each slice's read
            # port has gaps (for the bias reads of the drains)
            r = (key[1] + self.salt[side]) % len(free) if spread and free else 0
            rot = {p: i for i, p in enumerate(free[r:] + free[:r])}

            def cost(pb: tuple[int, int], pen=pen, clash=clash, rot=rot) -> tuple:
                p, b = pb
                if st.kind == "weights":   # fill one slice (both banks) before the next
                    return (pen.get(p, 0), cands.index(p), banks.index(b))
                return (pen.get(p, 0), (p, b) in clash, banks.index(b),
                        rot.get(p, cands.index(p)))
            got: list[tuple[int, int]] = []
            for p, b in sorted(((p, b) for p in cands for b in banks), key=cost):
                if len(got) < planes and all(q != p for q, _ in got):
                    a = self.alloc.take(p, words, (b,))
                    if a is not None:
                        got.append((p, a))
            if len(got) < planes:
                total = len(keys) * words
                held = ", ".join(f"{k!r} {v}" for k, v in self.usage[side].items()) or "nothing"
                raise TspcError(
                    f"{what} {t.name!r} ({t.shape[0]} x {t.shape[1]} {t.dtype}, {total} words"
                    f"{'' if planes == 1 else f' in each of {planes} byte planes'} in the "
                    f"{side} hemisphere) does not fit its free MEM ({self.cfg.mem_slices} "
                    f"slices of {self.cfg.slice_words} words; already there, in words: {held})"
                    f": use smaller tensors or batches")
            blocks[key] = got
            self.usage[side][t.name] = self.usage[side].get(t.name, 0) + words * planes
        self.salt[side] += 1          # the next tensor starts on another slice
        return Copy(side, blocks)

    def partners(self, t: Tensor) -> tuple[Store, ...]:
        """Stores of tensors placed earlier that are the other operand of a two-operand
        elementwise op with `t` (both are read in the same cycles, and a slice reads one word
        per cycle, so their blocks must be in different slices)."""
        out = []
        for u in self.g.tensors:
            if u.op == "vxm" and len(u.args) == 2 and any(a is t for a in u.args):
                out += [self.stores[a.name] for a in u.args
                        if a is not t and a.name in self.stores]
        return tuple(out)

    def avoid(self, t: Tensor, side: str) -> dict[int, int]:
        """Slices an int8 activation of `t` should not share: the weights' (read in the
        same cycles as a matmul's activations), penalty 3. Elementwise partners and sources:
        `place(partners=..., sources=...)`."""
        pen: dict[int, int] = {}
        for p in self.weight_slices(side, ("wstream",)):    # streamed GEMV weights: their
            pen[p] = 2                                      # matmul reads no tiled x there
        for p in self.weight_slices(side):
            pen[p] = 3
        return pen

    def weight_slices(self, side: str, kinds: tuple[str, ...] = ("weights",)) -> set[int]:
        """Slices of `side` that hold weight tiles (activations avoid them: a unit reads its
        weights and its activations in the same cycles); `kinds` ("wstream": streamed GEMV
        weights)."""
        return {p for s in self.stores.values() if s.kind in kinds
                for c in s.copies.values() if c.side == side for p in c.positions()}

    # ---- the work ------------------------------------------------------------------------
    def run(self) -> Lowered:
        order = self.reachable()
        if not self.g.outputs:
            raise TspcError("the graph has no outputs: mark results with Graph.output(name, t)")
        matmuls = [t for t in order if t.op == "matmul"]
        consumers = {id(t): [u for u in order if any(a is t for a in u.args)] for t in order}
        # work split per matmul: M-split when there are at least two row blocks
        plan = {}
        cap = self.cfg.mem_slices * self.cfg.slice_words        # words per hemisphere
        for mm in matmuls:
            m, _ = mm.shape
            mbs = -(-m // self.mblock(m))
            # words per hemisphere: M-split copies the weights to both, N-split the inputs
            kb, nb = -(-mm.args[0].shape[1] // self.n), -(-mm.shape[1] // self.n)
            wts, act = kb * nb * self.n, m * kb
            out = m * nb * (4 if any(o is mm for o in self.g.outputs.values()) else 1)
            m_side = wts + (act + out) / 2
            n_side = wts / 2 + act + out / 2
            plan[id(mm)] = "M" if mbs >= 2 and (m_side <= 0.8 * cap or m_side <= n_side) \
                else "N"
        # where each int8 tensor's row blocks are needed (side -> set of mb): a matmul's
        # activations by its split, an elementwise pass's operands where the pass reads
        # row block mb (its hemisphere mb % 2)
        need: dict[int, dict[str, set[int]]] = {}

        def blocks(t: Tensor) -> int:
            return -(-t.shape[0] // self.mblock(t.shape[0]))

        def mark(a: Tensor, i: int, sides: tuple[str, ...]) -> None:
            """Row block i of `a` is read in `sides`; a view passes it on to its input (a
            flatten view's one row block covers all of them)."""
            if a.op == "view":
                b = a.args[0]
                for j in ([i] if b.shape == a.shape else range(blocks(b))):
                    mark(b, j, sides)
                return
            d = need.setdefault(id(a), {})
            for h in sides:
                d.setdefault(h, set()).add(i)

        for u in order:
            if u.op not in ("matmul", "vxm", "transpose", "reshape"):
                continue
            for a in (u.args[:1] if u.op == "matmul" else u.args):
                for i in range(blocks(a)):
                    if u.op == "matmul" and plan[id(u)] == "N":
                        mark(a, i, SIDES)
                    else:
                        mark(a, i, (SIDES[i % 2],))
        # batch-1 GEMVs streamed through the activation buffer (tspc/gemv.py)
        self.gemv = {id(mm): pl for mm in matmuls
                     if (pl := gemv_plan(self, mm, consumers)) is not None}
        # host tensors first: weights then activations, so weights take the slices nearest
        host = [t for t in order if t.is_host]
        for t in sorted(host, key=lambda t: 0 if any(
                u.op == "matmul" and u.args[1] is t for u in consumers[id(t)]) else 1):
            self.place_host(t, need, consumers[id(t)], plan)
        # lower each matmul (with its requantization) and each elementwise pass, in order
        for mm in order:
            if mm.op == "vxm":
                self.lower_elementwise(mm, need)
                continue
            if mm.op == "transpose":
                self.lower_transpose(mm, need)
                continue
            if mm.op == "view":
                self.stores[mm.name] = self.view_store(mm)
                continue
            if mm.op == "reshape":
                self.lower_reshape(mm, need)
                continue
            if mm.op != "matmul":
                continue
            rq = [u for u in consumers[id(mm)] if u.op == "requantize"]
            if len(rq) > 1:
                raise TspcError(f"matmul {mm.name!r} is requantized by more than one operation "
                                f"({', '.join(u.name for u in rq)}): use one requantize "
                                f"(relu=True for the ReLU)")
            int32_out = any(o is mm for o in self.g.outputs.values())
            if not rq and not int32_out:
                raise TspcError(f"matmul {mm.name!r} is neither requantized nor an output")
            if id(mm) in self.gemv:
                lower_gemv(self, mm, self.gemv[id(mm)], rq[0] if rq else None, int32_out, need)
            else:
                self.lower_matmul(mm, plan[id(mm)], rq[0] if rq else None, int32_out, need)
        return Lowered(self.cfg, self.segments, self.stores, host, self.biases,
                       sorted(self.zero_words.items()))

    def place_host(self, t: Tensor, need, consumers, plan) -> None:
        n = self.n
        is_weight = [u for u in consumers if u.op == "matmul" and u.args[1] is t]
        if is_weight and any(u.args[0] is t for u in consumers if u.op == "matmul"):
            raise TspcError(f"tensor {t.name!r} is used both as weights and as activations")
        streamed = [self.gemv[id(u)] for u in consumers if id(u) in self.gemv]
        if is_weight and streamed:
            self.stores[t.name] = place_weights(self, t, streamed[0])
            return
        if streamed and streamed[0].inline:
            place_x(self, t, streamed[0])
            return
        if is_weight:
            k, nn = t.shape
            kb, nb = -(-k // n), -(-nn // n)
            # weights: tile (kb, nb) = n rows; stored as a (nb, kb, i) sequence: mblock = n
            st = Store(t, mblock=n, mblocks=nb * kb, cblocks=1, kind="weights")
            sides = set()
            for u in is_weight:
                if plan[id(u)] == "M":
                    sides |= set(SIDES)
                else:
                    sides |= {SIDES[j % 2] for j in range(nb)}
            for h in sorted(sides):
                tiles = [(j * kb + i, 0) for j in range(nb) for i in range(kb)
                         if any(plan[id(u)] == "M" for u in is_weight) or SIDES[j % 2] == h]
                st.copies[h] = self.place(t, st, h, tiles, 1, set(), "weights")
            self.stores[t.name] = st
            return
        d = need.get(id(t), {})
        m, k = t.shape
        st = Store(t, self.mblock(m), -(-m // self.mblock(m)), -(-k // n))
        for h in sorted(d):
            avoid = self.avoid(t, h)
            keys = [(mb, cb) for mb in sorted(d[h]) for cb in range(st.cblocks)]
            st.copies[h] = self.place(t, st, h, keys, 1, avoid, "input", spread=True,
                                      partners=self.partners(t))
        self.stores[t.name] = st

    # ---- one matmul layer ------------------------------------------------------------------
    def lower_matmul(self, mm: Tensor, split: str, rq: Tensor | None, int32_out: bool,
                     need) -> None:
        n = self.n
        a, w = mm.args
        A, Wt = self.stores[a.name], self.stores[w.name]
        k = a.shape[1]
        nn = w.shape[1]
        KB, NB = -(-k // n), -(-nn // n)
        MB = A.mblocks
        units = [(mb, nb, SIDES[mb % 2] if split == "M" else SIDES[nb % 2])
                 for mb in range(MB) for nb in range(NB)]
        # alternate the two MXMs so that both work in every segment
        per = {h: [u for u in units if u[2] == h] for h in SIDES}
        units = [u for pair in zip(per["W"], per["E"]) for u in pair] + \
            per["W"][len(per["E"]):] + per["E"][len(per["W"]):]
        outs = self.matmul_outs(mm, A, MB, NB, units, rq, int32_out, need)
        bias = None
        if rq is not None and rq.attrs["bias"] is not None:
            bias = self.place_bias(rq)
        layer = rq.name if rq is not None else mm.name
        seg = self.new_segment(layer, rq)
        nunits = 0
        rowblock = {"W": 0, "E": 0}
        # A unit's drain is placed after the next unit of its MXM has been placed, so the
        # drain (ACC, bias reads, VXM, writes) fits around the MXM's stream of tiles instead
        # of delaying it; the accumulator rows are double-buffered, so the unit after that
        # (same rows) is placed after the drain and sees its claims.
        pending: dict[str, tuple | None] = {"W": None, "E": None}
        started: dict[str, int | None] = {"W": None, "E": None}

        def flush(seg: Timeline, h: str) -> None:
            if pending[h] is None:
                return
            drains, lo, rows_key, rows = pending[h]
            for dt in drains:
                doff = seg.find(dt, lo)
                # the accumulator rows stay taken from the last ABC to this ACC; nothing else
                # can hold them meanwhile: the units of one MXM are placed in order, and the
                # next one on these rows only after this drain
                gap = range(lo, doff)
                if any(c in seg.busy.get(rows_key, ()) for c in gap):
                    raise TspcError(f"internal error: accumulator rows {rows_key} of "
                                    f"{layer!r} are taken between cycles {lo} and {doff}")
                seg.commit(dt, doff)
                seg.busy.setdefault(rows_key, set()).update(gap)
                lo = doff + rows          # the next drain's ACC after this one's
            pending[h] = None

        def fits_alone(mb: int, nb: int, h: str, k0: int, k1: int, drains) -> bool:
            comp, _, _ = self.compute_template(A, Wt, mb, nb, h, KB, NB, 0, (k0, k1))
            empty = self.new_segment(layer, rq)
            return empty.room_at(comp, empty.find(comp, 0), Template.merged(drains))

        def chunks(mb: int, nb: int, h: str) -> list[tuple[int, int]]:
            """The unit's K-tiles cut into runs that each fit a queue on their own (the
            accumulator rows keep the partial sums between segments: START does not touch
            them, docs/mxm.md); one run when the unit fits."""
            drains = self.drain_templates(outs, mb, nb, h, A.rows(mb), 0, bias, rq)
            if fits_alone(mb, nb, h, 0, KB, drains):
                return [(0, KB)]
            out, k0 = [], 0
            while k0 < KB:
                lo, hi = k0 + 1, KB             # largest k1 whose run fits an empty segment
                if not fits_alone(mb, nb, h, k0, lo, drains):
                    raise TspcError(
                        f"internal error: matmul {mm.name!r}: one weight tile of unit "
                        f"({mb}, {nb}) does not fit the queues")
                while lo < hi:
                    mid = (lo + hi + 1) // 2
                    if fits_alone(mb, nb, h, k0, mid, drains):
                        lo = mid
                    else:
                        hi = mid - 1
                out.append((k0, lo))
                k0 = lo
            return out

        work = []
        for mb, nb, h in units:
            runs = chunks(mb, nb, h)
            work += [(mb, nb, h, k0, k1, k1 == KB) for k0, k1 in runs]
        for mb, nb, h, k0, k1, last in work:
            comp, S_last, rows = self.compute_template(A, Wt, mb, nb, h, KB, NB,
                                                       rowblock[h] % 2, (k0, k1))
            drains = (self.drain_templates(outs, mb, nb, h, rows, rowblock[h] % 2, bias, rq)
                      if last else [])
            waiting = [d for p in pending.values() if p for d in p[0]]
            # units of one MXM in order (each after the previous one's first ABC); the
            # segment ends when this unit (exact words where it goes) and the drains still to
            # place (two words per instruction) would overflow a queue
            off = seg.find(comp, started[h] + 1 if started[h] is not None else 0)
            if not seg.room_at(comp, off, Template.merged(drains + waiting)):
                for side in SIDES:
                    flush(seg, side)
                self.close_segment(seg, layer, nunits)
                seg, nunits = self.new_segment(layer, rq), 0
                started = {"W": None, "E": None}
                off = seg.find(comp, 0)
                if not seg.room_at(comp, off, Template.merged(drains)):
                    raise TspcError(
                        f"internal error: matmul {mm.name!r}: K-tiles {k0}..{k1 - 1} of unit "
                        f"({mb}, {nb}) do not fit an empty segment")
            seg.commit(comp, off)
            # the next run of this unit, or the next unit, starts after this run's first ABC
            # (its claims on the accumulator rows, engines and weights order the rest)
            started[h] = off
            if last:
                flush(seg, h)
                pending[h] = (drains, off + S_last + 3, ("rows", self.mxm[h], rowblock[h] % 2),
                              rows)
                rowblock[h] += 1
            nunits += 1
        for side in SIDES:
            flush(seg, side)
        self.close_segment(seg, layer, nunits)

    def matmul_outs(self, mm: Tensor, A: Store, MB: int, NB: int, units, rq: Tensor | None,
                    int32_out: bool, need) -> list[tuple[str, Store]]:
        """The result stores of a matmul whose work units are `units` ((mb, nb, side)): the
        requantized int8 result (in every hemisphere that reads it) and/or the int32 planes."""
        outs = []
        if rq is not None:
            st = Store(rq, A.mblock, MB, NB)
            d = {h: set(v) for h, v in need.get(id(rq), {}).items()}
            for mb, nb, h in units:                 # outputs nobody reads on chip stay home
                if not any(mb in v for v in d.values()):
                    d.setdefault(h, set()).add(mb)
            for h in sorted(d):
                busy = self.avoid(rq, h)
                keys = [(mb, cb) for mb in sorted(d[h]) for cb in range(NB)]
                st.copies[h] = self.place(rq, st, h, keys, 1, busy, "result", (1, 0),
                                          spread=True, partners=self.partners(rq))
            self.stores[rq.name] = st
            outs.append(("rq", st))
        if int32_out:
            st = Store(mm, A.mblock, MB, NB, kind="int32")
            by_side: dict[str, list[tuple[int, int]]] = {}
            for mb, nb, h in units:
                by_side.setdefault(h, []).append((mb, nb))
            for h in sorted(by_side):
                # the SG4 streams flow from the MXM through its own hemisphere and on through
                # the other one: any four slices on the way can write the planes
                other = self.slices["E" if h == "W" else "W"][::-1]
                st.copies[h] = self.place(mm, st, h, sorted(by_side[h]), 4, set(), "result",
                                          (1, 0), slices=self.slices[h][::-1] + other)
            self.stores[mm.name] = st
            outs.append(("i32", st))
        return outs

    def place_bias(self, rq: Tensor) -> Copy:
        """int32 bias as four byte planes in the west slices (one word per column block), read
        onto E4..E7 for VLOADC."""
        n = self.n
        b = rq.attrs["bias"]
        nb = -(-b.shape[0] // n)
        st = Store(rq, 1, nb, 1)
        c = self.place(rq, st, "W", [(j, 0) for j in range(nb)], 4, set(), "bias of")
        padded = np.zeros(nb * n, dtype=np.int64)
        padded[:b.shape[0]] = b
        self.biases.append((c, padded.reshape(nb, n)))
        return c

    # ---- segments --------------------------------------------------------------------------
    def new_segment(self, layer: str, rq: Tensor | list | None) -> Timeline:
        """A new segment; `rq` (a requantize tensor, or a list of VXM configuration
        instructions) configures the VXM in its first cycles."""
        seg = Timeline(self.cfg, filename=f"<tspc {layer} segment {len(self.segments)}>")
        if rq is not None:
            cfg = self.vxm_config(rq) if isinstance(rq, Tensor) else rq
            t = Template()
            for i, (mn, ops) in enumerate(cfg):
                t.instr(i, self.vxm, mn, *ops)
            seg.commit(t, 0)
        return seg

    def close_segment(self, seg: Timeline, layer: str, units: int) -> None:
        if units == 0:
            return
        try:
            prog = seg.tb.build()
        except AsmError as e:
            raise TspcError(f"internal error: the scheduled program for {layer!r} was "
                            f"rejected by the assembler's checker: {e}") from e
        self.segments.append(Segment(prog, layer, units))

    def vxm_config(self, rq: Tensor) -> list[tuple[str, tuple]]:
        """VCONST/VCFG instructions for one requantization (docs/vxm.md section 3), mapped
        onto the profile's stage kinds in order."""
        at = rq.attrs
        m, s, z = at["multiplier"], at["shift"], at["zero_point"]
        steps = [("G", ("ADD", "i32", "r0", "r0", "c3")),
                 ("M", ("SRDHM", "i32", "r2", "r0", "c0")),
                 ("S", ("RDIVPOT", "i32", "r2", "r2", "c1"))]
        if z:
            steps.append(("G", ("ADDS", "i32", "r2", "r2", "c2")))
        if at["relu"]:
            steps.append(("G", ("MAX", "i32", "r2", "r2", "c2")))
        out: list[tuple[str, tuple]] = [("VCONST", (0, m & 0xFFFF)), ("VCONSTH", (0, m >> 16)),
                                        ("VCONST", (1, s))]
        if z:
            out.append(("VCONST", (2, z)))
        what = (f"requantize {rq.name!r} (bias add, SRDHM, RDIVPOT"
                f"{', zero point' if z else ''}{', ReLU' if at['relu'] else ''})")
        return out + self.stages(what, steps)

    def stages(self, what: str, steps: list[tuple[str, tuple]]) -> list[tuple[str, tuple]]:
        """VCFG instructions putting `steps` ((kind, (op, type, dst, x, y))) on the next stages
        of the right kinds, in order."""
        kinds = self.cfg.vxm_stages
        out, k = [], 0
        for kind, ops in steps:
            while k < len(kinds) and kinds[k] != kind:
                k += 1
            if k == len(kinds):
                raise TspcError(f"{what}: the VXM stages {kinds!r} of profile "
                                f"{self.cfg.name!r} cannot run "
                                f"{', '.join(o[0] for _, o in steps)} in one pass (needs "
                                f"stages of kinds {''.join(kd for kd, _ in steps)} in order)")
            out.append(("VCFG", (k,) + ops))
            k += 1
        return out

    def lower_elementwise(self, t: Tensor, need) -> None:
        """One VXM pass per block: READ the operand block(s) toward the VXM, VRUN + REPEAT,
        WRITE the result where it is needed (once per hemisphere)."""
        v = self.vxm
        fn = t.attrs["fn"]
        alu = {"add": "ADDS", "sub": "SUBS", "minimum": "MIN", "maximum": "MAX"}
        if fn in alu:
            cfg = self.stages(f"{fn} {t.name!r}", [("G", (alu[fn], "i8", "r2", "r0", "r1"))])
            td, plane = "i8", 0
        elif fn == "relu":
            cfg = self.stages(f"relu {t.name!r}", [("G", ("RELU", "i8", "r2", "r0", "zero"))])
            td, plane = "i8", 0
        elif fn == "rsqrt":                     # x << p, RSQRT, the int32's top byte
            p = t.attrs["preshift"]
            cfg = [("VCONST", (1, p))] if p else []
            if p:
                cfg += self.stages(f"rsqrt {t.name!r}", [("S", ("SHL", "i32", "r2", "r0", "c1"))])
            cfg.append(("VFUNC", ("RSQRT", "r2", "r2")))
            td, plane = "i32", 3
        else:                                   # tanh / exp: Q8 input, Q15 -> high byte
            shift = 8 - t.attrs["frac_bits"]
            cfg = [("VCONST", (1, shift))] if shift else []
            if shift:
                cfg += self.stages(f"{fn} {t.name!r}", [("S", ("SHL", "i32", "r2", "r0", "c1"))])
            cfg.append(("VFUNC", (fn.upper(), "r2", "r2")))
            td, plane = "i16", 1
        srcs = [self.stores[a.name] for a in t.args]
        st = self.result_store(t, need, srcs[0].mblock, srcs[0].mblocks, tuple(srcs))
        seg, count = self.new_segment(t.name, cfg), 0
        dfunc = isa.dfunc_of(isa.BY_NAME["VRUN"], self.cfg)
        for mb in range(st.mblocks):
            rows = st.rows(mb)
            for cb in range(st.cblocks):
                for dest in [h for h in SIDES if h in st.copies and st.copies[h].has_rows(mb)]:
                    tp = Template()
                    ops = []
                    used: set[int] = set()
                    for i, src in enumerate(srcs):
                        home = SIDES[mb % 2]
                        cands = sorted((h for h, c in src.copies.items()
                                        if (mb, cb) in c.blocks), key=lambda h: h != home)
                        side = next((h for h in cands if src.addr(h, mb, cb)[0][0] not in used),
                                    None)
                        if side is None:
                            raise TspcError(
                                f"{fn} {t.name!r}: both operands' block ({mb}, {cb}) are in "
                                f"MEM slice {self.cfg.positions[src.addr(cands[0], mb, cb)[0][0]]}"
                                f", which reads one word per cycle (not supported yet: store "
                                f"the operands in different slices)")
                        ((p, a),) = src.addr(side, mb, cb)
                        used.add(p)
                        dr = EAST if p < v else WEST
                        tp.stream(dr, i, p, v, -self.hop(p, v), rows)
                        self.mem_access(tp, "READ", p, a, rows, -2 - self.hop(p, v),
                                        _op(dr, i), f"{t.name} operand {i} ({mb},{cb})")
                        ops.append(_op(dr, i))
                    dd = WEST if dest == "W" else EAST
                    b_op, tb = (ops[1], "i8") if len(ops) == 2 else (ops[0], "none")
                    tp.instr(0, v, "VRUN", ops[0], "i8", b_op, tb, _op(dd, 4), td, "sat",
                             note=f"{t.name} ({mb},{cb}) -> {dest}")
                    if rows > 1:
                        tp.instr(1, v, "REPEAT", rows - 1, 1, occupancy_cycles=rows - 1)
                    ((op_, addr),) = st.addr(dest, mb, cb)
                    for lo in range(plane):     # the low bytes are written at the VXM too
                        tp.stream(dd, 4 + lo, v, v, dfunc, rows)
                    tp.stream(dd, 4 + plane, v, op_, dfunc, rows)
                    self.mem_access(tp, "WRITE", op_, addr, rows, dfunc + self.hop(v, op_),
                                    _op(dd, 4 + plane), f"{t.name} ({mb},{cb}) -> {dest}")
                    st.written[(mb, cb)] = dest
                    if not seg.room(tp):
                        self.close_segment(seg, t.name, count)
                        seg, count = self.new_segment(t.name, cfg), 0
                    seg.commit(tp, seg.find(tp, 0))
                    count += 1
        self.close_segment(seg, t.name, count)

    def result_store(self, t: Tensor, need, mblock: int, mblocks: int,
                     sources: tuple[Store, ...] = ()) -> Store:
        """The store of an int8 result: a copy in every hemisphere that needs its row blocks
        (row block mb's home hemisphere when nobody on the chip reads it)."""
        st = Store(t, mblock, mblocks, -(-t.shape[1] // self.n))
        d = {h: set(x) for h, x in need.get(id(t), {}).items()}
        for mb in range(st.mblocks):
            if not any(mb in x for x in d.values()):
                d.setdefault(SIDES[mb % 2], set()).add(mb)
        for h in sorted(d):
            keys = [(mb, cb) for mb in sorted(d[h]) for cb in range(st.cblocks)]
            st.copies[h] = self.place(t, st, h, keys, 1, self.avoid(t, h), "result", (1, 0),
                                      spread=True, partners=self.partners(t), sources=sources)
        self.stores[t.name] = st
        return st

    def view_store(self, v: Tensor) -> Store:
        """The store of a view: its input's store (same shape), or for a flatten (M, K) ->
        (1, M*K) with K a multiple of n a store of one-word blocks at the input's words."""
        B = self.stores[v.args[0].name]
        if v.shape == B.tensor.shape:
            return B
        n = self.n
        kb = B.cblocks
        st = Store(v, 1, 1, -(-v.shape[1] // n), kind=B.kind)
        for h, c in B.copies.items():
            blocks = {}
            for cb2 in range(st.cblocks):
                r, cb = divmod(cb2, kb)
                mb, off = divmod(r, B.mblock)
                if (mb, cb) in c.blocks:
                    ((p, a),) = c.blocks[(mb, cb)]
                    blocks[(0, cb2)] = [(p, a + off)]
            if blocks:
                st.copies[h] = Copy(h, blocks)
        for cb2 in range(st.cblocks):
            r, cb = divmod(cb2, kb)
            side = B.written.get((r // B.mblock, cb))
            if side is not None:
                st.written[(0, cb2)] = side
        return st

    def zero_word(self, pos: int) -> int:
        """A word of `pos` that the host sets to zero (for unused operand streams)."""
        if pos not in self.zero_words:
            a = self.alloc.take(pos, 1, (1, 0))
            if a is None:
                raise TspcError(f"reshape: no free word left in {self.cfg.positions[pos]} for "
                                f"a zero word: use smaller tensors")
            self.zero_words[pos] = a
        return self.zero_words[pos]

    def lower_reshape(self, t: Tensor, need) -> None:
        """Row-major reshape that moves elements between words (docs/compiler.md section 3).
        Each result word is made of pieces (tspc.reshape.reshape_pieces); piece j goes to
        staging slot j: the four slices of one hemisphere are the slots of one int32 operand
        (byte plane i = slice MEM_Xi, stream i). *Stage* (one template per piece): the source
        word is READ toward the SXM of the slot's hemisphere, `SHIFT`ed by the lane offset
        (zero fill; a second SHIFT clears the lanes above the piece when neither the piece
        nor its source word reaches lane n-1), and WRITTEn to a fresh staging word of the
        slot's slice. *Merge* (one template per destination hemisphere): the slots are READ so
        that they meet at the VXM in one cycle (unused slots read a zero word), `VRUN a=i32,
        b=i32|none`: r = a OR b, then r * 0x01010101, whose top byte is the sum of the bytes
        of each lane, i.e. the one piece byte (pieces have disjoint lanes, so no carries); the
        i32 result's byte plane 3 is written to the result word."""
        n, cfg = self.n, self.cfg
        P = cfg.position_index
        v = self.vxm
        sx = {0: P("SXM_W"), 1: P("SXM_E")}
        grp = {0: [P(f"MEM_W{i}") for i in range(4)], 1: [P(f"MEM_E{i}") for i in range(4)]}
        src_t = t.args[0]
        S = self.stores[src_t.name]
        m2 = t.shape[0]
        st = self.result_store(t, need, self.mblock(m2), -(-m2 // self.mblock(m2)), (S,))
        words = reshape_pieces(src_t.shape, t.shape, n)
        dfunc = isa.dfunc_of(isa.BY_NAME["VRUN"], cfg)
        vcfg = [("VCONST", (0, 0x0101)), ("VCONSTH", (0, 0x0101))] + self.stages(
            f"reshape {t.name!r}", [("G", ("OR", "i32", "r2", "r0", "r1")),
                                    ("M", ("MUL", "i32", "r2", "r2", "c0"))])
        seg, count, lo, turn = self.new_segment(t.name, vcfg), 0, 0, 0

        def staging_word(q: int) -> int:
            a = self.alloc.take(q, 1, (1, 0))
            if a is None:
                raise TspcError(f"reshape {t.name!r}: no free word left in "
                                f"{cfg.positions[q]} for its staging copies (one word per "
                                f"piece): use smaller tensors")
            return a

        bd = cfg.bank_depth

        def group_ok(g: int, used: int) -> bool:
            """All 4 slices of hemisphere g have a zero word and the first `used` a free
            word for a staging copy."""
            try:
                for q in grp[g]:
                    self.zero_word(q)
            except TspcError:
                return False
            return all(min(self.alloc.free[q]) < bd for q in grp[g][:used])

        for r2 in range(m2):
            mb2, i2 = divmod(r2, st.mblock)
            for cb2 in range(st.cblocks):
                pcs = words[(r2, cb2)]
                if len(pcs) <= 4:               # one hemisphere, alternating, one with room
                    order = [turn % 2, 1 - turn % 2]
                    turn += 1
                    groups = next(([g] for g in order if group_ok(g, len(pcs))), [])
                else:
                    groups = [0, 1] if group_ok(0, 4) and group_ok(1, len(pcs) - 4) else []
                if not groups:
                    where = "both hemispheres" if len(pcs) > 4 else "one hemisphere"
                    raise TspcError(
                        f"reshape {t.name!r}: result word ({r2}, {cb2}) merges {len(pcs)} "
                        f"pieces staged in the MEM slices of {where} (MEM_W0..3 or MEM_E0..3), "
                        f"which need a free word in each slice: the MEM is full: use smaller "
                        f"tensors")
                slots = {}                      # (group, i) -> staging address
                stages = []
                for j, pc in enumerate(pcs):
                    g, i = groups[j // 4], j % 4
                    q, x = grp[g][i], sx[g]
                    din, dout = (WEST, EAST) if g == 0 else (EAST, WEST)
                    mb, off = divmod(pc.r, S.mblock)
                    cands = sorted((h for h, c in S.copies.items() if (mb, pc.cb) in c.blocks),
                                   key=lambda h: h != SIDES[g])
                    ((p, a),) = S.addr(cands[0], mb, pc.cb)
                    sa = staging_word(q)
                    slots[(g, i)] = sa
                    tp = Template()
                    hop = self.hop(p, x)
                    self.mem_access(tp, "READ", p, a + off, 1, -2 - hop, _op(din, i),
                                    f"{t.name} piece {j} of ({r2},{cb2})")
                    tp.stream(din, i, p, x, -hop)
                    k = pc.b - pc.a
                    end = pc.a + pc.length
                    shifts = [k] if end == n or pc.b + pc.length == n else \
                        [n - end, pc.b + pc.length - n]
                    c = 0
                    for idx, kk in enumerate(shifts):
                        src_op = _op(din, i) if idx == 0 else _op(dout, 4 + i)
                        tp.instr(c, x, "SHIFT", src_op, _op(dout, 4 + i), kk,
                                 note=f"{t.name} ({r2},{cb2}) lanes {pc.b}..")
                        if idx < len(shifts) - 1:
                            tp.stream(dout, 4 + i, x, x, c + 2)
                            c += 2
                    tp.stream(dout, 4 + i, x, q, c + 2)
                    self.mem_access(tp, "WRITE", q, sa, 1, c + 2 + self.hop(x, q),
                                    _op(dout, 4 + i), f"{t.name} staged piece {j}")
                    stages.append(tp)
                merges = []
                for dest in [h for h in SIDES if h in st.copies and
                             (mb2, cb2) in st.copies[h].blocks]:
                    tm = Template()
                    ops = []
                    for g in groups:
                        dr = EAST if g == 0 else WEST
                        for i in range(4):
                            q = grp[g][i]
                            a = slots.get((g, i))
                            if a is None:
                                a = self.zero_word(q)
                            hop = self.hop(q, v)
                            tm.stream(dr, i, q, v, -hop)
                            self.mem_access(tm, "READ", q, a, 1, -2 - hop, _op(dr, i),
                                            f"{t.name} ({r2},{cb2}) slot {g},{i}")
                        ops.append(_op(dr, 0))
                    dd = WEST if dest == "W" else EAST
                    b_op, tb = (ops[1], "i32") if len(ops) == 2 else (ops[0], "none")
                    tm.instr(0, v, "VRUN", ops[0], "i32", b_op, tb, _op(dd, 4), "i32", "wrap",
                             note=f"{t.name} merge ({r2},{cb2}) -> {dest}")
                    ((pd, ad),) = st.addr(dest, mb2, cb2)
                    for b in range(3):          # bytes 0..2 of the int32 are not written
                        tm.stream(dd, 4 + b, v, v, dfunc)
                    tm.stream(dd, 7, v, pd, dfunc)
                    self.mem_access(tm, "WRITE", pd, ad + i2, 1, dfunc + self.hop(v, pd),
                                    _op(dd, 7), f"{t.name} ({r2},{cb2}) -> {dest}")
                    st.written[(mb2, cb2)] = dest
                    merges.append(tm)
                if not seg.room(Template.merged(stages + merges)):
                    self.close_segment(seg, t.name, count)
                    seg, count, lo = self.new_segment(t.name, vcfg), 0, 0
                ready, first = 0, None
                for tp in stages:
                    off = seg.find(tp, lo)
                    seg.commit(tp, off)
                    first = off if first is None else min(first, off)
                    ready = max(ready, off + tp.latest() + 1)
                for tm in merges:
                    seg.commit(tm, seg.find(tm, ready - tm.earliest()))
                lo = max(0, first - 16)
                count += 1
        self.close_segment(seg, t.name, count)

    def temp_word(self, t: Tensor, pos: int, not_bank: int | None = None) -> int:
        bd = self.cfg.bank_depth
        banks = (1, 0) if not_bank is None else (1 - not_bank,)
        a = self.alloc.take(pos, 1, banks)
        if a is None:
            raise TspcError(f"transpose {t.name!r}: no free word left in "
                            f"{self.cfg.positions[pos]}"
                            f"{'' if not_bank is None else f' bank {1 - not_bank}'} for its "
                            f"staging copies (two words per slice per {self.n} x {self.n} "
                            f"block): use smaller tensors")
        assert a // bd in banks
        return a

    def lower_transpose(self, t: Tensor, need) -> None:
        """Y = X^T block by block (n x n, n = lanes): (A) the block's n rows are READ from
        X's slice and each is written into a different MEM slice (rows for slices west of the
        source on a westward stream, the rest on an eastward one); (B) the n slices READ them
        so that they meet at SXM_W in one cycle on W0..W(n-1), `TRANSPOSE W0, E0`; (C) result
        row a (on E a) is written by the a-th slice from the west; (D) the destination slice
        gathers them: rows from slices west of it on an eastward stream (one WRITE), its own
        and the eastern ones on a westward stream (a second WRITE). A block uses n of the MEM
        slices: all of them when 2 mem_slices = n, otherwise X's source slice, Y's destination
        slices and the slices nearest the source."""
        n, cfg = self.n, self.cfg
        sx = cfg.position_index("SXM_W")
        X = self.stores[t.args[0].name]
        m, k = t.args[0].shape
        st = self.result_store(t, need, self.mblock(k), -(-k // self.mblock(k)))
        mem = sorted(cfg.mem_positions)             # at least n of them (Graph.transpose)
        seg, count = self.new_segment(t.name, None), 0
        for xr in range(-(-m // n)):
            for xc in range(X.cblocks):
                r0 = xr * n
                mb, off = divmod(r0, X.mblock)
                side = next(h for h in SIDES if h in X.copies and (mb, xc) in X.copies[h].blocks)
                ((ps, xa),) = X.addr(side, mb, xc)
                src = xa + off
                yb, yoff = divmod(xc * n, st.mblock)
                dests = [h for h in SIDES if h in st.copies and (yb, xr) in st.copies[h].blocks]
                # the block's n slices: the source, the destinations, then the nearest others
                need_s = {ps} | {st.addr(h, yb, xr)[0][0] for h in dests}
                if len(need_s) > n:
                    raise TspcError(f"transpose {t.name!r}: {len(need_s)} slices take part in a "
                                    f"block but a {n}-lane block has only {n} rows")
                rest = sorted((q for q in mem if q not in need_s), key=lambda q: (abs(q - ps), q))
                slices = sorted(need_s | set(rest[:n - len(need_s)]))
                bank_src = src // cfg.bank_depth
                tmpA = {q: self.temp_word(t, q, bank_src if q == ps else None) for q in slices}
                tmpC = {q: self.temp_word(t, q) for q in slices}
                # (A) spread: rows 0..nw-1 west (nearest slice first), row nw.. east (self first)
                west = sorted((q for q in slices if q < ps), reverse=True)
                east = [ps] + sorted(q for q in slices if q > ps)
                holder = {}                                    # X row j -> slice
                ta = Template()
                nw = len(west)
                if nw:
                    self.mem_access(ta, "READ", ps, src, nw, 0, "W2", f"{t.name} spread")
                    ta.stream(WEST, 2, ps, west[-1], 2, nw)   # claim the farthest path
                    for j, q in enumerate(west):
                        self.mem_access(ta, "WRITE", q, tmpA[q], 1, j + 2 + (ps - q), "W2",
                                        f"{t.name} spread row {j}")
                        holder[j] = q
                u2 = max(nw, 2) if nw else 0
                self.mem_access(ta, "READ", ps, src + nw, n - nw, u2, "E2", f"{t.name} spread")
                for i, q in enumerate(east):
                    ta.stream(EAST, 2, ps, q, u2 + 2 + i)
                    self.mem_access(ta, "WRITE", q, tmpA[q], 1, u2 + i + 2 + (q - ps), "E2",
                                    f"{t.name} spread row {nw + i}")
                    holder[nw + i] = q
                # (B) meet at SXM_W, TRANSPOSE; (C) result row a -> slices[a]
                tb = Template()
                for j in range(n):
                    q = holder[j]
                    tb.stream(WEST, j, q, sx, -(q - sx))
                    self.mem_access(tb, "READ", q, tmpA[q], 1, -2 - (q - sx), _op(WEST, j),
                                    f"{t.name} row {j} to SXM_W")
                tb.instr(0, sx, "TRANSPOSE", "W0", "E0", note=f"{t.name} block ({xr},{xc})")
                for a in range(n):
                    q = slices[a]
                    tb.stream(EAST, a, sx, q, 2)
                    self.mem_access(tb, "WRITE", q, tmpC[q], 1, 2 + (q - sx), _op(EAST, a),
                                    f"{t.name} column {a}")
                # (D) gather into every copy of Y's block
                tds = []
                for dest in dests:
                    ((pd, ya),) = st.addr(dest, yb, xr)
                    ya += yoff
                    # only Y's real rows: a block of fewer than n rows has fewer words
                    valid = min(n, st.rows(yb) - yoff)
                    i = slices.index(pd)
                    td = Template()
                    if min(i, valid):
                        self.mem_access(td, "WRITE", pd, ya, min(i, valid), 0, "E3",
                                        f"{t.name} gather")
                        for a in range(min(i, valid)):
                            q = slices[a]
                            td.stream(EAST, 3, q, pd, a - (pd - q))
                            self.mem_access(td, "READ", q, tmpC[q], 1, a - 2 - (pd - q), "E3",
                                            f"{t.name} row {a}")
                    w2 = max(i + 2, 4) if i else 0
                    if valid > i:
                        self.mem_access(td, "WRITE", pd, ya + i, valid - i, w2, "W3",
                                        f"{t.name} gather")
                    for a in range(i, valid):
                        q = slices[a]
                        c = w2 + (a - i)
                        td.stream(WEST, 3, q, pd, c - (q - pd))
                        self.mem_access(td, "READ", q, tmpC[q], 1, c - 2 - (q - pd), "W3",
                                        f"{t.name} row {a}")
                    st.written[(yb, xr)] = dest
                    tds.append(td)
                if not seg.room(Template.merged([ta, tb] + tds)):
                    self.close_segment(seg, t.name, count)
                    seg, count = self.new_segment(t.name, None), 0
                offA = seg.find(ta, 0)
                seg.commit(ta, offA)
                offB = seg.find(tb, offA + ta.latest() + 1 - tb.earliest())
                seg.commit(tb, offB)
                for td in tds:
                    seg.commit(td, seg.find(td, offB + tb.latest() + 1 - td.earliest()))
                count += 1
        self.close_segment(seg, t.name, count)

    # ---- templates -------------------------------------------------------------------------
    def mem_access(self, t: Template, mnemonic: str, pos: int, addr: int, count: int,
                   cycle: int, stream: str, note: str) -> None:
        """ITERATIONS count at cycle-1, READ/WRITE at cycle, with engine and bank cells."""
        t.instr(cycle - 1, pos, "ITERATIONS", count, note=note)
        t.instr(cycle, pos, mnemonic, addr, stream, note=note)
        t.claim(("re" if mnemonic == "READ" else "we", pos), cycle, count)
        bank = addr // self.cfg.bank_depth
        if (addr + count - 1) // self.cfg.bank_depth != bank:
            raise TspcError(f"internal error: access at {addr}+{count} crosses a bank")
        t.claim(("bank", pos, bank), cycle, count)

    def compute_template(self, A: Store, Wt: Store, mb: int, nb: int, h: str, KB: int,
                         NB: int, rb: int, krange: tuple[int, int] | None = None
                         ) -> tuple[Template, int, int]:
        """Tiles kb = k0..k1-1 (`krange`, default all KB) of unit (mb, nb) on MXM_h, relative
        to the run's first ABC at 0; the ABC of tile 0 overwrites the accumulator rows (mode 0),
        every later one adds to them (mode 1)."""
        n = self.n
        t = Template()
        mx = self.mxm[h]
        rows = A.rows(mb)
        # Per tile the MXM queue issues IW (at S - delta), ABC (at S) and the next tile's LW.
        # Long blocks: LW right after ABC, one tile per `rows` cycles (the ABC engine is the
        # limit). Short blocks (GEMV): LW right after IW, one tile per n + 1 cycles (LW's n
        # cycles plus the IW slot are the limit).
        if rows >= n + 2:
            delta, period, lw_next = 1, rows, 1
        else:
            delta, period, lw_next = 2, max(n + 1, rows + 1), -1
        d = self.into_mxm(h)
        acc0 = rb * self.mblock_max
        k0, k1 = krange if krange is not None else (0, KB)
        for kb in range(k0, k1):
            S = (kb - k0) * period
            L = S - delta - n if kb == k0 else S - period + lw_next
            Iw = S - delta
            ((wpos, waddr),) = Wt.addr(h, nb * KB + kb, 0)
            # weights: READ n rows -> LW
            hw = self.hop(wpos, mx)
            ((apos, aaddr),) = A.addr(h, mb, kb)
            if apos == wpos:
                raise TspcError(
                    f"matmul {A.tensor.name!r} @ {Wt.tensor.name!r}: activation block ({mb}, "
                    f"{kb}) and weight tile ({kb}, {nb}) are both in "
                    f"{self.cfg.positions[wpos]} (the other slices are full), and a slice "
                    f"reads one word per cycle: use smaller tensors or batches")
            self.mem_access(t, "READ", wpos, waddr, n, L - 2 - hw, _op(d, 1),
                            f"W tile ({kb},{nb})")
            t.stream(d, 1, wpos, mx, L - hw, n)
            t.instr(L, mx, "LW", _op(d, 1), 0, n, note=f"tile ({kb},{nb})")
            t.claim(("lw", mx), L, n)
            t.claim(("shadow", mx), L, Iw - L)
            t.instr(Iw, mx, "IW")
            t.claim(("active", mx), Iw + 1, S + rows - 1 - Iw)
            # activations: READ rows -> ABC
            ha = self.hop(apos, mx)
            self.mem_access(t, "READ", apos, aaddr, rows, S - 2 - ha, _op(d, 0),
                            f"A block ({mb},{kb})")
            t.stream(d, 0, apos, mx, S - ha, rows)
            t.instr(S, mx, "ABC", _op(d, 0), acc0, rows, 0 if kb == 0 else 1,
                    note=f"unit ({mb},{nb}) k-block {kb}")
            t.claim(("abc", mx), S, rows)
        S_last = (k1 - 1 - k0) * period
        t.claim(("rows", mx, rb), 0, S_last + 3)
        return t, S_last, rows

    def drain_templates(self, outs, mb: int, nb: int, h: str, rows: int, rb: int,
                        bias, rq: Tensor | None, acc0: int | None = None) -> list[Template]:
        """ACC of unit (mb, nb)'s rows (from accumulator row `acc0`, default the first of
        row block `rb`), relative to the ACC issue at 0: one template per destination (int32
        planes; requantized int8 per hemisphere that needs it)."""
        mx = self.mxm[h]
        dout = EAST if h == "W" else WEST           # ACC flows toward the VXM
        if acc0 is None:
            acc0 = rb * self.mblock_max
        res = []
        for kind, st in outs:
            dests = [h] if kind == "i32" else [s for s in SIDES if s in st.copies and
                                               st.copies[s].has_rows(mb)]
            for dest in dests:
                st.written[(mb, nb)] = dest
                t = Template()
                t.instr(0, mx, "ACC", _op(dout, 0), acc0, rows, note=f"unit ({mb},{nb})")
                t.claim(("acc", mx), 0, rows)
                t.claim(("rows", mx, rb), 0, rows)
                if kind == "i32":
                    for b, (p, addr) in enumerate(st.addr(h, mb, nb)):
                        t.stream(dout, b, mx, p, 2, rows)
                        self.mem_access(t, "WRITE", p, addr, rows, 2 + self.hop(mx, p),
                                        _op(dout, b), f"C plane {b} ({mb},{nb})")
                else:
                    v = self.vxm
                    tv = 2 + self.hop(mx, v)
                    for b in range(4):
                        t.stream(dout, b, mx, v, 2, rows)
                    if bias is not None:
                        t.instr(tv - 1, v, "VLOADC", 3, _op(EAST, 4), "i32",
                                note=f"bias block {nb}")
                        t.claim(("c3",), tv, rows + 1)
                        for b, (p, baddr) in enumerate(bias.blocks[(nb, 0)]):
                            t.stream(EAST, 4 + b, p, v, tv - 1 - self.hop(p, v))
                            self.mem_access(t, "READ", p, baddr, 1,
                                            tv - 1 - self.hop(p, v) - 2, _op(EAST, 4 + b),
                                            f"bias plane {b} block {nb}")
                    dd = WEST if dest == "W" else EAST
                    t.instr(tv, v, "VRUN", _op(dout, 0), "i32", _op(dout, 0), "none",
                            _op(dd, 4), "i8", "sat", note=f"unit ({mb},{nb}) -> {dest}")
                    if rows > 1:
                        t.instr(tv + 1, v, "REPEAT", rows - 1, 1, occupancy_cycles=rows - 1)
                    dfunc = isa.dfunc_of(isa.BY_NAME["VRUN"], self.cfg)
                    ((op_, addr),) = st.addr(dest, mb, nb)
                    t.stream(dd, 4, v, op_, tv + dfunc, rows)
                    self.mem_access(t, "WRITE", op_, addr, rows, tv + dfunc + self.hop(v, op_),
                                    _op(dd, 4), f"result ({mb},{nb}) -> {dest}")
                res.append(t)
        return res


def lower(graph: Graph) -> Lowered:
    """Allocate and schedule `graph` (see module docstring); raises `TspcError`."""
    if not isinstance(graph, Graph):
        raise TypeError(f"lower() needs a tspc.Graph, not {graph!r}")
    try:
        return _Lowerer(graph).run()
    except SelfConflict as e:
        raise TspcError(f"cannot schedule this program: a unit needs one resource twice in "
                        f"one cycle ({e}); typically a matmul's weights and activations or "
                        f"an elementwise op's two operands ended up in one MEM slice because "
                        f"the others are full: use smaller tensors") from None
