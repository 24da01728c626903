"""MXM: weight-stationary int8 MAC array (docs/units.md section 2, docs/mxm.md).

State: shadow and active weights (n x n int8, flip-flops: IW copies all of them in one cycle),
accumulator rows (R = 4n rows of n int32, a `lib.memory.Memory` with two synchronous,
non-transparent read ports and one write port, so it maps to block RAM) and, when
`mxm_xbuf` = B > 0, the activation buffer (B x n int8, flip-flops).

Three engines, one element per cycle each (ABX: one every d cycles), element 0 in the issue
cycle (dskew = 0):
  LW   (LW, LWG, LXG) element k at t+k: streams s..s+w-1 -> shadow rows (row + k*w + j) mod n
       (LW: w = 1), or activation-buffer rows (row + k*w + j) mod B (LXG), at the end of t+k.
       LWG with iw: an element writing shadow row n-1 also installs the shadow (with its rows).
  ABC  (ABC, ABX) element k at u = t+k (ABX: t+k*d): x (a stream, or buffer row b for ABX)
       registered at u; at u+1 the n x n products W[i][j] * x[i] and the column sums (one plain
       signed 8 x 8 `*` each, for DSP mapping) are computed and registered, and the accumulator
       row (acc + k) mod R is read; at u+2 the row is written with y (mode 0) or row + y (mode
       1, int32 wrapping).
  ACC  element k at t+k: row (acc + k) mod R read at t+k, driven on SG4 group s at t+k+1, so it
       is in the stream registers during t+k+2 (dfunc = 2).
An instruction for an engine that is busy in its issue cycle (an ABX's gap cycles included) is
dropped (the running one goes on) and raises ENGINE_BUSY (bit 1 of `err`) in that cycle, as MEM
does. LWG/LXG with w > mxm_load_width and LXG/ABX without a buffer are ILLEGAL: dropped, `err`
bit ILLEGAL, nothing changes.

Weights are held one cycle late: physical shadow(t+1) = architectural shadow(t), physical
active(t+1) = architectural active(t) (load data, the IW pulse and the LWG install are
registered once before they take effect). The multipliers at u+1 therefore see exactly "the
active weights during u". This lag is invisible (weights are only observable through ABC/ABX).
The activation buffer has no lag: LXG writes it at the end of t+k straight from the streams, and
ABX registers buffer row b at the end of u like ABC registers its stream.

With mxm_load_width = 1 and mxm_xbuf = 0 (the `default` profile) the hardware is the LW/IW/ABC/
ACC array plus the LWG install and the ILLEGAL decode: one stream select per engine, no buffer,
no ABX gap counter.

Ports: exactly the unit contract (docs/units.md section 1). Besides the ports, `accum_mem` (the
accumulator `Memory`) is an attribute so testbenches can preload rows.
"""
from amaranth import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from tsp import isa
from tsp.config import TspConfig
from tsp.hostmap import ERR_BITS

from .decode import fld, is_op
from .streams import select_stream
from .unit import unit_members

__all__ = ["BIT_ENGINE_BUSY", "BIT_ILLEGAL", "Mxm"]

BIT_ENGINE_BUSY = ERR_BITS["ENGINE_BUSY"]
BIT_ILLEGAL = ERR_BITS["ILLEGAL"]


def _mod(value, modulus: int, width: int):
    """`value` mod a constant, as a `width`-bit value."""
    if modulus & (modulus - 1) == 0:
        return value[:width]
    return (value % modulus)[:width]


def _inc(value, modulus: int):
    """(value + 1) mod `modulus`, for 0 <= value < modulus."""
    return Mux(value == modulus - 1, 0, value + 1)


def _addmod(value, step, modulus: int, width: int):
    """(value + step) mod `modulus` as a `width`-bit value, for 0 <= value < modulus and
    0 <= step <= modulus (one conditional subtraction; a slice for a power of two)."""
    total = value + step
    if modulus & (modulus - 1) == 0:
        return total[:width]
    return Mux(total >= modulus, total - modulus, total)[:width]


def _shared_field(instr, mnemonics: tuple[str, ...], name: str):
    """Field `name`, which every one of `mnemonics` has at the same place (checked here, so a
    change of the ISA table cannot silently break the shared decode)."""
    places = {(isa.BY_NAME[mn].field(name).offset, isa.BY_NAME[mn].field(name).width)
              for mn in mnemonics}
    if len(places) != 1:
        raise ValueError(f"Mxm: field {name!r} of {', '.join(mnemonics)} is not at one place "
                         f"in the instruction word ({sorted(places)}); decode it per opcode")
    return fld(instr, mnemonics[0], name)


def _one(value):
    """A count/w/d field with 0 acting as 1."""
    return Mux(value == 0, 1, value)


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
    """Registers of one element engine: busy (an element at this cycle, or an ABX gap), its
    row, the elements still to do after it, the stream operand (ABX: the buffer row), the mode,
    and the optional LWG/LXG/ABX state (rows per element, install flag, buffer flag, gap)."""

    def __init__(self, name: str, row_bits: int, w_bits: int = 0, gap_bits: int = 0):
        self.busy = Signal(name=f"{name}_busy")
        self.row = Signal(row_bits, name=f"{name}_row")
        self.rem = Signal(7, name=f"{name}_rem")
        self.s = Signal(6, name=f"{name}_s")
        self.mode = Signal(name=f"{name}_mode")
        self.iw = Signal(name=f"{name}_iw")
        self.x = Signal(name=f"{name}_x")
        self.w = Signal(w_bits, name=f"{name}_w") if w_bits else None
        self.d = Signal(gap_bits, name=f"{name}_d") if gap_bits else None
        self.gap = Signal(gap_bits, name=f"{name}_gap") if gap_bits else None


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
        L, B = cfg.mxm_load_width, cfg.mxm_xbuf
        nbits = max(1, (n - 1).bit_length())
        rbits = max(1, (R - 1).bit_length())
        bbits = max(1, (B - 1).bit_length())
        lrow_bits = max(nbits, bbits) if B else nbits       # LW engine row: shadow or buffer
        wbits = L.bit_length()
        instr = self.instr

        def sel(operand):
            return select_stream(cfg, self.cur_e, self.cur_w, operand)

        def sel_plus(operand, j: int):
            """The vector on stream `operand + j` (same direction; zero past the last one)."""
            if j == 0:
                return sel(operand)
            idx = operand[:5] + j
            return Mux(idx < S, sel(Cat(idx[:5], operand[5])), 0)

        # ---- accumulator rows -----------------------------------------------------------
        accum = self.accum_mem
        m.submodules.accum = accum
        rd_abc = accum.read_port(transparent_for=())
        rd_acc = accum.read_port(transparent_for=())
        wr = accum.write_port()

        # ---- weights (physical copies lag the architectural state by one cycle) ----------
        shadow = [Signal(8 * n, name=f"shadow{i}", reset_less=True) for i in range(n)]
        weights = [Signal(8 * n, name=f"weight{i}", reset_less=True) for i in range(n)]
        # ---- activation buffer (no lag) --------------------------------------------------
        xbuf = [Signal(8 * n, name=f"xbuf{r}") for r in range(B)]

        # ---- decode -------------------------------------------------------------------------
        go = self.run & self.issue
        op_lw, op_lwg, op_lxg = is_op(instr, "LW"), is_op(instr, "LWG"), is_op(instr, "LXG")
        op_abc, op_abx, op_acc = is_op(instr, "ABC"), is_op(instr, "ABX"), is_op(instr, "ACC")
        lw_w1 = _one(_shared_field(instr, ("LWG", "LXG"), "w"))
        illegal = Signal()
        m.d.comb += illegal.eq(go & ((op_lwg & (lw_w1 > L))
                                     | (op_lxg & (lw_w1 > L) if B else op_lxg)
                                     | (0 if B else op_abx)))
        load_op = (op_lw | op_lwg | op_lxg) if B else (op_lw | op_lwg)
        mac_op = (op_abc | op_abx) if B else op_abc
        ok = go & ~illegal

        # ---- engines ---------------------------------------------------------------------
        lw = _Engine("lw", lrow_bits, w_bits=wbits if L > 1 else 0)
        abc = _Engine("abc", rbits, gap_bits=4 if B else 0)
        acc = _Engine("acc", rbits)
        new_lw = ok & load_op & ~lw.busy
        new_abc = ok & mac_op & ~abc.busy
        new_acc = ok & op_acc & ~acc.busy
        # an instruction for an engine that is busy in this cycle: dropped, ENGINE_BUSY
        busy_err = Signal()
        m.d.comb += busy_err.eq(ok & ((load_op & lw.busy) | (mac_op & abc.busy)
                                      | (op_acc & acc.busy)))

        # LW engine (LW, LWG, LXG): the element in this cycle
        lw_valid = Signal()
        lw_row = Signal(lrow_bits)
        lw_s = Signal(6)
        lw_w = Signal(wbits)             # rows this element writes (1 when L = 1)
        lw_iw = Signal()
        lw_x = Signal()                  # the element writes the buffer (LXG)
        row_f = _shared_field(instr, ("LW", "LWG", "LXG"), "row")
        s_f = _shared_field(instr, ("LW", "LWG", "LXG"), "s")
        count1 = _one(_shared_field(instr, ("LW", "LWG", "LXG"), "count"))
        row0 = Mux(op_lxg, _mod(row_f, B, lrow_bits), _mod(row_f, n, lrow_bits)) if B \
            else _mod(row_f, n, nbits)

        def lw_next(row, w, x):
            if L == 1 and not B:
                return _inc(row, n)
            on_shadow = _addmod(row, w, n, lrow_bits)
            return Mux(x, _addmod(row, w, B, lrow_bits), on_shadow) if B else on_shadow

        with m.If(self.clear):
            m.d.sync += lw.busy.eq(0)
        with m.Elif(new_lw):
            w_new = Mux(op_lw, 1, lw_w1) if L > 1 else 1
            x_new = op_lxg if B else 0
            m.d.comb += [lw_valid.eq(1), lw_row.eq(row0), lw_s.eq(s_f), lw_w.eq(w_new),
                         lw_iw.eq(op_lwg & fld(instr, "LWG", "iw")), lw_x.eq(x_new)]
            m.d.sync += [lw.busy.eq(count1 > 1), lw.row.eq(lw_next(row0, w_new, x_new)),
                         lw.rem.eq(count1 - 1), lw.s.eq(s_f),
                         lw.iw.eq(op_lwg & fld(instr, "LWG", "iw"))]
            if L > 1:
                m.d.sync += lw.w.eq(w_new)
            if B:
                m.d.sync += lw.x.eq(x_new)
        with m.Elif(self.run & lw.busy):
            w_cur = lw.w if L > 1 else 1
            x_cur = lw.x if B else 0
            m.d.comb += [lw_valid.eq(1), lw_row.eq(lw.row), lw_s.eq(lw.s), lw_w.eq(w_cur),
                         lw_iw.eq(lw.iw), lw_x.eq(x_cur)]
            m.d.sync += [lw.row.eq(lw_next(lw.row, w_cur, x_cur)), lw.rem.eq(lw.rem - 1),
                         lw.busy.eq(lw.rem > 1)]

        # ABC engine (ABC, ABX): the element in this cycle (none in an ABX gap)
        abc_valid = Signal()
        abc_row = Signal(rbits)
        abc_s = Signal(6)                # ABX: the buffer row b mod B
        abc_mode = Signal()
        abc_x = Signal()                 # x comes from the buffer (ABX)
        acc0 = _mod(_shared_field(instr, ("ABC", "ABX"), "acc"), R, rbits)
        mode_f = _shared_field(instr, ("ABC", "ABX"), "mode")
        count1 = _one(_shared_field(instr, ("ABC", "ABX"), "count"))
        s_f = Mux(op_abx, _mod(fld(instr, "ABX", "b"), B, 6), fld(instr, "ABC", "s")) if B \
            else fld(instr, "ABC", "s")
        with m.If(self.clear):
            m.d.sync += abc.busy.eq(0)
        with m.Elif(new_abc):
            m.d.comb += [abc_valid.eq(1), abc_row.eq(acc0), abc_s.eq(s_f), abc_mode.eq(mode_f),
                         abc_x.eq(op_abx if B else 0)]
            m.d.sync += [abc.busy.eq(count1 > 1), abc.row.eq(_inc(acc0, R)),
                         abc.rem.eq(count1 - 1), abc.s.eq(s_f), abc.mode.eq(mode_f)]
            if B:
                d1 = Mux(op_abx, _one(fld(instr, "ABX", "d")), 1)
                m.d.sync += [abc.x.eq(op_abx), abc.d.eq(d1 - 1), abc.gap.eq(d1 - 1)]
        with m.Elif(self.run & abc.busy & (abc.gap == 0 if B else 1)):
            m.d.comb += [abc_valid.eq(1), abc_row.eq(abc.row), abc_s.eq(abc.s),
                         abc_mode.eq(abc.mode), abc_x.eq(abc.x if B else 0)]
            m.d.sync += [abc.row.eq(_inc(abc.row, R)), abc.rem.eq(abc.rem - 1),
                         abc.busy.eq(abc.rem > 1)]
            if B:
                m.d.sync += abc.gap.eq(abc.d)
        if B:
            with m.Elif(self.run & abc.busy):           # an ABX gap cycle
                m.d.sync += abc.gap.eq(abc.gap - 1)

        # ACC engine
        acc_valid = Signal()
        acc_row = Signal(rbits)
        acc_s = Signal(6)
        acc0 = _mod(fld(instr, "ACC", "acc"), R, rbits)
        count1 = _one(fld(instr, "ACC", "count"))
        with m.If(self.clear):
            m.d.sync += acc.busy.eq(0)
        with m.Elif(new_acc):
            m.d.comb += [acc_valid.eq(1), acc_row.eq(acc0), acc_s.eq(fld(instr, "ACC", "s"))]
            m.d.sync += [acc.busy.eq(count1 > 1), acc.row.eq(_inc(acc0, R)),
                         acc.rem.eq(count1 - 1), acc.s.eq(fld(instr, "ACC", "s"))]
        with m.Elif(self.run & acc.busy):
            m.d.comb += [acc_valid.eq(1), acc_row.eq(acc.row), acc_s.eq(acc.s)]
            m.d.sync += [acc.row.eq(_inc(acc.row, R)), acc.rem.eq(acc.rem - 1),
                         acc.busy.eq(acc.rem > 1)]

        # ---- LW/LWG/LXG data: streams s..s+L-1 ------------------------------------------
        load_data = [sel_plus(lw_s, j) for j in range(L)]

        # ---- LW/LWG and IW: registered once, then applied --------------------------------
        # per j < L: row (row + j) mod n and whether this element writes it
        lw_p_en = [Signal(name=f"lw_p_en{j}") for j in range(L)]
        lw_p_row = [Signal(nbits, name=f"lw_p_row{j}") for j in range(L)]
        lw_p_data = [Signal(8 * n, name=f"lw_p_data{j}", reset_less=True) for j in range(L)]
        lw_p_inst = Signal()             # LWG iw element writing row n-1: install at its end
        iw_p = Signal()
        on_shadow = lw_valid & ~lw_x
        for j in range(L):
            m.d.sync += [lw_p_en[j].eq(on_shadow & (lw_w > j) if j else on_shadow),
                         lw_p_row[j].eq(_addmod(lw_row, j, n, nbits) if j else lw_row[:nbits]),
                         lw_p_data[j].eq(load_data[j])]
        writes_last = (lw_row + lw_w >= n) if L > 1 else (lw_row == n - 1)
        m.d.sync += [lw_p_inst.eq(on_shadow & lw_iw & writes_last),
                     iw_p.eq(go & is_op(instr, "IW"))]
        for i in range(n):
            nxt = Signal(8 * n, name=f"shadow{i}_next")
            m.d.comb += nxt.eq(shadow[i])
            for j in range(L):
                with m.If(lw_p_en[j] & (lw_p_row[j] == i)):
                    m.d.comb += nxt.eq(lw_p_data[j])
            m.d.sync += shadow[i].eq(nxt)
            # an LWG install takes the shadow with its own rows, and wins over an IW
            with m.If(lw_p_inst):
                m.d.sync += weights[i].eq(nxt)
            with m.Elif(iw_p):
                m.d.sync += weights[i].eq(shadow[i])

        # ---- LXG: straight into the activation buffer at the end of t+k ------------------
        if B:
            on_buf = lw_valid & lw_x
            for j in range(L):
                row_j = _addmod(lw_row, j, B, bbits) if j else lw_row[:bbits]
                hit = on_buf & (lw_w > j) if j else on_buf
                for r in range(B):
                    with m.If(hit & (row_j == r)):
                        m.d.sync += xbuf[r].eq(load_data[j])

        # ---- ABC/ABX pipeline -------------------------------------------------------------
        # stage 1 (during u+1): x registered at the end of u (ABX: buffer row b as during u)
        v1 = Signal()
        x1 = Signal(8 * n, reset_less=True)
        row1 = Signal(rbits)
        mode1 = Signal()
        x_in = Mux(abc_x, Array(xbuf)[abc_s[:bbits]], sel(abc_s)) if B else sel(abc_s)
        m.d.sync += [v1.eq(abc_valid & ~self.clear), x1.eq(x_in), row1.eq(abc_row),
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
            self.err.eq((busy_err << BIT_ENGINE_BUSY) | (illegal << BIT_ILLEGAL)),
        ]
        return m
