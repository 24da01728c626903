"""SXM: the lane shifter / permuter at one position (docs/units.md section 3, docs/sxm.md).

One pipeline register. An instruction issued at t reads its source stream(s) in cycle t
(dskew 0); the result is computed in t by combinational logic and registered at the end of t;
in t+1 the registers drive `wen_*`/`wdata_*`, so the value is in the stream register during
t+2 (dfunc 2). `SETMAP` loads map register `slot` at the end of t together with a precomputed
"is a bijection" bit, so `PERMUTE` needs no extra logic level for its BAD_MAP check.

Ports: the unit contract of docs/units.md section 1 (`run`, `clear`, `issue`, `instr`, `flags`,
`cur_e`, `cur_w`, `wen_e`, `wen_w`, `wdata_e`, `wdata_w`, `active`, `err`). `wdata_e` and
`wdata_w` are driven by one shared register: they are meaningful only where `wen_*` is set.
Maps (and their valid bits) are not reset by `clear` (they persist across programs); the
synchronous `rst` zeroes them (an all-zero map is not a bijection).
"""
from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import wiring

from tsp import isa
from tsp.config import TspConfig
from tsp.hostmap import ERR_BITS

from .decode import fld, is_op
from .unit import unit_members

__all__ = ["BIT_BAD_MAP", "DATA_OPS", "Sxm", "transpose_size"]

BIT_BAD_MAP = ERR_BITS["BAD_MAP"]
DATA_OPS = ("SHIFT", "PERMUTE", "DISTRIBUTE", "ROTATE", "TRANSPOSE")
MAP_SLOTS = 4


def transpose_size(config: TspConfig) -> int:
    """Block size m of TRANSPOSE: min(streams, vec_bytes)."""
    return min(config.streams, config.vec_bytes)


def _field(instr, uses):
    """A field shared by several instructions, `uses` = [(mnemonic, field name), ...]: one
    slice when tsp.isa places it at the same bits in all of them (checked here), else a mux on
    the opcode."""
    shapes = {(isa.BY_NAME[mn].field(f).offset, isa.BY_NAME[mn].field(f).width)
              for mn, f in uses}
    value = fld(instr, *uses[-1])
    if len(shapes) > 1:
        for mn, f in reversed(uses[:-1]):
            value = Mux(is_op(instr, mn), fld(instr, mn, f), value)
    return value


def _lane(vec, i: int):
    return vec[8 * i:8 * i + 8]


class Sxm(wiring.Component):
    """Shifter / permuter unit with the compute-unit contract ports."""

    def __init__(self, config: TspConfig):
        for ins in isa.INSTRUCTIONS:      # the pipeline below is built for this timing
            if ins.unit == "sxm" and (ins.dskew != 0 or ins.dfunc not in (None, 2)):
                raise ValueError(f"hdl.sxm.Sxm implements dskew 0 / dfunc 2, but tsp.isa gives "
                                 f"{ins.name} dskew={ins.dskew} dfunc={ins.dfunc}")
        self.config = config
        super().__init__(unit_members(config))

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        S, n, V = cfg.streams, cfg.vec_bytes, cfg.vec_bits
        M = transpose_size(cfg)
        instr = self.instr
        go = self.run & self.issue

        op_shift = is_op(instr, "SHIFT")
        op_setmap = is_op(instr, "SETMAP")
        op_permute = is_op(instr, "PERMUTE")
        op_rotate = is_op(instr, "ROTATE")
        op_transpose = is_op(instr, "TRANSPOSE")
        op_data = is_op(instr, *DATA_OPS)

        # ---- sources: streams s+c (c < m) of s's direction, zero past the last stream ------
        # (also SETMAP's map operand: one shared select)
        src = _field(instr, [(mn, "s") for mn in DATA_OPS] + [("SETMAP", "m")])
        sbits = (S - 1).bit_length()         # index bits that can name a real stream
        side = [Signal(V, name=f"side{i}") for i in range(S)]
        for i in range(S):
            m.d.comb += side[i].eq(Mux(src[5], self.cur_w[i], self.cur_e[i]))
        # log barrel over streams: after stage b, element c is side[c + (s mod 2^(b+1))]
        level = list(side)
        for b in range(sbits):
            sh = 1 << b
            level = [Mux(src[b], level[c + sh] if c + sh < S else Const(0, V), level[c])
                     for c in range(S)]
        too_far = src[sbits:5].any() if sbits < 5 else Const(0)
        srcs = []
        for c in range(M):
            sig = Signal(V, name=f"src{c}")
            m.d.comb += sig.eq(Mux(too_far, 0, level[c]))
            srcs.append(sig)
        vin = srcs[0]

        # ---- one lane crossbar for SHIFT (lane i - k) and PERMUTE / DISTRIBUTE (map[i]) ----
        k_sh = fld(instr, "SHIFT", "n")                  # signed, -32..31
        maps = [Signal(V, name=f"map{i}") for i in range(MAP_SLOTS)]
        map_ok = Signal(MAP_SLOTS)                       # map[i] is a bijection of 0..n-1
        slot = _field(instr, [("PERMUTE", "slot"), ("DISTRIBUTE", "slot")])
        cur_map = Signal(V)
        m.d.comb += cur_map.eq(Array(maps)[slot])
        cur_ok = map_ok.bit_select(slot, 1)
        lbits = max(1, (n - 1).bit_length())
        in_lanes = Array([_lane(vin, i) for i in range(n)]
                         + [Const(0, 8)] * ((1 << lbits) - n))
        lanes_out = Signal(V)
        for i in range(n):
            mb = _lane(cur_map, i)
            diff = Signal(range(i - 32, i + 33), name=f"shift_src{i}")
            m.d.comb += diff.eq(i - k_sh)
            ok = Mux(op_shift, (diff >= 0) & (diff < n), mb < n)
            sel = Mux(op_shift, diff.as_unsigned()[:lbits], mb[:lbits])
            m.d.comb += _lane(lanes_out, i).eq(Mux(ok, in_lanes[sel], 0))
        bad_map = Signal()
        m.d.comb += bad_map.eq(op_permute & ~cur_ok)
        single = Mux(bad_map, 0, lanes_out)

        # SETMAP: store the map and whether it covers every source lane (n entries covering n
        # values: a bijection)
        mvec = vin        # `src` is SETMAP's `m` field when a SETMAP issues (see _field)
        covered = [Cat(*[_lane(mvec, i) == j for i in range(n)]).any() for j in range(n)]
        is_bij = Cat(*covered).all()
        set_slot = fld(instr, "SETMAP", "slot")
        with m.If(go & op_setmap):
            for i in range(MAP_SLOTS):
                with m.If(set_slot == i):
                    m.d.sync += [maps[i].eq(mvec), map_ok[i].eq(is_bij)]

        # ---- results relative to the first destination: rel[j] goes to stream d + j -------
        tr = []
        for a in range(M):
            lanes = []
            for lane in range(n):
                b, c = divmod(lane, M)
                s_lane = b * M + a
                lanes.append(_lane(srcs[c], s_lane) if s_lane < n else Const(0, 8))
            tr.append(Cat(*lanes))
        rel = []
        for j in range(S):
            rot = vin.rotate_right(8 * (j % n))
            if j == 0:
                val = Mux(op_transpose, tr[0], Mux(op_rotate, vin, single))
            elif j < M:
                val = Mux(op_transpose, tr[j], rot)
            else:
                val = rot
            sig = Signal(V, name=f"rel{j}")
            m.d.comb += sig.eq(val)
            rel.append(sig)

        k_rot = fld(instr, "ROTATE", "k")
        count = Mux(op_transpose, M, Mux(op_rotate, Mux(k_rot == 0, 1, k_rot), 1))
        dst = _field(instr, [(mn, "d") for mn in DATA_OPS])
        d_idx, d_west = dst[:5], dst[5]

        # destination placement: log barrel moving rel[j] to stream d + j (streams below d
        # get don't-care values; their wen bit is 0)
        placed = list(rel)
        for b in range(sbits):
            sh = 1 << b
            placed = [Mux(d_idx[b], placed[p - sh], placed[p]) if p >= sh else placed[p]
                      for p in range(S)]
        wen_r = [Signal(S, name="wen_e_r"), Signal(S, name="wen_w_r")]
        wdata_r = [Signal(V, name=f"wdata_r{p}") for p in range(S)]
        pending = Signal()
        mask = Signal(S)
        for p in range(S):
            m.d.comb += mask[p].eq(op_data & (d_idx <= p) & (p < d_idx + count))
            m.d.sync += wdata_r[p].eq(placed[p])
        with m.If(self.clear):
            m.d.sync += [wen_r[0].eq(0), wen_r[1].eq(0), pending.eq(0)]
        with m.Else():
            m.d.sync += [wen_r[0].eq(Mux(go & ~d_west, mask, 0)),
                         wen_r[1].eq(Mux(go & d_west, mask, 0)),
                         pending.eq(go & op_data)]

        # ---- outputs ------------------------------------------------------------------
        m.d.comb += [self.wen_e.eq(Mux(self.run, wen_r[0], 0)),
                     self.wen_w.eq(Mux(self.run, wen_r[1], 0)),
                     self.active.eq(pending),
                     self.err.eq((go & bad_map) << BIT_BAD_MAP)]
        for p in range(S):
            m.d.comb += [self.wdata_e[p].eq(wdata_r[p]), self.wdata_w[p].eq(wdata_r[p])]
        return m
