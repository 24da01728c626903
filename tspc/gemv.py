# Streamed batch-1 GEMV (docs/compiler.md, "Streamed GEMV"): on profiles whose MXMs have an
# activation buffer (`mxm_xbuf > 0`), a (1 x K) @ (K x N) matmul with host weights reads every
# weight row once, `g` rows per cycle per MXM (one from each of `g` MEM slices, `LWG` with
# `w = g` and `iw`), holds each K-slice of x in the activation buffer (`LXG`) and multiplies it
# against the column-block tiles as they install (`ABX`, one element every `p = n / g` cycles).
# Column blocks alternate between the MXMs; each MXM works through groups of up to 2n column
# blocks (one accumulator row each, two groups in flight), each group in chunks of up to
# `mxm_xbuf` K-slices. A chunk's weight rows sit in one contiguous region per slice, in the
# order the LWG takes them, so one READ loop per slice streams them.
"""The streamed GEMV plan, its weight layout and its templates."""
from __future__ import annotations

from dataclasses import dataclass, field

from .graph import Tensor, TspcError
from .schedule import Template

__all__ = ["GemvPlan", "gemv_plan"]

SIDES = ("W", "E")


@dataclass
class GemvPlan:
    """How one streamed GEMV is cut: `g` rows per LWG element, `p = n / g` cycles per tile;
    per side the groups of column blocks and per group its chunks of K-slices."""

    g: int
    p: int
    KB: int
    NB: int
    groups: dict[str, list[list[int]]]
    chunks: dict[tuple[str, int], list[tuple[int, int]]]
    inline: bool                # x is a host input read by this GEMV only: stored in the regions
    regions: dict[tuple[str, int, int], list[tuple[int, int]]] = field(default_factory=dict)
    xmap: list[tuple[str, int, int, int]] = field(default_factory=list)   # side, pos, addr, kb

    def x_width(self, C: int) -> int:
        """Vectors per LXG element for a chunk of C K-slices (inline x): the largest w <= g
        dividing C."""
        return max(w for w in range(1, min(self.g, C) + 1) if C % w == 0)


def gemv_plan(lw, mm: Tensor, consumers) -> GemvPlan | None:
    """The plan for matmul `mm` when it can be streamed (batch 1, host weights read by this
    matmul only, a profile with an activation buffer), else None."""
    cfg = lw.cfg
    a, w = mm.args
    if cfg.mxm_xbuf == 0 or "mxm" not in cfg.units or a.shape[0] != 1:
        return None
    if any(u is not mm for u in consumers[id(w)]):
        return None
    n = lw.n
    g = max(d for d in range(1, min(cfg.mxm_load_width, cfg.mem_slices) + 1) if n % d == 0)
    p = n // g
    KB, NB = -(-a.shape[1] // n), -(-w.shape[1] // n)
    cols = {h: [nb for nb in range(NB) if SIDES[nb % 2] == h] for h in SIDES}
    G = lw.mblock_max                          # column blocks per group (accumulator rows)
    groups = {h: [c[i:i + G] for i in range(0, len(c), G)] for h, c in cols.items()}
    chunks = {}
    for h in SIDES:
        for gi, grp in enumerate(groups[h]):
            # a chunk's region per slice (C * len(grp) * p weight words and up to C x words)
            # must fit one bank
            C = max(1, min(cfg.mxm_xbuf, cfg.bank_depth // (len(grp) * p + 1)))
            chunks[(h, gi)] = [(k0, min(k0 + C, KB)) for k0 in range(0, KB, C)]
    inline = a.op == "input" and all(u is mm for u in consumers[id(a)])
    return GemvPlan(g, p, KB, NB, groups, chunks, inline)


def place_weights(lw, t: Tensor, pl: GemvPlan):
    """Allocate the streamed layout of weight tensor `t`: per (side, group, chunk) one region
    per weight slice, in the order the chunk's READ loop streams it: with inline x first the
    slice's x vectors of the chunk (vector i = e * wx + j is in slice j, read for LXG element
    e), then the weight rows. Returns a Store of kind "wstream" whose `wmap` lists (position,
    address, weight row, column block) of every weight word; the x words are in `pl.xmap`
    as (position, address, K-block)."""
    from .lower import Copy, Store
    n, g, p = lw.n, pl.g, pl.p
    st = Store(t, mblock=n, mblocks=0, cblocks=1, kind="wstream")
    st.wmap = []
    for h in SIDES:
        sl = lw.slices[h][:g]
        for gi, grp in enumerate(pl.groups[h]):
            for ci, (k0, k1) in enumerate(pl.chunks[(h, gi)]):
                words = (k1 - k0) * len(grp) * p
                wx = pl.x_width(k1 - k0)
                locs = []
                for j, pos in enumerate(sl):
                    xs = [k0 + i for i in range(k1 - k0) if i % wx == j] if pl.inline else []
                    a = lw.alloc.take(pos, len(xs) + words)
                    if a is None:
                        raise TspcError(
                            f"weights {t.name!r} ({t.shape[0]} x {t.shape[1]} int8) do not fit "
                            f"the free MEM of the {h} hemisphere ({g} slices of "
                            f"{lw.cfg.slice_words} words): use smaller tensors")
                    for i, kb in enumerate(xs):
                        pl.xmap.append((h, pos, a + i, kb))
                    a += len(xs)
                    locs.append((pos, a))
                    for e in range(words):      # LWG element e, stream j: row (e % p) g + j
                        q, r = divmod(e, p)
                        kb, nb = k0 + q // len(grp), grp[q % len(grp)]
                        st.wmap.append((pos, a + e, kb * n + r * g + j, nb))
                    lw.usage[h][t.name] = lw.usage[h].get(t.name, 0) + words
                pl.regions[(h, gi, ci)] = locs
        # the copy only records which slices hold the weights (`wmap` has every word)
        st.copies[h] = Copy(h, {(j, 0): [(pos, 0)] for j, pos in enumerate(sl)})
    return st


def place_x(lw, t: Tensor, pl: GemvPlan) -> None:
    """Host input x read by this streamed GEMV only: its K-blocks are the words that
    `place_weights` put in front of every chunk's regions (one copy per column group). The
    Store has kind "xstream"; `xmap` lists (position, address, K-block) of every copy."""
    from .lower import Copy, Store
    st = Store(t, 1, 1, -(-t.shape[1] // lw.n), kind="xstream")
    st.xmap = [(pos, a, kb) for _, pos, a, kb in pl.xmap]
    for h in SIDES:
        first = {}
        for side, pos, a, kb in pl.xmap:
            if side == h:
                first.setdefault((0, kb), [(pos, a)])
        st.copies[h] = Copy(h, first)
    lw.stores[t.name] = st


def chunk_template(lw, A, pl: GemvPlan, h: str, gi: int, ci: int, rb: int
                   ) -> tuple[Template, list[int]]:
    """Chunk ci of group gi on MXM_h, relative to its LXG at 0: LXG of the chunk's K-slices,
    LWG of its tiles (w = g, iw) fed by one READ loop per weight slice, one ABX per K-slice.
    Returns the template and, per column block of the group, the cycle of its last ABX
    element."""
    from .lower import _op
    g, p = pl.g, pl.p
    mx, d = lw.mxm[h], lw.into_mxm(h)
    grp = pl.groups[h][gi]
    k0, k1 = pl.chunks[(h, gi)][ci]
    C, NBg = k1 - k0, len(grp)
    acc0 = rb * lw.mblock_max
    t = Template()
    E = C * NBg * p
    regions = pl.regions[(h, gi, ci)]
    if pl.inline:
        # x vector i = e * wx + j sits in front of slice j's weights: one READ loop per
        # slice streams both, LXG element e (wx vectors) then the LWG elements
        wx = pl.x_width(C)
        ne = C // wx
        t.instr(0, mx, "LXG", _op(d, 0), 0, ne, wx, note=f"x K-slices {k0}..{k1 - 1}")
        t.claim(("lw", mx), 0, ne)
        L1 = ne
        for j, (pos, addr) in enumerate(regions):
            nx = ne if j < wx else 0
            hop = lw.hop(pos, mx)
            t.stream(d, j, pos, mx, L1 - nx - hop, nx + E)
            lw.mem_access(t, "READ", pos, addr - nx, nx + E, L1 - nx - 2 - hop, _op(d, j),
                          f"x + W group {gi} K-slices {k0}..{k1 - 1} part {j}")
    else:
        # x where it is: one LXG per vector, two cycles apart (each slice's queue needs an
        # ITERATIONS and a READ per vector), the weights two cycles after the last one
        for i, kb in enumerate(range(k0, k1)):
            ((pos, addr),) = A.addr(h, 0, kb)
            hop = lw.hop(pos, mx)
            t.stream(d, 0, pos, mx, 2 * i - hop)
            lw.mem_access(t, "READ", pos, addr, 1, 2 * i - 2 - hop, _op(d, 0), f"x block {kb}")
            t.instr(2 * i, mx, "LXG", _op(d, 0), i, 1, 1, note=f"x K-slice {kb}")
            t.claim(("lw", mx), 2 * i)
        L1 = 2 * C
        for j, (pos, addr) in enumerate(regions):
            hop = lw.hop(pos, mx)
            t.stream(d, j, pos, mx, L1 - hop, E)
            lw.mem_access(t, "READ", pos, addr, E, L1 - 2 - hop, _op(d, j),
                          f"W group {gi} K-slices {k0}..{k1 - 1} part {j}")
    per = (127 // p) * p                        # LWG count field: whole tiles per instruction
    for e0 in range(0, E, per):
        t.instr(L1 + e0, mx, "LWG", _op(d, 0), 0, min(per, E - e0), g, 1,
                note=f"tiles of K-slices {k0}..{k1 - 1}")
    t.claim(("lw", mx), L1, E)
    t.claim(("shadow", mx), L1, E)
    # ABX per K-slice: tile q installs at the end of L1 + (q + 1) p - 1
    last = []
    for i in range(C):
        tA = L1 + (i * NBg + 1) * p
        t.instr(tA, mx, "ABX", i, acc0, NBg, 0 if k0 + i == 0 else 1, p,
                note=f"K-slice {k0 + i} x {NBg} column blocks")
        t.claim(("abc", mx), tA, (NBg - 1) * p + 1)
        if i == C - 1:
            last = [tA + j * p for j in range(NBg)]
    uend = L1 + E                               # the last ABX element
    t.claim(("active", mx), L1 + p, uend - L1 - p + 1)
    t.claim(("xbuf", mx), 0, uend)
    for j in range(NBg):         # accumulator row acc0 + j: from its first element to its last write
        first, lastj = L1 + (1 + j) * p, L1 + ((C - 1) * NBg + 1 + j) * p
        t.claim(("row", mx, acc0 + j), first, lastj + 3 - first)
    return t, last


def lower_gemv(lw, mm: Tensor, pl: GemvPlan, rq: Tensor | None, int32_out: bool,
               need) -> None:
    """Schedule streamed GEMV `mm` (see the module comment) into one or more segments."""
    A = lw.stores[mm.args[0].name]
    units = [(0, nb, SIDES[nb % 2]) for nb in range(pl.NB)]
    outs = lw.matmul_outs(mm, A, 1, pl.NB, units, rq, int32_out, need)
    bias = lw.place_bias(rq) if rq is not None and rq.attrs["bias"] is not None else None
    layer = rq.name if rq is not None else mm.name
    seg = lw.new_segment(layer, rq)
    nwork = 0
    # the work of each side in order; the two sides alternate so both MXMs start at once
    work = {h: [(gi, ci) for gi in range(len(pl.groups[h]))
                for ci in range(len(pl.chunks[(h, gi)]))] for h in SIDES}
    order = []
    for i in range(max(len(v) for v in work.values())):
        order += [(h, *work[h][i]) for h in SIDES if i < len(work[h])]
    pending: dict[str, list | None] = {"W": None, "E": None}     # drains of a finished group
    prev: dict[str, int] = {"W": 0, "E": 0}

    def flush(h: str) -> None:
        if pending[h] is None:
            return
        for lo, tpls in pending[h]:
            for dt in tpls:
                o = seg.find(dt, lo)
                seg.commit(dt, o)
                lo = o + 1              # the next destination's ACC after this one
        pending[h] = None

    for h, gi, ci in order:
        rb = gi % 2
        comp, last = chunk_template(lw, A, pl, h, gi, ci, rb)
        grp = pl.groups[h][gi]
        final = ci == len(pl.chunks[(h, gi)]) - 1
        drains = []
        if final:
            drains = [lw.drain_templates(outs, 0, nb, h, 1, rb, bias, rq,
                                         acc0=rb * lw.mblock_max + j)
                      for j, nb in enumerate(grp)]
            mx = lw.mxm[h]
            for j, ds in enumerate(drains):       # each drain holds its own row, not the block
                for dt in ds:
                    dt.cells[("row", mx, rb * lw.mblock_max + j)] = dt.cells.pop(("rows", mx, rb))
        waiting = [d for p_ in pending.values() if p_ for _, ds in p_ for d in ds]
        flat = [d for ds in drains for d in ds]
        off = seg.find(comp, prev[h])
        if not seg.room_at(comp, off, Template.merged(flat + waiting)):
            for side in SIDES:
                flush(side)
            lw.close_segment(seg, layer, nwork)
            seg, nwork = lw.new_segment(layer, rq), 0
            prev = {"W": 0, "E": 0}
            off = seg.find(comp, 0)
            if not seg.room_at(comp, off, Template.merged(flat)):
                raise TspcError(f"internal error: GEMV {mm.name!r}: chunk {ci} of column group "
                                f"{gi} ({h}) does not fit an empty segment")
        seg.commit(comp, off)
        prev[h] = off + 1
        nwork += 1
        if ci == 0:
            flush(h)            # the previous group's drains, now that this group has started
        if final:
            # row j's last write ends at its last element + 2: ACC from + 3 on
            pending[h] = [(off + u + 3, ds) for u, ds in zip(last, drains)]
    for side in SIDES:
        flush(side)
    lw.close_segment(seg, layer, nwork)
