"""VXM: the per-lane vector ALU pipeline at the centre position (docs/vxm.md).

Pipeline of a VRUN issued at t (A = config.vxm_alus, dskew 0, dfunc A + 4):
  t          operand groups a (type ta) and b (type tb) read from cur_e/cur_w, sign-extended;
             registered as r0 = a, r1 = b (r2 = a is not stored twice: stage 0 reads r0).
  t+1+k      ALU stage k (k < A) computes r[dst] = op(r[x], src[y]) from the registers of the
             previous stage with its configuration and the constants as they are in that cycle;
             the three registers are registered at the end of the cycle.
  t+A+1      function stage, first cycle: ROM address from r[x] (function configuration as in
             effect in t+A+1), synchronous ROM read; r2 and the post-processing controls are
             registered.
  t+A+2      function stage, second cycle: the ROM word post-processed; r2 (or f(r[x]) when the
             function writes r2) registered.
  t+A+3      the registered r2 drives wen/wdata (low bytes of type td on streams d..), so the
             value is in the stream registers during t+A+4.

Configuration registers (stage configurations, function stage, per-lane constants) load at the
end of the issue cycle, so they are in effect from t+1 on. Illegal configurations raise
ILLEGAL in the issue cycle and change nothing. `clear` restores the reset configuration,
zeroes the constants and drops every vector in flight (it wins over an issue in the same cycle).

Cost choices: only stage 0 has the 32 x 32 multiplier (MUL and SRDHM). Every stage has one
33-bit adder (ADD SUB ADDS SUBS NEG ABS, the MIN/MAX comparison and RDIVPOT's rounding bias),
one 33-bit right barrel shifter (SHRA, SHRL, RDIVPOT, and SHL through bit reversal), one
saturation unit (ADDS SUBS NEG ABS SAT) and one final wrap to the type. Stage controls are
decoded once per stage, shared by all lanes. The function tables are one ROM per lane pair
(EXP, TANH and RSQRT concatenated, 7168 x 16 bits, two synchronous read ports), so they map to
block RAM.

Ports: exactly the unit contract (docs/units.md section 1, `hdl.unit.unit_members`).
`wdata_e` and `wdata_w` carry the same values; they are meaningful where `wen_*` is set.
"""
from amaranth import Array, Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from tsp import isa
from tsp import vxm as spec
from tsp.config import TspConfig
from tsp.hostmap import ERR_BITS

from .decode import fld, is_op
from .unit import unit_members

__all__ = ["ROM_BASE", "ROM_INIT", "Vxm"]

BIT_ILLEGAL = ERR_BITS["ILLEGAL"]
OPS = {op.name: op.code for op in spec.ALU_OPS}
N_OPS = len(spec.ALU_OPS)
FIRST_ONLY = tuple(op.code for op in spec.ALU_OPS if op.first_only)
FN = spec.FUNC_BY_NAME
I8, I16, I32 = spec.TYPE_BY_NAME["i8"], spec.TYPE_BY_NAME["i16"], spec.TYPE_BY_NAME["i32"]
SRC_ZERO = spec.SRC_NAMES.index("zero")

# One function ROM: EXP at 0, TANH at 4096, RSQRT at 6144 (a 13-bit address whose top bits
# name the table, so no adder is needed).
ROM_BASE = {"EXP": 0, "TANH": 4096, "RSQRT": 6144}
ROM_INIT = ([int(v) for v in spec.EXP_TABLE] + [int(v) for v in spec.TANH_TABLE]
            + [int(v) for v in spec.RSQRT_TABLE])
if (len(spec.EXP_TABLE), len(spec.TANH_TABLE), len(spec.RSQRT_TABLE)) != (4096, 2048, 1024):
    raise ValueError("hdl.vxm: the ROM layout assumes tables of 4096, 2048 and 1024 entries")


def _check_timing() -> None:
    """The pipeline below implements dskew 0 and dfunc = vxm_alus + 4 (VRUN), dskew 0
    (VLOADC); refuse to build against a tsp.isa that says otherwise."""
    want = {"VRUN": (("vxm_alus", 4), 0), "VLOADC": (None, 0)}
    for ins in isa.INSTRUCTIONS:
        if ins.unit != "vxm":
            continue
        expect = want.get(ins.name, (None, None))
        if (ins.dfunc, ins.dskew) != expect:
            raise ValueError(f"hdl.vxm.Vxm implements {ins.name} with dfunc={expect[0]} "
                             f"dskew={expect[1]}, but tsp.isa gives dfunc={ins.dfunc} "
                             f"dskew={ins.dskew}")


def _wrap(v, t):
    """The low 8/16/32 bits of the 32-bit `v` (type code `t`: 0/1/2), sign-extended."""
    return Mux(t == I8, v[:8].as_signed(), Mux(t == I16, v[:16].as_signed(), v[:32]))[:32]


def _lane(vec, i: int, width: int):
    return vec[width * i:width * (i + 1)]


class _StageCtl:
    """Controls of one ALU stage, decoded once from its configuration (shared by all lanes)."""

    def __init__(self, m: Module, k: int, op, typ, wrap_t):
        def is_(*names):
            return Cat(*[op == OPS[nm] for nm in names]).any()

        self.op, self.typ, self.wrap_t = op, typ, wrap_t
        sig = {}
        for name, expr in (
                ("add_y", is_("ADD", "ADDS")),
                ("sub_y", is_("SUB", "SUBS", "MIN", "MAX")),
                ("unary", is_("NEG", "ABS")),
                ("neg", op == OPS["NEG"]),
                ("abs", op == OPS["ABS"]),
                ("rdiv", op == OPS["RDIVPOT"]),
                ("shl", op == OPS["SHL"]),
                ("shrl", op == OPS["SHRL"]),
                ("sat_x", op == OPS["SAT"])):
            s = Signal(name=f"s{k}_{name}")
            m.d.comb += s.eq(expr)
            sig[name] = s
        self.__dict__.update(sig)


class Vxm(wiring.Component):
    """The VXM with the compute-unit contract ports (docs/units.md section 1, docs/vxm.md)."""

    def __init__(self, config: TspConfig):
        if not isinstance(config, TspConfig):
            raise TypeError(f"Vxm: config must be a TspConfig, not {config!r}")
        _check_timing()
        self.config = config
        self.alus = config.vxm_alus
        super().__init__(unit_members(config))

    # ---- helpers -------------------------------------------------------------------------
    def _groups(self, m: Module, operand, name: str) -> list:
        """The four streams operand, operand+1, .., operand+3 (direction bit 5), zero past the
        last stream."""
        cfg = self.config
        S, V = cfg.streams, cfg.vec_bits
        ibits = max(1, (S - 1).bit_length())
        side = []
        for i in range(S):
            s = Signal(V, name=f"{name}_side{i}")
            m.d.comb += s.eq(Mux(operand[5], self.cur_w[i], self.cur_e[i]))
            side.append(s)
        arr = Array(side + [Const(0, V)] * ((1 << ibits) - S))
        out = []
        for b in range(4):
            idx = Signal(6, name=f"{name}_idx{b}")
            m.d.comb += idx.eq(operand[:5] + b)
            g = Signal(V, name=f"{name}_g{b}")
            m.d.comb += g.eq(Mux(idx < S, arr[idx[:ibits]], 0))
            out.append(g)
        return out

    def _alu(self, m: Module, k: int, lane: int, ctl: _StageCtl, regs: list, consts: list,
             xsel, ysel, dst) -> list:
        """One lane of ALU stage k: the three registers after the stage (combinational)."""
        nm = f"a{k}_{lane}"
        typ = ctl.typ
        srcs = list(regs) + list(consts) + [Const(0, 32)]
        x = Signal(32, name=f"{nm}_x")
        y = Signal(32, name=f"{nm}_y")
        m.d.comb += [x.eq(Array(regs + [Const(0, 32)])[xsel]), y.eq(Array(srcs)[ysel])]
        X = Signal(32, name=f"{nm}_X")           # wrap_w(x), wrap_w(y)
        Y = Signal(32, name=f"{nm}_Y")
        m.d.comb += [X.eq(_wrap(x, typ)), Y.eq(_wrap(y, typ))]
        xneg = X[31]
        sh = y[:5]                               # shift amount / RDIVPOT exponent

        # -- adder (33 bits): X +/- Y, -X / |X|, x + RDIVPOT bias ---------------------------
        low_e1 = Signal(32, name=f"{nm}_lowmask")    # 2^(e-1) - 1 (0 for e = 0)
        m.d.comb += low_e1.eq(Cat(*[sh > i + 1 for i in range(32)]))
        inv_x = ctl.neg | (ctl.abs & xneg)
        a_in = Mux(ctl.unary, 0, Mux(ctl.rdiv, x.as_signed(), X.as_signed()))
        b_sel = Mux(ctl.unary, X.as_signed(), Mux(ctl.rdiv, low_e1, Y.as_signed()))
        b_inv = ctl.sub_y | (ctl.unary & inv_x)
        cin = b_inv | (ctl.rdiv & (sh != 0) & ~x[31])
        b_in = Signal(33, name=f"{nm}_bin")
        m.d.comb += b_in.eq(Mux(b_inv, ~b_sel[:33], b_sel[:33]))
        a33 = Signal(33, name=f"{nm}_ain")
        m.d.comb += a33.eq(a_in)
        total = Signal(33, name=f"{nm}_sum")
        m.d.comb += total.eq(a33 + b_in + cin)
        lt = total[32]                           # X < Y when the adder computes X - Y

        # -- saturation to the type (ADDS SUBS NEG ABS: the sum; SAT: the full x) -------------
        sv = Signal(33, name=f"{nm}_satin")
        m.d.comb += sv.eq(Mux(ctl.sat_x, x.as_signed(), total))
        top = sv[32]
        ovf = Mux(typ == I8, ~((sv[7:] == 0) | (sv[7:] == (1 << 26) - 1)),
                  Mux(typ == I16, ~((sv[15:] == 0) | (sv[15:] == (1 << 18) - 1)),
                      sv[31] != sv[32]))
        width_m1 = Mux(typ == I8, 7, Mux(typ == I16, 15, 31))
        lim = Signal(32, name=f"{nm}_lim")       # 2^(w-1) - 1 or 2^(w-1) (wrapped later)
        m.d.comb += lim.eq(Mux(top, Const(1, 32) << width_m1, (Const(1, 32) << width_m1) - 1))
        satout = Mux(ovf, lim, sv[:32])

        # -- right barrel shifter (33 bits): SHRA, SHRL, RDIVPOT, SHL (bit-reversed) ----------
        zext = Mux(typ == I8, X[:8], Mux(typ == I16, X[:16], X))
        rev_x = Cat(*[x[31 - i] for i in range(32)])
        s_in = Signal(33, name=f"{nm}_shin")
        m.d.comb += s_in.eq(Mux(ctl.rdiv, total,
                                Mux(ctl.shl, rev_x, Mux(ctl.shrl, zext, X.as_signed()))))
        s_out = Signal(33, name=f"{nm}_shout")
        m.d.comb += s_out.eq(s_in.as_signed() >> sh)
        shl_out = Cat(*[s_out[31 - i] for i in range(32)])

        # -- stage 0 only: the one 32 x 32 multiplier. MUL = its low bits (wrap_w(x*y) =
        # wrap_w(X*Y)); SRDHM = floor((p + 2^30) / 2^31), which equals gemmlowp's truncating
        # (p + nudge) / 2^31 for both signs of p; saturated for INT_MIN * INT_MIN.
        if k == 0:
            prod = Signal(64, name=f"{nm}_prod")
            m.d.comb += prod.eq(x.as_signed() * y.as_signed())
            hi = Signal(35, name=f"{nm}_srdhm")
            m.d.comb += hi.eq(prod[30:].as_signed() + 1)
            both_min = (x == 0x8000_0000) & (y == 0x8000_0000)

        # -- result -----------------------------------------------------------------------
        pre = Signal(32, name=f"{nm}_pre")
        op = ctl.op
        with m.Switch(op):
            with m.Case(OPS["PASS"]):
                m.d.comb += pre.eq(x)
            with m.Case(OPS["ADD"], OPS["SUB"]):
                m.d.comb += pre.eq(total[:32])
            with m.Case(OPS["MIN"]):
                m.d.comb += pre.eq(Mux(lt, X, Y))
            with m.Case(OPS["MAX"]):
                m.d.comb += pre.eq(Mux(lt, Y, X))
            with m.Case(OPS["AND"]):
                m.d.comb += pre.eq(X & Y)
            with m.Case(OPS["OR"]):
                m.d.comb += pre.eq(X | Y)
            with m.Case(OPS["XOR"]):
                m.d.comb += pre.eq(X ^ Y)
            with m.Case(OPS["NOT"]):
                m.d.comb += pre.eq(~X)
            with m.Case(OPS["SHL"]):
                m.d.comb += pre.eq(shl_out)
            with m.Case(OPS["SHRA"], OPS["SHRL"], OPS["RDIVPOT"]):
                m.d.comb += pre.eq(s_out[:32])
            with m.Case(OPS["ADDS"], OPS["SUBS"], OPS["NEG"], OPS["ABS"], OPS["SAT"]):
                m.d.comb += pre.eq(satout)
            with m.Case(OPS["RELU"]):
                m.d.comb += pre.eq(Mux(xneg, 0, X))
            if k == 0:
                with m.Case(OPS["MUL"]):
                    m.d.comb += pre.eq(prod[:32])
                with m.Case(OPS["SRDHM"]):
                    m.d.comb += pre.eq(Mux(both_min, 0x7FFF_FFFF, hi[1:33]))
        res = Signal(32, name=f"{nm}_res")
        m.d.comb += res.eq(_wrap(pre, ctl.wrap_t))
        return [Mux(dst == r, res, regs[r]) for r in range(3)]

    # ---- the unit --------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        cfg = self.config
        A, n, S, V = self.alus, cfg.vec_bytes, cfg.streams, cfg.vec_bits
        instr = self.instr
        go = self.run & self.issue
        clear = self.clear

        op_vcfg = is_op(instr, "VCFG")
        op_vfunc = is_op(instr, "VFUNC")
        op_vconst = is_op(instr, "VCONST")
        op_vconsth = is_op(instr, "VCONSTH")
        op_vloadc = is_op(instr, "VLOADC")
        op_vrun = is_op(instr, "VRUN")

        # ---- legality -------------------------------------------------------------------
        k_f = fld(instr, "VCFG", "k")
        op_f = fld(instr, "VCFG", "op")
        cfg_ok = ((k_f < A) & (op_f < N_OPS) & (fld(instr, "VCFG", "type") != 3)
                  & (fld(instr, "VCFG", "dst") != 3) & (fld(instr, "VCFG", "x") != 3))
        for code in FIRST_ONLY:
            cfg_ok &= ~((op_f == code) & (k_f != 0))
        fn_ok = (fld(instr, "VFUNC", "dst") != 3) & (fld(instr, "VFUNC", "x") != 3)
        ld_ok = fld(instr, "VLOADC", "t") != 3
        run_ok = (fld(instr, "VRUN", "ta") != 3) & (fld(instr, "VRUN", "td") != 3)
        illegal = Signal()
        m.d.comb += illegal.eq(go & ((op_vcfg & ~cfg_ok) | (op_vfunc & ~fn_ok)
                                     | (op_vloadc & ~ld_ok) | (op_vrun & ~run_ok)))
        do = go & ~clear        # an instruction takes effect (clear wins)

        # ---- stage configurations ---------------------------------------------------------
        st_op = [Signal(5, name=f"cfg{k}_op", init=OPS["PASS"]) for k in range(A)]
        st_type = [Signal(2, name=f"cfg{k}_type", init=I32) for k in range(A)]
        st_dst = [Signal(2, name=f"cfg{k}_dst", init=2) for k in range(A)]
        st_x = [Signal(2, name=f"cfg{k}_x", init=2) for k in range(A)]
        st_y = [Signal(3, name=f"cfg{k}_y", init=SRC_ZERO) for k in range(A)]
        for k in range(A):
            regs = (st_op[k], st_type[k], st_dst[k], st_x[k], st_y[k])
            with m.If(clear):
                m.d.sync += [r.eq(r.init) for r in regs]
            with m.Elif(do & op_vcfg & cfg_ok & (k_f == k)):
                m.d.sync += [r.eq(fld(instr, "VCFG", f))
                             for r, f in zip(regs, ("op", "type", "dst", "x", "y"), strict=True)]
        fn_fn = Signal(2, name="fn_fn")
        fn_dst = Signal(2, name="fn_dst", init=2)
        fn_x = Signal(2, name="fn_x", init=2)
        with m.If(clear):
            m.d.sync += [fn_fn.eq(FN["OFF"]), fn_dst.eq(2), fn_x.eq(2)]
        with m.Elif(do & op_vfunc & fn_ok):
            m.d.sync += [fn_fn.eq(fld(instr, "VFUNC", "fn")),
                         fn_dst.eq(fld(instr, "VFUNC", "dst")), fn_x.eq(fld(instr, "VFUNC", "x"))]

        # ---- operand groups (VRUN a, or VLOADC s: one shared selector) ---------------------
        a_opnd = Mux(op_vloadc, fld(instr, "VLOADC", "s"), fld(instr, "VRUN", "a"))
        a_type = Mux(op_vloadc, fld(instr, "VLOADC", "t"), fld(instr, "VRUN", "ta"))
        ga = self._groups(m, a_opnd, "ga")
        gb = self._groups(m, fld(instr, "VRUN", "b"), "gb")
        tb = fld(instr, "VRUN", "tb")
        a_val, b_val = [], []
        for i in range(n):
            av = Signal(32, name=f"in_a{i}")
            bv = Signal(32, name=f"in_b{i}")
            m.d.comb += [av.eq(_wrap(Cat(*[_lane(g, i, 8) for g in ga]), a_type)),
                         bv.eq(Mux(tb == 3, 0, _wrap(Cat(*[_lane(g, i, 8) for g in gb]), tb)))]
            a_val.append(av)
            b_val.append(bv)

        # ---- per-lane constants -----------------------------------------------------------
        consts = [[Signal(32, name=f"c{c}_{i}") for c in range(4)] for i in range(n)]
        c_f = {mn: fld(instr, mn, "c") for mn in ("VCONST", "VCONSTH", "VLOADC")}
        imm = fld(instr, "VCONST", "imm")
        immh = fld(instr, "VCONSTH", "imm")
        for i in range(n):
            for c in range(4):
                reg = consts[i][c]
                with m.If(clear):
                    m.d.sync += reg.eq(0)
                with m.Elif(do & op_vconst & (c_f["VCONST"] == c)):
                    m.d.sync += reg.eq(imm)
                with m.Elif(do & op_vconsth & (c_f["VCONSTH"] == c)):
                    m.d.sync += reg[16:].eq(immh)
                with m.Elif(do & op_vloadc & ld_ok & (c_f["VLOADC"] == c)):
                    m.d.sync += reg.eq(a_val[i])

        # ---- load: r0 = a, r1 = b (r2 = a: stage 0 reads r0 for it) ------------------------
        start = do & op_vrun & run_ok
        valid = [Signal(name="v_load")]
        dst_op = [Signal(8, name="d_load")]          # d (6 bits) and td (2 bits)
        m.d.sync += [valid[0].eq(start), dst_op[0].eq(Cat(fld(instr, "VRUN", "d"),
                                                          fld(instr, "VRUN", "td")))]
        lanes = []
        for i in range(n):
            r0 = Signal(32, name=f"l_r0_{i}")
            r1 = Signal(32, name=f"l_r1_{i}")
            m.d.sync += [r0.eq(a_val[i]), r1.eq(b_val[i])]
            lanes.append([r0, r1, r0])

        # ---- ALU stages: stage k acts in t+1+k --------------------------------------------
        for k in range(A):
            int32_op = (st_op[k] == OPS["SRDHM"]) | (st_op[k] == OPS["RDIVPOT"])
            wrap_t = Signal(2, name=f"s{k}_wrap_t")
            m.d.comb += wrap_t.eq(Mux(int32_op, I32, st_type[k]))
            ctl = _StageCtl(m, k, st_op[k], st_type[k], wrap_t)
            nxt = []
            for i in range(n):
                outs = self._alu(m, k, i, ctl, lanes[i], consts[i], st_x[k], st_y[k], st_dst[k])
                regs = [Signal(32, name=f"p{k}_r{r}_{i}") for r in range(3)]
                m.d.sync += [regs[r].eq(outs[r]) for r in range(3)]
                nxt.append(regs)
            lanes = nxt
            v = Signal(name=f"v_s{k}")
            d = Signal(8, name=f"d_s{k}")
            m.d.sync += [v.eq(valid[-1] & ~clear), d.eq(dst_op[-1])]
            valid.append(v)
            dst_op.append(d)

        # ---- function stage, cycle 1 (t+A+1): ROM address, controls -----------------------
        fn_on = fn_fn != FN["OFF"]
        writes_r2 = Signal(name="f_writes_r2")
        m.d.comb += writes_r2.eq(fn_on & (fn_dst == 2))
        f_r2 = [Signal(32, name=f"f_r2_{i}") for i in range(n)]
        f_zero = [Signal(name=f"f_zero_{i}") for i in range(n)]     # EXP of x <= -4096
        f_neg = [Signal(name=f"f_neg_{i}") for i in range(n)]       # negative argument
        f_big = [Signal(name=f"f_nonpos_{i}") for i in range(n)]    # RSQRT of x <= 0
        f_sh = [Signal(4, name=f"f_sh_{i}") for i in range(n)]      # RSQRT: 15 - e2 / 2
        f_fn = Signal(2, name="f_fn")
        f_w2 = Signal(name="f_w2")
        m.d.sync += [f_fn.eq(fn_fn), f_w2.eq(writes_r2)]
        addrs = []
        for i in range(n):
            xv = Signal(32, name=f"f_x{i}")
            m.d.comb += xv.eq(Array(lanes[i] + [Const(0, 32)])[fn_x])
            neg = xv[31]
            mag = Signal(32, name=f"f_mag{i}")               # |x| (2^31 for INT_MIN)
            m.d.comb += mag.eq(Mux(neg, -xv, xv))
            exp_idx = Mux(neg, mag[:12], 0)                   # x > 0 reads EXP_TABLE[0]
            tanh_idx = Mux(mag[11:].any(), 2047, mag[:11])
            # RSQRT: h = e2 / 2 = index of the highest nonzero bit pair; j = x << 8 >> e2
            h = Signal(4, name=f"f_h{i}")
            hv = Const(0, 4)
            for p in range(16):
                hv = Mux(xv[2 * p:2 * p + 2].any(), p, hv)
            m.d.comb += h.eq(hv)
            j = Signal(10, name=f"f_j{i}")
            m.d.comb += j.eq(Cat(Const(0, 8), xv[:31]).bit_select(Cat(Const(0, 1), h), 10))
            addr = Signal(13, name=f"f_addr{i}")
            with m.Switch(fn_fn):
                with m.Case(FN["TANH"]):
                    m.d.comb += addr.eq(ROM_BASE["TANH"] | tanh_idx)
                with m.Case(FN["RSQRT"]):
                    m.d.comb += addr.eq(ROM_BASE["RSQRT"] | j)
                with m.Default():
                    m.d.comb += addr.eq(ROM_BASE["EXP"] | exp_idx)
            addrs.append(addr)
            m.d.sync += [f_r2[i].eq(lanes[i][2]), f_zero[i].eq(neg & mag[12:].any()),
                         f_neg[i].eq(neg), f_big[i].eq(neg | (xv == 0)), f_sh[i].eq(15 - h)]
        data = []
        for p in range(0, n, 2):
            rom = Memory(shape=unsigned(16), depth=len(ROM_INIT), init=ROM_INIT)
            m.submodules[f"rom{p // 2}"] = rom
            for i in (p, p + 1):
                port = rom.read_port(transparent_for=())
                m.d.comb += port.addr.eq(addrs[i])
                data.append(port.data)
        v_f1 = Signal(name="v_f1")
        d_f1 = Signal(8, name="d_f1")
        m.d.sync += [v_f1.eq(valid[-1] & ~clear), d_f1.eq(dst_op[-1])]

        # ---- function stage, cycle 2 (t+A+2): post-processing, r2 registered ----------------
        o_r2 = [Signal(32, name=f"o_r2_{i}") for i in range(n)]
        for i in range(n):
            y = data[i]
            f = Signal(32, name=f"f_y{i}")
            with m.Switch(f_fn):
                with m.Case(FN["TANH"]):
                    m.d.comb += f.eq(Mux(f_neg[i], -y, y))
                with m.Case(FN["RSQRT"]):
                    m.d.comb += f.eq(Mux(f_big[i], 0x7FFF_FFFF, y << f_sh[i]))
                with m.Default():
                    m.d.comb += f.eq(Mux(f_zero[i], 0, y))
            m.d.sync += o_r2[i].eq(Mux(f_w2, f, f_r2[i]))
        v_o = Signal(name="v_out")
        d_o = Signal(8, name="d_out")
        m.d.sync += [v_o.eq(v_f1 & ~clear), d_o.eq(d_f1)]

        # ---- drive (t+A+3): byte b of every lane of r2 on stream d + b -----------------------
        first, west, td = d_o[:5], d_o[5], d_o[6:8]
        nbytes = Mux(td == I8, 1, Mux(td == I16, 2, 4))
        byte_vecs = Array([Cat(*[o_r2[i][8 * b:8 * b + 8] for i in range(n)]) for b in range(4)])
        out_on = v_o & self.run
        for q in range(S):
            hit = (first <= q) & (q < first + nbytes)
            m.d.comb += [self.wen_e[q].eq(out_on & hit & ~west),
                         self.wen_w[q].eq(out_on & hit & west)]
            vec = Signal(V, name=f"out{q}")
            m.d.comb += vec.eq(byte_vecs[(q - first)[:2]])
            m.d.comb += [self.wdata_e[q].eq(vec), self.wdata_w[q].eq(vec)]

        m.d.comb += [self.active.eq(Cat(*valid, v_f1, v_o).any()),
                     self.err.eq(illegal << BIT_ILLEGAL)]
        return m
