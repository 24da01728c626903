# Assembler and schedule-checker tests of the MXM wide loads and activation buffer (LWG, LXG,
# ABX; docs/units.md section 2): text format, one test per rejection (ILLEGAL w > mxm_load_width,
# LXG/ABX without a buffer, streams past the last one, ENGINE_BUSY on the shared LW / ABC engines,
# accumulator hazards of ABX elements at t + k*d), hand-computed cycle counts, and one assembled
# program run on the golden chip model with its result computed by numpy.
#
# `full` positions: 0 MXM_W, 1 SXM_W, 2..5 MEM_W3..MEM_W0, 6 VXM, 7..10 MEM_E0..MEM_E3, 11 SXM_E,
# 12 MXM_E. A READ access at u at slice p puts its value on an eastward stream at MXM_E at
# u + 2 + (12 - p); an MXM_E result produced at c on a westward stream reaches slice p at
# c + (12 - p).
from __future__ import annotations

import numpy as np
import pytest

from asm import AsmError, assemble
from sim.model import TspModel
from tsp import isa
from tsp.config import TspConfig

FULL = TspConfig.profile("full")          # n = 8, 8 streams, L = 4, B = 8
DEFAULT = TspConfig.profile("default")    # n = 4, 8 streams, L = 1, B = 0


def fails(text: str, config: TspConfig = FULL) -> AsmError:
    with pytest.raises(AsmError) as info:
        assemble(text, config, "t.s")
    return info.value


def at(e: AsmError, line: int, cycle: int | None = None) -> str:
    """Assert the error names t.s:line (and cycle); return its text."""
    s = str(e)
    assert s.startswith(f"t.s:{line}: "), s
    assert e.line == line
    if cycle is not None:
        assert e.cycle == cycle, s
        assert f"cycle {cycle}" in s, s
    return s


def feed(t: int, streams: int, iterations: int = 1) -> str:
    """MEM_E0.. MEM_E{streams-1} READs (word 0 on) whose values reach MXM_E on E0.. at t."""
    out = []
    for j in range(streams):
        p = 7 + j
        u = t - 2 - (12 - p)
        assert u >= 1
        out.append(f".queue MEM_E{j}\n ITERATIONS {iterations}\n"
                   + (f" NOP {u - 1}\n" if u > 1 else "") + f" READ 0, E{j}\n")
    return "".join(out)


# ---- text format --------------------------------------------------------------------------

def test_text_format_encodes_the_new_instructions():
    prog = assemble(".queue MXM_W\n ABX 9, 3, 2, 1, 5\n", FULL, "t.s")
    instr, vals = isa.decode(prog.queues[0][0])
    assert instr.name == "ABX" and vals == {"b": 9, "acc": 3, "count": 2, "mode": 1, "d": 5}
    # E0..E3 fed at 8 and 9: LWG (one element) at 8, LXG at 9
    prog = assemble(feed(8, 4, 2) + ".queue MXM_E\n NOP 8\n LWG E0, 6, 1, 4, 1\n"
                    " LXG E0, 3, 1, 4\n", FULL, "t.s")
    words = prog.queues[12]
    assert isa.decode(words[1]) == (isa.BY_NAME["LWG"],
                                     {"s": 0, "row": 6, "count": 1, "w": 4, "iw": 1})
    assert isa.decode(words[2]) == (isa.BY_NAME["LXG"], {"s": 0, "row": 3, "count": 1, "w": 4})


def test_wrong_operand_count():
    e = fails(".queue MXM_W\n LWG E0, 0, 1, 4\n")
    assert at(e, 2) and "5" in str(e)


# ---- ILLEGAL -------------------------------------------------------------------------------

@pytest.mark.parametrize("text,config,param", [
    ("LWG E0, 0, 1, 5, 0", FULL, "mxm_load_width"),
    ("LXG E0, 0, 1, 5", FULL, "mxm_load_width"),
    ("LWG E0, 0, 1, 2, 0", DEFAULT, "mxm_load_width"),
    ("LXG E0, 0, 1, 1", DEFAULT, "mxm_xbuf"),
    ("ABX 0, 0, 1, 0, 1", DEFAULT, "mxm_xbuf"),
])
def test_illegal(text, config, param):
    e = fails(f".queue MXM_W\n NOP 3\n {text}\n", config)
    s = at(e, 3, 3)
    assert s.startswith("t.s:3: ILLEGAL") and param in s and "ILLEGAL" in s, s
    assert e.position == 0


def test_illegal_is_reported_before_stream_operands():
    # w = 5 from E4 would also run past E7: the ILLEGAL comes first
    s = at(fails(".queue MXM_W\n LWG E4, 0, 1, 5, 0\n"), 2, 0)
    assert "ILLEGAL" in s and "mxm_load_width" in s


def test_lwg_w1_is_legal_in_default():
    # READ at 0 on MEM_E3 (10): E0 at MXM_E (12) at 4; LWG at 4, HALT at 5: T = 6
    prog = assemble(".queue MEM_E3\n READ 0, E0\n.queue MXM_E\n NOP 4\n LWG E0, 3, 1, 1, 1\n",
                    DEFAULT, "t.s")
    assert prog.predicted_cycles == 6


# ---- streams past the last stream ---------------------------------------------------------

@pytest.mark.parametrize("text,last", [
    ("LWG E6, 0, 1, 4, 0", "E9"),
    ("LXG W5, 0, 2, 4", "W8"),
    ("LWG E7, 0, 1, 2, 0", "E8"),
])
def test_streams_past_the_last_stream(text, last):
    s = at(fails(f".queue MXM_W\n NOP 2\n {text}\n"), 3, 2)
    assert "run past the last stream" in s and last in s and "operand s" in s, s


def test_stream_index_out_of_range():
    s = at(fails(".queue MXM_W\n LXG E8, 0, 1, 1\n"), 2)
    assert "out of range" in s


# ---- ENGINE_BUSY on the shared engines ----------------------------------------------------

@pytest.mark.parametrize("first,second,until", [
    ("LWG E0, 0, 3, 1, 0", "LXG E0, 0, 1, 1", 2),
    ("LXG E0, 0, 3, 1", "LW E0, 0, 1", 2),
    ("LW E0, 0, 3", "LWG E0, 0, 1, 1, 0", 2),
])
def test_lw_engine_shared(first, second, until):
    e = fails(f".queue MXM_W\n {first}\n {second}\n")
    s = at(e, 3, 1)
    assert "ENGINE_BUSY" in s and "LW engine" in s and f"until cycle {until}" in s, s


@pytest.mark.parametrize("second,line,cycle", [
    ("NOP 2\n ABC E0, 4, 1, 0", 4, 3),           # ABX elements 0, 3, 6: 3 is an element
    ("ABC E0, 4, 1, 0", 3, 1),                   # a gap cycle
    ("NOP 5\n ABX 0, 4, 1, 0, 1", 4, 6),         # the last element
])
def test_abc_engine_busy_through_abx_gaps(second, line, cycle):
    e = fails(f".queue MXM_W\n ABX 0, 0, 3, 0, 3\n {second}\n")
    s = at(e, line, cycle)
    assert "ENGINE_BUSY" in s and "ABC engine" in s and "until cycle 6" in s, s


def test_abc_busy_blocks_abx_and_repeat_copy():
    s = at(fails(".queue MXM_W\n ABC E0, 0, 2, 0\n ABX 0, 4, 1, 0, 1\n"), 3, 1)
    assert "ENGINE_BUSY" in s and "ABC engine" in s
    # REPEAT 1, 2 of an ABX with elements 0, 2 copies it at 1 - 1 + 2 = 2: busy
    s = at(fails(".queue MXM_W\n ABX 0, 0, 2, 0, 2\n REPEAT 1, 2\n"), 3, 2)
    assert "ENGINE_BUSY" in s


def test_engine_free_after_abx():
    # ABX at 0: elements 0, 3, 6; ABC engine free at 7; the ABC at 7 (E0 fed by READ at 3 on
    # MEM_E3) writes row 4 at the end of 9: T = 10
    prog = assemble(".queue MEM_E3\n NOP 3\n READ 0, E0\n.queue MXM_E\n ABX 0, 0, 3, 0, 3\n"
                    " NOP 6\n ABC E0, 4, 1, 0\n", FULL, "t.s")
    assert prog.predicted_cycles == 10


# ---- accumulator hazards of ABX elements (at t + k*d) -------------------------------------

def test_abx_mode1_hazard_uses_element_times():
    # ABX at 0, d = 3: row 0 (u = 0) written at the end of 2, row 1 (u = 3) at the end of 5.
    # An ABX mode 1 on row 1 at 4 reads it at 5: too early (an ABC-like timing t + k would
    # have put the write at the end of 3 and let it pass).
    e = fails(".queue MXM_W\n ABX 0, 0, 2, 0, 3\n NOP 3\n ABX 0, 1, 1, 1, 1\n")
    s = at(e, 4, 5)
    assert "accumulator hazard" in s and "row 1" in s and "end of cycle 5" in s, s
    # one cycle later it is fine: element at 5 reads at 6, written at the end of 7: T = 8
    assert assemble(".queue MXM_W\n ABX 0, 0, 2, 0, 3\n NOP 4\n ABX 0, 1, 1, 1, 1\n",
                    FULL, "t.s").predicted_cycles == 8


def test_abc_mode1_after_abx_write():
    # ABX at 0 writes row 0 at the end of 2; an ABC mode 1 on row 0 at 1 reads it at 2: too
    # early (reported before its stream is looked at)
    s = at(fails(".queue MXM_W\n ABX 0, 0, 1, 0, 1\n ABC W0, 0, 1, 1\n"), 3, 2)
    assert "accumulator hazard" in s and "row 0" in s and "ABX" in s, s


def test_acc_after_abx_hazard():
    # ABX at 0, d = 4: row 1 at u = 4, written at the end of 6; ACC of row 1 at 6 is too early,
    # at 7 fine (driven in 8: T = 9)
    s = at(fails(".queue MXM_W\n ABX 0, 0, 2, 0, 4\n NOP 5\n ACC W0, 1, 1\n"), 4, 6)
    assert "accumulator hazard" in s and "row 1" in s
    assert assemble(".queue MXM_W\n ABX 0, 0, 2, 0, 4\n NOP 6\n ACC W0, 1, 1\n",
                    FULL, "t.s").predicted_cycles == 9


# ---- cycle counts ----------------------------------------------------------------------------

@pytest.mark.parametrize("text,cycles", [
    # ABX at 0, elements 0, 4, 8: the last write ends at the end of 10: T = 11
    (".queue MXM_W\n ABX 0, 0, 3, 0, 4\n", 11),
    # REPEAT (at 1) 2, 3 of an ABX count 1: copies at 3 and 6, the last written at the end
    # of 8: T = 9
    (".queue MXM_W\n ABX 0, 0, 1, 0, 1\n REPEAT 2, 3\n", 9),
    # LWG at 8 with two elements (8, 9): the LW engine has its last element at 9: T = 10
    (feed(8, 4, 2) + ".queue MXM_E\n NOP 8\n LWG E0, 0, 2, 4, 1\n", 10),
])
def test_cycle_counts(text, cycles):
    assert assemble(text, FULL, "t.s").predicted_cycles == cycles


def test_lwg_nothing_arrives_on_the_wide_operand():
    # only E0..E2 fed: LWG w = 4 reads E3 at 8 too
    s = str(fails(feed(8, 3) + ".queue MXM_E\n NOP 8\n LWG E0, 0, 1, 4, 0\n"))
    assert "nothing arrives" in s and "E3" in s and "cycle 8" in s, s


# ---- an assembled program on the chip model ---------------------------------------------------

def test_gemv_tile_program_runs_on_the_model():
    """Weights W (8 x 8) in MEM_E0..E3 words 0, 1 (row 4k + j in slice j, word k), activation x
    in MEM_E3 word 2. READs at 1..4 (+1) put W's rows on E0..E3 at MXM_E at 8, 9; LWG w = 4 at 8
    (elements 8, 9; installs at the end of 9); READ at 6 puts x on E4 at MXM_E at 10: LXG into
    buffer row 5 at 10; ABX b = 13 (mod 8 = 5) at 11 into row 2 (written at the end of 13); ACC
    at 14 drives W0..W3 at MXM_E at 16; slice MEM_Ej captures byte j (stream Wj) at 21 - j into
    word 600 (bank 1)."""
    rng = np.random.default_rng(7)
    w = rng.integers(-128, 128, size=(8, 8))
    x = rng.integers(-128, 128, size=8)

    def hexv(v) -> str:
        return bytes(int(c) & 0xFF for c in v).hex()
    text = ""
    for j in range(4):
        u = j + 1                                  # READ at u at position 7 + j: at 12 at 8
        text += f".queue MEM_E{j}\n ITERATIONS 2\n" + (f" NOP {u - 1}\n" if u > 1 else "")
        text += f" READ 0, E{j}\n ITERATIONS 1\n"
        nxt = u + 2
        if j == 3:
            text += " READ 2, E4\n"               # at 6: x at MXM_E at 10
            nxt = u + 3
        text += f" NOP {21 - j - nxt}\n WRITE 600, W{j}\n"
        for k in range(2):
            text += f".data MEM_E{j} {k} {hexv(w[4 * k + j])}\n"
    text += f".data MEM_E3 2 {hexv(x)}\n"
    text += (".queue MXM_E\n NOP 8\n LWG E0, 0, 2, 4, 1\n NOP 1\n LXG E4, 5, 1, 1\n"
             " ABX 13, 2, 1, 0, 1\n NOP 2\n ACC W0, 2, 1\n")
    prog = assemble(text, FULL, "t.s")
    assert prog.predicted_cycles == 23              # the WRITE at 21, HALT at 22
    m = TspModel(FULL)
    for p, words in prog.queues.items():
        m.load_queue(p, words)
    for p, a, v in prog.data:
        m.write_mem(p, a, v)
    r = m.run()
    assert r.err_flags == 0 and r.cycles == 23
    got = 0
    lanes = np.zeros(8, dtype=np.int64)
    for j in range(4):
        lanes |= m.read_mem(f"MEM_E{j}", 600).astype(np.int64) << (8 * j)
    got = [int(v) - (1 << 32) if v >= 1 << 31 else int(v) for v in lanes]
    want = [sum(int(w[i][c]) * int(x[i]) for i in range(8)) for c in range(8)]
    assert got == want
