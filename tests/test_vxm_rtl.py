"""VXM RTL (hdl/vxm.py) in the Amaranth simulator, against docs/vxm.md.

Every expected value below is worked out by hand from docs/vxm.md (the ALU tables, the
requantisation example) or, for the function tables, by evaluating the table formulas of
docs/vxm.md section 4 directly with `math` (never from tsp.vxm's tables or from the RTL).
At the end, a randomized differential test runs the RTL against the golden model
(sim/vxm.py) when that model is importable.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from amaranth.sim import Simulator

from hdl.vxm import Vxm
from tsp import vxm as spec
from tsp.config import TspConfig
from tsp.hostmap import ERR_BITS
from tsp.isa import EAST, WEST, encode, stream_operand

# 4 lanes, 4 streams; stages general, multiplier, shifter, general (the default profile's)
TINY = TspConfig.profile("tiny").replace(units=("vxm",), vxm_stages="GMSG")
EIGHT = TspConfig.profile("full").replace(units=("vxm",))                # 8 lanes, 8 streams
ILLEGAL = 1 << ERR_BITS["ILLEGAL"]
RANGE = 1 << ERR_BITS["RANGE"]
SHIFTS = {"SHL", "SHRA", "SHRL", "RDIVPOT"}     # y is a shift amount (docs/vxm.md section 3)
INT_MIN, INT_MAX = -(1 << 31), (1 << 31) - 1
TYPES = {"i8": 0, "i16": 1, "i32": 2, "none": 3}
REGS = {"r0": 0, "r1": 1, "r2": 2}
SRCS = {"r0": 0, "r1": 1, "r2": 2, "c0": 3, "c1": 4, "c2": 5, "c3": 6, "zero": 7}
FNS = {"OFF": 0, "EXP": 1, "TANH": 2, "RSQRT": 3}


def E(i: int) -> int:
    return stream_operand(EAST, i)


def W(i: int) -> int:
    return stream_operand(WEST, i)


# ---- instruction words -------------------------------------------------------------------

def VCFG(k: int, op: str | int, typ: str | int = "i32", dst: str | int = "r2",
         x: str | int = "r0", y: str | int = "r1") -> int:
    return encode("VCFG", k=k, op=spec.ALU_BY_NAME[op].code if isinstance(op, str) else op,
                  type=TYPES[typ] if isinstance(typ, str) else typ,
                  dst=REGS[dst] if isinstance(dst, str) else dst,
                  x=REGS[x] if isinstance(x, str) else x, y=SRCS[y])


def VFUNC(fn: str, dst: str | int = "r2", x: str | int = "r2") -> int:
    return encode("VFUNC", fn=FNS[fn], dst=REGS[dst] if isinstance(dst, str) else dst,
                  x=REGS[x] if isinstance(x, str) else x)


def VCONST(c: int, imm: int) -> int:
    return encode("VCONST", c=c, imm=imm)


def VCONSTH(c: int, imm: int) -> int:
    return encode("VCONSTH", c=c, imm=imm)


def VLOADC(c: int, s: int, t: str | int) -> int:
    return encode("VLOADC", c=c, s=s, t=TYPES[t] if isinstance(t, str) else t)


def VRUN(a: int, ta: str | int, b: int, tb: str | int, d: int, td: str | int,
         sat: int = 0) -> int:
    def ty(v):
        return TYPES[v] if isinstance(v, str) else v
    return encode("VRUN", a=a, ta=ty(ta), b=b, tb=ty(tb), d=d, td=ty(td), sat=sat)


# ---- stimulus and simulation ----------------------------------------------------------------

class Stim:
    """Instruction words and the stream registers at the VXM, per cycle."""

    def __init__(self, cfg: TspConfig, cycles: int):
        self.cfg = cfg
        self.cycles = cycles
        self.prog: dict[int, int] = {}
        self.east = np.zeros((cycles, cfg.streams, cfg.vec_bytes), dtype=np.uint8)
        self.west = np.zeros_like(self.east)

    def at(self, t: int, word: int) -> Stim:
        if t in self.prog:
            raise ValueError(f"two instructions at cycle {t}")
        self.prog[t] = word
        return self

    def group(self, t: int, operand: int, typ: str, lanes) -> Stim:
        """Put the integer per-lane values `lanes` on the group of type `typ` at `operand`
        (byte b of each lane on stream operand + b; streams past the last one are dropped)."""
        nb = {"i8": 1, "i16": 2, "i32": 4}[typ]
        regs = self.west if operand >> 5 else self.east
        vals = [int(v) & 0xFFFFFFFF for v in lanes]
        assert len(vals) == self.cfg.vec_bytes
        for b in range(nb):
            s = (operand & 31) + b
            if s < self.cfg.streams:
                regs[t, s] = [(v >> (8 * b)) & 0xFF for v in vals]
        return self


def _pack(rows: np.ndarray) -> int:
    return int.from_bytes(np.ascontiguousarray(rows, dtype=np.uint8).tobytes(), "little")


def run_rtl(stim: Stim, clear_at: tuple[int, ...] = (), run_mask=None) -> list[dict]:
    """Per cycle: {"writes": {(dir, stream): bytes}, "err": int, "active": bool}."""
    cfg = stim.cfg
    dut = Vxm(cfg)
    V, S, n = cfg.vec_bits, cfg.streams, cfg.vec_bytes
    trace: list[dict] = []

    async def bench(ctx):
        last: dict = {}

        def put(name, sig, value):      # each `set` settles the design: only set changes
            if last.get(name) != value:
                ctx.set(sig, value)
                last[name] = value

        for t in range(stim.cycles):
            word = stim.prog.get(t)
            put("run", dut.run, 1 if run_mask is None else run_mask[t])
            put("clear", dut.clear, int(t in clear_at))
            put("issue", dut.issue, int(word is not None))
            put("instr", dut.instr, word or 0)
            put("e", dut.cur_e.as_value(), _pack(stim.east[t]))
            put("w", dut.cur_w.as_value(), _pack(stim.west[t]))
            wen = (ctx.get(dut.wen_e), ctx.get(dut.wen_w))
            data = (ctx.get(dut.wdata_e.as_value()), ctx.get(dut.wdata_w.as_value()))
            writes = {}
            for d in (0, 1):
                for s in range(S):
                    if wen[d] >> s & 1:
                        writes[(d, s)] = ((data[d] >> (s * V)) & ((1 << V) - 1)).to_bytes(
                            n, "little")
            trace.append({"writes": writes, "err": ctx.get(dut.err),
                          "active": bool(ctx.get(dut.active))})
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return trace


def result(trace: list[dict], t: int, operand: int, typ: str, streams: int | None = None):
    """The per-lane signed values written on group `operand` (type `typ`) in cycle t; checks
    that exactly the group's streams (or the first `streams` of them) are written then."""
    nb = {"i8": 1, "i16": 2, "i32": 4}[typ] if streams is None else streams
    d, s0 = operand >> 5, operand & 31
    writes = trace[t]["writes"]
    assert sorted(writes) == [(d, s0 + b) for b in range(nb)], \
        f"cycle {t}: writes {sorted(writes)}, expected {nb} streams from {(d, s0)}"
    n = len(writes[(d, s0)])
    bits = 8 * {"i8": 1, "i16": 2, "i32": 4}[typ]
    out = []
    for i in range(n):
        v = sum(writes[(d, s0 + b)][i] << (8 * b) for b in range(nb))
        out.append(v - (1 << bits) if v >> (bits - 1) else v)
    return out


def drive_cycle(cfg: TspConfig, t: int) -> int:
    """The cycle a VRUN issued at t drives its result (dfunc - 1 = A + 3)."""
    return t + cfg.vxm_alus + 3


def u32(v: int) -> int:
    return v & 0xFFFFFFFF


# ---- ALU operations, hand-computed (x, y, expected) with stage type ------------------------

ALU_CASES: dict[tuple[str, str], list[tuple[int, int, int]]] = {
    # ---- i8 -----------------------------------------------------------------------------
    ("PASS", "i8"): [(300, 0, 44), (-129, 0, 127), (128, 0, -128), (-1, 0, -1)],
    ("ADD", "i8"): [(100, 100, -56), (-128, -1, 127), (0, 0, 0), (261, 3, 8)],
    ("SUB", "i8"): [(-128, 1, 127), (5, 7, -2), (0, 0, 0), (127, -1, -128)],
    ("MUL", "i8"): [(16, 16, 0), (-128, -128, 0), (11, 12, -124), (-3, 7, -21)],
    ("MIN", "i8"): [(-128, 127, -128), (5, 5, 5), (300, 0, 0), (-1, 0, -1)],
    ("MAX", "i8"): [(-128, 127, 127), (0, 0, 0), (200, 0, 0), (-5, -6, -5)],
    ("AND", "i8"): [(0x0F, 0x3C, 12), (-1, -128, -128), (0x55, -86, 0), (240, 63, 48)],
    ("OR", "i8"): [(0x0F, 0x30, 63), (0, 0, 0), (64, -128, -64), (-1, 0, -1)],
    ("XOR", "i8"): [(0x0F, -1, -16), (5, 5, 0), (-128, 127, -1), (0x12, 0x34, 0x26)],
    ("NOT", "i8"): [(0, 9, -1), (-128, 9, 127), (127, 9, -128), (300, 9, -45)],
    ("SHL", "i8"): [(1, 7, -128), (3, 6, -64), (1, 8, 0), (-1, 33, -2)],
    ("SHRA", "i8"): [(-128, 1, -64), (-128, 7, -1), (-128, 8, -1), (100, 31, 0)],
    ("SHRL", "i8"): [(-128, 1, 64), (-1, 4, 15), (-1, 0, -1), (-2, 8, 0)],
    ("ADDS", "i8"): [(100, 100, 127), (-100, -100, -128), (-128, -1, -128), (3, 4, 7)],
    ("SUBS", "i8"): [(-128, 1, -128), (127, -1, 127), (0, -128, 127), (5, 7, -2)],
    ("NEG", "i8"): [(-128, 0, 127), (127, 0, -127), (0, 0, 0), (5, 0, -5)],
    ("ABS", "i8"): [(-128, 0, 127), (-127, 0, 127), (0, 0, 0), (100, 0, 100)],
    ("RELU", "i8"): [(-128, 0, 0), (0, 0, 0), (127, 0, 127), (200, 0, 0)],
    ("SAT", "i8"): [(300, 0, 127), (-300, 0, -128), (-128, 0, -128), (INT_MAX, 0, 127)],
    # ---- i16 ----------------------------------------------------------------------------
    ("PASS", "i16"): [(70000, 0, 4464), (32768, 0, -32768), (-32769, 0, 32767), (-1, 0, -1)],
    ("ADD", "i16"): [(30000, 30000, -5536), (-32768, -1, 32767), (0x10005, 3, 8),
                     (200, 100, 300)],
    ("SUB", "i16"): [(-32768, 1, 32767), (0, -32768, -32768), (1000, 3000, -2000), (0, 0, 0)],
    ("MUL", "i16"): [(256, 256, 0), (181, 181, 32761), (200, 200, -25536),
                     (-32768, -1, -32768)],
    ("MIN", "i16"): [(-32768, 32767, -32768), (40000, 0, -25536), (300, 200, 200),
                     (-1, -1, -1)],
    ("MAX", "i16"): [(-32768, 32767, 32767), (40000, 0, 0), (300, 200, 300), (0, 0, 0)],
    ("AND", "i16"): [(0x1234, 0x0FF0, 0x0230), (-1, -32768, -32768), (-256, 0x0FFF, 0x0F00),
                     (0, -1, 0)],
    ("OR", "i16"): [(0x1200, 0x0034, 0x1234), (-32768, 1, -32767), (0, 0, 0),
                    (0x00FF, 0x7F00, 32767)],
    ("XOR", "i16"): [(-1, 0x00FF, -256), (0x1234, 0x1234, 0), (0x7FFF, -1, -32768),
                     (0x0F0F, 0x00FF, 0x0FF0)],
    ("NOT", "i16"): [(0, 0, -1), (-32768, 0, 32767), (32767, 0, -32768), (0x12345, 0, -9030)],
    ("SHL", "i16"): [(1, 15, -32768), (3, 14, -16384), (1, 16, 0), (0x7F, 8, 32512)],
    ("SHRA", "i16"): [(-32768, 1, -16384), (-32768, 15, -1), (-32768, 16, -1), (32767, 14, 1)],
    ("SHRL", "i16"): [(-32768, 1, 16384), (-1, 8, 255), (-1, 0, -1), (-1, 16, 0)],
    ("ADDS", "i16"): [(30000, 30000, 32767), (-30000, -30000, -32768), (-32768, -1, -32768),
                      (200, 100, 300)],
    ("SUBS", "i16"): [(-32768, 1, -32768), (32767, -1, 32767), (0, -32768, 32767),
                      (1000, 3000, -2000)],
    ("NEG", "i16"): [(-32768, 0, 32767), (32767, 0, -32767), (0, 0, 0), (128, 0, -128)],
    ("ABS", "i16"): [(-32768, 0, 32767), (-32767, 0, 32767), (-128, 0, 128), (0, 0, 0)],
    ("RELU", "i16"): [(-32768, 0, 0), (-1, 0, 0), (32767, 0, 32767), (40000, 0, 0)],
    ("SAT", "i16"): [(70000, 0, 32767), (-70000, 0, -32768), (32767, 0, 32767),
                     (-200, 0, -200)],
    # ---- i32 ----------------------------------------------------------------------------
    ("PASS", "i32"): [(INT_MIN, 0, INT_MIN), (INT_MAX, 0, INT_MAX), (0, 0, 0), (-5, 0, -5)],
    ("ADD", "i32"): [(INT_MAX, 1, INT_MIN), (INT_MIN, -1, INT_MAX), (70000, 70000, 140000),
                     (0, 0, 0)],
    ("SUB", "i32"): [(INT_MIN, 1, INT_MAX), (0, INT_MIN, INT_MIN), (-5, 10, -15),
                     (INT_MAX, -1, INT_MIN)],
    ("MUL", "i32"): [(65536, 65536, 0), (65535, 65537, -1), (-46341, 46341, 2147479015),
                     (INT_MIN, -1, INT_MIN)],
    ("MIN", "i32"): [(INT_MIN, INT_MAX, INT_MIN), (INT_MAX, -1, -1), (7, 7, 7),
                     (-100000, 99999, -100000)],
    ("MAX", "i32"): [(INT_MIN, INT_MAX, INT_MAX), (INT_MAX, INT_MIN, INT_MAX), (-1, 0, 0),
                     (0, 0, 0)],
    ("AND", "i32"): [(0x12345678, 0x0F0F0F0F, 0x02040608), (-1, INT_MIN, INT_MIN),
                     (0xF0F0F0F0, 0xFF00FF00, 0xF000F000), (0, -1, 0)],
    ("OR", "i32"): [(0x12340000, 0x00005678, 0x12345678), (INT_MIN, 1, INT_MIN + 1), (0, 0, 0),
                    (0x7FFF0000, 0x0000FFFF, INT_MAX)],
    ("XOR", "i32"): [(-1, 0x0000FFFF, 0xFFFF0000), (5, 5, 0), (INT_MIN, INT_MAX, -1),
                     (0x0F0F0F0F, 0x00FF00FF, 0x0FF00FF0)],
    ("NOT", "i32"): [(0, 0, -1), (INT_MIN, 0, INT_MAX), (-1, 0, 0), (0x0F0F0F0F, 0, 0xF0F0F0F0)],
    ("SHL", "i32"): [(1, 31, INT_MIN), (3, 31, INT_MIN), (1, 32, 1),
                     (0x12345678, 4, 0x23456780)],
    ("SHRA", "i32"): [(INT_MIN, 31, -1), (INT_MIN, 1, -(1 << 30)), (INT_MAX, 30, 1),
                      (-1, 63, -1)],
    ("SHRL", "i32"): [(INT_MIN, 31, 1), (-1, 1, INT_MAX), (-1, 0, -1),
                      (0x80000000, 4, 0x08000000)],
    ("ADDS", "i32"): [(INT_MAX, 1, INT_MAX), (INT_MIN, -1, INT_MIN), (INT_MAX, INT_MAX, INT_MAX),
                      (-5, 3, -2)],
    ("SUBS", "i32"): [(INT_MIN, 1, INT_MIN), (0, INT_MIN, INT_MAX), (INT_MAX, -1, INT_MAX),
                      (-5, 3, -8)],
    ("NEG", "i32"): [(INT_MIN, 0, INT_MAX), (INT_MAX, 0, INT_MIN + 1), (0, 0, 0), (-7, 0, 7)],
    ("ABS", "i32"): [(INT_MIN, 0, INT_MAX), (-INT_MAX, 0, INT_MAX), (-1, 0, 1), (0, 0, 0)],
    ("RELU", "i32"): [(INT_MIN, 0, 0), (INT_MAX, 0, INT_MAX), (-1, 0, 0), (0, 0, 0)],
    ("SAT", "i32"): [(INT_MIN, 0, INT_MIN), (INT_MAX, 0, INT_MAX), (0, 0, 0), (-1, 0, -1)],
    # ---- int32 whatever the type (docs/vxm.md section 3) ---------------------------------
    # SRDHM: p = x*y; (p + nudge) / 2^31 truncated toward zero; nudge 2^30 or 1 - 2^30.
    ("SRDHM", "i32"): [(INT_MIN, INT_MIN, INT_MAX),          # the one saturating case
                       (1 << 30, 1, 1),                       # +0.5 -> (2^30+2^30)/2^31 = 1
                       (-(1 << 30), 1, 0),                    # -0.5 -> (1-2^31)/2^31 -> 0
                       (INT_MIN, INT_MAX, INT_MIN + 1)],      # -2^31 + 1 - 0.4999.. -> trunc
    ("SRDHM", "i8"): [(1000, 1 << 30, 500),                   # 500.5 -> 500; not wrapped
                      (3, 1 << 30, 2),                        # +1.5 -> 2
                      (-3, 1 << 30, -1),                      # -1.5: (-2^32+1)/2^31 -> -1
                      (-(1 << 30) - 1, 1, -1)],               # -2^31/2^31 = -1 exactly
    ("SRDHM", "i16"): [(-1, 1, 0), (0, INT_MIN, 0), (INT_MAX, INT_MAX, INT_MAX - 1),
                       (INT_MIN, 1 << 30, -(1 << 30))],
    # RDIVPOT: x / 2^(y & 31) rounded to nearest, ties away from zero.
    ("RDIVPOT", "i32"): [(5, 1, 3), (-5, 1, -3), (-6, 2, -2), (6, 2, 2)],
    ("RDIVPOT", "i16"): [(7, 0, 7), (-1, 31, 0), (INT_MAX, 1, 1 << 30), (INT_MIN, 31, -1)],
    ("RDIVPOT", "i8"): [(1000, 1, 500), (5, 33, 3), (-7, 2, -2), (-10, 2, -3)],
}


def _alu_table_stim(cfg: TspConfig, stage: int, cases) -> tuple[Stim, list]:
    """One VCFG + one VRUN (a = x on E0 i32, b = y on W0 i32, result r2 on E0 i32) per case
    group of n lanes; returns the stimulus and [(drive cycle, label, expected, operands)].

    VRUN i issues at u = base + 2i; stage k sees it in u + 1 + k, so its VCFG must issue in
    (u - 2 + k, u + k]: the even cycle of {u - 1 + k, u + k} (VRUNs take the odd ones)."""
    n = cfg.vec_bytes
    plan = []
    for (op, typ), rows in cases:
        for i in range(0, len(rows), n):
            chunk = rows[i:i + n]
            chunk = chunk + [chunk[-1]] * (n - len(chunk))
            plan.append((op, typ, chunk))
    base = stage + 1 + stage % 2                # the first odd cycle >= stage + 1
    stim = Stim(cfg, base + 2 * len(plan) + cfg.vxm_alus + 6)
    checks = []
    for i, (op, typ, chunk) in enumerate(plan):
        u = base + 2 * i
        tc = u + stage if (u + stage) % 2 == 0 else u - 1 + stage
        stim.at(tc, VCFG(stage, op, typ, "r2", "r0", "r1"))
        stim.at(u, VRUN(E(0), "i32", W(0), "i32", E(0), "i32"))
        stim.group(u, E(0), "i32", [c[0] for c in chunk])
        stim.group(u, W(0), "i32", [c[1] for c in chunk])
        checks.append((drive_cycle(cfg, u), f"{op} {typ} stage {stage}",
                       [c[2] for c in chunk], [c[:2] for c in chunk]))
    return stim, checks


def _check_alu(cfg: TspConfig, stage: int, cases) -> None:
    stim, checks = _alu_table_stim(cfg, stage, cases)
    trace = run_rtl(stim)
    bad = []
    for tc, label, want, operands in checks:
        got = result(trace, tc, E(0), "i32")
        if [u32(v) for v in got] != [u32(v) for v in want]:
            bad.append(f"{label}: operands {operands}: got {got}, expected "
                       f"{[v - (1 << 32) if v >> 31 else v for v in map(u32, want)]}")
    assert not bad, "\n".join(bad)
    # RANGE (docs/vxm.md section 3): a shift whose y is outside 0..31 in some lane, in the
    # cycle the stage acts: u + 1 + stage for the VRUN at u = drive cycle - (A + 3)
    want_err = {tc - (cfg.vxm_alus + 3) + 1 + stage: RANGE
                for tc, label, _, operands in checks
                if label.split()[0] in SHIFTS and any(not 0 <= y <= 31 for _, y in operands)}
    if cfg.vxm_stages[stage] == "S":
        assert len(want_err) == 4, "the S cases hold four out-of-range shifts (33, 32, 63, 33)"
    assert {t: c["err"] for t, c in enumerate(trace) if c["err"]} == want_err


def _cases_of(kind: str) -> list:
    return [(k, v) for k, v in ALU_CASES.items() if spec.ALU_BY_NAME[k[0]].runs_on(kind)]


def test_alu_case_table_covers_every_op_and_kind():
    ops = {op for op, _ in ALU_CASES}
    assert ops == set(spec.ALU_BY_NAME)
    for kind in "GMS":
        assert {key[0] for key, _ in _cases_of(kind)} == \
            {o.name for o in spec.ALU_OPS if o.runs_on(kind)}


@pytest.mark.parametrize("stage", [0, 1, 2, 3], ids=["G0", "M1", "S2", "G3"])
def test_alu_ops_on_their_stage_kind(stage):
    """Every operation, at every type, on the stages of GMSG whose kind runs it (PASS on all)."""
    _check_alu(TINY, stage, _cases_of(TINY.vxm_stages[stage]))


def test_alu_ops_other_stage_order():
    """The same operations on another stage string (MS: multiplier first, shifter last)."""
    cfg = TINY.replace(vxm_stages="MS")
    _check_alu(cfg, 0, _cases_of("M"))
    _check_alu(cfg, 1, _cases_of("S"))


# ---- requantisation (docs/vxm.md section 3) -------------------------------------------------

def test_requantisation_chain_per_tensor():
    """The section 3 program (GMSG) with bias 8, m = 0x60000001 (M0 ~ 0.75), s = 3, z = -5:
    out = sat_8(ADDS(RDIVPOT(SRDHM(acc + 8, m), 3), -5)); the inputs are acc + 8 below.
    By hand: SRDHM(1000, m) = 750 (750.5 + 5e-7
    truncated), /8 = 93.75 -> 94, - 5 = 89; -1000 -> -750 -> -94 -> -99; 100000 -> 75000 ->
    9375 -> 9370 -> 127; -3 -> -2 (-2.75 + 1e-9 truncated) -> RDIVPOT(-2, 3) = 0 -> -5;
    -100000 -> -128; 0 -> -5; 12 -> 9 -> 1.125 -> 1 -> -4; 20 -> 15 -> 1.875 -> 2 -> -3."""
    cfg = TINY
    stim = Stim(cfg, 24)
    prog = [VCONST(0, 0x0001), VCONSTH(0, 0x6000), VCONST(1, 3), VCONST(2, -5),
            VCONST(3, 8),
            VCFG(0, "ADD", "i32", "r0", "r0", "c3"),
            VCFG(1, "SRDHM", "i32", "r2", "r0", "c0"),
            VCFG(2, "RDIVPOT", "i32", "r2", "r2", "c1"),
            VCFG(3, "ADDS", "i32", "r2", "r2", "c2")]
    for t, w in enumerate(prog):
        stim.at(t, w)
    stim.at(10, VRUN(W(0), "i32", E(0), "none", E(0), "i8", sat=1))
    stim.group(10, W(0), "i32", [992, -1008, 99992, -11])
    stim.group(10, E(0), "i32", [77, 77, 77, 77])           # ignored: tb = none
    stim.at(11, VRUN(W(0), "i32", E(0), "none", E(0), "i8", sat=1))
    stim.group(11, W(0), "i32", [-100008, -8, 4, 12])
    tr = run_rtl(stim)
    assert result(tr, drive_cycle(cfg, 10), E(0), "i8") == [89, -99, 127, -5]
    assert result(tr, drive_cycle(cfg, 11), E(0), "i8") == [-128, -5, -4, -3]
    assert all(c["err"] == 0 for c in tr)


def test_constants_vconst_vconsth_vloadc():
    """VCONST sign-extends its 20-bit imm; VCONSTH replaces bits 31:16 and keeps 15:0;
    VLOADC loads per lane, sign-extended from i8/i16/i32 groups, in effect from t + 1."""
    cfg = TINY
    stim = Stim(cfg, 40)
    stim.at(0, VCONST(0, -1)).at(1, VCONSTH(1, 0x1234)).at(2, VCONST(2, 0x7FFFF))
    stim.at(3, VCONST(3, -2)).at(4, VCONSTH(3, 0x1234))
    reads = []                 # (VRUN cycle, expected c lanes)
    t = 5
    for c, want in enumerate([[-1] * 4, [0x12340000] * 4, [524287] * 4, [0x1234FFFE] * 4]):
        stim.at(t, VCFG(0, "ADD", "i32", "r2", "r1", f"c{c}"))   # r1 = 0 (tb = none)
        stim.at(t + 1, VRUN(E(0), "i8", E(0), "none", E(0), "i32"))
        reads.append((t + 1, want))
        t += 2
    # per-lane loads: i32 into c0, i8 into c1, i16 into c2
    stim.at(t, VLOADC(0, E(0), "i32")).group(t, E(0), "i32", [INT_MIN, -2, 7, 0x01020304])
    stim.at(t + 1, VLOADC(1, W(1), "i8")).group(t + 1, W(1), "i8", [0x80, 0x7F, 0xFF, 0x01])
    stim.at(t + 2, VLOADC(2, E(2), "i16")).group(t + 2, E(2), "i16",
                                                 [0x8000, 0x7FFF, 0xFFFE, 0x0100])
    t += 3
    for c, want in enumerate([[INT_MIN, -2, 7, 0x01020304], [-128, 127, -1, 1],
                              [-32768, 32767, -2, 256]]):
        stim.at(t, VCFG(0, "ADD", "i32", "r2", "r1", f"c{c}"))
        stim.at(t + 1, VRUN(E(0), "i8", E(0), "none", E(0), "i32"))
        reads.append((t + 1, want))
        t += 2
    # timing: a VLOADC at t applies to stage 0 from t + 1 (a VRUN at t - 1 sees the old c2)
    stim.at(t, VRUN(E(0), "i8", E(0), "none", E(0), "i32"))          # stage 0 at t + 1
    reads.append((t, [-32768, 32767, -2, 256]))
    stim.at(t + 1, VLOADC(2, W(0), "i8")).group(t + 1, W(0), "i8", [1, 2, 3, 4])
    stim.at(t + 2, VRUN(E(0), "i8", E(0), "none", E(0), "i32"))
    reads.append((t + 2, [1, 2, 3, 4]))
    tr = run_rtl(stim)
    for tv, want in reads:
        assert [u32(v) for v in result(tr, drive_cycle(cfg, tv), E(0), "i32")] == \
            [u32(v) for v in want], f"VRUN at {tv}"
    assert all(c["err"] == 0 for c in tr)


def test_requantisation_per_channel():
    """Per-channel parameters with VLOADC: acc = 1000 in every lane, m = 0.5, 0.75, 0.25,
    0.875 (Q31), s = 0..3 (i8), z = 10, -10, 300, -300 (i16); ADDS, saturated to i16. By hand:
    500/1 + 10 = 510; 750/2 = 375 - 10 = 365; 250/4 = 62.5 -> 63 + 300 = 363;
    875/8 = 109.375 -> 109 - 300 = -191."""
    cfg = TINY
    stim = Stim(cfg, 20)
    stim.at(0, VLOADC(0, E(0), "i32")).group(0, E(0), "i32",
                                             [1 << 30, 0x60000000, 1 << 29, 0x70000000])
    stim.at(1, VLOADC(1, E(3), "i8")).group(1, E(3), "i8", [0, 1, 2, 3])
    stim.at(2, VLOADC(2, W(2), "i16")).group(2, W(2), "i16", [10, -10, 300, -300])
    stim.at(3, VCFG(1, "SRDHM", "i32", "r2", "r0", "c0"))
    stim.at(4, VCFG(2, "RDIVPOT", "i32", "r2", "r2", "c1"))
    stim.at(5, VCFG(3, "ADDS", "i32", "r2", "r2", "c2"))
    stim.at(7, VRUN(E(0), "i32", E(0), "none", W(2), "i16", sat=1))
    stim.group(7, E(0), "i32", [1000] * 4)
    tr = run_rtl(stim)
    assert result(tr, drive_cycle(cfg, 7), W(2), "i16") == [510, 365, 363, -191]


# ---- the function stage (docs/vxm.md section 4) ---------------------------------------------

def _round_half_up(v: float) -> int:
    return math.floor(v + 0.5)


def exp_expected(x: int) -> int:
    """EXP by the section 4 rule: y = EXP_TABLE[-x] for -4096 < x <= 0, with EXP_TABLE[i] =
    round(exp(-i/256) * 2^15); 32768 for x > 0; 0 for x <= -4096."""
    if x > 0:
        return 32768
    if x <= -4096:
        return 0
    return _round_half_up(math.exp(x / 256) * 32768)


def tanh_expected(x: int) -> int:
    a = min(abs(x), 2047)
    v = min(_round_half_up(math.tanh(a / 256) * 32768), 32767)
    return -v if x < 0 else v


# RSQRT points with e / e2 / j / shift worked out by hand: (x, j, 15 - e2/2)
RSQRT_POINTS = [(1, 256, 15), (2, 512, 15), (3, 768, 15), (4, 256, 14), (300, 300, 11),
                (1000, 1000, 11), (1024, 256, 10), (INT_MAX, 511, 0), (1 << 30, 256, 0),
                (0x3FFFFFFF, 1023, 1), (255, 1020, 12), (511, 511, 11)]


def test_functions_exp_tanh_rsqrt():
    cfg = TINY
    exp_x = [0, 5, -1, -256, -100, -4095, -4096, INT_MIN, -2048, INT_MAX, -700, -3000]
    tanh_x = [0, 256, -256, 5000, INT_MIN, 1, -1, 2047, -2048, 100, -600, INT_MAX]
    rs = RSQRT_POINTS
    rsqrt_x = [p[0] for p in rs] + [0, -1, INT_MIN, -12345]
    rsqrt_y = [_round_half_up(2 ** 19 / math.sqrt(j)) << sh for _, j, sh in rs] + [INT_MAX] * 4
    assert rsqrt_y[0] == 1 << 30 and rsqrt_y[3] == 1 << 29 and rsqrt_y[8] == 1 << 15
    entries = ([("EXP", x, exp_expected(x)) for x in exp_x]
               + [("TANH", x, tanh_expected(x)) for x in tanh_x]
               + list(zip(["RSQRT"] * len(rsqrt_x), rsqrt_x, rsqrt_y, strict=True)))
    n, A = cfg.vec_bytes, cfg.vxm_alus
    groups = [entries[i:i + n] for i in range(0, len(entries), n)]
    assert all(len({g[0] for g in grp}) == 1 for grp in groups)
    # VRUN i at u = 1 + 2i; its function stage reads the configuration in effect in u + A + 1,
    # i.e. the last VFUNC issued <= u + A: issue it at u + A - 1 (even cycles).
    stim = Stim(cfg, 2 * len(groups) + 2 * A + 8)
    checks = []
    for i, grp in enumerate(groups):
        u = 1 + 2 * i
        stim.at(u + A - 1, VFUNC(grp[0][0], "r2", "r1"))        # f of b, into r2
        stim.at(u, VRUN(E(0), "i32", W(0), "i32", E(0), "i32"))
        stim.group(u, E(0), "i32", [7] * n).group(u, W(0), "i32", [e[1] for e in grp])
        checks.append((u, grp))
    tr = run_rtl(stim)
    bad = []
    for u, grp in checks:
        got = result(tr, drive_cycle(cfg, u), E(0), "i32")
        want = [e[2] for e in grp]
        if [u32(v) for v in got] != [u32(v) for v in want]:
            bad.append(f"{grp[0][0]} of {[e[1] for e in grp]}: got {got}, expected {want}")
    assert not bad, "\n".join(bad)


def test_function_stage_registers():
    """VFUNC dst/x: f(r0) into r2; f into r0 leaves r2 (the output) unchanged; OFF passes.
    A VRUN at u uses the function configuration of the last VFUNC issued <= u + A."""
    cfg = TINY                                                 # A = 4
    stim = Stim(cfg, 30)
    a, b = [-256, 0, -4096, 3], [1, 1, 1, 1]
    stim.at(0, VCFG(0, "ADD", "i32", "r2", "r0", "r1"))        # r2 = a + b
    stim.at(1, VFUNC("EXP", "r2", "r0"))                       # r2 = EXP(r0 = a)
    stim.at(2, VRUN(E(0), "i32", W(0), "i32", E(0), "i32"))    # function stage at 7
    stim.at(7, VFUNC("TANH", "r0", "r2"))                      # into r0: r2 unchanged
    stim.at(10, VRUN(E(0), "i32", W(0), "i32", E(0), "i32"))   # function stage at 15
    stim.at(15, VFUNC("OFF", "r2", "r0"))
    stim.at(16, VRUN(E(0), "i32", W(0), "i32", E(0), "i32"))
    for t in (2, 10, 16):
        stim.group(t, E(0), "i32", a).group(t, W(0), "i32", b)
    tr = run_rtl(stim)
    assert result(tr, drive_cycle(cfg, 2), E(0), "i32") == \
        [exp_expected(-256), 32768, 0, 32768]
    assert result(tr, drive_cycle(cfg, 10), E(0), "i32") == [-255, 1, -4095, 4]
    assert result(tr, drive_cycle(cfg, 16), E(0), "i32") == [-255, 1, -4095, 4]


# ---- timing --------------------------------------------------------------------------------

@pytest.mark.parametrize("stages", ["G", "S", "GMSG", "GGMSSG"])
def test_output_cycle_and_active(stages):
    """A VRUN at t drives its result in t + A + 3 only (in the stream register at t + A + 4 =
    t + dfunc); `active` is high in t+1 .. t+A+3 and low otherwise."""
    cfg = TINY.replace(vxm_stages=stages)
    alus = len(stages)
    t0 = 2
    stim = Stim(cfg, t0 + alus + 8)
    stim.at(t0, VRUN(W(0), "i16", E(0), "none", W(1), "i16"))
    stim.group(t0, W(0), "i16", [1, -2, 300, -32768])
    tr = run_rtl(stim)
    drive = t0 + alus + 3
    assert [t for t, c in enumerate(tr) if c["writes"]] == [drive]
    assert result(tr, drive, W(1), "i16") == [1, -2, 300, -32768]
    assert [t for t, c in enumerate(tr) if c["active"]] == list(range(t0 + 1, drive + 1))
    assert all(c["err"] == 0 for c in tr)


def test_reconfiguration_between_back_to_back_vectors():
    """"In effect in cycle u" = issued at <= u - 1 (docs/vxm.md section 5), for VCFG, VCONST
    and VFUNC, with vectors one cycle apart (A = 4; stage k of a VRUN at t acts in t+1+k; its
    function stage reads its configuration in t+A+1). Stages SGGG (SHL needs a shifter)."""
    cfg = TINY.replace(vxm_stages="SGGG")
    stim = Stim(cfg, 32)
    runs = {}

    def vrun(t, a, b):
        stim.at(t, VRUN(E(0), "i32", W(0), "i32", E(0), "i32"))
        stim.group(t, E(0), "i32", a).group(t, W(0), "i32", b)
        runs[t] = (a, b)

    vrun(0, [10, 20, 30, 40], [1, 2, 3, 4])          # stage 1 in cycle 2: VCFG 1 not yet
    vrun(1, [100, 200, 300, 400], [5, 6, 7, 8])      # stage 1 in cycle 3: VCFG 1 applies
    stim.at(2, VCFG(1, "ADD", "i32", "r2", "r2", "r1"))
    vrun(3, [1, 2, 3, 4], [1, 1, 1, 1])              # stage 0 in cycle 4: VCFG 0 not yet
    stim.at(4, VCFG(0, "SHL", "i32", "r2", "r0", "r1"))
    vrun(5, [1, 2, 3, 4], [1, 1, 1, 1])              # stage 0 in cycle 6: SHL applies
    stim.at(6, VCONST(0, 1000))
    stim.at(7, VCFG(3, "ADD", "i32", "r2", "r2", "c0"))   # stage 3 from cycle 8 on
    vrun(8, [0, 0, 0, 0], [0, 0, 0, 0])              # stage 3 in cycle 12: c0 = 1000
    vrun(9, [0, 0, 0, 0], [0, 0, 0, 0])              # stage 3 in cycle 13: c0 = 2000
    stim.at(12, VCONST(0, 2000))
    big = [-2000 + 1, -2000 + 4, -2000 + 16, -2000 + 1024]
    vrun(13, big, [0, 0, 0, 0])                      # function stage in 18: OFF
    vrun(14, big, [0, 0, 0, 0])                      # function stage in 19: RSQRT
    stim.at(18, VFUNC("RSQRT", "r2", "r2"))
    tr = run_rtl(stim)
    want = {0: [10, 20, 30, 40],                     # all stages PASS
            1: [105, 206, 307, 408],                 # + b at stage 1
            3: [2, 3, 4, 5],                         # + b; stage 3 in cycle 7: VCFG 3 not yet
            5: [1003, 1005, 1007, 1009],             # (a << 1) + b + c0 (stage 3 in cycle 9)
            8: [1000] * 4, 9: [2000] * 4,
            13: [1, 4, 16, 1024],
            14: [1 << 30, 1 << 29, 1 << 28, 1 << 25]}   # 2^30 / sqrt(x)
    for t, exp in want.items():
        assert result(tr, drive_cycle(cfg, t), E(0), "i32") == exp, f"VRUN at cycle {t}"
    assert all(c["err"] == 0 for c in tr)


# ---- operand and result groups --------------------------------------------------------------

def test_groups_sg2_sg4_and_stream_edge():
    """Operands of i8/i16/i32 (1/2/4 streams, byte b on stream s+b), tb = none, results on
    streams d.., bytes past the last stream read 0 and are not written (8 lanes, 8 streams)."""
    cfg = EIGHT
    stim = Stim(cfg, 24)
    stim.at(0, VCFG(0, "ADD", "i32", "r2", "r0", "r1"))
    # a: i16 on E2,E3; b: i8 on W5; result i16 on W2,W3 (-32769 wraps to 32767)
    stim.at(1, VRUN(E(2), "i16", W(5), "i8", W(2), "i16"))
    stim.group(1, E(2), "i16", [1000, -1000, 32767, -32768, 0, 1, -1, 256])
    stim.group(1, W(5), "i8", [1, 2, -1, -1, -128, 127, 0, 5])
    # a: i32 group at W6 runs past the last stream (W6, W7 only): lanes are 16-bit values,
    # not sign-extended from bit 15; result i32 on E4..E7
    stim.at(2, VRUN(W(6), "i32", E(0), "none", E(4), "i32"))
    stim.group(2, W(6), "i32", [0xFFFF, 0x8000, 0x1234, 0, 1, 0x7FFF, 0xFFFE, 0x00FF])
    stim.group(2, E(0), "i8", [9] * 8)                      # ignored (tb = none)
    # the same written at E6: only E6, E7 (bytes 0, 1) are written
    stim.at(3, VRUN(W(6), "i32", E(0), "none", E(6), "i32"))
    stim.group(3, W(6), "i32", [0xFFFF, 0x8000, 0x1234, 0, 1, 0x7FFF, 0xFFFE, 0x00FF])
    # a: i8 on E7 (sign-extended), b: i32 on E0..E3; result i32 on W0..W3
    stim.at(4, VRUN(E(7), "i8", E(0), "i32", W(0), "i32"))
    stim.group(4, E(7), "i8", [-128, 127, -1, 0, 1, 2, 3, 4])
    stim.group(4, E(0), "i32", [INT_MAX, 1 << 20, 1, 0, -1, -(1 << 24), 100, 0x01000000])
    # result i8 on E7
    stim.at(5, VRUN(E(7), "i8", E(0), "none", E(7), "i8"))
    stim.group(5, E(7), "i8", [-128, 127, -1, 0, 1, 2, 3, 4])
    tr = run_rtl(stim)
    assert result(tr, drive_cycle(cfg, 1), W(2), "i16") == \
        [1001, -998, 32766, 32767, -128, 128, -1, 261]
    assert result(tr, drive_cycle(cfg, 2), E(4), "i32") == \
        [65535, 32768, 0x1234, 0, 1, 0x7FFF, 65534, 255]
    assert result(tr, drive_cycle(cfg, 3), E(6), "i16", streams=2) == \
        [-1, -32768, 0x1234, 0, 1, 0x7FFF, -2, 255]
    assert result(tr, drive_cycle(cfg, 4), W(0), "i32") == \
        [INT_MAX - 128, (1 << 20) + 127, 0, 0, 0, -(1 << 24) + 2, 103, 0x01000004]
    assert result(tr, drive_cycle(cfg, 5), E(7), "i8") == [-128, 127, -1, 0, 1, 2, 3, 4]


# ---- result conversion: VRUN sat ----------------------------------------------------------

SAT_IN = {"i8": [127, 128, -128, -129, 300, -300, INT_MAX, INT_MIN],
          "i16": [32767, 32768, -32768, -32769, 70000, -70000, INT_MAX, INT_MIN],
          "i32": [INT_MAX, INT_MIN, 0, -1, 1 << 30, -(1 << 30), 128, -32769]}
# sat = 0: the low bits, sign-extended (300 = 0x12C -> 0x2C; -300 = ..FED4 -> 0xD4 = -44;
# 70000 - 65536 = 4464); sat = 1: clamped to the type's range
SAT_OUT = {("i8", 0): [127, -128, -128, 127, 44, -44, -1, 0],
           ("i8", 1): [127, 127, -128, -128, 127, -128, 127, -128],
           ("i16", 0): [32767, -32768, -32768, 32767, 4464, -4464, -1, 0],
           ("i16", 1): [32767, 32767, -32768, -32768, 32767, -32768, 32767, -32768],
           ("i32", 0): SAT_IN["i32"], ("i32", 1): SAT_IN["i32"]}


def test_result_conversion_wrap_and_saturate():
    """r2 (i32 operand passed through every stage) converted to td: sat = 0 wraps, sat = 1
    saturates, at the i8 / i16 / i32 bounds; also after the function stage (RSQRT(1) = 2^30
    saturated to i16 is 32767, wrapped is 0)."""
    cfg = EIGHT
    stim = Stim(cfg, 30)
    t = 1
    checks = []
    assert cfg.vxm_alus == 4
    for typ in ("i8", "i16", "i32"):
        for sat in (0, 1):
            stim.at(t, VRUN(W(4), "i32", E(0), "none", E(4), typ, sat=sat))
            stim.group(t, W(4), "i32", SAT_IN[typ])
            checks.append((t, typ, SAT_OUT[(typ, sat)]))
            t += 1
    # the function stage of a VRUN at u reads the configuration in effect in u + A + 1: the
    # VFUNC at 12 (in effect from 13) applies to the VRUNs at 13 and 14, not to those above
    stim.at(12, VFUNC("RSQRT", "r2", "r2"))
    t = 12
    for sat, want in ((0, 0), (1, 32767)):
        t += 1
        stim.at(t, VRUN(W(4), "i32", E(0), "none", W(0), "i16", sat=sat))
        stim.group(t, W(4), "i32", [1] * 8)
        checks.append((t, "i16", [want] * 8))
    tr = run_rtl(stim)
    for tv, typ, want in checks:
        d = W(0) if tv > 12 else E(4)
        assert result(tr, drive_cycle(cfg, tv), d, typ) == want, f"VRUN at {tv} ({typ})"
    assert all(c["err"] == 0 for c in tr)


# ---- illegal configurations ----------------------------------------------------------------

def _raw(name: str, **fields: int) -> int:
    """An instruction word with field values the encoder accepts (any value of the width)."""
    return encode(name, **fields)


def test_illegal_configurations_raise_and_change_nothing():
    """Each illegal instruction raises ILLEGAL in its issue cycle only and changes nothing:
    afterwards the pipeline still computes r2 = (a + b) + c0 with c0 = 5 and the function
    stage OFF; illegal VRUNs produce nothing."""
    cfg = TINY
    ops = spec.ALU_BY_NAME
    illegal = [
        _raw("VCFG", k=4, op=ops["SUB"].code, type=2, dst=2, x=0, y=1),      # k >= A
        _raw("VCFG", k=7, op=ops["SUB"].code, type=2, dst=2, x=0, y=1),
        _raw("VCFG", k=0, op=21, type=2, dst=2, x=0, y=1),                   # no such op
        _raw("VCFG", k=0, op=31, type=2, dst=2, x=0, y=1),
        # an operation the stage's kind cannot run (stages G M S G)
        _raw("VCFG", k=0, op=ops["MUL"].code, type=2, dst=2, x=0, y=1),      # G: no multiplier
        _raw("VCFG", k=3, op=ops["SRDHM"].code, type=2, dst=2, x=0, y=1),
        _raw("VCFG", k=0, op=ops["SHL"].code, type=2, dst=2, x=0, y=1),      # G: no shifter
        _raw("VCFG", k=3, op=ops["RDIVPOT"].code, type=2, dst=2, x=0, y=1),
        _raw("VCFG", k=1, op=ops["ADD"].code, type=2, dst=2, x=0, y=1),      # M: no adder
        _raw("VCFG", k=1, op=ops["SHRA"].code, type=2, dst=2, x=0, y=1),     # M: no shifter
        _raw("VCFG", k=2, op=ops["MUL"].code, type=2, dst=2, x=0, y=1),      # S: no multiplier
        _raw("VCFG", k=2, op=ops["SAT"].code, type=0, dst=2, x=0, y=1),      # S: no saturation
        _raw("VCFG", k=2, op=ops["MAX"].code, type=2, dst=2, x=0, y=1),
        _raw("VCFG", k=0, op=ops["SUB"].code, type=3, dst=2, x=0, y=1),      # type 3
        _raw("VCFG", k=0, op=ops["SUB"].code, type=2, dst=3, x=0, y=1),      # dst 3
        _raw("VCFG", k=0, op=ops["SUB"].code, type=2, dst=2, x=3, y=1),      # x 3
        _raw("VCFG", k=1, op=ops["NEG"].code, type=0, dst=2, x=3, y=7),
        _raw("VFUNC", fn=FNS["EXP"], dst=3, x=2),
        _raw("VFUNC", fn=FNS["EXP"], dst=2, x=3),
        _raw("VLOADC", c=0, s=E(0), t=3),
        _raw("VRUN", a=E(0), ta=3, b=W(0), tb=2, d=E(0), td=2, sat=0),
        _raw("VRUN", a=E(0), ta=2, b=W(0), tb=2, d=E(0), td=3, sat=1),
    ]
    setup = [VCONST(0, 5), VCFG(0, "ADD", "i32", "r2", "r0", "r1"),
             VCFG(3, "ADD", "i32", "r2", "r2", "c0")]
    stim = Stim(cfg, len(setup) + len(illegal) + 20)
    t = 0
    for w in setup:
        stim.at(t, w)
        t += 1
    first_bad = t
    for w in illegal:
        stim.at(t, w)
        stim.group(t, E(0), "i32", [99, 98, 97, 96]).group(t, W(0), "i32", [9, 9, 9, 9])
        t += 1
    last_bad = t - 1
    stim.at(t, VRUN(E(0), "i32", W(0), "i32", E(0), "i32"))
    stim.group(t, E(0), "i32", [10, -20, 300, 0]).group(t, W(0), "i32", [1, 2, 3, 4])
    tr = run_rtl(stim)
    errs = [c["err"] for c in tr]
    assert errs == [0] * first_bad + [ILLEGAL] * len(illegal) + [0] * (len(errs) - t)
    assert result(tr, drive_cycle(cfg, t), E(0), "i32") == [16, -13, 308, 9]
    # the illegal VRUNs (the last two illegal words) never drive anything
    assert [c for c, x in enumerate(tr) if x["writes"]] == [drive_cycle(cfg, t)]
    assert not any(tr[c]["active"] for c in range(first_bad, last_bad + 2))


# ---- RANGE: shift amounts outside 0..31 (docs/vxm.md section 3) -----------------------------

def test_range_flag_cycle_and_result():
    """An S stage running SHL/SHRA/SHRL/RDIVPOT raises RANGE in the cycle it acts (t + 1 + k:
    stage 2 of GMSG, so t + 3) when y, in any lane, is outside 0..31; the result still uses
    y & 31. By hand (i32 unless said): SHRL by c1 = 40 -> by 8: 0x1234 -> 0x12, -256 =
    0xFFFFFF00 -> 0x00FFFFFF, 0x10000 -> 0x100; RDIVPOT by c3 = 31 (in range): 0x1234 -> 0,
    -256 -> 0, 2^30 -> 0.5 -> 1 (ties away), INT_MIN -> -1; SHL at i8 by c2 = -1 -> by 31:
    every byte shifted out -> 0; PASS with y = c1 and ADD (G stage 3) with y = c1 = 40 take
    no shift: no flag; SHRA of -64 by r1 (b): [0, 31, 6, 5] in range -> -64, -1, -1, -2;
    [0, 31, -1, 5] (-1 -> 31) -> flag, same result; [32, 1, 2, 3] (32 -> 0) -> flag,
    -64, -32, -16, -8."""
    cfg = TINY
    stim = Stim(cfg, 34)
    stim.at(0, VCONST(1, 40)).at(1, VCONST(2, -1)).at(2, VCONST(3, 31))
    stim.at(3, VCFG(3, "ADD", "i32", "r1", "r1", "c1"))        # G stage: y = 40 is no shift
    stim.at(4, VCFG(2, "SHRL", "i32", "r2", "r0", "c1"))
    runs = []                                                   # (VRUN cycle, expected)

    def vrun(t, a, b=None, want=None):
        stim.at(t, VRUN(E(0), "i32", W(0), "none" if b is None else "i32", E(0), "i32"))
        stim.group(t, E(0), "i32", a)
        if b is not None:
            stim.group(t, W(0), "i32", b)
        runs.append((t, want))

    vrun(5, [0x1234, -256, 0x10000, 0], want=[0x12, 0xFFFFFF, 0x100, 0])       # RANGE at 8
    stim.at(8, VCFG(2, "RDIVPOT", "i32", "r2", "r0", "c3"))     # in effect from 9
    vrun(9, [0x1234, -256, 1 << 30, INT_MIN], want=[0, 0, 1, -1])              # none at 12
    stim.at(12, VCFG(2, "SHL", "i8", "r2", "r0", "c2"))
    vrun(13, [1, 2, 3, -1], want=[0, 0, 0, 0])                                  # RANGE at 16
    stim.at(16, VCFG(2, "PASS", "i32", "r2", "r2", "c1"))
    vrun(17, [7, 8, 9, 10], want=[7, 8, 9, 10])                                 # none at 20
    stim.at(20, VCFG(2, "SHRA", "i32", "r2", "r0", "r1"))
    vrun(21, [-64] * 4, [0, 31, 6, 5], want=[-64, -1, -1, -2])                  # none at 24
    vrun(22, [-64] * 4, [0, 31, -1, 5], want=[-64, -1, -1, -2])                 # RANGE at 25
    vrun(23, [-64] * 4, [32, 1, 2, 3], want=[-64, -32, -16, -8])                # RANGE at 26
    tr = run_rtl(stim)
    for t, want in runs:
        assert [u32(v) for v in result(tr, drive_cycle(cfg, t), E(0), "i32")] == \
            [u32(v) for v in want], f"VRUN at {t}"
    assert {t: c["err"] for t, c in enumerate(tr) if c["err"]} == \
        {8: RANGE, 16: RANGE, 25: RANGE, 26: RANGE}


def test_range_two_stages_and_illegal_in_one_cycle():
    """Stages G S S (A = 3), both shifting by c0 = 33 (-> 1): the VRUN at 3 is in stage 1 at 5
    and stage 2 at 6, the VRUN at 4 in stage 1 at 6 and stage 2 at 7. Cycle 6 has two stages
    out of range (RANGE once) and an illegal VCFG (k = 7): err = ILLEGAL | RANGE. Results
    (SHL 1 then SHRL 1, i32): 1, 2, -1 -> 0xFFFFFFFE -> 0x7FFFFFFF, 0x100; INT_MIN -> 0, 3,
    0, 5."""
    cfg = TINY.replace(vxm_stages="GSS")
    stim = Stim(cfg, 16)
    stim.at(0, VCONST(0, 33))
    stim.at(1, VCFG(1, "SHL", "i32", "r2", "r2", "c0"))
    stim.at(2, VCFG(2, "SHRL", "i32", "r2", "r2", "c0"))
    stim.at(3, VRUN(E(0), "i32", W(0), "none", E(0), "i32")).group(3, E(0), "i32",
                                                                   [1, 2, -1, 0x100])
    stim.at(4, VRUN(E(0), "i32", W(0), "none", E(0), "i32")).group(4, E(0), "i32",
                                                                   [INT_MIN, 3, 0, 5])
    stim.at(6, _raw("VCFG", k=7, op=spec.ALU_BY_NAME["ADD"].code, type=2, dst=2, x=0, y=1))
    tr = run_rtl(stim)
    assert result(tr, drive_cycle(cfg, 3), E(0), "i32") == [1, 2, INT_MAX, 0x100]
    assert result(tr, drive_cycle(cfg, 4), E(0), "i32") == [0, 3, 0, 5]
    assert {t: c["err"] for t, c in enumerate(tr) if c["err"]} == \
        {5: RANGE, 6: RANGE | ILLEGAL, 7: RANGE}
    assert RANGE == 1 << 5


# ---- clear, run ------------------------------------------------------------------------------

def test_clear_resets_configuration_and_drops_vectors():
    """`clear` (START): stages back to PASS, function OFF, constants 0, vectors in flight
    dropped (no write, `active` low), an instruction issued in the clear cycle ignored."""
    cfg = TINY
    stim = Stim(cfg, 40)
    stim.at(0, VCONST(1, 100)).at(1, VCFG(0, "ADD", "i32", "r2", "r0", "c1"))
    stim.at(2, VFUNC("TANH", "r2", "r2")).at(3, VCFG(3, "NEG", "i8", "r0", "r2", "zero"))
    stim.at(4, VRUN(E(0), "i32", W(0), "none", E(0), "i32")).group(4, E(0), "i32", [1, 2, 3, 4])
    stim.at(5, VRUN(E(0), "i32", W(0), "none", E(0), "i32")).group(5, E(0), "i32", [1, 2, 3, 4])
    # clear in cycle 8: both vectors in flight are dropped; the VCONST at 8 is ignored
    stim.at(8, VCONST(1, 7))
    stim.at(9, VRUN(E(0), "i32", W(0), "none", E(0), "i32")).group(9, E(0), "i32", [1, -2, 3, 4])
    stim.at(10, VCFG(0, "ADD", "i32", "r2", "r0", "c1"))            # c1 is 0 again
    stim.at(11, VRUN(E(0), "i32", W(0), "none", E(0), "i32")).group(11, E(0), "i32",
                                                                    [5, 6, -7, 8])
    tr = run_rtl(stim, clear_at=(8,))
    writes = [t for t, c in enumerate(tr) if c["writes"]]
    assert writes == [drive_cycle(cfg, 9), drive_cycle(cfg, 11)]
    assert result(tr, drive_cycle(cfg, 9), E(0), "i32") == [1, -2, 3, 4]
    assert result(tr, drive_cycle(cfg, 11), E(0), "i32") == [5, 6, -7, 8]
    assert [t for t, c in enumerate(tr) if c["active"]] == \
        list(range(5, 9)) + list(range(10, drive_cycle(cfg, 11) + 1))


def test_not_running_ignores_issue():
    cfg = TINY
    stim = Stim(cfg, 14)
    stim.at(0, VCFG(0, "NEG", "i32", "r2", "r0", "zero"))
    stim.at(1, VRUN(E(0), "i32", W(0), "none", E(0), "i32")).group(1, E(0), "i32", [1, 2, 3, 4])
    stim.at(3, VRUN(E(0), "i32", W(0), "none", E(0), "i32")).group(3, E(0), "i32", [1, 2, 3, 4])
    tr = run_rtl(stim, run_mask=[0, 0, 1] + [1] * 11)
    assert [t for t, c in enumerate(tr) if c["writes"]] == [drive_cycle(cfg, 3)]
    assert result(tr, drive_cycle(cfg, 3), E(0), "i32") == [1, 2, 3, 4]   # still PASS
    assert all(c["err"] == 0 for c in tr)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_timing_contract_checked_at_construction(monkeypatch):
    """Vxm refuses to build when tsp.isa's VRUN timing is not the one it implements."""
    import dataclasses

    from tsp import isa
    changed = tuple(dataclasses.replace(i, dfunc=("vxm_alus", 3)) if i.name == "VRUN" else i
                    for i in isa.INSTRUCTIONS)
    monkeypatch.setattr(isa, "INSTRUCTIONS", changed)
    with pytest.raises(ValueError, match="VRUN"):
        Vxm(TINY)


# ---- randomized differential test against the golden model ----------------------------------

SPECIAL_I32 = [0, 1, -1, 2, -2, INT_MIN, INT_MAX, INT_MIN + 1, 127, 128, -128, -129, 255,
               32767, 32768, -32768, -32769, 65535, 1 << 30, -(1 << 30), 4096, -4096, -4095,
               2047, 2048, 256, -256, 0x60000000, 31, 32, 33, 3, -3, 5, -5, 6, -6, 7, -7,
               1 << 29, -(1 << 29), 1000, -1000]


def _random_program(rng, cfg: TspConfig, segments: int, seg_len: int, gap: int,
                    shifty: bool = False):
    """Random VXM instruction words and stream data, in `segments` independent sequences of
    `seg_len` issue cycles, each followed by `gap` quiet cycles and a clear (START). `shifty`:
    S stages mostly get a shift operation by a constant, and constants are mostly shift
    amounts around the 0..31 boundary (RANGE, docs/vxm.md section 3)."""
    S, n, A = cfg.streams, cfg.vec_bytes, cfg.vxm_alus
    per = seg_len + gap + 1
    stim = Stim(cfg, segments * per)
    clears = []

    def pick(choices, rare=(), p_rare=0.05):
        if rare and rng.random() < p_rare:
            return int(rng.choice(rare))
        return int(rng.choice(choices))

    def stream():
        idx = int(rng.integers(0, S)) if rng.random() < 0.95 else int(rng.integers(S, 32))
        return stream_operand(int(rng.integers(0, 2)), idx)

    def instruction() -> int | None:
        r = rng.random()
        if r < 0.12:
            return None
        if r < 0.45:
            return encode("VRUN", a=stream(), ta=pick([0, 1, 2], [3], 0.03), b=stream(),
                          tb=pick([0, 1, 2, 3]), d=stream(), td=pick([0, 1, 2], [3], 0.03),
                          sat=pick([0, 1]))
        if r < 0.72:
            k = pick(range(A), range(A, 8), 0.08)
            if shifty and "S" in cfg.vxm_stages and rng.random() < 0.5:
                k = pick([j for j in range(A) if cfg.vxm_stages[j] == "S"])
            if shifty and k < A and cfg.vxm_stages[k] == "S" and rng.random() < 0.8:
                return encode("VCFG", k=k, op=pick(sorted(spec.ALU_BY_NAME[n].code
                                                          for n in SHIFTS)),
                              type=pick([0, 1, 2]), dst=pick([0, 1, 2]), x=pick([0, 1, 2]),
                              y=pick([3, 4, 5, 6], [0, 1, 2, 7], 0.2))
            if k < A and rng.random() < 0.85:      # mostly an operation the stage's kind runs
                op = pick([o.code for o in spec.ALU_OPS if o.runs_on(cfg.vxm_stages[k])])
            else:
                op = pick(range(21), range(21, 32))
            return encode("VCFG", k=k, op=op, type=pick([0, 1, 2], [3]), dst=pick([0, 1, 2], [3]),
                          x=pick([0, 1, 2], [3]), y=pick(range(8)))
        if r < 0.80:
            return encode("VFUNC", fn=pick([0, 1, 2, 3]), dst=pick([0, 1, 2], [3]),
                          x=pick([0, 1, 2], [3]))
        if r < 0.88:
            imm = int(rng.choice([0, 1, -1, 3, 31, 33, -5, 0x7FFFF, -0x80000, 0x1234]))
            if shifty and rng.random() < 0.7:
                imm = int(rng.choice([0, 1, 7, 30, 31, 32, 33, 40, 63, -1, -32, 0x10000]))
            elif rng.random() < 0.5:
                imm = int(rng.integers(-(1 << 19), 1 << 19))
            return encode("VCONST", c=pick(range(4)), imm=imm)
        if r < 0.93:
            return encode("VCONSTH", c=pick(range(4)),
                          imm=int(rng.choice([0, 0xFFFF, 0x8000, 0x7FFF, 0x6000,
                                              int(rng.integers(0, 1 << 16))])))
        return encode("VLOADC", c=pick(range(4)), s=stream(), t=pick([0, 1, 2], [3]))

    for seg in range(segments):
        base = seg * per
        for j in range(seg_len):
            w = instruction()
            if w is not None:
                stim.at(base + j, w)
        clears.append(base + per - 1)
    # stream data in the cycles something reads (elsewhere zero, which keeps the simulation
    # fast): random bytes, or per-lane special int32 values laid out as i8, i16 or i32 groups
    # (stream s carries byte s mod 1/2/4 of them)
    for t in sorted(stim.prog):
        for regs in (stim.east, stim.west):
            if rng.random() < 0.3:
                regs[t] = rng.integers(0, 256, (S, n))
                continue
            vals = [int(rng.choice(SPECIAL_I32)) & 0xFFFFFFFF for _ in range(n)]
            nb = int(rng.choice([1, 2, 4]))
            for s in range(S):
                regs[t, s] = [(v >> (8 * (s % nb))) & 0xFF for v in vals]
    return stim, tuple(clears), per


def _run_model(stim: Stim, clears: tuple[int, ...]) -> list[dict]:
    from sim.vxm import VxmModel
    from tsp.isa import decode

    cfg = stim.cfg
    model = VxmModel(cfg, cfg.position_index("VXM"))
    out = []
    for t in range(stim.cycles):
        err = 0
        word = stim.prog.get(t)
        if word is not None and t not in clears:
            instr, fields = decode(word)
            err |= model.issue(t, instr, fields, 0)
        active = model.active(t)
        loads, e2 = model.cycle(t, stim.east[t], stim.west[t])
        writes = {(d, s): bytes(np.asarray(v, dtype=np.uint8)) for d, s, v in loads}
        out.append({"writes": writes, "err": err | e2, "active": bool(active)})
        if t in clears:
            model.reset()
    return out


def _describe(stim: Stim, t0: int, t1: int) -> str:
    from tsp.isa import decode

    lines = []
    for t in range(t0, t1 + 1):
        if t in stim.prog:
            ins, f = decode(stim.prog[t])
            lines.append(f"  {t}: {ins.name} {f}")
    return "\n".join(lines)


def _random_stages(seed: int) -> str:
    """A random stage string (1 to 6 letters of G M S) chosen from the seed."""
    rng = np.random.default_rng(seed + 1)
    return "".join(rng.choice(list("GMS"), int(rng.integers(1, 7))))


@pytest.mark.parametrize("cfg, seed, segments, shifty", [
    (TINY, 20240611, 60, False), (TINY, 5, 40, False), (TINY, 99, 40, False),
    (EIGHT, 7, 20, False), (TINY.replace(vxm_stages="SGSS"), 31, 30, True),
    (EIGHT, 32, 20, True)],
    ids=["tiny4-a", "tiny4-b", "tiny4-c", "eight8-GMSG", "tiny4-SGSS-range", "eight8-range"])
def test_random_differential_against_model(cfg, seed, segments, shifty):
    """RTL and sim/vxm.py (written independently from docs/vxm.md) agree on every cycle's
    stream writes, err and active, over random instruction sequences (legal and illegal,
    random sat) separated by clears; the tiny runs use a random stage string per seed. The
    `shifty` runs shift mostly by constants around 0..31 and must raise RANGE (bit 5) in some
    cycles and shift in range in others, with identical err bits."""
    pytest.importorskip("sim.vxm")
    if cfg is TINY:
        cfg = cfg.replace(vxm_stages=_random_stages(seed))
    rng = np.random.default_rng(seed)
    stim, clears, per = _random_program(rng, cfg, segments, seg_len=8,
                                        gap=cfg.vxm_alus + 3, shifty=shifty)
    rtl = run_rtl(stim, clear_at=clears)
    mdl = _run_model(stim, clears)
    for t, (a, b) in enumerate(zip(rtl, mdl, strict=True)):
        if a != b:
            seg = t // per
            pytest.fail(f"seed {seed}, {cfg.name} {cfg.vec_bytes} lanes, stages "
                        f"{cfg.vxm_stages!r}, segment {seg}, cycle "
                        f"{t}: RTL {a} != model {b}\nprogram of the segment:\n"
                        + _describe(stim, seg * per, t))
    if shifty:
        n_range = sum(1 for c in rtl if c["err"] & RANGE)
        from tsp.isa import decode
        n_vruns = sum(1 for w in stim.prog.values() if decode(w)[0].name == "VRUN")
        assert 5 <= n_range < n_vruns * cfg.vxm_stages.count("S"), (n_range, n_vruns)
