# Tests of the assembler's VXM support (docs/assembly.md, docs/vxm.md): symbolic operands in the
# text and the Builder, encodings against bit positions worked out by hand from the field order of
# tsp/isa.py, the symbolic disassembly, every VXM rejection (file:line and cycle), stream timing
# of VLOADC / VRUN (SG2/SG4 groups, tb = none) and the Done-rule cycle count with VRUNs.
# Stage kinds: the default profile's vxm_stages is "GMSG" (0 general, 1 multiplier, 2 shifter,
# 3 general); every VCFG that should assemble puts its operation on a stage of the right kind.
#
# Default profile (8 lanes, 8 streams) positions: 0 MXM_W, 1 SXM_W, 2 MEM_W3, 3 MEM_W2, 4 MEM_W1,
# 5 MEM_W0, 6 VXM, 7 MEM_E0, 8 MEM_E1, 9 MEM_E2, 10 MEM_E3, 11 SXM_E, 12 MXM_E. READ: a value on
# its stream at its own position at u + 2, one position further per cycle. VRUN / VLOADC read at
# issue (dskew 0); VRUN's result is on its streams at the VXM at t + len(vxm_stages) + 4.
from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from asm import AsmError, Builder, Program, assemble, check, format_instr, parse
from tsp import isa
from tsp.config import TspConfig

ROOT = Path(__file__).resolve().parents[1]
CFG = TspConfig.profile("default")       # 4 lanes, every unit (the ECP5-85F target)
NO_VXM = CFG.replace(units=("mxm", "sxm"))
VXM = 6


def fails(text: str, config: TspConfig = CFG) -> AsmError:
    with pytest.raises(AsmError) as info:
        assemble(text, config, "t.s")
    return info.value


def at(e: AsmError, line: int, cycle: int | None = None, position: int | None = None) -> str:
    """Assert the error names t.s:line (and cycle, position); return its text."""
    s = str(e)
    assert s.startswith(f"t.s:{line}: "), s
    assert e.line == line, s
    if cycle is not None:
        assert e.cycle == cycle, s
        assert f"cycle {cycle}" in s, s
    if position is not None:
        assert e.position == position, s
        assert f"{CFG.positions[position]} (position {position})" in s, s
    return s


def vxm_word(text: str, config: TspConfig = CFG) -> int:
    """Encode one VXM statement through the text parser (no schedule check)."""
    b = parse(f".queue VXM\n{text}\n", config)
    words = b._words[VXM]
    assert len(words) == 1
    return words[0]


# ---- syntax and encodings (bit positions by hand: opcode [5:0], fields packed from bit 6) -----
# VCFG 16: k [8:6], op [13:9], type [15:14], dst [17:16], x [19:18], y [22:20]
# VFUNC 17: fn [7:6], dst [9:8], x [11:10]
# VCONST 18: c [7:6], imm [27:8] (20-bit two's complement); VCONSTH 19: c [7:6], imm [23:8]
# VLOADC 20: c [7:6], s [13:8], t [15:14]
# VRUN 21: a [11:6] (6), ta [13:12] (2), b [19:14] (6), tb [21:20] (2), d [27:22] (6),
#          td [29:28] (2), sat [30] (1): 6 + 6 + 2 + 6 + 2 + 6 + 2 = 30, so sat is bit 30
# Streams: bit 5 direction (W = 1), bits 4:0 index. SRDHM = 19, SAT = 18, i8 0, i32 2, none 3,
# r0 0, r2 2, c0 = 3 and zero = 7 as y; EXP = 1; wrap = 0, sat = 1.

ENCODINGS = [
    ("VCFG 1, SRDHM, i32, r2, r0, c0",
     16 | 1 << 6 | 19 << 9 | 2 << 14 | 2 << 16 | 0 << 18 | 3 << 20),
    ("VCFG 3, SAT, i8, r2, r2, zero",
     16 | 3 << 6 | 18 << 9 | 0 << 14 | 2 << 16 | 2 << 18 | 7 << 20),
    ("VCFG 2, RDIVPOT, i16, r1, r2, c3",
     16 | 2 << 6 | 20 << 9 | 1 << 14 | 1 << 16 | 2 << 18 | 6 << 20),
    ("VFUNC EXP, r2, r2", 17 | 1 << 6 | 2 << 8 | 2 << 10),
    ("VFUNC RSQRT, r0, r1", 17 | 3 << 6 | 0 << 8 | 1 << 10),
    ("VFUNC OFF, r0, r0", 17),
    ("VCONST c1, -5", 18 | 1 << 6 | (2 ** 20 - 5) << 8),
    ("VCONST c3, 0x7999", 18 | 3 << 6 | 0x7999 << 8),
    ("VCONST c2, 524287", 18 | 2 << 6 | 0x7FFFF << 8),
    ("VCONST c0, -524288", 18 | 0x80000 << 8),
    ("VCONSTH c0, 0x5A82", 19 | 0x5A82 << 8),
    ("VCONSTH c2, 0xFFFF", 19 | 2 << 6 | 0xFFFF << 8),
    ("VLOADC c0, E4, i32", 20 | 0 << 6 | 4 << 8 | 2 << 14),
    ("VLOADC c3, W6, i16", 20 | 3 << 6 | (32 + 6) << 8 | 1 << 14),
    ("VRUN W0, i32, E0, none, E4, i8, wrap",
     21 | 32 << 6 | 2 << 12 | 0 << 14 | 3 << 20 | 4 << 22 | 0 << 28 | 0 << 30),
    ("VRUN E2, i16, W7, i8, W4, i32, wrap",
     21 | 2 << 6 | 1 << 12 | (32 + 7) << 14 | 0 << 20 | (32 + 4) << 22 | 2 << 28 | 0 << 30),
    ("VRUN W0, i32, E0, none, E4, i8, sat",
     21 | 32 << 6 | 2 << 12 | 0 << 14 | 3 << 20 | 4 << 22 | 0 << 28 | 1 << 30),
    ("VRUN E0, i8, E0, none, E0, i8, sat", 21 | 3 << 20 | 1 << 30),
]


@pytest.mark.parametrize("text,word", ENCODINGS, ids=[t for t, _ in ENCODINGS])
def test_symbolic_encoding(text, word):
    assert vxm_word(text) == word
    # the disassembly prints the same names and reassembles to the same word
    assert vxm_word(format_instr(word)) == word


def test_numbers_and_case():
    # numbers stay accepted in every symbolic field; names are case-insensitive
    assert vxm_word("VCFG 1, 19, 2, 2, 0, 3") == vxm_word("VCFG 1, SRDHM, i32, r2, r0, c0")
    assert vxm_word("vcfg 1, srdhm, I32, R2, r0, C0") == vxm_word("VCFG 1, 19, 2, 2, 0, 3")
    assert vxm_word("VCFG 3, 18, 0, 2, 2, 7") == vxm_word("VCFG 3, SAT, i8, r2, r2, ZERO")
    assert vxm_word("VFUNC 2, 0x2, 1") == vxm_word("VFUNC tanh, r2, r1")
    assert vxm_word("VCONST 1, -5") == vxm_word("VCONST c1, -5")
    assert vxm_word("VRUN W0, 2, E0, 3, E4, 0, 0") == vxm_word("VRUN W0, i32, E0, NONE, E4, i8, "
                                                               "WRAP")
    assert vxm_word("VRUN W0, 2, E0, 3, E4, 0, 1") == vxm_word("VRUN W0, i32, E0, none, E4, i8, "
                                                               "Sat")
    assert vxm_word("VLOADC 0, E4, 2") == vxm_word("VLOADC c0, E4, i32")


def test_sat_field_is_bit_30():
    # the two VRUNs that differ only in sat differ only in bit 30
    wrap = vxm_word("VRUN W0, i32, E0, none, E4, i8, wrap")
    sat = vxm_word("VRUN W0, i32, E0, none, E4, i8, sat")
    assert sat ^ wrap == 1 << 30 and sat & (1 << 30)
    assert isa.decode(sat)[1]["sat"] == 1 and isa.decode(wrap)[1]["sat"] == 0
    # sat takes 0 or 1 only (one bit)
    assert "out of range" in at(fails(".queue VXM\n VRUN E0, i8, E0, none, E4, i8, 2\n"), 2)


def test_vrun_needs_the_sat_operand():
    s = at(fails(".queue VXM\n VRUN E0, i8, E0, none, E4, i8\n"), 2)
    assert "VRUN takes 7 operand(s) (VRUN a, ta, b, tb, d, td, sat), got 6 (missing sat)" in s, s


def test_disassembly_is_symbolic():
    assert format_instr(ENCODINGS[0][1]) == "VCFG 1, SRDHM, i32, r2, r0, c0"
    assert format_instr(ENCODINGS[1][1]) == "VCFG 3, SAT, i8, r2, r2, zero"
    assert format_instr(ENCODINGS[3][1]) == "VFUNC EXP, r2, r2"
    assert format_instr(ENCODINGS[6][1]) == "VCONST c1, -5"
    assert format_instr(ENCODINGS[10][1]) == "VCONSTH c0, 0x5a82"
    assert format_instr(ENCODINGS[12][1]) == "VLOADC c0, E4, i32"
    assert format_instr(ENCODINGS[14][1]) == "VRUN W0, i32, E0, none, E4, i8, wrap"
    assert format_instr(ENCODINGS[16][1]) == "VRUN W0, i32, E0, none, E4, i8, sat"
    # codes without a name (undefined op 25, type 3, dst 3) are printed as numbers
    w = 16 | 1 << 6 | 25 << 9 | 3 << 14 | 3 << 16 | 1 << 18 | 7 << 20
    assert format_instr(w) == "VCFG 1, 25, 3, 3, r1, zero"
    assert format_instr(21 | 3 << 12 | 3 << 20 | 3 << 28) == "VRUN E0, 3, E0, none, E0, 3, wrap"


@pytest.mark.parametrize("instr", [i for i in isa.INSTRUCTIONS if i.unit == "vxm"],
                         ids=lambda i: i.name)
def test_random_round_trip(instr):
    # any in-range field values (named or not) disassemble to text that parses to the same word
    rng = random.Random(instr.opcode)
    for _ in range(50):
        vals = {}
        for f in instr.fields:
            if f.kind == "stream":
                vals[f.name] = isa.stream_operand(rng.randrange(2), rng.randrange(CFG.streams))
            else:
                vals[f.name] = rng.randint(f.min, f.max)
        word = isa.encode(instr.name, **vals)
        assert vxm_word(format_instr(word)) == word


def test_listing_is_symbolic():
    prog = assemble(".queue VXM\n VCFG 1, SRDHM, i32, r2, r0, c0\n VFUNC EXP, r2, r2\n", CFG)
    text = prog.listing()
    assert "VCFG 1, SRDHM, i32, r2, r0, c0" in text and "VFUNC EXP, r2, r2" in text
    assert "VRUN E0, i8, E1, none, E4, i8, sat" in assemble(_a_from_w0(3), CFG).listing()


def test_builder_names_and_ints():
    b = Builder(CFG)
    w1 = b.add("VXM", "VCFG", 1, "SRDHM", "i32", "r2", "r0", "c0")
    w2 = b.add("VXM", "VCFG", k=1, op=19, type=2, dst=2, x=0, y=3)
    w3 = b.add("vxm", "vcfg", 1, "srdhm", type="I32", dst=2, x="r0", y="C0")
    assert w1 == w2 == w3 == ENCODINGS[0][1]
    assert b.add("VXM", "VRUN", "W0", "i32", "E0", "none", "E4", "i8", "wrap") == \
        ENCODINGS[14][1]
    assert b.add("VXM", "VRUN", 32, 2, 0, 3, 4, 0, 0) == ENCODINGS[14][1]
    assert b.add("VXM", "VRUN", "W0", "i32", "E0", "none", "E4", "i8", sat="sat") == \
        ENCODINGS[16][1]
    assert b.add("VXM", "VRUN", 32, 2, 0, 3, 4, 0, 1) == ENCODINGS[16][1]
    assert b.add("VXM", "VFUNC", "EXP", "r2", "r2") == ENCODINGS[3][1]
    assert b.add("VXM", "VCONST", "c1", -5) == ENCODINGS[6][1]
    assert b.add("VXM", "VCONSTH", "c0", 0x5A82) == ENCODINGS[10][1]
    assert b.add("VXM", "VLOADC", "c0", "E4", "i32") == ENCODINGS[12][1]
    with pytest.raises(AsmError, match=r"gen.py:3: VCFG: unknown value 'r3' for field dst; "
                                       r"allowed: r0, r1, r2"):
        Builder(CFG, "gen.py").add("VXM", "VCFG", 0, "ADD", "i8", "r3", "r0", "c0", line=3)


# ---- statement errors (file:line, field named, allowed values listed) -------------------------

@pytest.mark.parametrize("stmt,field,allowed", [
    ("VCFG 0, FOO, i32, r2, r0, c0", "op", ("PASS, ADD, SUB, MUL, MIN, MAX, AND, OR, XOR, NOT, "
                                            "SHL, SHRA, SHRL, ADDS, SUBS, NEG, ABS, RELU, SAT, "
                                            "SRDHM, RDIVPOT")),
    ("VCFG 0, ADD, i64, r2, r0, c0", "type", "i8, i16, i32"),
    ("VCFG 0, ADD, none, r2, r0, c0", "type", "i8, i16, i32"),
    ("VCFG 0, ADD, i8, r3, r0, c0", "dst", "r0, r1, r2"),
    ("VCFG 0, ADD, i8, r2, c0, c0", "x", "r0, r1, r2"),
    ("VCFG 0, ADD, i8, r2, r0, c4", "y", "r0, r1, r2, c0, c1, c2, c3, zero"),
    ("VFUNC SIGMOID, r2, r2", "fn", "OFF, EXP, TANH, RSQRT"),
    ("VFUNC EXP, zero, r2", "dst", "r0, r1, r2"),
    ("VCONST c4, 1", "c", "c0, c1, c2, c3"),
    ("VCONSTH r0, 1", "c", "c0, c1, c2, c3"),
    ("VLOADC c0, E4, none", "t", "i8, i16, i32"),
    ("VRUN W0, none, E0, none, E4, i8, wrap", "ta", "i8, i16, i32"),
    ("VRUN W0, i8, E0, void, E4, i8, wrap", "tb", "i8, i16, i32, none"),
    ("VRUN W0, i8, E0, none, E4, none, wrap", "td", "i8, i16, i32"),
    ("VRUN W0, i8, E0, none, E4, i8, clamp", "sat", "wrap, sat"),
    ("VRUN W0, i8, E0, none, E4, i8, none", "sat", "wrap, sat"),
])
def test_unknown_symbol(stmt, field, allowed):
    e = fails(f".queue VXM\n NOP 1\n {stmt}\n")
    s = at(e, 3)
    bad = re.split(r",\s*|\s+", stmt)[[f.name for f in isa.BY_NAME[stmt.split()[0]].fields]
                                      .index(field) + 1]
    assert f"unknown value {bad!r} for field {field}; allowed: {allowed} (or a number)" in s, s


def test_non_symbolic_fields_still_need_numbers():
    assert "malformed number" in at(fails(".queue VXM\n VCFG s0, ADD, i8, r2, r0, c0\n"), 2)
    assert "malformed number" in at(fails(".queue VXM\n VCONST c0, c1\n"), 2)
    assert "must be a stream" in at(fails(".queue VXM\n VRUN r0, i8, E0, none, E4, i8, sat\n"),
                                    2)


def test_vconst_32_bit_value_explains_the_split():
    # 0x5A827999 does not fit 20 bits: low half 0x7999 by VCONST, high half 0x5a82 by VCONSTH
    s = at(fails(".queue VXM\n VCONST c2, 0x5A827999\n"), 2)
    assert "does not fit the 20-bit signed field [-524288, 524287]" in s
    assert "VCONST c2, 0x7999 then VCONSTH c2, 0x5a82" in s
    # one past the 20-bit range, and a negative 32-bit value (-2^31 = 0x80000000)
    assert "VCONST c0, 0x0 then VCONSTH c0, 0x8" in at(fails(".queue VXM\n VCONST c0, 524288\n"),
                                                       2)
    s = at(fails(".queue VXM\n VCONST c1, -0x80000000\n"), 2)
    assert "VCONST c1, 0x0 then VCONSTH c1, 0x8000" in s
    # beyond 32 bits: a plain range error
    s = at(fails(".queue VXM\n VCONST c1, 0x100000000\n"), 2)
    assert "out of range" in s and "VCONSTH" not in s
    # the suggested pair assembles (and VCONSTH takes no value above 16 bits)
    assemble(".queue VXM\n VCONST c2, 0x7999\n VCONSTH c2, 0x5a82\n", CFG)
    assert "out of range" in at(fails(".queue VXM\n VCONSTH c0, 0x10000\n"), 2)


def test_vxm_needs_the_unit_and_its_queue():
    for stmt in ("VCFG 0, ADD, i8, r2, r0, c0", "VFUNC OFF, r0, r0", "VCONST c0, 1",
                 "VCONSTH c0, 1", "VLOADC c0, E0, i8", "VRUN E0, i8, E0, none, E4, i8, wrap"):
        name = stmt.split()[0]
        s = at(fails(f".queue VXM\n {stmt}\n", NO_VXM), 2)
        assert (f"{name} is a vxm instruction and profile 'default' has no vxm unit "
                f"(TspConfig.units = ('mxm', 'sxm'))") in s, s
        assert "cannot run it" in at(fails(f".queue MEM_W0\n {stmt}\n"), 2)
        assert "cannot run it" in at(fails(f".queue SXM_W\n {stmt}\n"), 2)
    # and the VXM queue runs no other unit's instructions
    assert "cannot run it" in at(fails(".queue VXM\n READ 0, E0\n"), 2)


# ---- ILLEGAL configurations (docs/vxm.md sections 3-5): file:line, cycle and position ---------

@pytest.mark.parametrize("stmt,words", [
    ("VCFG 4, ADD, i32, r2, r2, c0", ("ALU stage k=4 does not exist: profile 'default' has "
                                      "vxm_alus = 4 stages (k = 0..3)")),
    ("VCFG 7, PASS, i32, r2, r2, zero", "ALU stage k=7 does not exist"),
    ("VCFG 0, 21, i32, r2, r2, c0", "operation code op=21 is undefined"),
    ("VCFG 2, 31, i32, r2, r2, c0", "operation code op=31 is undefined"),
    ("VCFG 0, MUL, i32, r2, r0, c0", ("MUL at stage k=0: stage 0 is a general stage (G; "
                                      "profile 'default' has vxm_stages = 'GMSG') and MUL "
                                      "needs a multiplier stage")),
    ("VCFG 3, SRDHM, i32, r2, r0, c0", ("SRDHM at stage k=3: stage 3 is a general stage (G; "
                                        "profile 'default' has vxm_stages = 'GMSG')")),
    ("VCFG 1, ADD, i32, r2, r0, c0", ("ADD at stage k=1: stage 1 is a multiplier stage (M; "
                                      "profile 'default' has vxm_stages = 'GMSG') and ADD "
                                      "needs a general stage")),
    ("VCFG 2, SAT, i8, r2, r2, zero", ("stage 2 is a shifter stage (S; profile 'default' has "
                                       "vxm_stages = 'GMSG') and SAT needs a general stage")),
    ("VCFG 1, SHL, i32, r2, r0, c0", "SHL at stage k=1: stage 1 is a multiplier stage (M;"),
    ("VCFG 0, RDIVPOT, i32, r2, r0, c0", ("stage 0 is a general stage (G; profile 'default' has "
                                          "vxm_stages = 'GMSG') and RDIVPOT needs a shifter "
                                          "stage")),
    ("VCFG 3, ADD, 3, r2, r0, c0", "type=3 is not a stage type"),
    ("VCFG 0, ADD, i8, 3, r0, c0", "dst=3 is not a result register"),
    ("VCFG 3, ADD, i8, r2, 3, c0", "x=3 is not an operand register"),
    ("VCFG 1, MUL, 3, r2, r0, c0", "type=3 is not a stage type"),
    ("VCFG 2, SHL, i8, r2, 3, c0", "x=3 is not an operand register"),
    ("VFUNC EXP, 3, r2", "dst=3 is not a result register"),
    ("VFUNC TANH, r2, 3", "x=3 is not an operand register"),
    ("VLOADC c0, E0, 3", "type t=3 (none) is not allowed for VLOADC"),
    ("VRUN E0, 3, E0, none, E4, i8, wrap", "type ta=3 (none) is allowed only for operand b (tb)"),
    ("VRUN E0, i8, E0, none, E4, 3, sat", "type td=3 (none) is allowed only for operand b (tb)"),
])
def test_illegal_configuration(stmt, words):
    # the instruction issues at cycle 3 (after NOP 3) on the VXM queue (position 6)
    s = at(fails(f".queue VXM\n NOP 3\n {stmt}\n"), 3, 3, VXM)
    assert s.startswith(f"t.s:3: ILLEGAL: {stmt.split()[0]} (line 3) on VXM (position 6) at "
                        "cycle 3: "), s
    assert words in s and "ILLEGAL (error bit 3)" in s, s


def test_legal_corners_are_accepted():
    # stage A-1 (G), MUL / SRDHM on the M stage 1, RDIVPOT / SHL on the S stage 2, PASS on
    # every kind, every y, VRUN tb = none, VFUNC dst/x r0..r2
    assemble(".queue VXM\n VCFG 3, SAT, i8, r2, r2, c3\n VCFG 1, MUL, i16, r0, r1, zero\n"
             " VCFG 1, SRDHM, i32, r1, r2, r2\n VCFG 2, RDIVPOT, i32, r2, r2, c1\n"
             " VCFG 2, SHL, i8, r2, r2, c0\n VCFG 0, PASS, i8, r2, r2, zero\n"
             " VCFG 1, PASS, i16, r0, r1, zero\n VCFG 2, PASS, i32, r1, r0, c2\n"
             " VFUNC RSQRT, r0, r2\n", CFG)


# docs/vxm.md section 1: the operations of each stage kind, typed in from the table
KIND_OPS = {
    "G": {"PASS", "ADD", "SUB", "MIN", "MAX", "AND", "OR", "XOR", "NOT", "ADDS", "SUBS", "NEG",
          "ABS", "RELU", "SAT"},
    "M": {"PASS", "MUL", "SRDHM"},
    "S": {"PASS", "SHL", "SHRA", "SHRL", "RDIVPOT"},
}
KIND_NAMES = {"G": "general", "M": "multiplier", "S": "shifter"}


@pytest.mark.parametrize("kind", "GMS")
def test_every_op_on_every_stage_kind(kind):
    # stages "SMG"; the stage of `kind` is k = "SMG".index(kind); every op there
    stages = "SMG"
    k = stages.index(kind)
    cfg = CFG.replace(vxm_stages=stages)
    ops = KIND_OPS["G"] | KIND_OPS["M"] | KIND_OPS["S"]
    assert len(ops) == 21
    for op in sorted(ops):
        text = f".queue VXM\n NOP 2\n VCFG {k}, {op}, i32, r2, r2, c0\n"
        if op in KIND_OPS[kind]:
            assert assemble(text, cfg).predicted_cycles == 4          # NOP 0..1, VCFG 2, HALT 3
        else:
            s = at(fails(text, cfg), 3, 2, VXM)
            assert (f"ILLEGAL: VCFG (line 3) on VXM (position 6) at cycle 2: {op} at stage "
                    f"k={k}: stage {k} is a {KIND_NAMES[kind]} stage ({kind}; profile 'default' "
                    f"has vxm_stages = 'SMG')") in s, s


def test_stage_limit_follows_vxm_stages():
    two = CFG.replace(vxm_stages="GG")
    s = at(fails(".queue VXM\n VCFG 2, ADD, i32, r2, r2, c0\n", two), 2, 0, VXM)
    assert "vxm_alus = 2 stages (k = 0..1)" in s
    assemble(".queue VXM\n VCFG 1, ADD, i32, r2, r2, c0\n", two)
    eight = CFG.replace(vxm_stages="GMSGGMSS")
    assemble(".queue VXM\n VCFG 7, RDIVPOT, i32, r2, r2, c0\n VCFG 5, MUL, i32, r2, r2, c0\n",
             eight)
    s = at(fails(".queue VXM\n VCFG 7, ADD, i32, r2, r2, c0\n", eight), 2, 0, VXM)
    assert "stage 7 is a shifter stage (S; profile 'default' has vxm_stages = 'GMSGGMSS')" in s


def test_illegal_word_in_edited_program():
    # VCFG at 0 is legal; the program is a Program edited afterwards (as from JSON): a word with
    # k = 5 at cycle 1 is rejected by check() with the line kept in Program.lines
    prog = assemble(".queue VXM\n VCFG 0, ADD, i8, r2, r0, c0\n VCFG 3, ADD, i8, r2, r0, c0\n",
                    CFG, "t.s")
    prog.queues[VXM][1] = isa.encode("VCFG", k=5, op=1, type=0, dst=2, x=0, y=3)
    with pytest.raises(AsmError) as info:
        check(prog)
    at(info.value, 3, 1, VXM)
    assert "ALU stage k=5 does not exist" in str(info.value)
    prog2 = Program.from_dict(json.loads(json.dumps(prog.to_dict())), CFG, "t.json")
    with pytest.raises(AsmError, match=r"t.json: ILLEGAL: .* at cycle 1: ALU stage k=5"):
        check(prog2)


# ---- stream timing ---------------------------------------------------------------------------

def _a_from_w0(vrun_cycle: int, vrun: str = "VRUN E0, i8, E1, none, E4, i8, sat") -> str:
    # MEM_W0 (5) READ at 0: E0 at 5 at 2, at VXM (6) at 3
    return f".queue MEM_W0\n READ 0, E0\n.queue VXM\n NOP {vrun_cycle}\n {vrun}\n"


def test_vrun_operand_a_exact_cycle():
    prog = assemble(_a_from_w0(3), CFG)
    # T = max(W0 HALT 1 + 1, read 0 + 2, VXM HALT 4 + 1, VRUN 3 + 4 + 4) = 11
    assert prog.predicted_cycles == 11
    for t in (2, 4):
        s = at(fails(_a_from_w0(t)), 5, t, VXM)
        assert "nothing arrives: VRUN (line 5)" in s and "reads E0" in s, s


def test_vloadc_exact_cycle():
    assemble(_a_from_w0(3, "VLOADC c1, E0, i8"), CFG)
    for t in (2, 4):
        s = at(fails(_a_from_w0(t, "VLOADC c1, E0, i8")), 5, t, VXM)
        assert "nothing arrives: VLOADC (line 5)" in s, s


def _out_to_e1(write_cycle: int, stages: str = "GMSG") -> tuple[str, TspConfig]:
    # VRUN at 3: E4 at VXM (6) at 3 + len(stages) + 4, at MEM_E1 (8, two hops) two cycles later
    return (_a_from_w0(3) + f".queue MEM_E1\n NOP {write_cycle}\n WRITE 0, E4\n",
            CFG.replace(vxm_stages=stages))


@pytest.mark.parametrize("stages,alus", [("GMSG", 4), ("MS", 2), ("GMSGGMSG", 8), ("S", 1),
                                         ("GMSGG", 5)])
def test_vrun_output_exact_cycle(stages, alus):
    # dfunc = len(vxm_stages) + 4
    good = 3 + alus + 4 + 2
    text, cfg = _out_to_e1(good, stages)
    assert isa.dfunc_of(isa.BY_NAME["VRUN"], cfg) == alus + 4
    prog = assemble(text, cfg)
    # T: the WRITE at `good` ends at good + 1; MEM_E1's HALT at good + 1: T = good + 2
    assert prog.predicted_cycles == good + 2
    for w in (good - 1, good + 1):
        text, cfg = _out_to_e1(w, stages)
        with pytest.raises(AsmError) as info:
            assemble(text, cfg, "t.s")
        s = at(info.value, 8, w, 8)
        assert "nothing arrives: WRITE (line 8)" in s and "reads E4" in s, s


def _sg4(t: int, skip: str = "", b: str = "E0, none", ta: str = "i32", a: str = "E0") -> str:
    # four slices put E0..E3 at VXM (6) at t: slice at position p READs at t - 2 - (6 - p)
    text = ""
    for name, p, st in (("MEM_W3", 2, "E0"), ("MEM_W2", 3, "E1"), ("MEM_W1", 4, "E2"),
                        ("MEM_W0", 5, "E3")):
        if name != skip:
            text += f".queue {name}\n NOP {t - 2 - (6 - p)}\n READ 0, {st}\n"
    # lines: 3 per slice, then .queue VXM, NOP, VRUN (line 15, or 12 with a slice skipped)
    return text + f".queue VXM\n NOP {t}\n VRUN {a}, {ta}, {b}, E4, i32, wrap\n"


def test_vrun_sg4_operand():
    prog = assemble(_sg4(10), CFG)
    # T = max(VXM HALT 11 + 1, VRUN 10 + 8, last READ (W0 at 7) + 2) = 18
    assert prog.predicted_cycles == 18
    # each missing byte stream is a consumer with nothing arriving, at the VRUN
    for skip, st in (("MEM_W3", "E0"), ("MEM_W1", "E2"), ("MEM_W0", "E3")):
        s = at(fails(_sg4(10, skip)), 12, 10, VXM)
        assert f"reads {st} at cycle 10" in s and "nothing arrives" in s, s
    # the same four streams as i16 at E0 (SG2 E0, E1) need only two of them
    assemble(_sg4(10, "MEM_W1", ta="i16"), CFG)
    assemble(_sg4(10, "MEM_W0", ta="i16"), CFG)
    # i16 at E2 reads E2, E3
    assemble(_sg4(10, "MEM_W3", ta="i16", a="E2"), CFG)


def test_vrun_operand_b():
    # tb = none reads nothing: b = W5 with no producer is fine; tb = i8 on W5 is not
    assemble(_sg4(10, b="W5, none"), CFG)
    s = at(fails(_sg4(10, b="W5, i8")), 15, 10, VXM)
    assert "nothing arrives" in s and "reads W5" in s, s
    # MEM_E0 (7) READ at 7 onto W5: at 7 at 9, at VXM (6) at 10
    text = _sg4(10, b="W5, i8") + ".queue MEM_E0\n NOP 7\n READ 0, W5\n"
    assemble(text, CFG)
    e = fails(_sg4(10, b="W5, i8") + ".queue MEM_E0\n NOP 8\n READ 0, W5\n")
    assert "nothing arrives" in at(e, 15, 10, VXM)


def test_vxm_group_alignment():
    s = at(fails(".queue VXM\n VRUN E2, i32, E0, none, E4, i8, sat\n"), 2, 0, VXM)
    assert "the SG4 group E2..E5 (operand a) is not aligned" in s, s
    s = at(fails(".queue VXM\n NOP 1\n VRUN E0, i8, W1, i16, E4, i8, sat\n"), 3, 1, VXM)
    assert "the SG2 group W1..W2 (operand b) is not aligned" in s
    assert "start at W0, W2, W4, W6" in s, s
    s = at(fails(".queue VXM\n VRUN E0, i8, E0, none, E6, i32, wrap\n"), 2, 0, VXM)
    assert "the SG4 group E6..E9 (operand d) is not aligned" in s, s
    s = at(fails(".queue VXM\n VLOADC c0, E3, i16\n"), 2, 0, VXM)
    assert "SG2 group E3..E4 (operand s)" in s, s
    # tb = none: b is not a group at all, any index is accepted
    assemble(_a_from_w0(3, "VRUN E0, i8, E7, none, E4, i8, wrap"), CFG)


def test_vrun_output_collides():
    # a MEM_W0 READ at 8 puts E4 at VXM (6) at 11, where the VRUN at 3 writes E4; the READ's
    # value is for MEM_E1 (8) at 13: the VRUN is the second producer (line 5, cycle 11)
    text = (".queue MEM_W0\n READ 0, E0\n NOP 7\n READ 1, E4\n.queue VXM\n NOP 3\n"
            " VRUN E0, i8, E1, none, E4, i8, sat\n.queue MEM_E1\n NOP 13\n WRITE 0, E4\n")
    s = at(fails(text), 7, 11, VXM)
    assert "two producers: VRUN (line 7)" in s and "E4" in s, s
    # a READ on MEM_E0 (7) at 10 puts E4 there at 12, over the VRUN value headed for MEM_E1
    text = _a_from_w0(3) + (".queue MEM_E0\n NOP 10\n READ 0, E4\n"
                            ".queue MEM_E1\n NOP 13\n WRITE 0, E4\n")
    s = at(fails(text), 8, 12, 7)
    assert "two producers: READ (line 8)" in s and "VRUN (line 5)" in s, s


# ---- Done rule ------------------------------------------------------------------------------

def test_cycles_end_with_the_vrun():
    # VXM: NOP 3, VRUN at 3, HALT at 4. The VRUN is active through 3 + A + 3: T = 3 + A + 4
    for stages in ("G", "SM", "GMSG", "GMSGGMSG"):
        alus = len(stages)
        prog = assemble(_a_from_w0(3), CFG.replace(vxm_stages=stages))
        assert prog.predicted_cycles == max(3 + alus + 4, 5)


def test_cycles_with_repeated_vrun():
    # MEM_W0: ITERATIONS 3 at 0, READ at 1: accesses 1, 2, 3 -> E0 at VXM at 4, 5, 6.
    # VXM: NOP 4, VRUN at 4, REPEAT 2, 1 at 5: copies at 5, 6; HALT at 7. T = 6 + 8 = 14
    text = (".queue MEM_W0\n ITERATIONS 3\n READ 0, E0\n.queue VXM\n NOP 4\n"
            " VRUN E0, i8, E0, none, E4, i8, wrap\n REPEAT 2, 1\n")
    prog = assemble(text, CFG)
    assert prog.predicted_cycles == 14
    names = [(e.cycle, e.mnemonic) for e in prog.schedule if e.position == VXM]
    assert names == [(0, "NOP"), (4, "VRUN"), (5, "REPEAT"), (5, "VRUN"), (6, "VRUN"),
                     (7, "HALT")]
    # one copy too many: the fourth vector has no operand at 7
    e = fails(text.replace("REPEAT 2, 1", "REPEAT 3, 1"))
    assert "nothing arrives" in at(e, 7, 7, VXM)


def test_config_instructions_are_no_unit_work():
    # VCFG/VFUNC/VCONST/VCONSTH at 0..3, HALT at 4: T = 5 (nothing in flight)
    prog = assemble(".queue VXM\n VCFG 0, ADD, i8, r2, r0, c0\n VFUNC EXP, r2, r2\n"
                    " VCONST c0, 1\n VCONSTH c0, 2\n", CFG)
    assert prog.predicted_cycles == 5


# ---- documentation and command line ----------------------------------------------------------

def _doc_example() -> str:
    doc = (ROOT / "docs" / "assembly.md").read_text()
    blocks = [b for b in re.findall(r"^```[a-z]*\n(.*?)^```", doc, re.DOTALL | re.MULTILINE)
              if b.startswith("; VXM:")]
    assert len(blocks) == 1
    return blocks[0]


def test_doc_example():
    # docs/assembly.md derives T = 20: bias on W0..W3 at the VXM at 8 (VLOADC), accumulator on
    # E0..E3 at 9 (VRUN), result on E4 at the VXM at 9 + 4 + 4 = 17, at MEM_E0 (7) at 18,
    # which writes at 18 and halts at 19
    text = _doc_example()
    prog = assemble(text, CFG)
    assert prog.predicted_cycles == 20
    sched = {(e.cycle, e.mnemonic) for e in prog.schedule if e.position == VXM}
    assert (8, "VLOADC") in sched and (9, "VRUN") in sched
    assert (18, "WRITE") in {(e.cycle, e.mnemonic) for e in prog.schedule if e.position == 7}
    listing = prog.listing()
    for stmt in ("VCFG 0, ADD, i32, r0, r0, c3", "VCFG 1, SRDHM, i32, r2, r0, c0",
                 "VCFG 2, RDIVPOT, i32, r2, r2, c1", "VCFG 3, ADDS, i32, r2, r2, c2",
                 "VLOADC c3, W0, i32", "VRUN E0, i32, E0, none, E4, i8, sat"):
        assert stmt in listing, stmt
    assert "has no vxm unit" in str(fails(text, NO_VXM))
    # the recipe needs the GMSG kinds: with the stages in another order it is ILLEGAL
    assert "SRDHM at stage k=1" in str(fails(text, CFG.replace(vxm_stages="GSMG")))
    # one cycle late for the write: nothing arrives / the value has passed
    assert "nothing arrives" in str(fails(text.replace("NOP 12", "NOP 13")))


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asm", *args], check=False, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_cli_units(tmp_path):
    src = tmp_path / "v.s"
    src.write_text(_doc_example())
    r = _run_cli(str(src), "--units", "mxm,sxm")
    assert r.returncode == 1 and "has no vxm unit" in r.stderr and "Traceback" not in r.stderr
    out = tmp_path / "v.json"
    r = _run_cli(str(src), "--units", "mxm,sxm,vxm", "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "predicted cycles: 20" in r.stdout
    assert "VRUN E0, i32, E0, none, E4, i8, sat" in r.stdout
    d = json.loads(out.read_text())
    assert d["config"]["units"] == ["mxm", "sxm", "vxm"] and d["config"]["vxm_stages"] == "GMSG"
    assert d["queues"]["VXM"][5] == ENCODINGS[0][1]          # VCFG 1, SRDHM at cycle 5
    # VRUN E0, i32, E0, none, E4, i8, sat at cycle 9: a 0, ta 2, b 0, tb 3, d 4, td 0, sat 1
    assert d["queues"]["VXM"][9] == 21 | 2 << 12 | 3 << 20 | 4 << 22 | 1 << 30
    r = _run_cli(str(src), "--units", "mxm,gpu")
    assert r.returncode == 1 and "--units" in r.stderr and "Traceback" not in r.stderr


def test_timed_builder_takes_names():
    # asm.timed places VXM statements with names too: READ at 0 (E0 at VXM at 3), VRUN at 3
    # (E4 at VXM at 11, at MEM_E1 at 13), WRITE at 13: T = 13 + 2 = 15
    from asm.timed import TimedBuilder
    tb = TimedBuilder(CFG)
    tb.at(0, "MEM_W0", "READ", 0, "E0")
    tb.at(1, "VXM", "VCFG", 0, "ADD", "i8", "r2", "r0", "c0")
    tb.at(3, "VXM", "VRUN", "E0", "i8", "E0", "none", "E4", "i8", "sat")
    tb.at(13, "MEM_E1", "WRITE", 0, "E4")
    assert tb.build().predicted_cycles == 15


# ---- RANGE: shifts by a known constant outside 0..31 (docs/vxm.md section 3) -----------------
# MEM_W0 (5) READs at 0 and 1: E0 at the VXM (6) at 3 and 4. The VXM text below starts at line 4;
# a VRUN at t reaches the S stage 2 of GMSG at u = t + 3 and uses what was issued before u.

def _shift_prog(*vxm: str) -> str:
    return ".queue MEM_W0\n READ 0, E0\n READ 1, E0\n.queue VXM\n" + "".join(
        f" {s}\n" for s in vxm)


VRUN_E0 = "VRUN E0, i8, E1, none, E4, i8, sat"


def test_range_rejects_a_known_constant_shift():
    text = _shift_prog("VCONST c1, 40", "VCFG 2, RDIVPOT, i32, r2, r2, c1", "NOP 1", VRUN_E0)
    s = at(fails(text), 8, 3, VXM)
    assert s == ("t.s:8: RANGE: VRUN (line 8) on VXM (position 6) at cycle 3: stage 2 RDIVPOT "
                 "shift c1 = 40 is outside 0..31; c1 is set by VCONST at cycle 0 (line 5), "
                 "stage 2 by VCFG at cycle 1 (line 6); the hardware would raise RANGE (error "
                 "bit 5) in cycle 6 and shift by 40 & 31 = 8"), s
    # in range: 0 and 31 are accepted (T: the VRUN at 3 drives through 3 + 4 + 3: T = 11)
    for v in (0, 31):
        assert assemble(text.replace("c1, 40", f"c1, {v}"), CFG).predicted_cycles == 11


@pytest.mark.parametrize("op,value,shown", [
    ("SHL", -1, "-1"), ("SHRA", 32, "32"), ("SHRL", -524288, "-524288 (0xfff80000)")])
def test_range_every_shift_operation(op, value, shown):
    text = _shift_prog(f"VCONST c3, {value}", f"VCFG 2, {op}, i16, r2, r2, c3", "NOP 1",
                       VRUN_E0)
    s = at(fails(text), 8, 3, VXM)
    assert f"stage 2 {op} shift c3 = {shown} is outside 0..31" in s, s
    assert f"shift by {value} & 31 = {value & 31}" in s, s


def test_range_vconsth_value():
    # c1 = 3 then bits 31:16 = 1: 0x00010003 = 65539
    text = _shift_prog("VCONST c1, 3", "VCONSTH c1, 1", "VCFG 2, SHL, i32, r2, r2, c1", VRUN_E0)
    s = at(fails(text), 8, 3, VXM)
    assert "SHL shift c1 = 65539 (0x00010003) is outside 0..31; c1 is set by VCONSTH at cycle 1 " \
           "(line 6)" in s, s
    assert "shift by 65539 & 31 = 3" in s, s
    assemble(text.replace("VCONSTH c1, 1", "VCONSTH c1, 0"), CFG)          # c1 = 3


def test_range_uses_what_is_in_effect_at_the_stage():
    # VRUN at 3: stage 2 acts at 6 with what was issued at 5 or earlier
    late = _shift_prog("VCFG 2, SHRA, i32, r2, r2, c0", "NOP 2", VRUN_E0, "NOP 1",
                       "VCONST c0, 99")                                   # VCONST at 5
    assert "c0 is set by VCONST at cycle 5 (line 9)" in at(fails(late), 7, 3, VXM)
    assemble(late.replace("NOP 1\n", "NOP 2\n"), CFG)                     # VCONST at 6: too late
    # the stage reconfigured to PASS at 5 (before 6): the shift is never taken
    text = _shift_prog("VCONST c0, 99", "VCFG 2, SHRA, i32, r2, r2, c0", "NOP 1", VRUN_E0,
                       "NOP 1", "VCFG 2, PASS, i32, r2, r2, c0")          # at 5
    assemble(text, CFG)
    at(fails(text.replace(" NOP 1\n VCFG 2, PASS", " NOP 2\n VCFG 2, PASS")), 8, 3, VXM)


def test_range_data_shifts_are_not_checked():
    # a shift by a register (r1 = b = 0 here, but data in general), by zero, by a VLOADC'ed
    # constant (also after a VCONSTH: still unknown) and a non-shift operation by c1 = 40 are
    # accepted; stage 2's PASS with y = c1 takes no shift either
    for cfg_line in ("VCFG 2, SHL, i32, r2, r2, r1", "VCFG 2, SHL, i32, r2, r2, zero",
                     "VCFG 2, PASS, i32, r2, r2, c1", "VCFG 0, ADD, i32, r2, r2, c1"):
        assemble(_shift_prog("VCONST c1, 40", cfg_line, "NOP 1", VRUN_E0), CFG)
    loaded = _shift_prog("VCONST c1, 40", "VCFG 2, RDIVPOT, i32, r2, r2, c1", "NOP 1",
                         "VLOADC c1, E0, i8", VRUN_E0)                         # at 3 and 4
    assemble(loaded, CFG)
    # with VCONST instead of VLOADC the value is known again: c1 = 33 is rejected
    s = at(fails(loaded.replace("VLOADC c1, E0, i8", "VCONST c1, 33")), 9, 4, VXM)
    assert "c1 = 33 is outside 0..31; c1 is set by VCONST at cycle 3 (line 8)" in s, s
    # VCONSTH after a VLOADC: the low half is data, the value stays unknown (E0 at the VXM at
    # 3 and 5: VLOADC at 3, VCONSTH at 4, VRUN at 5)
    text = (".queue MEM_W0\n READ 0, E0\n NOP 1\n READ 1, E0\n.queue VXM\n VCONST c1, 40\n"
            " VCFG 2, RDIVPOT, i32, r2, r2, c1\n NOP 1\n VLOADC c1, E0, i8\n VCONSTH c1, 0\n"
            f" {VRUN_E0}\n")
    assemble(text, CFG)
    at(fails(text.replace("VCONSTH c1, 0", "VCONST c1, 33")), 11, 5, VXM)


def test_range_repeated_vrun_names_the_copy():
    # VRUN at 3 (stage 2 at 6), REPEAT 1, 1 at 4 (copy at 4, stage 2 at 7), NOP at 5,
    # VCONST c2, 32 at 6: in effect from 7, for the copy only
    text = _shift_prog("VCFG 2, SHRL, i32, r2, r2, c2", "NOP 2", VRUN_E0, "REPEAT 1, 1",
                       "NOP 1", "VCONST c2, 32")
    s = at(fails(text), 8, 4, VXM)
    assert "RANGE: VRUN (REPEAT copy 1/1, line 8) on VXM (position 6) at cycle 4: stage 2 SHRL " \
           "shift c2 = 32" in s, s
    assemble(text.replace("NOP 1\n VCONST", "NOP 2\n VCONST"), CFG)      # VCONST at 7
