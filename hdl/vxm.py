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
  t+A+2      function stage, second cycle: the ROM word post-processed, r2 (or f(r[x]) when the
             function writes r2) converted to td (saturated when VRUN's sat is set) registered.
  t+A+3      the registered value drives wen/wdata (low bytes of type td on streams d..), so
             it is in the stream registers during t+A+4.

Configuration registers (stage configurations, function stage, per-lane constants) load at the
end of the issue cycle, so they are in effect from t+1 on. Illegal configurations (including an
operation the stage's kind cannot run) raise ILLEGAL in the issue cycle and change nothing.
`clear` restores the reset configuration, zeroes the constants and drops every vector in flight
(it wins over an issue in the same cycle).

Stage kinds (config.vxm_stages, docs/vxm.md section 1), each built with only its hardware:
  G  operands typed (wrap_w) once; one 33-bit adder (ADD SUB ADDS SUBS NEG ABS and the MIN/MAX/
     RELU comparison), one bitwise unit (a per-lane 2-input truth table: AND OR XOR NOT PASS,
     and the MIN/MAX/RELU selection), one saturation and one final wrap to the type.
  M  the 32 x 32 multiplier (MUL = low bits, SRDHM = rounded high bits, saturated for
     INT_MIN * INT_MIN), PASS; operands are not typed (wrap_w(x*y) = wrap_w(X*Y)).
  S  one 34-bit right barrel shifter (SHRA, SHRL, PASS = SHRA by 0, RDIVPOT with the shifted-out
     guard bit, SHL through bit reversal), one incrementer for RDIVPOT's rounding; its y
     selector is 5 bits wide (only `y & 31` is used), plus a 1-bit selector of `y[5:32] != 0`
     (per source, one 27-input OR) for the RANGE check.
RANGE (error bit 5, docs/vxm.md section 3): an S stage running SHL/SHRA/SHRL/RDIVPOT whose
selected y is outside 0..31 in some lane raises it combinationally in the cycle it acts on a
valid vector (t+1+k: its inputs are the registers of the previous stage), so the top samples it
with the cycle counter at t+1+k; the result is computed with `y & 31` as ever.
Stage controls are decoded once per stage, shared by all lanes. The function tables are one ROM
per lane pair (EXP, TANH and RSQRT concatenated, 7168 x 16 bits, two synchronous read ports),
so they map to block RAM.

Ports: exactly the unit contract (docs/units.md section 1, `hdl.unit.unit_members`).
`wdata_e` and `wdata_w` carry the same values; they are meaningful where `wen_*` is set.
"""
from amaranth import Cat, Const, Module, Mux, Signal, unsigned
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
BIT_RANGE = ERR_BITS["RANGE"]
OPS = {op.name: op.code for op in spec.ALU_OPS}
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

# The operations each stage kind implements below; checked against tsp.vxm at construction.
_KIND_OPS = {
    "G": ("PASS", "ADD", "SUB", "MIN", "MAX", "AND", "OR", "XOR", "NOT", "ADDS", "SUBS", "NEG",
          "ABS", "RELU", "SAT"),
    "M": ("PASS", "MUL", "SRDHM"),
    "S": ("PASS", "SHL", "SHRA", "SHRL", "RDIVPOT"),
}
# Bitwise unit truth tables, bit (2 * X_i + Y_i) = result bit.
_TT = {"AND": 0b1000, "OR": 0b1110, "XOR": 0b0110, "NOT": 0b0011, "PASS": 0b1100}
_TT_X, _TT_Y = 0b1100, 0b1010


def _check_spec() -> None:
    """The pipeline implements dskew 0 and dfunc = vxm_alus + 4 (VRUN), dskew 0 (VLOADC), and
    the kind table of tsp.vxm; refuse to build against a tsp.isa / tsp.vxm that says
    otherwise."""
    want = {"VRUN": (("vxm_alus", 4), 0), "VLOADC": (None, 0)}
    for ins in isa.INSTRUCTIONS:
        if ins.unit != "vxm":
            continue
        expect = want.get(ins.name, (None, None))
        if (ins.dfunc, ins.dskew) != expect:
            raise ValueError(f"hdl.vxm.Vxm implements {ins.name} with dfunc={expect[0]} "
                             f"dskew={expect[1]}, but tsp.isa gives dfunc={ins.dfunc} "
                             f"dskew={ins.dskew}")
    for kind, names in _KIND_OPS.items():
        runs = tuple(op.name for op in spec.ALU_OPS if op.runs_on(kind))
        if sorted(runs) != sorted(names):
            raise ValueError(f"hdl.vxm.Vxm builds {kind} stages with {names}, but tsp.vxm says "
                             f"{kind} stages run {runs}")


def _wrap(m: Module, v, t, name: str) -> Signal:
    """The low 8/16/32 bits of the 32-bit `v` (type code `t`: 0/1/2), sign-extended (as a
    named signal: `v` is referenced once, so no expression is duplicated)."""
    vs = Signal(32, name=f"{name}_pre")
    hi = Signal(8, name=f"{name}_hi8")
    out = Signal(32, name=name)
    m.d.comb += [vs.eq(v), hi.eq(Mux(t == I8, vs[7].replicate(8), vs[8:16])),
                 out.eq(Cat(vs[:8], hi, Mux(t == I32, vs[16:32], hi[7].replicate(16))))]
    return out


def _tree(sel, items: list):
    """A binary multiplexer tree: items[sel] (len(items) a power of two)."""
    level = list(items)
    b = 0
    while len(level) > 1:
        level = [Mux(sel[b], level[i + 1], level[i]) for i in range(0, len(level), 2)]
        b += 1
    return level[0]


def _lane(vec, i: int, width: int):
    return vec[width * i:width * (i + 1)]


class _Ctl:
    """Controls of one ALU stage, decoded once from its configuration (shared by all lanes)."""

    def __init__(self, m: Module, k: int, kind: str, op, typ, dst, x, y):
        self.kind, self.typ, self.x = kind, typ, x

        def is_(*names):
            return Cat(*[op == OPS[nm] for nm in names]).any()

        def sig(name, expr, width=1):
            s = Signal(width, name=f"s{k}_{name}")
            m.d.comb += s.eq(expr)
            return s

        self.wr = [sig(f"wr{r}", dst == r) for r in range(3)]
        if kind == "G":
            one = is_("PASS", "NOT", "NEG", "ABS", "RELU", "SAT")      # y forced to zero
            self.y = sig("y", Mux(one, SRC_ZERO, y), 3)
            self.t_op = sig("t_op", Mux(op == OPS["SAT"], I32, typ), 2)   # operand typing
            self.a_zero = sig("a_zero", is_("NEG", "ABS"))               # adder a = 0, b = X
            self.sub = sig("sub", is_("SUB", "SUBS", "MIN", "MAX", "RELU", "NEG"))
            self.abs = sig("abs", op == OPS["ABS"])
            self.sat = sig("sat", is_("ADDS", "SUBS", "NEG", "ABS", "SAT"))
            self.logic = sig("logic", is_("PASS", "AND", "OR", "XOR", "NOT", "MIN", "MAX",
                                          "RELU"))
            self.minmax = sig("minmax", is_("MIN", "MAX", "RELU"))
            self.max = sig("max", is_("MAX", "RELU"))
            tt = Const(_TT["PASS"], 4)
            for name in ("AND", "OR", "XOR", "NOT"):
                tt = Mux(op == OPS[name], _TT[name], tt)
            self.tt = sig("tt", tt, 4)
            self.lowmask = sig("lowmask", Mux(typ == I8, 0x7F, Mux(typ == I16, 0x7FFF,
                                                                   0x7FFF_FFFF)), 32)
        elif kind == "M":
            self.y = y
            self.mul = sig("mul", op == OPS["MUL"])
            self.srdhm = sig("srdhm", op == OPS["SRDHM"])
            self.t_res = sig("t_res", Mux(self.srdhm, I32, typ), 2)
        else:
            self.y = sig("y", Mux(op == OPS["PASS"], SRC_ZERO, y), 3)   # PASS = SHRA by 0
            self.shl = sig("shl", op == OPS["SHL"])
            self.rdiv = sig("rdiv", op == OPS["RDIVPOT"])
            self.shift = sig("shift", is_("SHL", "SHRA", "SHRL", "RDIVPOT"))   # y is an amount
            self.signed = sig("signed", is_("SHRA", "PASS", "RDIVPOT"))
            self.t_op = sig("t_op", Mux(self.rdiv | self.shl, I32, typ), 2)
            self.t_res = sig("t_res", Mux(self.rdiv, I32, typ), 2)


class Vxm(wiring.Component):
    """The VXM with the compute-unit contract ports (docs/units.md section 1, docs/vxm.md)."""

    def __init__(self, config: TspConfig):
        if not isinstance(config, TspConfig):
            raise TypeError(f"Vxm: config must be a TspConfig, not {config!r}")
        _check_spec()
        self.config = config
        self.alus = config.vxm_alus
        self.stages = config.vxm_stages
        super().__init__(unit_members(config))

    # ---- helpers -------------------------------------------------------------------------
    def _groups(self, m: Module, operand, name: str) -> list:
        """The four streams operand, operand+1, .., operand+3 (direction bit 5), zero past the
        last stream: the direction selected once per stream, then one mux tree per byte."""
        cfg = self.config
        S, V = cfg.streams, cfg.vec_bits
        ibits = max(1, (S - 1).bit_length())
        side = []
        for i in range(S):
            s = Signal(V, name=f"{name}_side{i}")
            m.d.comb += s.eq(Mux(operand[5], self.cur_w[i], self.cur_e[i]))
            side.append(s)
        side += [Const(0, V)] * ((1 << ibits) - S)
        out = []
        for b in range(4):
            idx = Signal(6, name=f"{name}_idx{b}")
            m.d.comb += idx.eq(operand[:5] + b)
            g = Signal(V, name=f"{name}_g{b}")
            m.d.comb += g.eq(Mux(idx < S, _tree(idx[:ibits], side), 0))
            out.append(g)
        return out

    def _stage(self, m: Module, k: int, lane: int, c: _Ctl, regs: list, consts: list
               ) -> tuple[list, Signal | None]:
        """One lane of ALU stage k: the three registers after the stage (combinational) and,
        for an S stage, whether its selected y is outside 0..31 (y[5:32] != 0), else None."""
        nm = f"a{k}_{lane}"
        x = Signal(32, name=f"{nm}_x")
        m.d.comb += x.eq(Mux(c.x[1], regs[2], Mux(c.x[0], regs[1], regs[0])))
        srcs = list(regs) + list(consts) + [Const(0, 32)]
        res = Signal(32, name=f"{nm}_res")
        oor = None
        if c.kind == "G":
            y = Signal(32, name=f"{nm}_y")
            m.d.comb += y.eq(_tree(c.y, srcs))
            X = Signal(32, name=f"{nm}_X")
            Y = Signal(32, name=f"{nm}_Y")
            m.d.comb += [X.eq(_wrap(m, x, c.t_op, f"{nm}_wx")),
                         Y.eq(_wrap(m, y, c.t_op, f"{nm}_wy"))]
            # adder: X + Y, X - Y (SUB SUBS MIN MAX RELU: Y = 0), -X (NEG), |X| (ABS)
            inv = Signal(name=f"{nm}_inv")
            m.d.comb += inv.eq(c.sub | (c.abs & X[31]))
            a33 = Signal(33, name=f"{nm}_a")
            b33 = Signal(33, name=f"{nm}_b")
            m.d.comb += [a33.eq(Mux(c.a_zero, 0, X.as_signed())),
                         b33.eq(Mux(c.a_zero, X.as_signed(), Y.as_signed())
                                ^ inv.replicate(33))]
            s = Signal(33, name=f"{nm}_sum")
            m.d.comb += s.eq(a33 + b33 + inv)
            # saturation to the type: bits w-1..32 of the sum not all equal
            hi1, hi0 = s[16:33].all(), ~s[16:33].any()
            eq8 = (s[7:16].all() & hi1) | (~s[7:16].any() & hi0)
            eq16 = (s[15] & hi1) | (~s[15] & hi0)
            eq32 = s[31] == s[32]
            ovf = Signal(name=f"{nm}_ovf")
            m.d.comb += ovf.eq(c.sat & ~Mux(c.typ == I8, eq8, Mux(c.typ == I16, eq16, eq32)))
            lim = c.lowmask ^ s[32].replicate(32)
            # bitwise unit; MIN/MAX/RELU select X or Y by the sign of X - Y
            lt = s[32]
            tt = Signal(4, name=f"{nm}_tt")
            m.d.comb += tt.eq(Mux(c.minmax, Mux(lt ^ c.max, _TT_X, _TT_Y), c.tt))
            f = Signal(32, name=f"{nm}_logic")
            m.d.comb += f.eq(Cat(*[Mux(X[i], Mux(Y[i], tt[3], tt[2]), Mux(Y[i], tt[1], tt[0]))
                                   for i in range(32)]))
            m.d.comb += res.eq(_wrap(m, Mux(c.logic, f, Mux(ovf, lim, s[:32])), c.typ,
                                     f"{nm}_w"))
        elif c.kind == "M":
            y = Signal(32, name=f"{nm}_y")
            m.d.comb += y.eq(_tree(c.y, srcs))
            # MUL = wrap_w(low bits); SRDHM = floor((p + 2^30) / 2^31) (equal to gemmlowp's
            # truncating (p + nudge) / 2^31 for both signs of p), saturated for p = 2^62
            # (INT_MIN * INT_MIN, the only product with bit 62 set and bit 63 clear)
            p = Signal(64, name=f"{nm}_prod")
            m.d.comb += p.eq(x.as_signed() * y.as_signed())
            hi = Signal(32, name=f"{nm}_srdhm")
            m.d.comb += hi.eq(Mux(p[62] & ~p[63], 0x7FFF_FFFF, p[31:63] + p[30]))
            pre = Mux(c.srdhm, hi, Mux(c.mul, p[:32], x))
            m.d.comb += res.eq(_wrap(m, pre, c.t_res, f"{nm}_w"))
        else:
            sh = Signal(5, name=f"{nm}_sh")
            m.d.comb += sh.eq(_tree(c.y, [v[:5] for v in srcs]))
            oor = Signal(name=f"{nm}_oor")           # y outside 0..31: bits 31:5 not all zero
            m.d.comb += oor.eq(_tree(c.y, [v[5:].any() for v in srcs]))
            # shifter input: x reversed (SHL), x sign- (SHRA PASS RDIVPOT) or zero-extended
            # (SHRL) from the type; a guard bit below it (RDIVPOT: x bit e-1 shifts into it)
            top = Mux(c.t_op == I8, x[7], x[15])
            fill = Signal(name=f"{nm}_fill")
            m.d.comb += fill.eq(c.signed & top)
            ext = Cat(x[:8], Mux(c.t_op == I8, fill.replicate(8), x[8:16]),
                      Mux(c.t_op == I32, x[16:32], fill.replicate(16)))
            val = Signal(32, name=f"{nm}_val")
            m.d.comb += val.eq(Mux(c.shl, Cat(*[x[31 - i] for i in range(32)]), ext))
            s_in = Cat(Const(0, 1), val, c.signed & val[31])
            s_out = Signal(33, name=f"{nm}_shout")
            m.d.comb += s_out.eq(s_in.as_signed() >> sh)
            # RDIVPOT rounds up when the guard bit x[e-1] is set and (x >= 0 or a lower bit
            # x[e-2..0] is set): rem > (mask >> 1) + (x < 0). Bit i counts when sh > i + 1;
            # sh has 5 bits, so bits 30 and 31 never do.
            sticky = Cat(*[x[i] & (sh > i + 1) for i in range(30)]).any()
            up = Signal(name=f"{nm}_up")
            m.d.comb += up.eq(c.rdiv & s_out[0] & (~x[31] | sticky))
            q = s_out[1:33]
            pre = Mux(c.shl, Cat(*[q[31 - i] for i in range(32)]), (q + up)[:32])
            m.d.comb += res.eq(_wrap(m, pre, c.t_res, f"{nm}_w"))
        return [Mux(c.wr[r], res, regs[r]) for r in range(3)], oor

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
        runs = Signal(name="cfg_op_runs")          # stage k_f exists and its kind runs op_f
        kind_ok = {kind: Cat(*[op_f == OPS[nm] for nm in names]).any()
                   for kind, names in _KIND_OPS.items()}
        m.d.comb += runs.eq(Cat(*[(k_f == k) & kind_ok[kind]
                                  for k, kind in enumerate(self.stages)]).any())
        cfg_ok = (runs & (fld(instr, "VCFG", "type") != 3)
                  & (fld(instr, "VCFG", "dst") != 3) & (fld(instr, "VCFG", "x") != 3))
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
            m.d.comb += [av.eq(_wrap(m, Cat(*[_lane(g, i, 8) for g in ga]), a_type,
                                     f"in_wa{i}")),
                         bv.eq(Mux(tb == 3, 0, _wrap(m, Cat(*[_lane(g, i, 8) for g in gb]), tb,
                                                     f"in_wb{i}")))]
            a_val.append(av)
            b_val.append(bv)

        # ---- per-lane constants: one shared data input, per-constant enables ----------------
        consts = [[Signal(32, name=f"c{c}_{i}") for c in range(4)] for i in range(n)]
        c_f = fld(instr, "VCONST", "c")
        if any(isa.BY_NAME[mn].field("c").offset != isa.BY_NAME["VCONST"].field("c").offset
               for mn in ("VCONSTH", "VLOADC")):
            raise ValueError("hdl.vxm: VCONST, VCONSTH and VLOADC must share the c field")
        imm = Signal(32, name="c_imm")
        m.d.comb += imm.eq(fld(instr, "VCONST", "imm"))
        imm_hi = Signal(16, name="c_imm_hi")
        m.d.comb += imm_hi.eq(Mux(op_vconsth, fld(instr, "VCONSTH", "imm"), imm[16:]))
        w_lo = do & (op_vconst | (op_vloadc & ld_ok))
        w_hi = w_lo | (do & op_vconsth)
        for i in range(n):
            data = Signal(32, name=f"c_data{i}")
            m.d.comb += data.eq(Mux(op_vloadc, a_val[i], Cat(imm[:16], imm_hi)))
            for c in range(4):
                reg = consts[i][c]
                with m.If(clear):
                    m.d.sync += reg.eq(0)
                with m.Else():
                    with m.If(w_lo & (c_f == c)):
                        m.d.sync += reg[:16].eq(data[:16])
                    with m.If(w_hi & (c_f == c)):
                        m.d.sync += reg[16:].eq(data[16:])

        # ---- load: r0 = a, r1 = b (r2 = a: stage 0 reads r0 for it) ------------------------
        start = do & op_vrun & run_ok
        valid = [Signal(name="v_load")]
        dst_op = [Signal(9, name="d_load")]          # d (6 bits), td (2 bits), sat
        m.d.sync += [valid[0].eq(start),
                     dst_op[0].eq(Cat(fld(instr, "VRUN", "d"), fld(instr, "VRUN", "td"),
                                      fld(instr, "VRUN", "sat")))]
        lanes = []
        for i in range(n):
            r0 = Signal(32, name=f"l_r0_{i}")
            r1 = Signal(32, name=f"l_r1_{i}")
            m.d.sync += [r0.eq(a_val[i]), r1.eq(b_val[i])]
            lanes.append([r0, r1, r0])

        # ---- ALU stages: stage k acts in t+1+k --------------------------------------------
        ranges = []             # per S stage: RANGE raised this cycle
        for k, kind in enumerate(self.stages):
            ctl = _Ctl(m, k, kind, st_op[k], st_type[k], st_dst[k], st_x[k], st_y[k])
            nxt = []
            oors = []
            for i in range(n):
                outs, oor = self._stage(m, k, i, ctl, lanes[i], consts[i])
                if oor is not None:
                    oors.append(oor)
                regs = [Signal(32, name=f"p{k}_r{r}_{i}") for r in range(3)]
                m.d.sync += [regs[r].eq(outs[r]) for r in range(3)]
                nxt.append(regs)
            lanes = nxt
            if oors:            # valid[-1]: a vector is in stage k this cycle
                rk = Signal(name=f"range_s{k}")
                m.d.comb += rk.eq(valid[-1] & ctl.shift & Cat(*oors).any())
                ranges.append(rk)
            v = Signal(name=f"v_s{k}")
            d = Signal(9, name=f"d_s{k}")
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
            regs = lanes[i]
            xv = Signal(32, name=f"f_x{i}")
            m.d.comb += xv.eq(Mux(fn_x[1], regs[2], Mux(fn_x[0], regs[1], regs[0])))
            neg = xv[31]
            # |x| mod 2^12 (a 12-bit conditional negation) and whether |x| < 4096 / < 2048
            mag = Signal(12, name=f"f_mag{i}")
            m.d.comb += mag.eq((xv[:12] ^ neg.replicate(12)) + neg)
            in12 = Mux(neg, xv[12:].all() & xv[:12].any(), ~xv[12:].any())
            in11 = Mux(neg, xv[11:].all() & xv[:11].any(), ~xv[11:].any())
            exp_idx = Mux(neg, mag, 0)                        # x > 0 reads EXP_TABLE[0]
            tanh_idx = Mux(in11, mag[:11], 2047)
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
            m.d.sync += [f_r2[i].eq(regs[2]), f_zero[i].eq(neg & ~in12),
                         f_neg[i].eq(neg), f_big[i].eq(neg | (xv == 0)), f_sh[i].eq(15 - h)]
        data = []
        for p in range(0, n, 2):
            rom = Memory(shape=unsigned(16), depth=len(ROM_INIT), init=ROM_INIT)
            m.submodules[f"rom{p // 2}"] = rom
            for i in (p, p + 1)[:n - p]:
                port = rom.read_port(transparent_for=())
                m.d.comb += port.addr.eq(addrs[i])
                data.append(port.data)
        v_f1 = Signal(name="v_f1")
        d_f1 = Signal(9, name="d_f1")
        m.d.sync += [v_f1.eq(valid[-1] & ~clear), d_f1.eq(dst_op[-1])]

        # ---- function stage, cycle 2 (t+A+2): post-processing, result conversion ------------
        td_f, sat_f = d_f1[6:8], d_f1[8]
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
            r = Signal(32, name=f"f_out{i}")
            m.d.comb += r.eq(Mux(f_w2, f, f_r2[i]))
            # sat: r2 outside td's range -> the bound (only the low bits of td are driven)
            in8 = r[7:].all() | ~r[7:].any()
            in16 = r[15:].all() | ~r[15:].any()
            clip = sat_f & Mux(td_f == I8, ~in8, Mux(td_f == I16, ~in16, 0))
            bound = Mux(td_f == I8, 0x7F, 0x7FFF) ^ r[31].replicate(16)
            m.d.sync += o_r2[i].eq(Cat(Mux(clip, bound, r[:16]), r[16:]))
        v_o = Signal(name="v_out")
        d_o = Signal(9, name="d_out")
        m.d.sync += [v_o.eq(v_f1 & ~clear), d_o.eq(d_f1)]

        # ---- drive (t+A+3): byte b of every lane of r2 on stream d + b -----------------------
        # four byte vectors, one per stream residue mod 4: stream q carries byte (q - d) mod 4
        first, west, td = d_o[:5], d_o[5], d_o[6:8]
        nbytes = Mux(td == I8, 1, Mux(td == I16, 2, 4))
        byte_vecs = [Cat(*[o_r2[i][8 * b:8 * b + 8] for i in range(n)]) for b in range(4)]
        by_res = []
        for r in range(4):
            vec = Signal(V, name=f"out_res{r}")
            m.d.comb += vec.eq(_tree((r - first)[:2], byte_vecs))
            by_res.append(vec)
        out_on = v_o & self.run
        for q in range(S):
            hit = (first <= q) & (q < first + nbytes)
            m.d.comb += [self.wen_e[q].eq(out_on & hit & ~west),
                         self.wen_w[q].eq(out_on & hit & west),
                         self.wdata_e[q].eq(by_res[q % 4]), self.wdata_w[q].eq(by_res[q % 4])]

        range_err = Signal(name="range_err")
        m.d.comb += range_err.eq(self.run & Cat(*ranges).any() if ranges else 0)
        m.d.comb += [self.active.eq(Cat(*valid, v_f1, v_o).any()),
                     self.err.eq((illegal << BIT_ILLEGAL) | (range_err << BIT_RANGE))]
        return m
