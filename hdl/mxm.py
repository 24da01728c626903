"""MXM: weight-stationary int8 MAC array (docs/units.md section 2, docs/mxm.md).

State: shadow and active weights (n x n int8, flip-flops: IW copies all of them in one cycle),
accumulator rows (R = 4n rows of n int32, a `lib.memory.Memory` with two synchronous,
non-transparent read ports and one write port, so it maps to block RAM).

Three engines, one element per cycle each, element 0 in the issue cycle (dskew = 0):
  LW   element k at t+k: stream s -> shadow row (row + k) mod n at the end of t+k.
  ABC  element k at u = t+k: x registered at u; at u+1 the n x n products W[i][j] * x[i] and
       the column sums (one plain signed 8 x 8 `*` each, for DSP mapping) are computed and
       registered, and the accumulator row (acc + k) mod R is read; at u+2 the row is written
       with y (mode 0) or row + y (mode 1, int32 wrapping).
  ACC  element k at t+k: row (acc + k) mod R read at t+k, driven on SG4 group s at t+k+1, so it
       is in the stream registers during t+k+2 (dfunc = 2).
An instruction for an engine that still has an element in its issue cycle is dropped (the
running one goes on) and raises ENGINE_BUSY (bit 1 of `err`) in that cycle, as MEM does.

Weights are held one cycle late: physical shadow(t+1) = architectural shadow(t), physical
active(t+1) = architectural active(t) (LW data and the IW pulse are registered once before they
take effect). The multipliers at u+1 therefore see exactly "the active weights during u".
This lag is invisible (weights are only observable through ABC) and costs one vector register.

Ports: exactly the unit contract (docs/units.md section 1). Besides the ports, `accum_mem` (the
accumulator `Memory`) is an attribute so testbenches can preload rows.
"""
from amaranth import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from tsp.config import TspConfig
from tsp.hostmap import ERR_BITS

from .decode import fld, is_op
from .streams import select_stream
from .unit import unit_members

__all__ = ["BIT_ENGINE_BUSY", "Mxm"]

BIT_ENGINE_BUSY = ERR_BITS["ENGINE_BUSY"]


def _mod(value, modulus: int, width: int):
    """`value` mod a constant, as a `width`-bit value."""
    if modulus & (modulus - 1) == 0:
        return value[:width]
    return (value % modulus)[:width]


def _inc(value, modulus: int):
    """(value + 1) mod `modulus`, for 0 <= value < modulus."""
    return Mux(value == modulus - 1, 0, value + 1)


def _tree_sum(m: Module, terms: list, name: str):
    """Balanced adder tree (widths grow as needed). Every partial sum is a kept wire, so Yosys
    builds each adder on a carry chain instead of merging the tree into one LUT-based `$macc`."""
    level = 0
    while len(terms) > 1:
        nxt = []
        for i in range(0, len(terms) - 1, 2):
            total = terms[i] + terms[i + 1]
            w = Signal(total.shape(), name=f"{name}_l{level}_{i // 2}", attrs={"keep": 1})
            m.d.comb += w.eq(total)
            nxt.append(w)
        level += 1
        if len(terms) % 2:
            nxt.append(terms[-1])
        terms = nxt
    return terms[0]


class _Engine:
    """Registers of one element engine: an element at this cycle (`busy`), its row, the rows
    still to do after it, the stream operand and (ABC) the mode."""

    def __init__(self, name: str, row_bits: int):
        self.busy = Signal(name=f"{name}_busy")
        self.row = Signal(row_bits, name=f"{name}_row")
        self.rem = Signal(7, name=f"{name}_rem")
        self.s = Signal(6, name=f"{name}_s")
        self.mode = Signal(name=f"{name}_mode")


class Mxm(wiring.Component):
    """One MXM with the unit contract ports of docs/units.md section 1."""

    def __init__(self, config: TspConfig):
        if not isinstance(config, TspConfig):
            raise TypeError(f"Mxm: config must be a TspConfig, not {config!r}")
        self.config = config
        self.n = config.vec_bytes
        self.rows = 4 * self.n
        # The accumulator rows (created here so testbenches can preload them).
        self.accum_mem = Memory(shape=unsigned(32 * self.n), depth=self.rows, init=[])
        super().__init__(unit_members(config))

    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        n, R, S = self.n, self.rows, cfg.streams
        nbits = max(1, (n - 1).bit_length())
        rbits = max(1, (R - 1).bit_length())
        instr = self.instr

        def sel(operand):
            return select_stream(cfg, self.cur_e, self.cur_w, operand)

        # ---- accumulator rows -----------------------------------------------------------
        accum = self.accum_mem
        m.submodules.accum = accum
        rd_abc = accum.read_port(transparent_for=())
        rd_acc = accum.read_port(transparent_for=())
        wr = accum.write_port()

        # ---- weights (physical copies lag the architectural state by one cycle) ----------
        shadow = [Signal(8 * n, name=f"shadow{i}", reset_less=True) for i in range(n)]
        weights = [Signal(8 * n, name=f"weight{i}", reset_less=True) for i in range(n)]

        # ---- engines ---------------------------------------------------------------------
        lw = _Engine("lw", nbits)
        abc = _Engine("abc", rbits)
        acc = _Engine("acc", rbits)
        go = self.run & self.issue
        new = {"LW": go & is_op(instr, "LW") & ~lw.busy,
               "ABC": go & is_op(instr, "ABC") & ~abc.busy,
               "ACC": go & is_op(instr, "ACC") & ~acc.busy}
        # an instruction for an engine with an element in this cycle: dropped, ENGINE_BUSY
        busy_err = Signal()
        m.d.comb += busy_err.eq(go & ((is_op(instr, "LW") & lw.busy)
                                      | (is_op(instr, "ABC") & abc.busy)
                                      | (is_op(instr, "ACC") & acc.busy)))
        # the element of each engine in this cycle: (valid, row, stream operand, mode)
        cur = {}
        for name, eng, base, modulus, width in (
                ("LW", lw, fld(instr, "LW", "row"), n, nbits),
                ("ABC", abc, fld(instr, "ABC", "acc"), R, rbits),
                ("ACC", acc, fld(instr, "ACC", "acc"), R, rbits)):
            count = fld(instr, name, "count")
            count1 = Mux(count == 0, 1, count)
            mode = fld(instr, "ABC", "mode") if name == "ABC" else 0
            valid = Signal(name=f"{name.lower()}_go")
            row = Signal(width, name=f"{name.lower()}_row_now")
            s = Signal(6, name=f"{name.lower()}_s_now")
            md = Signal(name=f"{name.lower()}_mode_now")
            with m.If(self.clear):
                m.d.sync += eng.busy.eq(0)
            with m.Elif(new[name]):
                row0 = _mod(base, modulus, width)
                m.d.comb += [valid.eq(1), row.eq(row0), s.eq(fld(instr, name, "s")), md.eq(mode)]
                m.d.sync += [eng.busy.eq(count1 > 1), eng.row.eq(_inc(row0, modulus)),
                             eng.rem.eq(count1 - 1), eng.s.eq(fld(instr, name, "s")),
                             eng.mode.eq(mode)]
            with m.Elif(self.run & eng.busy):
                m.d.comb += [valid.eq(1), row.eq(eng.row), s.eq(eng.s), md.eq(eng.mode)]
                m.d.sync += [eng.row.eq(_inc(eng.row, modulus)), eng.rem.eq(eng.rem - 1),
                             eng.busy.eq(eng.rem > 1)]
            cur[name] = (valid, row, s, md)

        # ---- LW and IW: registered once, then applied -----------------------------------
        lw_valid, lw_row, lw_s, _ = cur["LW"]
        lw_p = Signal()
        lw_p_row = Signal(nbits)
        lw_p_data = Signal(8 * n, reset_less=True)
        iw_p = Signal()
        m.d.sync += [lw_p.eq(lw_valid), lw_p_row.eq(lw_row), lw_p_data.eq(sel(lw_s)),
                     iw_p.eq(go & is_op(instr, "IW"))]
        for i in range(n):
            with m.If(lw_p & (lw_p_row == i)):
                m.d.sync += shadow[i].eq(lw_p_data)
            with m.If(iw_p):
                m.d.sync += weights[i].eq(shadow[i])

        # ---- ABC pipeline -----------------------------------------------------------------
        abc_valid, abc_row, abc_s, abc_mode = cur["ABC"]
        # stage 1 (during u+1): x registered at the end of u
        v1 = Signal()
        x1 = Signal(8 * n, reset_less=True)
        row1 = Signal(rbits)
        mode1 = Signal()
        m.d.sync += [v1.eq(abc_valid & ~self.clear), x1.eq(sel(abc_s)), row1.eq(abc_row),
                     mode1.eq(abc_mode)]
        # n x n products and column sums y[j] = sum_i W[i][j] * x[i]
        ys = []
        for j in range(n):
            prods = [weights[i][8 * j:8 * j + 8].as_signed() * x1[8 * i:8 * i + 8].as_signed()
                     for i in range(n)]
            ys.append(_tree_sum(m, prods, f"sum{j}"))
        ywidth = 16 + max(1, (n - 1).bit_length())       # |y| <= n * 2^14
        # stage 2 (during u+2): y registered, row read (issued at u+1) available
        v2 = Signal()
        y2 = [Signal(signed(ywidth), name=f"y{j}", reset_less=True) for j in range(n)]
        row2 = Signal(rbits)
        mode2 = Signal()
        m.d.sync += [v2.eq(v1 & ~self.clear), row2.eq(row1), mode2.eq(mode1)]
        m.d.sync += [y2[j].eq(ys[j]) for j in range(n)]
        m.d.comb += [rd_abc.addr.eq(row1), rd_abc.en.eq(v1 & mode1)]
        lanes_new = []
        for j in range(n):
            old = rd_abc.data[32 * j:32 * j + 32].as_signed()
            lanes_new.append(Mux(mode2, old + y2[j], y2[j])[:32])
        m.d.comb += [wr.addr.eq(row2), wr.data.eq(Cat(*lanes_new)), wr.en.eq(v2)]

        # ---- ACC: read at t+k, driven onto SG4 group s at t+k+1 --------------------------
        acc_valid, acc_row, acc_s, _ = cur["ACC"]
        acc_ov = Signal()
        acc_os = Signal(6)
        m.d.comb += [rd_acc.addr.eq(acc_row), rd_acc.en.eq(acc_valid)]
        m.d.sync += [acc_ov.eq(acc_valid & ~self.clear), acc_os.eq(acc_s)]
        data = rd_acc.data
        byte_vecs = Array([Cat(*[data[32 * j + 8 * b:32 * j + 8 * b + 8] for j in range(n)])
                           for b in range(4)])
        first = acc_os[:5]
        west = acc_os[5]
        out_on = acc_ov & self.run
        for q in range(S):
            # stream q carries byte q - first: first <= q <= first + 3 (the constant halves of
            # that test are left out for small q, so no always-true comparison is emitted)
            hit = (first == 0) if q == 0 else (first <= q)
            if q > 3:
                hit = hit & (first >= q - 3)
            m.d.comb += [self.wen_e[q].eq(out_on & hit & ~west),
                         self.wen_w[q].eq(out_on & hit & west)]
            vec = byte_vecs[(q - first)[:2]]
            m.d.comb += [self.wdata_e[q].eq(vec), self.wdata_w[q].eq(vec)]

        # ---- activity and errors --------------------------------------------------------
        m.d.comb += [
            self.active.eq(lw_valid | lw.busy | abc_valid | abc.busy | v1 | v2
                           | acc_valid | acc.busy | acc_ov),
            self.err.eq(busy_err << BIT_ENGINE_BUSY),
        ]
        return m
