"""VXM golden model (sim/vxm.py) against docs/vxm.md. Every expected value below is derived by
hand from the spec text (worked out in the comments) or by independent plain-Python / float
arithmetic written here; none is taken from the model's own output. The default stages are
`GMSG` (stage 0 general, 1 multiplier, 2 shifter, 3 general): each VCFG below puts its operation
on a stage whose kind runs it (docs/vxm.md section 1)."""
from __future__ import annotations

import math
import random

import numpy as np
import pytest

from sim.vxm import (
    ILLEGAL,
    RANGE,
    VxmModel,
    alu,
    alu_vec,
    func,
    func_vec,
    quantize_multiplier,
    rdivpot,
    requantize,
    shift_out_of_range,
    srdhm,
    stage_problem,
)
from tsp.config import TspConfig
from tsp.isa import BY_NAME, decode, dfunc_of, encode

CFG = TspConfig.profile("full")                                           # 8 lanes, GMSG, A = 4
CFG2 = TspConfig.profile("tiny").replace(units=("vxm",), vxm_stages="GM")  # 4 lanes, A = 2
CFG5 = CFG.replace(vxm_stages="GMSGG")                                     # 8 lanes, A = 5
CFGG = CFG.replace(vxm_stages="GGGG")                                      # 8 lanes, all general
IMIN, IMAX = -2 ** 31, 2 ** 31 - 1
OP = {n: i for i, n in enumerate(
    ["PASS", "ADD", "SUB", "MUL", "MIN", "MAX", "AND", "OR", "XOR", "NOT", "SHL", "SHRA", "SHRL", "ADDS", "SUBS", "NEG", "ABS", "RELU", "SAT", "SRDHM", "RDIVPOT"])}
I8, I16, I32, NONE = 0, 1, 2, 3
R0, R1, R2, C0, C1, C2, C3, ZERO = range(8)


def E(i: int) -> int:
    return i


def W(i: int) -> int:
    return 32 | i


# ---- a small cycle-by-cycle driver of the model -------------------------------------------
class Run:
    """Instructions by cycle and per-cycle stream registers; `go` runs the model."""

    def __init__(self, cfg: TspConfig = CFG, cycles: int = 40):
        self.cfg, self.cycles = cfg, cycles
        self.model = VxmModel(cfg, cfg.position_index("VXM"))
        self.prog: dict[int, tuple] = {}
        self.east = np.zeros((cycles, cfg.streams, cfg.vec_bytes), dtype=np.uint8)
        self.west = np.zeros_like(self.east)

    def at(self, t: int, name: str, /, **fields) -> Run:
        """Issue `name` at cycle t; a VRUN without `sat` wraps (sat = 0)."""
        if name == "VRUN":
            fields.setdefault("sat", 0)
        self.prog[t] = decode(encode(name, **fields))
        return self

    def lanes(self, t: int, operand: int, values, nbytes: int) -> Run:
        """Put per-lane integers on the group at `operand` in cycle t, little-endian bytes."""
        regs = self.west if operand >> 5 else self.east
        for lane, v in enumerate(values):
            u = int(v) % (1 << (8 * nbytes))
            for b in range(nbytes):
                regs[t, (operand & 31) + b, lane] = (u >> (8 * b)) & 0xFF
        return self

    def go(self) -> Run:
        self.loads: dict[int, list] = {}
        self.errs: dict[int, int] = {}
        self.act: list[bool] = []
        for t in range(self.cycles):
            err = 0
            if t in self.prog:
                instr, f = self.prog[t]
                err |= self.model.issue(t, instr, f, 0)
            loads, e = self.model.cycle(t, self.east[t], self.west[t])
            err |= e
            if loads:
                self.loads[t] = loads
            if err:
                self.errs[t] = err
            self.act.append(self.model.active(t))
        return self

    def out(self, t: int, operand: int, nbytes: int) -> list[int]:
        """Signed per-lane values written at the end of cycle t to the group at `operand`."""
        got = {(d, s): np.asarray(v) for d, s, v in self.loads.get(t, [])}
        vals = []
        for lane in range(self.cfg.vec_bytes):
            u = 0
            for b in range(nbytes):
                u |= int(got[(operand >> 5, (operand & 31) + b)][lane]) << (8 * b)
            vals.append(u - (1 << 8 * nbytes) if u >> (8 * nbytes - 1) else u)
        return vals


def cfg_stage(r: Run, t: int, k: int, op: str, typ: int, dst: int, x: int, y: int) -> Run:
    return r.at(t, "VCFG", k=k, op=OP[op], type=typ, dst=dst, x=x, y=y)


def set_const(r: Run, t: int, c: int, value: int) -> Run:
    """Constant c (0..3) = value: VCONST (low 16 bits) at t, VCONSTH (high 16 bits) at t + 1."""
    u = value % (1 << 32)
    lo = u & 0xFFFF
    return r.at(t, "VCONST", c=c, imm=lo).at(t + 1, "VCONSTH", c=c, imm=u >> 16)


# ---- ALU operations, every op at every type (hand-computed) -------------------------------
ALU_CASES = [
    # (op, type, x, y, expected) -- i8: w = 8, range -128..127
    ("PASS", I8, 383, 0, 127),          # 383 = 0x17F -> low byte 0x7F
    ("PASS", I8, 200, 0, -56),          # 200 - 256
    ("PASS", I8, -129, 0, 127),
    ("ADD", I8, 100, 100, -56),         # 200 wraps
    ("ADD", I8, -128, -1, 127),         # -129 wraps
    ("ADD", I8, 300, 1, 45),            # X = 300 - 256 = 44
    ("SUB", I8, -128, 1, 127),
    ("SUB", I8, 5, 7, -2),
    ("MUL", I8, 11, 13, -113),          # 143 - 256
    ("MUL", I8, 16, 16, 0),             # 256
    ("MUL", I8, -128, -128, 0),         # 16384 = 64 * 256
    ("MUL", I8, -128, -1, -128),        # 128 wraps
    ("MIN", I8, -128, 127, -128),
    ("MIN", I8, 200, 3, -56),           # X = -56
    ("MAX", I8, 200, -100, -56),
    ("MAX", I8, 0, 127, 127),
    ("AND", I8, -1, 0x0F, 15),
    ("AND", I8, -128, 127, 0),
    ("OR", I8, 0x40, 0x0F, 79),
    ("OR", I8, -128, 1, -127),
    ("XOR", I8, -1, 0x0F, -16),         # 0xF0
    ("NOT", I8, 0, 0, -1),
    ("NOT", I8, -128, 0, 127),
    ("NOT", I8, 127, 0, -128),
    ("SHL", I8, 1, 7, -128),            # 128
    ("SHL", I8, 0x41, 1, -126),         # 130
    ("SHL", I8, 1, 33, 2),              # 33 & 31 = 1
    ("SHL", I8, 1, 8, 0),               # 256
    ("SHRA", I8, -128, 7, -1),
    ("SHRA", I8, -128, 31, -1),
    ("SHRA", I8, 127, 8, 0),
    ("SHRA", I8, -5, 1, -3),            # floor(-2.5)
    ("SHRL", I8, -128, 7, 1),           # 0x80 >> 7
    ("SHRL", I8, -1, 1, 127),           # 0xFF >> 1
    ("SHRL", I8, -1, 0, -1),            # 0xFF, wrapped back to int8
    ("SHRL", I8, -1, 9, 0),
    ("ADDS", I8, 100, 100, 127),
    ("ADDS", I8, -100, -100, -128),
    ("ADDS", I8, 3, 4, 7),
    ("SUBS", I8, -100, 100, -128),
    ("SUBS", I8, 100, -100, 127),
    ("NEG", I8, -128, 0, 127),
    ("NEG", I8, 5, 0, -5),
    ("NEG", I8, 0, 0, 0),
    ("ABS", I8, -128, 0, 127),
    ("ABS", I8, -5, 0, 5),
    ("RELU", I8, -1, 0, 0),
    ("RELU", I8, 7, 0, 7),
    ("RELU", I8, 200, 0, 0),            # X = -56
    ("SAT", I8, 200, 0, 127),           # the full x, not X = -56
    ("SAT", I8, -129, 0, -128),
    ("SAT", I8, 100, 0, 100),
    ("SAT", I8, IMAX, 0, 127),
    ("SAT", I8, IMIN, 0, -128),
    ("SRDHM", I8, 2 ** 30, 2 ** 30, 2 ** 29),       # int32 whatever the type: 2^60 / 2^31
    ("RDIVPOT", I8, 1000, 2, 250),                  # int32 whatever the type
    # i16: range -32768..32767
    ("PASS", I16, 40000, 0, -25536),
    ("ADD", I16, 32767, 1, -32768),
    ("SUB", I16, -32768, 1, 32767),
    ("MUL", I16, 300, 300, 24464),      # 90000 - 65536
    ("MUL", I16, -32768, -32768, 0),    # 2^30
    ("MIN", I16, -32768, 0, -32768),
    ("MAX", I16, 70000, 5000, 5000),    # X = 70000 - 65536 = 4464
    ("AND", I16, 0x1234, 0x0FF0, 0x0230),
    ("OR", I16, -32768, 1, -32767),
    ("XOR", I16, 0x7FFF, -1, -32768),
    ("NOT", I16, 0, 0, -1),
    ("SHL", I16, 1, 15, -32768),
    ("SHRA", I16, -32768, 15, -1),
    ("SHRA", I16, -32768, 16, -1),
    ("SHRL", I16, -1, 1, 32767),
    ("SHRL", I16, -32768, 15, 1),
    ("ADDS", I16, 30000, 30000, 32767),
    ("SUBS", I16, -30000, 30000, -32768),
    ("NEG", I16, -32768, 0, 32767),
    ("ABS", I16, -32768, 0, 32767),
    ("RELU", I16, -32768, 0, 0),
    ("SAT", I16, 40000, 0, 32767),
    ("SAT", I16, -40000, 0, -32768),
    # i32
    ("PASS", I32, IMIN, 0, IMIN),
    ("ADD", I32, IMAX, 1, IMIN),
    ("SUB", I32, IMIN, 1, IMAX),
    ("MUL", I32, 65536, 65536, 0),              # 2^32
    ("MUL", I32, 65537, 65537, 131073),         # 2^32 + 2^17 + 1
    ("MUL", I32, IMIN, -1, IMIN),               # 2^31 wraps
    ("MUL", I32, IMAX, IMAX, 1),                # 2^62 - 2^32 + 1
    ("MIN", I32, IMIN, IMAX, IMIN),
    ("MAX", I32, IMIN, IMAX, IMAX),
    ("AND", I32, -1, 0x12345678, 0x12345678),
    ("OR", I32, IMIN, 1, IMIN + 1),
    ("XOR", I32, -1, IMAX, IMIN),
    ("NOT", I32, IMIN, 0, IMAX),
    ("SHL", I32, 1, 31, IMIN),
    ("SHL", I32, 3, 31, IMIN),                  # 3 * 2^31 mod 2^32 = 2^31
    ("SHL", I32, 5, 32, 5),                     # 32 & 31 = 0
    ("SHRA", I32, IMIN, 31, -1),
    ("SHRA", I32, IMAX, 31, 0),
    ("SHRA", I32, -7, 1, -4),
    ("SHRL", I32, -1, 28, 15),
    ("SHRL", I32, IMIN, 31, 1),
    ("SHRL", I32, -1, 0, -1),
    ("ADDS", I32, IMAX, 1, IMAX),
    ("ADDS", I32, IMIN, -1, IMIN),
    ("SUBS", I32, IMIN, 1, IMIN),
    ("SUBS", I32, IMAX, -1, IMAX),
    ("NEG", I32, IMIN, 0, IMAX),
    ("ABS", I32, IMIN, 0, IMAX),
    ("ABS", I32, -7, 0, 7),
    ("RELU", I32, IMIN, 0, 0),
    ("SAT", I32, IMIN, 0, IMIN),
    ("SAT", I32, 12345, 0, 12345),
]


@pytest.mark.parametrize("op,typ,x,y,expected", ALU_CASES)
def test_alu_hand_values(op, typ, x, y, expected):
    assert alu(op, typ, x, y) == expected
    assert int(alu_vec(OP[op], typ, np.array([x]), np.array([y]))[0]) == expected


def test_every_op_at_every_type_is_covered():
    covered = {(op, typ) for op, typ, *_ in ALU_CASES}
    for op in OP:
        if op in ("SRDHM", "RDIVPOT"):       # int32 whatever the type; below, and at i8 above
            continue
        for typ in (I8, I16, I32):
            assert (op, typ) in covered, (op, typ)


SRDHM_CASES = [
    (IMIN, IMIN, IMAX),                 # the one saturating case
    (2 ** 30, 2 ** 30, 2 ** 29),
    (IMAX, IMAX, IMAX - 1),             # (2^62 - 2^32 + 1 + 2^30) / 2^31 -> 2^31 - 2
    (IMIN, IMAX, -IMAX),                # exact -2^31 + 1
    (IMIN, 2 ** 30, -(2 ** 30)),        # exact -2^30
    (2 ** 15, 2 ** 15, 1),              # tie +0.5: (2^30 + 2^30) / 2^31 = 1
    (-(2 ** 15), 2 ** 15, 0),           # tie -0.5: (-2^30 + 1 - 2^30) / 2^31 = -0.99.. -> 0
    (3 * 2 ** 15, 2 ** 15, 2),          # tie +1.5: (3 * 2^30 + 2^30) / 2^31 = 2
    (-3 * 2 ** 15, 2 ** 15, -1),        # tie -1.5: (-3 * 2^30 + 1 - 2^30) / 2^31 -> -1.99.. -> -1
    (2 ** 15 + 1, 2 ** 15, 1),          # +0.50003 -> 1
    (-(2 ** 15) - 1, 2 ** 15, -1),      # -0.50003 -> -1
    (2 ** 15 - 1, 2 ** 15, 0),          # +0.49997 -> 0
    (0, IMIN, 0),
    (1, 1, 0),
    (-1, IMIN, 1),                      # exact 1: (2^31 + 2^30) / 2^31 -> 1
    (1, IMIN, -1),                      # exact -1: (-2^31 + 1 - 2^30) / 2^31 -> -1.49.. -> -1
    (1, 2 ** 30, 1),                    # tie +0.5 -> 1
    (-1, 2 ** 30, 0),                   # tie -0.5: (-2^30 + 1 - 2^30) / 2^31 -> 0
]


@pytest.mark.parametrize("x,y,expected", SRDHM_CASES)
def test_srdhm(x, y, expected):
    assert srdhm(x, y) == expected
    assert alu("SRDHM", I32, x, y) == expected
    assert int(alu_vec(OP["SRDHM"], I32, np.array([x]), np.array([y]))[0]) == expected


RDIVPOT_CASES = [
    (5, 1, 3), (-5, 1, -3), (-6, 2, -2), (6, 2, 2),     # the spec's examples (ties away)
    (-7, 2, -2),                        # -1.75
    (-5, 2, -1),                        # -1.25
    (7, 2, 2),                          # 1.75
    (1, 1, 1), (-1, 1, -1),             # +-0.5
    (3, 1, 2), (-3, 1, -2),             # +-1.5
    (12345, 0, 12345), (-12345, 0, -12345),
    (1000, 33, 500),                    # 33 & 31 = 1
    (IMIN, 31, -1), (IMAX, 31, 1),      # 0.99999.. -> 1
    (2 ** 30, 31, 1), (-(2 ** 30), 31, -1),   # +-0.5 at e = 31
    (2 ** 30 - 1, 31, 0), (-(2 ** 30) + 1, 31, 0),
]


@pytest.mark.parametrize("x,y,expected", RDIVPOT_CASES)
def test_rdivpot(x, y, expected):
    assert rdivpot(x, y) == expected
    assert alu("RDIVPOT", I16, x, y) == expected
    assert int(alu_vec(OP["RDIVPOT"], I32, np.array([x]), np.array([y]))[0]) == expected


def test_rdivpot_is_round_half_away_from_zero():
    """Independent reference: exact rational division, ties away from zero."""
    rnd = random.Random(7)
    for _ in range(3000):
        x, e = rnd.randint(IMIN, IMAX), rnd.randint(0, 31)
        if rnd.random() < 0.3:
            x = rnd.randint(-64, 64)
        q, r = divmod(abs(x), 1 << e)
        mag = q + (1 if 2 * r >= (1 << e) and e > 0 else 0)
        assert rdivpot(x, e) == (mag if x >= 0 else -mag), (x, e)


def test_srdhm_is_round_half_up_of_the_exact_product():
    """Independent reference: floor(x*y / 2^31 + 1/2) (ties toward +inf, which is what the
    spec's formula gives for both signs), except x = y = -2^31."""
    rnd = random.Random(8)
    for _ in range(3000):
        x, y = rnd.randint(IMIN, IMAX), rnd.randint(IMIN, IMAX)
        assert srdhm(x, y) == (2 * x * y + 2 ** 31) // 2 ** 32, (x, y)


def test_vector_helpers_agree_with_scalar_helpers():
    rnd = random.Random(9)
    edge = [IMIN, IMIN + 1, -32769, -32768, -129, -128, -1, 0, 1, 31, 32, 127, 128, 32767,
            IMAX]
    xs = edge + [rnd.randint(IMIN, IMAX) for _ in range(200)]
    ys = edge[::-1] + [rnd.randint(IMIN, IMAX) for _ in range(200)]
    for code in OP.values():
        for typ in (I8, I16, I32):
            got = alu_vec(code, typ, np.array(xs), np.array(ys))
            assert [int(v) for v in got] == [alu(code, typ, x, y) for x, y in zip(xs, ys)]
    for fn in range(4):
        got = func_vec(fn, np.array(xs + list(range(-5000, 5000, 7))))
        assert [int(v) for v in got] == [func(fn, x) for x in xs + list(range(-5000, 5000, 7))]


def test_helpers_reject_bad_input():
    with pytest.raises(ValueError, match="outside int32"):
        alu("ADD", I32, 2 ** 31, 0)
    with pytest.raises(ValueError, match="unknown ALU operation"):
        alu(21, I32, 0, 0)
    with pytest.raises(ValueError, match="type code 3"):
        alu("ADD", 3, 0, 0)
    with pytest.raises(ValueError, match="unknown function"):
        func(4, 0)
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        quantize_multiplier(1.5)


# ---- functions ------------------------------------------------------------------------------
def half_up(v: float) -> int:
    return math.floor(v + 0.5)


def test_exp_spot_values():
    assert func("EXP", 0) == 32768
    assert func("EXP", -256) == 12055                # e^-1 * 32768 = 12054.6
    assert func("EXP", -128) == 19875                # e^-0.5 * 32768 = 19874.76
    assert func("EXP", 1) == 32768 and func("EXP", IMAX) == 32768   # x > 0 gives exp(0)
    assert func("EXP", -4095) == 0                   # 32768 e^-15.996 = 0.0037
    assert func("EXP", -4096) == 0 and func("EXP", IMIN) == 0
    for x in range(-4095, 1, 13):
        assert func("EXP", x) == half_up(math.exp(x / 256) * 32768), x


def test_tanh_spot_values():
    assert func("TANH", 0) == 0
    assert func("TANH", 256) == 24956                # tanh(1) * 32768 = 24955.9
    assert func("TANH", -256) == -24956
    assert func("TANH", 128) == 15143                # tanh(0.5) * 32768 = 15142.6
    assert func("TANH", 2047) == 32767               # capped at 32767
    assert func("TANH", IMAX) == 32767 and func("TANH", IMIN) == -32767
    for x in range(-2047, 2048, 11):
        v = min(half_up(math.tanh(abs(x) / 256) * 32768), 32767)
        assert func("TANH", x) == (-v if x < 0 else v), x


def test_rsqrt_spot_values():
    assert func("RSQRT", 1) == 2 ** 30
    assert func("RSQRT", 4) == 2 ** 29
    assert func("RSQRT", 2 ** 30) == 2 ** 15
    assert func("RSQRT", 0) == IMAX and func("RSQRT", -5) == IMAX and func("RSQRT", IMIN) == IMAX
    # x = 2: e = 1, e2 = 0, j = 512, round(2^19 / sqrt(512)) = round(23170.475) = 23170, << 15
    assert func("RSQRT", 2) == 23170 << 15
    # x = 1000: e = 9, e2 = 8, j = 1000, round(2^19 / sqrt(1000)) = round(16579.3), << 11
    assert func("RSQRT", 1000) == 16579 << 11
    # x = 2^31 - 1: e = 30, e2 = 30, j = x >> 22 = 511, round(2^19 / sqrt(511)) = 23193
    assert func("RSQRT", IMAX) == 23193
    for x in (3, 5, 100, 255, 256, 257, 4096, 65535, 10 ** 6, 10 ** 9):
        e2 = (x.bit_length() - 1) // 2 * 2
        j = x * 2 ** (8 - e2) if e2 <= 8 else x // 2 ** (e2 - 8)
        assert func("RSQRT", x) == half_up(2 ** 19 / math.sqrt(j)) * 2 ** (15 - e2 // 2), x


# ---- requantisation (section 3) --------------------------------------------------------------
def requant_program(r: Run, m: int, s: int, z: int) -> int:
    """The section 3 program on the GMSG stages (constants, four stages; c3 = bias is left at
    its reset value 0 here); returns the first free cycle. Its VRUNs must use td = i8, sat = 1."""
    set_const(r, 0, 0, m)
    r.at(2, "VCONST", c=1, imm=s)
    t = 3
    r.at(t, "VCONST", c=2, imm=z)
    cfg_stage(r, t + 1, 0, "ADD", I32, R0, R0, C3)          # G: r0 = acc + bias
    cfg_stage(r, t + 2, 1, "SRDHM", I32, R2, R0, C0)        # M: r2 = SRDHM(r0, m)
    cfg_stage(r, t + 3, 2, "RDIVPOT", I32, R2, R2, C1)      # S: r2 = RDIVPOT(r2, s)
    cfg_stage(r, t + 4, 3, "ADDS", I32, R2, R2, C2)         # G: r2 = r2 + z (saturating)
    return t + 5


def float_reference(x: int, M0: float, s: int, z: int) -> tuple[int, float]:
    """round(x * M) + z saturated to int8, in float (exact for the dyadic M0 used), and u =
    x * M0 (the value SRDHM rounds)."""
    v = float(x) * M0 * 2.0 ** -s
    rounded = math.floor(abs(v) + 0.5) * (1 if v >= 0 else -1)     # ties away from zero
    return min(max(rounded + z, -128), 127), float(x) * M0


@pytest.mark.parametrize("M0,s,z", [(0.75, 0, 0), (0.75, 3, -5), (0.5, 1, 10),
                                    (0.625, 6, 3), (0.9375, 2, -128)])
def test_requantisation_chain_against_float(M0, s, z):
    m = int(M0 * 2 ** 31)                              # exact: M0 is dyadic
    xs = list(range(-700, 700)) + [IMIN, IMIN + 1, IMAX - 1000, 2 ** 20, -(2 ** 20)]
    n = CFG.vec_bytes
    r = Run(CFG, cycles=20 + len(xs) // n + 12)
    t0 = requant_program(r, m, s, z)
    xs += [0] * (-len(xs) % n)
    for i in range(0, len(xs), n):
        r.at(t0 + i // n, "VRUN", a=E(0), ta=I32, b=E(0), tb=NONE, d=W(4), td=I8, sat=1)
        r.lanes(t0 + i // n, E(0), xs[i:i + n], 4)
    r.go()
    assert not r.errs
    mism = 0
    for i in range(0, len(xs), n):
        got = r.out(t0 + i // n + CFG.vxm_alus + 3, W(4), 1)
        for lane, x in enumerate(xs[i:i + n]):
            ref, u = float_reference(x, M0, s, z)
            # the chain rounds twice (SRDHM, then RDIVPOT): it can differ from the single
            # rounding only where u is within 1/2 of a tie point (k + 1/2) * 2^s of RDIVPOT
            near_tie = s > 0 and abs(u / 2 ** s - math.floor(u / 2 ** s) - 0.5) * 2 ** s <= 0.5
            if near_tie:
                assert abs(got[lane] - ref) <= 1, (x, got[lane], ref)
                mism += got[lane] != ref
            elif s == 0 and u - math.floor(u) == 0.5:
                # s = 0: the only rounding is SRDHM's, ties toward +inf
                assert got[lane] == min(max(math.floor(u + 0.5) + z, -128), 127), x
            else:
                assert got[lane] == ref, (x, got[lane], ref)
            assert got[lane] == requantize(x, m, s, z)
    if s > 0:
        assert mism > 0       # double rounding does show up in the range swept


def test_requantisation_double_rounding_example():
    """M0 = 0.75, s = 3 (M = 0.09375), x = 5: SRDHM gives round(3.75) = 4, RDIVPOT(4, 3) =
    round(0.5) = 1, while round(5 * 0.09375) = round(0.46875) = 0."""
    assert srdhm(5, 3 * 2 ** 29) == 4
    assert rdivpot(4, 3) == 1
    assert requantize(5, 3 * 2 ** 29, 3, 0) == 1


def test_requantize_zero_point_add_saturates():
    """The spec's chain uses ADDS (saturating) for the zero point: with M ~ 1 (s = 0),
    x = 2^31 - 1 and z = 127, SRDHM gives 2^31 - 2, + 127 saturates to 2^31 - 1 (a wrapping ADD
    would give a large negative and -128), and SAT i8 gives 127."""
    assert srdhm(IMAX, IMAX) == IMAX - 1
    assert requantize(IMAX, IMAX, 0, 127) == 127


def test_quantize_multiplier():
    assert quantize_multiplier(0.75) == (3 * 2 ** 29, 0)
    assert quantize_multiplier(0.09375) == (3 * 2 ** 29, 3)
    assert quantize_multiplier(2 ** -10) == (2 ** 30, 9)     # 0.5 * 2^-9
    m, s = quantize_multiplier(0.3)
    assert 2 ** 30 <= m < 2 ** 31 and abs(m / 2 ** (31 + s) - 0.3) < 2 ** -31


def test_per_channel_requantisation_with_vloadc():
    """c0 (multiplier), c1 (shift) and c3 (bias) per lane from streams with VLOADC; the
    section 3 program on GMSG: ADD bias (G), SRDHM (M), RDIVPOT (S), ADDS z (G), VRUN sat."""
    n = CFG.vec_bytes
    ms = [3 * 2 ** 29, 2 ** 30, 5 * 2 ** 28, 15 * 2 ** 27] * (n // 4)     # M0 .75 .5 .625 .9375
    M0s = [0.75, 0.5, 0.625, 0.9375] * (n // 4)
    ss = [(i % 5) for i in range(n)]
    bias = [-50, 28, 0, 1000, -3000, 1, 64, -23]
    z = 7
    r = Run(CFG, cycles=30)
    r.lanes(0, E(0), ms, 4).at(0, "VLOADC", c=0, s=E(0), t=I32)
    r.lanes(1, W(0), ss, 1).at(1, "VLOADC", c=1, s=W(0), t=I8)
    r.at(2, "VCONST", c=2, imm=z)
    r.lanes(3, W(2), bias, 2).at(3, "VLOADC", c=3, s=W(2), t=I16)
    cfg_stage(r, 4, 0, "ADD", I32, R0, R0, C3)
    cfg_stage(r, 5, 1, "SRDHM", I32, R2, R0, C0)
    cfg_stage(r, 6, 2, "RDIVPOT", I32, R2, R2, C1)
    cfg_stage(r, 7, 3, "ADDS", I32, R2, R2, C2)
    t0 = 8
    xs = [100, -100, 37, 1000, -1000, 255, 64, -77][:n]
    r.lanes(t0, E(4), xs, 4)
    r.at(t0, "VRUN", a=E(4), ta=I32, b=E(0), tb=NONE, d=E(1), td=I8, sat=1)
    r.go()
    assert not r.errs
    got = r.out(t0 + 7, E(1), 1)
    for lane in range(n):
        acc = xs[lane] + bias[lane]
        ref, u = float_reference(acc, M0s[lane], ss[lane], z)
        if ss[lane] == 0 or abs(u / 2 ** ss[lane] % 1 - 0.5) * 2 ** ss[lane] > 0.5:
            assert got[lane] == ref, lane
        assert got[lane] == requantize(acc, ms[lane], ss[lane], z)
    # lanes worked by hand: lane 0: (100 - 50) * 0.75 = 37.5 (s = 0: SRDHM rounds half up) ->
    # 38, + 7 = 45; lane 4: (-1000 - 3000) * 0.75 / 16 = -187.5 -> RDIVPOT(-3000, 4) = -188
    # (ties away), + 7 = -181 -> saturated to -128; lane 3: (1000 + 1000) * 0.9375 / 8 =
    # 234.375 -> 234, + 7 = 241 -> 127
    assert got[0] == 45 and got[4] == -128 and got[3] == 127


def test_requantisation_saturates_only_with_sat():
    """The same chain with sat = 0 wraps the int32 result to int8: x = 2000, M0 = 0.5, s = 0,
    z = 0: SRDHM(2000, 2^30) = 1000, low byte 0xE8 = -24 (wrap) vs 127 (sat); x = -2000:
    -1000 = 0x...FC18 -> 0x18 = 24 (wrap) vs -128 (sat)."""
    r = Run(CFG, cycles=30)
    t0 = requant_program(r, 2 ** 30, 0, 0)
    r.lanes(t0, E(0), [2000, -2000, 100, -100, 0, 1, -1, 254], 4)
    r.at(t0, "VRUN", a=E(0), ta=I32, b=E(0), tb=NONE, d=W(0), td=I8, sat=0)
    r.lanes(t0 + 1, E(0), [2000, -2000, 100, -100, 0, 1, -1, 254], 4)
    r.at(t0 + 1, "VRUN", a=E(0), ta=I32, b=E(0), tb=NONE, d=W(0), td=I8, sat=1)
    r.go()
    # 100 * 0.5 = 50, -50, 0, 0.5 -> 1 (half up), -0.5 -> 0 (half up), 127
    assert r.out(t0 + 7, W(0), 1) == [-24, 24, 50, -50, 0, 1, 0, 127]
    assert r.out(t0 + 8, W(0), 1) == [127, -128, 50, -50, 0, 1, 0, 127]


# ---- pipeline, timing, configuration -----------------------------------------------------
def test_default_pipeline_passes_and_result_cycle():
    """Reset configuration: every stage passes, the function is off. VRUN at 10 reading E0
    (i8), writing W4 (i8): written at the end of 10 + A + 3 = 17, on W4 during 18."""
    r = Run(CFG, cycles=30)
    vals = [-128, -1, 0, 1, 2, 50, 127, -77]
    r.lanes(10, E(0), vals, 1).at(10, "VRUN", a=E(0), ta=I8, b=E(1), tb=I8, d=W(4), td=I8)
    r.go()
    assert list(r.loads) == [17]
    assert [(d, s) for d, s, _ in r.loads[17]] == [(1, 4)]
    assert r.out(17, W(4), 1) == vals
    assert r.act[10:19] == [False] + [True] * 7 + [False]
    assert not any(r.act[:10]) and not any(r.act[18:])


def test_result_cycle_with_two_alus():
    r = Run(CFG2, cycles=20)
    r.lanes(5, E(2), [1, 2, 3, 4], 1).at(5, "VRUN", a=E(2), ta=I8, b=E(0), tb=NONE,
                                          d=E(0), td=I16)
    r.go()
    assert list(r.loads) == [5 + 2 + 3]
    assert r.out(10, E(0), 2) == [1, 2, 3, 4]


def test_i16_operands_and_bias_add():
    """r2 = a + b at i16 (a: SG2 at E2, b: i8 at W3), result i16 to W0/W1; 32767 + 1 wraps."""
    r = Run(CFG, cycles=30)
    cfg_stage(r, 0, 0, "ADD", I16, R2, R0, R1)
    a = [1000, -1000, 32767, -32768, 0, 300, -300, 12345]
    b = [5, -5, 1, -1, -128, 127, 0, 1]
    r.lanes(3, E(2), a, 2).lanes(3, W(3), b, 1)
    r.at(3, "VRUN", a=E(2), ta=I16, b=W(3), tb=I8, d=W(0), td=I16)
    r.go()
    assert r.out(10, W(0), 2) == [1005, -1005, -32768, 32767, -128, 427, -300, 12346]


def test_chain_uses_all_registers_and_constants():
    """Five stages GMSGG (A = 5): r0 = a, r1 = b, r2 = a; stage 0 (G): r0 = r0 + c3;
    stage 1 (M): r1 = r2 * r1 (i32); stage 2 (S): r1 = r1 >> c2 (arithmetic);
    stage 3 (G): r2 = r1 - r0; stage 4 (G): r2 = max(r2, c1). a = 3, b = 4, c3 = 10, c2 = 1,
    c1 = -100: r0 = 13, r1 = 12 >> 1 = 6, r2 = -7, max(-7, -100) = -7 (other lanes below).
    The result is written at the end of 8 + A + 3 = 16."""
    r = Run(CFG5, cycles=40)
    set_const(r, 0, 3, 10)
    set_const(r, 2, 1, -100)
    r.at(4, "VCONST", c=2, imm=1)
    cfg_stage(r, 5, 0, "ADD", I32, R0, R0, C3)
    cfg_stage(r, 6, 1, "MUL", I32, R1, R2, R1)
    cfg_stage(r, 7, 2, "SHRA", I32, R1, R1, C2)
    cfg_stage(r, 8, 3, "SUB", I32, R2, R1, R0)
    cfg_stage(r, 9, 4, "MAX", I32, R2, R2, C1)
    a = [3, -3, 100, 0, 70000, -5, 1, 2]
    b = [4, 4, -100, 9, 70000, -5, -200, 2]
    r.lanes(10, E(0), a, 4).lanes(10, E(4), b, 4)
    r.at(10, "VRUN", a=E(0), ta=I32, b=E(4), tb=I32, d=W(0), td=I32)
    r.go()
    assert not r.errs
    exp = []
    for x, y in zip(a, b):
        p = (x * y + 2 ** 31) % 2 ** 32 - 2 ** 31
        exp.append(max((p >> 1) - (x + 10), -100))
    # 70000 * 70000 = 4900000000 wraps to 605032704, >> 1 = 302516352, - 70010 = 302446342;
    # -5 * -5 = 25 >> 1 = 12 (floor), - 5 = 7; 1 * -200 >> 1 = -100, - 11 = -111 -> -100
    assert exp == [-7, -13, -100, -10, 302446342, 7, -100, -10]
    assert list(r.loads) == [10 + 5 + 3]
    assert r.out(18, W(0), 4) == exp


def test_vconst_and_vconsth():
    """VCONST sign-extends its 20-bit immediate; VCONSTH replaces bits 31:16 and keeps 15:0."""
    r = Run(CFGG, cycles=40)
    r.at(0, "VCONST", c=0, imm=-1)                   # 0xFFFFFFFF
    r.at(1, "VCONSTH", c=0, imm=0x1234)              # 0x1234FFFF
    r.at(2, "VCONST", c=1, imm=-(2 ** 19))           # -524288
    r.at(3, "VCONST", c=2, imm=2 ** 19 - 1)          # 524287
    r.at(4, "VCONSTH", c=2, imm=0x8000)              # 0x8000FFFF (bits 15:0 kept)
    # stages GGGG here: three ADDs on stages 0..2 (GMSG has one G stage before stage 3)
    cfg_stage(r, 5, 0, "ADD", I32, R2, R2, C0)
    cfg_stage(r, 6, 1, "ADD", I32, R1, R1, C1)
    cfg_stage(r, 7, 2, "ADD", I32, R0, R0, C2)
    r.at(8, "VRUN", a=E(0), ta=I32, b=E(4), tb=I32, d=W(0), td=I32)
    r.at(9, "VFUNC", fn=0, dst=R2, x=R1)             # function OFF: r2 = r2 (dst/x unused)
    r.go()
    assert r.out(15, W(0), 4) == [0x1234FFFF] * 8
    r2 = Run(CFGG, cycles=40)
    r2.prog = {t: v for t, v in r.prog.items() if t < 8}
    cfg_stage(r2, 8, 3, "PASS", I32, R2, R1, ZERO)
    r2.at(9, "VRUN", a=E(0), ta=I32, b=E(4), tb=I32, d=W(0), td=I32)
    r2.go()
    assert r2.out(16, W(0), 4) == [-524288] * 8
    r3 = Run(CFGG, cycles=40)
    r3.prog = {t: v for t, v in r.prog.items() if t < 8}
    cfg_stage(r3, 8, 3, "PASS", I32, R2, R0, ZERO)
    r3.at(9, "VRUN", a=E(0), ta=I32, b=E(4), tb=I32, d=W(0), td=I32)
    r3.go()
    assert r3.out(16, W(0), 4) == [0x8000FFFF - 2 ** 32] * 8


def test_vloadc_types_sign_extension_and_vconsth_per_lane():
    r = Run(CFG, cycles=40)
    r.lanes(0, E(7), [0xFF, 0x80, 0x7F, 1, 0, 2, 3, 4], 1).at(0, "VLOADC", c=0, s=E(7), t=I8)
    r.lanes(1, W(2), [0xFFFF, 0x8000, 0x7FFF, 1, 0, 2, 3, 4], 2).at(1, "VLOADC", c=1, s=W(2),
                                                                     t=I16)
    r.at(2, "VCONSTH", c=1, imm=0)                   # per lane: keeps each lane's bits 15:0
    cfg_stage(r, 3, 1, "PASS", I32, R2, R0, ZERO)    # no-op (PASS on the M stage)
    cfg_stage(r, 4, 0, "ADD", I32, R0, R0, C0)       # G
    cfg_stage(r, 5, 3, "ADD", I32, R2, R0, C1)       # G
    r.at(6, "VRUN", a=E(0), ta=I8, b=E(0), tb=NONE, d=W(4), td=I32)
    r.go()
    c0 = [-1, -128, 127, 1, 0, 2, 3, 4]
    c1 = [0xFFFF, 0x8000, 0x7FFF, 1, 0, 2, 3, 4]
    assert r.out(13, W(4), 4) == [a + b for a, b in zip(c0, c1)]


def test_vloadc_reads_in_its_issue_cycle_and_applies_next_cycle():
    """VLOADC at 5 reads E0 during 5; a vector reaching stage 0 in cycle 5 (VRUN at 4) still
    sees the old c0 (0), one reaching it in 6 (VRUN at 5) sees the loaded value."""
    r = Run(CFG, cycles=30)
    cfg_stage(r, 0, 0, "ADD", I32, R2, R0, C0)
    r.at(4, "VRUN", a=E(4), ta=I8, b=E(0), tb=NONE, d=W(0), td=I32)
    r.lanes(5, E(0), [100] * 8, 4).at(5, "VLOADC", c=0, s=E(0), t=I32)
    r.lanes(4, E(4), [1] * 8, 1)
    r.lanes(6, E(4), [2] * 8, 1).at(6, "VRUN", a=E(4), ta=I8, b=E(0), tb=NONE, d=W(0), td=I32)
    r.go()
    assert r.out(4 + 7, W(0), 4) == [1] * 8
    assert r.out(6 + 7, W(0), 4) == [102] * 8


def test_reconfiguration_timing_exact():
    """Stage k acts on the vector of a VRUN at t in cycle t + 1 + k, with the configuration
    issued at <= t + k. VRUN at 10 (a = 1), VCFG 1 (the M stage) MUL by c0 at 11, VRUN at 12
    (a = 2)."""
    # stage 1 reconfigured at 11: vector of 10 is at stage 1 in cycle 12 -> uses the new one
    r = Run(CFG, cycles=40)
    r.at(0, "VCONST", c=0, imm=1000)
    r.lanes(10, E(0), [1] * 8, 1).at(10, "VRUN", a=E(0), ta=I8, b=E(0), tb=NONE, d=W(0),
                                      td=I32)
    cfg_stage(r, 11, 1, "MUL", I32, R2, R2, C0)
    r.lanes(12, E(0), [2] * 8, 1).at(12, "VRUN", a=E(0), ta=I8, b=E(0), tb=NONE, d=W(0),
                                      td=I32)
    r.go()
    assert not r.errs
    assert r.out(17, W(0), 4) == [1000] * 8
    assert r.out(19, W(0), 4) == [2000] * 8
    # stage 0 reconfigured at 11: the vector of 10 passed stage 0 in 11 -> old (PASS)
    # stage 1 reconfigured at 12: the vector of 10 is at stage 1 in 12 -> old (PASS)
    r = Run(CFG, cycles=40)
    r.at(0, "VCONST", c=0, imm=1000)
    r.lanes(10, E(0), [1] * 8, 1).at(10, "VRUN", a=E(0), ta=I8, b=E(0), tb=NONE, d=W(0),
                                      td=I32)
    cfg_stage(r, 11, 0, "ADD", I32, R2, R2, C0)
    cfg_stage(r, 12, 1, "MUL", I32, R2, R2, C0)
    r.lanes(13, E(0), [2] * 8, 1).at(13, "VRUN", a=E(0), ta=I8, b=E(0), tb=NONE, d=W(0),
                                      td=I32)
    r.go()
    assert not r.errs
    assert r.out(17, W(0), 4) == [1] * 8
    assert r.out(20, W(0), 4) == [1002000] * 8    # (2 + 1000) at stage 0, * 1000 at stage 1


def test_constant_change_between_stages():
    """A VCONST issued at 11 is seen by stages acting in 12 and later, so the vector of 10
    reads the old c0 at stage 0 (cycle 11) and the new one at stage 1 (cycle 12):
    a = 2: (2 + 5) * 300 = 2100 (not (2 + 5) * 5 = 35 nor (2 + 300) * 300 = 90600)."""
    r = Run(CFG, cycles=40)
    r.at(0, "VCONST", c=0, imm=5)
    cfg_stage(r, 1, 0, "ADD", I32, R2, R2, C0)
    cfg_stage(r, 2, 1, "MUL", I32, R2, R2, C0)
    r.lanes(10, E(0), [2] * 8, 1).at(10, "VRUN", a=E(0), ta=I8, b=E(0), tb=NONE, d=W(0),
                                      td=I32)
    r.at(11, "VCONST", c=0, imm=300)
    r.go()
    assert r.out(17, W(0), 4) == [2100] * 8


def test_function_stage_timing_and_functions():
    """The function stage uses the configuration in effect in t + A + 1: a VFUNC issued at
    t + A applies, one issued at t + A + 1 does not."""
    xs = [0, -256, -128, 1, -4096, 5, -3000, 100]
    r = Run(CFG, cycles=40)
    r.lanes(10, E(0), xs, 4).at(10, "VRUN", a=E(0), ta=I32, b=E(0), tb=NONE, d=W(0), td=I32)
    r.at(14, "VFUNC", fn=1, dst=R2, x=R0)           # in effect from 15 = 10 + A + 1
    r.go()
    assert r.out(17, W(0), 4) == [32768, 12055, 19875, 32768, 0, 32768,
                                  half_up(math.exp(-3000 / 256) * 32768), 32768]
    r = Run(CFG, cycles=40)
    r.lanes(10, E(0), xs, 4).at(10, "VRUN", a=E(0), ta=I32, b=E(0), tb=NONE, d=W(0), td=I32)
    r.at(15, "VFUNC", fn=1, dst=R2, x=R0)           # too late for the vector of 10
    r.go()
    assert r.out(17, W(0), 4) == xs


def test_function_stage_dst_and_x_and_other_functions():
    """VFUNC TANH r1 = tanh(r0) then nothing writes r2: r2 keeps a; with dst = r2, x = r1
    (b) the RSQRT of b comes out."""
    r = Run(CFG, cycles=40)
    r.at(0, "VFUNC", fn=2, dst=R1, x=R0)
    r.lanes(3, E(0), [256] * 8, 4).at(3, "VRUN", a=E(0), ta=I32, b=E(0), tb=NONE, d=W(0),
                                       td=I32)
    r.go()
    assert r.out(10, W(0), 4) == [256] * 8
    r = Run(CFG, cycles=40)
    r.at(0, "VFUNC", fn=3, dst=R2, x=R1)
    r.lanes(3, E(4), [1, 4, 0, -1, 2 ** 30, 2, 16, 1000], 4)
    r.at(3, "VRUN", a=E(0), ta=I32, b=E(4), tb=I32, d=W(0), td=I32)
    r.go()
    assert r.out(10, W(0), 4) == [2 ** 30, 2 ** 29, IMAX, IMAX, 2 ** 15, 23170 << 15, 2 ** 28,
                                  16579 << 11]
    r = Run(CFG, cycles=40)
    r.at(0, "VFUNC", fn=2, dst=R2, x=R2)
    r.lanes(3, E(0), [256, -256, 0, 5000, -5000, 128, -128, 1], 2)
    r.at(3, "VRUN", a=E(0), ta=I16, b=E(0), tb=NONE, d=W(0), td=I16)
    r.go()
    assert r.out(10, W(0), 2) == [24956, -24956, 0, 32767, -32767, 15143, -15143,
                                  half_up(math.tanh(1 / 256) * 32768)]


def test_result_is_wrapping_conversion_to_td():
    """td = i8 with sat = 0 takes the low byte of r2: 300 -> 44, -129 -> 127 (no
    saturation)."""
    r = Run(CFG, cycles=30)
    vals = [300, -129, 255, 256, -1, 127, 128, 65535]
    r.lanes(2, E(0), vals, 4).at(2, "VRUN", a=E(0), ta=I32, b=E(0), tb=NONE, d=E(5), td=I8,
                                  sat=0)
    r.go()
    assert r.out(9, E(5), 1) == [44, 127, -1, 0, -1, 127, -128, -1]


# r2 values (int32, passed through unchanged: reset stages) and their conversion to td by hand
RESULT_CASES = [
    # td, r2 values, sat = 0 (low bits, wrapping), sat = 1 (clamped to the type's range)
    (I8, [300, -129, 127, 128, -128, IMIN, IMAX, -1],
     [44, 127, 127, -128, -128, 0, -1, -1],          # IMIN = 0x80000000 -> 0x00; IMAX -> 0xFF
     [127, -128, 127, 127, -128, -128, 127, -1]),
    (I16, [32767, 32768, -32768, -32769, 70000, IMIN, IMAX, -5],
     [32767, -32768, -32768, 32767, 4464, 0, -1, -5],   # 70000 - 65536 = 4464
     [32767, 32767, -32768, -32768, 32767, -32768, 32767, -5]),
    (I32, [IMIN, IMAX, IMIN + 1, IMAX - 1, 0, -1, 1, 123456789],    # r2 is always int32:
     [IMIN, IMAX, IMIN + 1, IMAX - 1, 0, -1, 1, 123456789],         # both are the identity
     [IMIN, IMAX, IMIN + 1, IMAX - 1, 0, -1, 1, 123456789]),
]


@pytest.mark.parametrize("td,vals,wrapped,saturated", RESULT_CASES, ids=["i8", "i16", "i32"])
def test_result_conversion_sat_field(td, vals, wrapped, saturated):
    """VRUN's sat: 0 wraps r2 to td (low bits), 1 saturates it to td's range (docs/vxm.md
    section 2). Two VRUNs one cycle apart on the same values, results to W0.. (i32: W0..W3)."""
    nbytes = {I8: 1, I16: 2, I32: 4}[td]
    r = Run(CFG, cycles=30)
    for t, sat in ((2, 0), (3, 1)):
        r.lanes(t, E(0), vals, 4)
        r.at(t, "VRUN", a=E(0), ta=I32, b=E(0), tb=NONE, d=W(0), td=td, sat=sat)
    r.go()
    assert not r.errs
    assert r.out(2 + 7, W(0), nbytes) == wrapped
    assert r.out(3 + 7, W(0), nbytes) == saturated
    # only the streams of td's group are written
    assert sorted(s for _, s, _ in r.loads[9]) == list(range(nbytes))


def test_sat_of_a_computed_result():
    """sat applies to the r2 the stages computed: stage 0 (G) r2 = a + 100, stage 1 (M)
    r2 = r2 * -300 at i32 (no wrap), then converted to td = i8 / i16 with sat = 1 or 0."""
    r = Run(CFG, cycles=30)
    r.at(0, "VCONST", c=0, imm=100)
    r.at(1, "VCONST", c=1, imm=-300)
    cfg_stage(r, 2, 0, "ADD", I32, R2, R2, C0)
    cfg_stage(r, 3, 1, "MUL", I32, R2, R2, C1)
    r.lanes(5, E(0), [100, 300, -1, 0, 1, 2, 3, 4], 2)
    r.at(5, "VRUN", a=E(0), ta=I16, b=E(0), tb=NONE, d=W(2), td=I8, sat=1)
    r.lanes(6, E(0), [100, 300, -1, 0, 1, 2, 3, 4], 2)
    r.at(6, "VRUN", a=E(0), ta=I16, b=E(0), tb=NONE, d=W(2), td=I16, sat=1)
    r.lanes(7, E(0), [100, 300, -1, 0, 1, 2, 3, 4], 2)
    r.at(7, "VRUN", a=E(0), ta=I16, b=E(0), tb=NONE, d=W(2), td=I16, sat=0)
    r.go()
    # (a + 100) * -300 per lane: -60000, -120000, -29700, -30000, -30300, -30600, -30900, -31200
    prod = [(a + 100) * -300 for a in [100, 300, -1, 0, 1, 2, 3, 4]]
    assert prod == [-60000, -120000, -29700, -30000, -30300, -30600, -30900, -31200]
    assert r.out(12, W(2), 1) == [-128] * 8
    assert r.out(13, W(2), 2) == [-32768, -32768, -29700, -30000, -30300, -30600, -30900,
                                  -31200]
    # wrap: -60000 + 65536 = 5536; -120000 + 131072 = 11072
    assert r.out(14, W(2), 2) == [5536, 11072, -29700, -30000, -30300, -30600, -30900, -31200]


@pytest.mark.parametrize("stages", ["G", "M", "GS", "GMSG", "GMSGG", "SSMMGGGG"])
def test_result_cycle_follows_len_of_vxm_stages(stages):
    """A = len(vxm_stages): VRUN's dfunc is A + 4 (docs/vxm.md section 5), so a VRUN at 10 is
    written at the end of 10 + A + 3 and is active in 11 .. 10 + A + 3."""
    cfg = CFG.replace(vxm_stages=stages)
    A = len(stages)
    assert cfg.vxm_alus == A and dfunc_of(BY_NAME["VRUN"], cfg) == A + 4
    r = Run(cfg, cycles=30)
    r.lanes(10, E(0), list(range(8)), 1).at(10, "VRUN", a=E(0), ta=I8, b=E(0), tb=NONE,
                                             d=E(3), td=I8)
    r.go()
    assert list(r.loads) == [10 + A + 3]
    assert r.out(10 + A + 3, E(3), 1) == list(range(8))
    assert [t for t, a in enumerate(r.act) if a] == list(range(11, 10 + A + 4))


def test_group_past_last_stream_reads_zero_and_is_not_written():
    """i32 at E6 with 8 streams: bytes 0, 1 from E6, E7, bytes 2, 3 read as 0; the i32 result
    at W6 writes W6 and W7 only."""
    r = Run(CFG, cycles=30)
    r.east[2, 6] = 0x34
    r.east[2, 7] = 0x92                              # 0x9234 -> int32 37428 (bytes 2, 3 = 0)
    r.at(2, "VRUN", a=E(6), ta=I32, b=E(0), tb=NONE, d=W(6), td=I32)
    cfg_stage(r, 0, 0, "ADD", I32, R2, R2, C0)
    r.at(1, "VCONST", c=0, imm=0x10000)              # + 0x10000: byte 2 set, not written
    r.go()
    writes = {(d, s): list(v) for d, s, v in r.loads[9]}
    assert set(writes) == {(1, 6), (1, 7)}
    assert writes[(1, 6)] == [0x34] * 8 and writes[(1, 7)] == [0x92] * 8


def test_back_to_back_vectors_one_per_cycle():
    r = Run(CFG, cycles=40)
    cfg_stage(r, 0, 0, "ADD", I32, R2, R0, R1)
    for k in range(6):
        r.lanes(5 + k, E(0), [k * 10 + lane for lane in range(8)], 1)
        r.lanes(5 + k, E(1), [k] * 8, 1)
        r.at(5 + k, "VRUN", a=E(0), ta=I8, b=E(1), tb=I8, d=W(2), td=I8)
    r.go()
    assert sorted(r.loads) == [12 + k for k in range(6)]
    for k in range(6):
        assert r.out(12 + k, W(2), 1) == [k * 11 + lane for lane in range(8)]
    assert r.act[5] is False and all(r.act[6:18]) and not r.act[18]


# ---- illegal configurations and clear ---------------------------------------------------------
# Each would change the result (7 -> something else) if it were applied. Stages GMSG.
ILLEGAL_VCFG = [
    {"k": 4, "op": OP["ADD"], "type": I32, "dst": R2, "x": R2, "y": C0},      # k >= A (A = 4)
    {"k": 0, "op": 21, "type": I32, "dst": R2, "x": R2, "y": C0},             # no such operation
    {"k": 0, "op": 31, "type": I32, "dst": R2, "x": R2, "y": C0},
    {"k": 0, "op": OP["MUL"], "type": I32, "dst": R2, "x": R2, "y": C0},      # MUL on G
    {"k": 3, "op": OP["SRDHM"], "type": I32, "dst": R2, "x": R2, "y": C0},    # SRDHM on G
    {"k": 2, "op": OP["MUL"], "type": I32, "dst": R2, "x": R2, "y": C0},      # MUL on S
    {"k": 1, "op": OP["ADD"], "type": I32, "dst": R2, "x": R2, "y": C0},      # ADD on M
    {"k": 2, "op": OP["ADD"], "type": I32, "dst": R2, "x": R2, "y": C0},      # ADD on S
    {"k": 1, "op": OP["SHL"], "type": I32, "dst": R2, "x": R2, "y": C0},      # SHL on M
    {"k": 0, "op": OP["RDIVPOT"], "type": I32, "dst": R2, "x": R2, "y": C0},  # RDIVPOT on G
    {"k": 2, "op": OP["SAT"], "type": I8, "dst": R2, "x": R2, "y": ZERO},     # SAT on S
    {"k": 0, "op": OP["ADD"], "type": 3, "dst": R2, "x": R2, "y": C0},        # type 3
    {"k": 0, "op": OP["ADD"], "type": I32, "dst": 3, "x": R2, "y": C0},       # dst 3
    {"k": 0, "op": OP["ADD"], "type": I32, "dst": R2, "x": 3, "y": C0},       # x 3
]


@pytest.mark.parametrize("fields", ILLEGAL_VCFG)
def test_illegal_vcfg_raises_and_leaves_config(fields):
    r = Run(CFG, cycles=30)
    r.at(0, "VCONST", c=0, imm=1000)
    r.at(1, "VCFG", **fields)
    r.at(3, "VRUN", a=E(0), ta=I8, b=E(0), tb=NONE, d=W(0), td=I32)
    r.lanes(3, E(0), [7] * 8, 1)
    r.go()
    assert r.errs == {1: ILLEGAL}
    assert r.out(10, W(0), 4) == [7] * 8


def test_legal_edge_configurations():
    r = Run(CFG, cycles=30)
    r.at(0, "VCFG", k=1, op=OP["MUL"], type=I32, dst=R0, x=R2, y=ZERO)
    r.at(1, "VCFG", k=2, op=OP["RDIVPOT"], type=I8, dst=R1, x=R2, y=R0)
    r.at(2, "VCFG", k=1, op=OP["SRDHM"], type=I16, dst=R2, x=R2, y=C3)
    r.at(3, "VCFG", k=3, op=OP["SAT"], type=I8, dst=R2, x=R1, y=ZERO)
    r.at(4, "VCFG", k=2, op=OP["PASS"], type=I16, dst=R2, x=R2, y=ZERO)
    r.at(5, "VRUN", a=E(0), ta=I8, b=E(0), tb=NONE, d=W(0), td=I32, sat=1)
    r.go()
    assert not r.errs


# docs/vxm.md section 1: the operations of each stage kind, typed in from the table
KIND_OPS = {
    "G": {"PASS", "ADD", "SUB", "MIN", "MAX", "AND", "OR", "XOR", "NOT", "ADDS", "SUBS", "NEG",
          "ABS", "RELU", "SAT"},
    "M": {"PASS", "MUL", "SRDHM"},
    "S": {"PASS", "SHL", "SHRA", "SHRL", "RDIVPOT"},
}


def test_every_op_on_every_stage_kind():
    """Every operation on a stage of every kind (stages "GMS": k = 0, 1, 2): ILLEGAL exactly
    when the kind's table row lacks it, and then the configuration is unchanged."""
    assert set(OP) == KIND_OPS["G"] | KIND_OPS["M"] | KIND_OPS["S"]
    cfg = CFG.replace(vxm_stages="GMS")
    for k, kind in enumerate("GMS"):
        for name, code in OP.items():
            m = VxmModel(cfg, cfg.position_index("VXM"))
            instr, f = decode(encode("VCFG", k=k, op=code, type=I32, dst=R1, x=R2, y=C0))
            err = m.issue(0, instr, f, 0)
            legal = name in KIND_OPS[kind]
            assert err == (0 if legal else ILLEGAL), (kind, name)
            assert (stage_problem(cfg, k, code, I32, R1, R2) is None) == legal, (kind, name)
            m.cycle(0, *[np.zeros((cfg.streams, cfg.vec_bytes), dtype=np.uint8)] * 2)
            m.cycle(1, *[np.zeros((cfg.streams, cfg.vec_bytes), dtype=np.uint8)] * 2)
            want = (code, I32, R1, R2, C0) if legal else (OP["PASS"], I32, R2, R2, ZERO)
            assert tuple(int(v) for v in m.cfg[k]) == want, (kind, name, m.cfg[k])


@pytest.mark.parametrize("stages,k,op,kind", [
    ("GMSG", 0, "MUL", "G (general"),
    ("GMSG", 3, "SRDHM", "G (general"),
    ("GMSG", 1, "ADD", "M (multiplier"),
    ("GMSG", 2, "RELU", "S (shifter"),
    ("SSMMG", 4, "SHRA", "G (general"),
    ("SSMMG", 2, "RDIVPOT", "M (multiplier"),
])
def test_wrong_kind_message_names_kind_and_stages(stages, k, op, kind):
    msg = stage_problem(CFG.replace(vxm_stages=stages), k, OP[op], I32, R2, R2)
    assert msg is not None
    assert f"stage k = {k} is {kind}" in msg, msg
    assert f"vxm_stages = {stages!r}" in msg and op in msg, msg


@pytest.mark.parametrize("name,fields", [
    ("VFUNC", {"fn": 1, "dst": 3, "x": R0}),
    ("VFUNC", {"fn": 1, "dst": R2, "x": 3}),
    ("VLOADC", {"c": 0, "s": E(0), "t": NONE}),
])
def test_illegal_vfunc_vloadc(name, fields):
    r = Run(CFG, cycles=30)
    r.lanes(0, E(0), [9] * 8, 4).at(0, name, **fields)
    r.at(1, "VCFG", k=0, op=OP["ADD"], type=I32, dst=R2, x=R2, y=C0)
    r.at(2, "VRUN", a=E(0), ta=I8, b=E(0), tb=NONE, d=W(0), td=I32)
    r.lanes(2, E(0), [3] * 8, 1)
    r.go()
    assert r.errs == {0: ILLEGAL}
    assert r.out(9, W(0), 4) == [3] * 8          # c0 still 0, function still OFF


@pytest.mark.parametrize("ta,td", [(NONE, I8), (I8, NONE)])
def test_illegal_vrun_runs_nothing(ta, td):
    r = Run(CFG, cycles=30)
    r.at(2, "VRUN", a=E(0), ta=ta, b=E(0), tb=I8, d=W(0), td=td)
    r.go()
    assert r.errs == {2: ILLEGAL}
    assert not r.loads and not any(r.act)


def test_reset_restores_start_state_and_drops_vectors_in_flight():
    r = Run(CFG, cycles=40)
    r.at(0, "VCONST", c=0, imm=77)
    cfg_stage(r, 1, 0, "ADD", I32, R2, R2, C0)
    r.at(2, "VFUNC", fn=2, dst=R2, x=R2)
    r.at(3, "VRUN", a=E(0), ta=I8, b=E(0), tb=NONE, d=W(0), td=I32)
    r.go()
    assert r.out(10, W(0), 4) == [func("TANH", 77)] * 8
    m = r.model
    m.reset()
    assert all(c == (OP["PASS"], I32, R2, R2, ZERO) for c in m.cfg)
    assert m.fcfg[0] == 0 and not m.consts.any()
    # a vector in flight is dropped by START; after it, the pipeline is the identity
    instr, f = decode(encode("VRUN", a=E(0), ta=I8, b=E(0), tb=NONE, d=W(0), td=I32, sat=0))
    east = np.zeros((CFG.streams, CFG.vec_bytes), dtype=np.uint8)
    east[0] = 5
    west = np.zeros_like(east)
    m.issue(100, instr, f, 0)
    m.cycle(100, east, west)
    m.reset()
    assert not m.active(101)
    assert all(not m.cycle(t, east, west)[0] for t in range(101, 110))
    m.issue(110, instr, f, 0)
    outs = {t: m.cycle(t, east, west)[0] for t in range(110, 120)}
    assert [t for t, v in outs.items() if v] == [117]
    assert [int(b) for b in outs[117][0][2]] == [5] * 8


def test_constructor_checks_position():
    with pytest.raises(ValueError, match="not the VXM position"):
        VxmModel(CFG, 0)
    with pytest.raises(TypeError, match="TspConfig"):
        VxmModel("default", 6)  # type: ignore[arg-type]


# ---- RANGE: shift amounts outside 0..31 (docs/vxm.md section 3) ------------------------------
def test_range_bit_number():
    assert RANGE == 1 << 5                     # docs/architecture.md section 4: RANGE is bit 5


@pytest.mark.parametrize("op,y,bad", [
    ("SHL", 31, False), ("SHL", 32, True), ("SHRA", 0, False), ("SHRA", -1, True),
    ("SHRL", 40, True), ("RDIVPOT", 31, False), ("RDIVPOT", IMIN, True), ("RDIVPOT", IMAX, True),
    ("PASS", 40, False), ("ADD", 40, False), ("MUL", -1, False), ("SRDHM", 99, False),
])
def test_shift_out_of_range_helper(op, y, bad):
    assert shift_out_of_range(op, y) is bad
    assert shift_out_of_range(op, [3, y, 0]) is bad           # any lane


def test_range_raised_in_the_stage_cycle_result_unchanged():
    """GMSG, stage 2 (S) acts at t + 3 for a VRUN at t. c1 = 40, c2 = -1, c3 = 31 (by hand):
    VRUN at 5, SHRL i32 by c1 -> by 8: 0x1234 -> 0x12, -256 -> 0x00FFFFFF: RANGE at 8;
    VRUN at 9, RDIVPOT by 31: 2^30 -> 1, IMIN -> -1, -256 -> 0: no flag;
    VRUN at 13, SHL i8 by -1 (-> 31): 0: RANGE at 16;
    VRUN at 17, PASS with y = c1 on stage 2 and ADD by c1 = 40 on stage 3 (into r1): no flag;
    VRUNs at 21, 22, 23, SHRA of -64 by r1 per lane: [0, 31, 6, 5, 1, 2, 3, 4] (in range),
    [0, 31, -1, 5, 1, 2, 3, 4] (-1 -> 31: RANGE at 25), [32, 1, 2, 3, 4, 5, 6, 7] (32 -> 0:
    RANGE at 26)."""
    r = Run(CFG, cycles=40)
    r.at(0, "VCONST", c=1, imm=40).at(1, "VCONST", c=2, imm=-1).at(2, "VCONST", c=3, imm=31)
    cfg_stage(r, 3, 3, "ADD", I32, R1, R1, C1)
    cfg_stage(r, 4, 2, "SHRL", I32, R2, R0, C1)
    runs = {}

    def vrun(t, a, b=None, want=None):
        r.lanes(t, E(0), a, 4)
        if b is not None:
            r.lanes(t, W(0), b, 4)
        r.at(t, "VRUN", a=E(0), ta=I32, b=W(0), tb=NONE if b is None else I32, d=E(4), td=I32)
        runs[t] = want

    vrun(5, [0x1234, -256] * 4, want=[0x12, 0xFFFFFF] * 4)
    cfg_stage(r, 8, 2, "RDIVPOT", I32, R2, R0, C3)
    vrun(9, [1 << 30, IMIN, -256, 0x1234] * 2, want=[1, -1, 0, 0] * 2)
    cfg_stage(r, 12, 2, "SHL", I8, R2, R0, C2)
    vrun(13, [1, 2, 3, -1] * 2, want=[0] * 8)
    cfg_stage(r, 16, 2, "PASS", I32, R2, R2, C1)
    vrun(17, list(range(8)), want=list(range(8)))
    cfg_stage(r, 20, 2, "SHRA", I32, R2, R0, R1)
    vrun(21, [-64] * 8, [0, 31, 6, 5, 1, 2, 3, 4], want=[-64, -1, -1, -2, -32, -16, -8, -4])
    vrun(22, [-64] * 8, [0, 31, -1, 5, 1, 2, 3, 4], want=[-64, -1, -1, -2, -32, -16, -8, -4])
    vrun(23, [-64] * 8, [32, 1, 2, 3, 4, 5, 6, 7], want=[-64, -32, -16, -8, -4, -2, -1, -1])
    r.go()
    for t, want in runs.items():
        assert r.out(t + 7, E(4), 4) == want, f"VRUN at {t}"
    assert r.errs == {8: RANGE, 16: RANGE, 25: RANGE, 26: RANGE}


def test_range_two_stages_one_cycle_and_illegal():
    """Stages GSS (A = 3), stages 1 and 2 shift by c0 = 33 (-> 1): the VRUNs at 3 and 4 put
    two stages out of range in cycle 6, and an illegal VCFG (k = 7) issues then: RANGE at 5,
    RANGE | ILLEGAL at 6, RANGE at 7. Results (SHL 1, SHRL 1): -1 -> 0x7FFFFFFF, IMIN -> 0."""
    cfg = CFG.replace(vxm_stages="GSS")
    r = Run(cfg, cycles=20)
    r.at(0, "VCONST", c=0, imm=33)
    cfg_stage(r, 1, 1, "SHL", I32, R2, R2, C0)
    cfg_stage(r, 2, 2, "SHRL", I32, R2, R2, C0)
    r.lanes(3, E(0), [1, 2, -1, 0x100] * 2, 4)
    r.at(3, "VRUN", a=E(0), ta=I32, b=E(0), tb=NONE, d=E(4), td=I32)
    r.lanes(4, E(0), [IMIN, 3, 0, 5] * 2, 4)
    r.at(4, "VRUN", a=E(0), ta=I32, b=E(0), tb=NONE, d=E(4), td=I32)
    r.at(6, "VCFG", k=7, op=OP["ADD"], type=I32, dst=R2, x=R2, y=C0)
    r.go()
    assert r.out(3 + 6, E(4), 4) == [1, 2, IMAX, 0x100] * 2
    assert r.out(4 + 6, E(4), 4) == [0, 3, 0, 5] * 2
    assert r.errs == {5: RANGE, 6: RANGE | ILLEGAL, 7: RANGE}

