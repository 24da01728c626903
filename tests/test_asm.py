# Tests of the assembler (asm/): parsing and encoding round trips against tsp.isa.decode, one test
# per checker rejection (asserting file:line and cycle), cycle counts hand-computed from the Done
# rule of docs/architecture.md, and the command line.
#
# Default (and wide) profile positions: 0 MXM_W, 1 SXM_W, 2 MEM_W3, 3 MEM_W2, 4 MEM_W1,
# 5 MEM_W0, 6 VXM, 7 MEM_E0, 8 MEM_E1, 9 MEM_E2, 10 MEM_E3, 11 SXM_E, 12 MXM_E. READ: dfunc 2;
# WRITE/GATHER map/SCATTER/IFETCH: dskew 0. A READ access at u puts the value at its own position
# at u + 2 and at a position k steps downstream at u + 2 + k. CFG is the 8-lane slice (`full`)
# with only the MXM and SXM built (the default profile before it took the VXM at 4 lanes): 8-byte
# vectors; `.data` words below are built with `VB` (its vec_bytes) bytes.
from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from asm import AsmError, Builder, Program, assemble, check, format_instr, parse
from tsp import isa
from tsp.config import TspConfig

ROOT = Path(__file__).resolve().parents[1]
CFG = TspConfig.profile("full").replace(units=("mxm", "sxm"), name="full-novxm")
TINY = TspConfig.profile("tiny")
WIDE = TspConfig.profile("wide")          # 16-byte vectors (docs/assembly.md's examples)
UNITS = ("mxm", "sxm")                    # the compute units these tests exercise
VB = CFG.vec_bytes


def word(values) -> str:
    """One `.data` word as hex: byte 0 (lane 0) first."""
    return bytes(values).hex()


DATA = bytes((0x11 * i) & 0xFF for i in range(VB))   # 00 11 22 .. : one CFG word


def fails(text: str, config: TspConfig = CFG, **kw) -> AsmError:
    with pytest.raises(AsmError) as info:
        assemble(text, config, "t.s", **kw)
    return info.value


def at(e: AsmError, line: int, cycle: int | None = None) -> str:
    """Assert the error names t.s:line (and cycle); return its text for further checks."""
    s = str(e)
    assert s.startswith(f"t.s:{line}: "), s
    assert e.line == line
    if cycle is not None:
        assert e.cycle == cycle, s
        assert f"cycle {cycle}" in s, s
    return s


# ---- cycle counts (hand-computed from the spec) ------------------------------------------------

def test_empty_program_is_one_cycle():
    # every queue issues HALT at cycle 0, is inactive from cycle 1
    prog = assemble("", CFG)
    assert prog.predicted_cycles == 1
    assert all(prog.queues[p] == [0] for p in range(CFG.num_positions))


def test_read_write_example():
    # READ at 0 on MEM_W1 (4): E2 at 4 at cycle 2, at MEM_E1 (8) at 6; WRITE at 6, HALT at 7.
    # T = max(W1 halt 1 + 1, read 0 + 2, E1 halt 7 + 1, write 6 + 1) = 8
    prog = assemble(f""".queue MEM_W1
    READ 0x10, E2
.queue MEM_E1
    NOP 6
    WRITE 5, E2
.data MEM_W1 0x10 {DATA.hex()}
""", CFG)
    assert prog.predicted_cycles == 8
    assert prog.data == [(4, 0x10, DATA)]
    assert prog.queues[4] == [isa.encode("READ", addr=0x10, s=2), 0]
    assert prog.queues[8] == [isa.encode("NOP", n=6), isa.encode("WRITE", addr=5, s=2), 0]
    sched = [(e.cycle, e.position, e.mnemonic, e.line) for e in prog.schedule
             if e.position in (4, 8)]
    assert sched == [(0, 4, "READ", 2), (0, 8, "NOP", 4), (1, 4, "HALT", None),
                     (6, 8, "WRITE", 5), (7, 8, "HALT", None)]
    assert "WRITE 5, E2" in prog.listing() and "predicted cycles: 8" in prog.listing()


def test_loop_registers_cycles():
    # W1: ITERATIONS 0, COUNTDOWN 1, READ 2 (accesses 2, 4, 6, 8), HALT 3.
    # E1: ITERATIONS 0, COUNTDOWN 1, NOP 2..7, WRITE 8 (accesses 8, 10, 12, 14: the values
    # arrive at 2+2+4 = 8, ...), HALT 9. T = max(4, 8+2, 10, 14+1) = 15
    prog = assemble(""".queue MEM_W1
  ITERATIONS 4
  COUNTDOWN 2
  READ 0, E2
.queue MEM_E1
  ITERATIONS 4
  COUNTDOWN 2
  NOP 6
  WRITE 0, E2
""", CFG)
    assert prog.predicted_cycles == 15


def test_read_keeps_slice_active_one_cycle_after_access():
    # READ at 2 with accesses 2, 6, 10; the queue halts at 3; read engine active through 11
    prog = assemble(".queue MEM_W1\n ITERATIONS 3\n COUNTDOWN 4\n READ 0, E0\n", CFG)
    assert prog.predicted_cycles == 12


def test_sync_notify_cycles():
    # W1 SYNC at 0; E1 NOTIFY at 5 -> W1 released at 6, READ at 7 (E2 at E1 at 7+2+4 = 13),
    # HALT at 8. E1: NOP 7 at 6, WRITE at 13, HALT at 14. T = 15
    prog = assemble(""".queue MEM_W1
  SYNC
  READ 0, E2
.queue MEM_E1
  NOP 5
  NOTIFY
  NOP 7
  WRITE 0, E2
""", CFG)
    assert prog.predicted_cycles == 15


@pytest.mark.parametrize("notify_at, halt_at", [(1, 3), (2, 4)])
def test_sync_released_by_notify_just_before_or_at_same_cycle(notify_at, halt_at):
    # SYNC issued at 2. NOTIFY at 1 is seen at 2 >= 2: released at 2, next issues at 3.
    # NOTIFY at 2 (same cycle): released at 3, next issues at 4.
    prog = assemble(f""".queue MEM_W1
  NOP 2
  SYNC
.queue MEM_E1
  NOP {notify_at}
  NOTIFY
""", CFG)
    halt = [e.cycle for e in prog.schedule if e.position == 4 and e.mnemonic == "HALT"]
    assert halt == [halt_at]
    assert prog.predicted_cycles == halt_at + 1


def test_repeat_copies_in_schedule():
    # READ at 0, REPEAT at 1: copies at 1, 2, 3 (values reach E1 at 6..9); HALT at 4.
    # E1: WRITE at 6, REPEAT at 7 with copies 7, 8, 9, HALT at 10. T = 11
    prog = assemble(""".queue MEM_W1
    READ 0x10, E2
    REPEAT 3, 1
.queue MEM_E1
    NOP 6
    WRITE 5, E2
    REPEAT 3, 1
""", CFG)
    assert prog.predicted_cycles == 11
    reads = [(e.cycle, e.line) for e in prog.schedule if e.mnemonic == "READ"]
    assert reads == [(0, 2), (1, 3), (2, 3), (3, 3)]
    repeats = [e.cycle for e in prog.schedule if e.mnemonic == "REPEAT"]
    assert repeats == [1, 7]


def test_ifetch_occupancy_and_unrelated_words():
    # W0 READ at 0: E0 at W0 (5) at 2, at VXM (6) at 3. VXM: NOP 3, IFETCH at 3 writes words
    # 10, 11 (not executed), occupies 8/4 = 2 cycles: HALT at 5. T = 6
    prog = assemble(".queue MEM_W0\n READ 0, E0\n.queue VXM\n NOP 3\n IFETCH E0, 10\n", CFG)
    assert prog.predicted_cycles == 6
    # wide profile (same positions): 16-byte vectors, words 10..13, 16/4 = 4 cycles: HALT at 7.
    # T = 8
    prog = assemble(".queue MEM_W0\n READ 0, E0\n.queue VXM\n NOP 3\n IFETCH E0, 10\n", WIDE)
    assert prog.predicted_cycles == 8
    # tiny profile: 4-byte vectors, one word per IFETCH, occupancy 1. W0 is position 3 there,
    # VXM 4. HALT at 4: T = 5
    prog = assemble(".queue MEM_W0\n READ 0, E0\n.queue VXM\n NOP 3\n IFETCH E0, 10\n", TINY)
    assert prog.predicted_cycles == 5


def test_ifetch_into_executed_words_makes_cycles_unknown():
    # VXM words: 0 NOP, 1 IFETCH, 2..4 NOP, 5 HALT; the IFETCH writes 4 and 5, which it executes
    prog = assemble(""".queue MEM_W0
  READ 0, E0
.queue VXM
  NOP 3
  IFETCH E0, 4
  NOP 1
  NOP 1
  NOP 1
""", CFG)
    assert prog.predicted_cycles is None
    assert "unknown" in prog.listing()


def test_stream_reuse_over_dead_value_is_allowed():
    # E2 on diagonal cycle - position = -2: READ W1 (4) at cycle 2, consumed at W0 (5) at 3;
    # READ E0 (7) writes over it at cycle 5 (dead: no later consumer of it) and is consumed at E1.
    prog = assemble(""".queue MEM_W1
  READ 0, E2
.queue MEM_W0
  NOP 3
  WRITE 0, E2
.queue MEM_E0
  NOP 3
  READ 0, E2
.queue MEM_E1
  NOP 6
  WRITE 0, E2
""", CFG)
    assert prog.predicted_cycles == 8


def test_westward_stream():
    # READ at MEM_E1 (8) at 0 onto W3: at 8 at 2, at MEM_W1 (4) at 6
    prog = assemble(".queue MEM_E1\n READ 7, W3\n.queue MEM_W1\n NOP 6\n WRITE 9, W3\n", CFG)
    assert prog.predicted_cycles == 8


def test_different_banks_same_cycle_allowed():
    # W1: ITERATIONS 0, READ 1 (accesses 1, 2): E2 at W0 (5) at 4, 5.
    # W0: ITERATIONS 0, NOP 1..3, WRITE 10 at 4 (accesses 4, 5, bank 0), READ 600 at 5
    # (accesses 5, 6, bank 1), HALT 6. T = max(7, write 5+1, read 6+2, W1 3, read 2+2) = 8
    prog = assemble(""".queue MEM_W1
  ITERATIONS 2
  READ 0, E2
.queue MEM_W0
  ITERATIONS 2
  NOP 3
  WRITE 10, E2
  READ 600, E1
""", CFG)
    assert prog.predicted_cycles == 8


# ---- rejections -------------------------------------------------------------------------------

def test_two_producers():
    # READ W1 (4) at 0: E2 at 4 at 2 ... at E1 (8) at 6, where the WRITE consumes it.
    # READ E0 (7) at 3 puts E2 at 7 at cycle 5: the W1 value sits there and is still live.
    e = fails(""".queue MEM_W1
  READ 0, E2
.queue MEM_E0
  NOP 3
  READ 0, E2
.queue MEM_E1
  NOP 6
  WRITE 0, E2
""")
    s = at(e, 5, 5)
    assert "two producers" in s and "E2" in s and "MEM_E0" in s


def test_nothing_arrives_write():
    e = fails(""".queue MEM_W1
    READ 0x10, E2
.queue MEM_E1
    NOP 16
    WRITE 5, E2
""")
    s = at(e, 5, 16)
    assert "nothing arrives" in s and "E2" in s and "MEM_E1" in s
    assert "cycle 6" in s   # the hint: where the READ's value actually passes


def test_nothing_arrives_gather_map():
    e = fails(".queue MEM_W0\n NOP 4\n GATHER E1, W2\n")
    s = at(e, 3, 4)
    assert "nothing arrives" in s and "W2" in s and "GATHER" in s and "map" in s


def test_nothing_arrives_scatter_map():
    # data stream E2 arrives at W0 at 3 (READ W1 at 0), the map stream E3 does not
    e = fails(".queue MEM_W1\n READ 0, E2\n.queue MEM_W0\n NOP 3\n SCATTER E2, E3\n")
    s = at(e, 5, 3)
    assert "nothing arrives" in s and "E3" in s and "SCATTER" in s and "MEM_W0" in s


def test_nothing_arrives_scatter_data():
    e = fails(".queue MEM_W1\n READ 0, E2\n.queue MEM_W0\n NOP 3\n SCATTER E4, E2\n")
    s = at(e, 5, 3)
    assert "E4" in s and "SCATTER" in s


def test_nothing_arrives_ifetch():
    e = fails(".queue VXM\n NOP 2\n IFETCH W0, 8\n")
    s = at(e, 3, 2)
    assert "nothing arrives" in s and "IFETCH" in s and "W0" in s and "VXM" in s


def test_ifetch_only_from_instruction_streams():
    # IFETCH reads E0 or W0 only (docs/architecture.md section 3); any other stream index is
    # rejected at the statement, before scheduling, even where data would arrive on it
    src = ".queue MEM_W0\n READ 0, E1\n.queue VXM\n NOP 3\n IFETCH {}, 10\n"
    assert assemble(src.format("E0").replace("E1", "E0"), CFG).predicted_cycles == 6
    for stream in ("E1", "W1", "W7", "E31"):
        s = at(fails(src.format(stream)), 5)
        assert f"IFETCH reads the instruction stream E0 or W0, not {stream}" in s, s
    s = at(fails(".queue VXM\n IFETCH W3, 0\n", TINY), 2)
    assert "not W3" in s and "ILLEGAL" in s
    with pytest.raises(AsmError, match=r"gen.py:9: IFETCH reads the instruction stream E0 or "
                                       r"W0, not E2"):
        Builder(CFG, "gen.py").add("VXM", "IFETCH", "E2", 0, line=9)
    assert Builder(CFG).add("VXM", "IFETCH", "W0", 3) == isa.encode(
        "IFETCH", s=isa.stream_operand(isa.WEST, 0), addr=3)


def test_nothing_arrives_through_repeat_copy():
    # the original READ's value arrives at E1 at 6 only; the WRITE's copy at 7 reads nothing
    e = fails(".queue MEM_W1\n READ 0, E2\n.queue MEM_E1\n NOP 6\n WRITE 5, E2\n REPEAT 1, 1\n")
    s = at(e, 6, 7)
    assert "REPEAT copy" in s


def test_bank_conflict():
    # W0 WRITE at 4 (accesses 4, 5 at addresses 10, 11: bank 0); READ at 5 (address 20 at 5:
    # bank 0) -> conflict in cycle 5, reported at the later-issued READ
    e = fails(""".queue MEM_W1
  ITERATIONS 2
  READ 0, E2
.queue MEM_W0
  ITERATIONS 2
  NOP 3
  WRITE 10, E2
  READ 20, E1
""")
    s = at(e, 8, 5)
    assert "bank conflict" in s and "MEM_W0" in s and "bank 0" in s


def test_bank_conflict_inside_loops():
    # W2 (3): READ at 3, accesses 3, 5, 7, 9 -> E2 at W1 (4) at 6, 8, 10, 12.
    # W1: READ at 4 (accesses 4, 6, 8, 10 at 510, 511, 512, 513: banks 0, 0, 1, 1);
    # WRITE at 6 (accesses 6, 8, 10, 12 at 600.. : bank 1). Common cycles 6 (banks 0/1: fine),
    # 8 (read 512 in bank 1, write 601 in bank 1): conflict, reported at the WRITE (line 12)
    e = fails(""".queue MEM_W2
  ITERATIONS 4
  COUNTDOWN 2
  NOP 1
  READ 0, E2
.queue MEM_W1
  ITERATIONS 4
  COUNTDOWN 2
  NOP 2
  READ 510, E5
  NOP 1
  WRITE 600, E2
""")
    s = at(e, 12, 8)
    assert "address 512" in s and "address 601" in s and "bank 1" in s


def test_possible_bank_conflict_gather():
    # W1: READ (3 iterations) at 1: E2 at W0 (5) at 4, 5, 6. W0: WRITE at 4 (4, 5), GATHER at 5
    # (map at 5, 6): the GATHER access at 5 meets the WRITE access at 5
    e = fails(""".queue MEM_W1
  ITERATIONS 3
  READ 0, E2
.queue MEM_W0
  ITERATIONS 2
  NOP 3
  WRITE 10, E2
  GATHER W1, E2
""")
    s = at(e, 8, 5)
    assert "possible bank conflict" in s and "GATHER" in s and "MEM_W0" in s


def test_engine_busy():
    # READ at 1 has accesses 1, 2, 3; the READ at 2 needs the read engine -> ENGINE_BUSY
    e = fails(".queue MEM_W1\n ITERATIONS 3\n READ 0, E2\n READ 1, E3\n")
    s = at(e, 4, 2)
    assert "ENGINE_BUSY" in s and "MEM_W1" in s and "cycle 3" in s


def test_engine_busy_from_repeat_copy():
    # COUNTDOWN 2 at 0, READ at 1 (accesses 1, 3); REPEAT at 2: copy 1 at 1 + 1 = 2: busy
    e = fails(".queue MEM_W1\n ITERATIONS 2\n COUNTDOWN 2\n READ 0, E2\n REPEAT 2, 1\n")
    at(e, 5, 3)


def test_loop_address_out_of_range_negative():
    # READ at 2 from address 2 with STEP -1: access 3 (cycle 5) is address -1
    e = fails(".queue MEM_W1\n ITERATIONS 4\n STEP -1\n READ 2, E2\n")
    s = at(e, 4, 5)
    assert "-1" in s and "MEM_W1" in s


def test_loop_address_out_of_range_positive():
    # READ at 1 from 1022: addresses 1022, 1023, 1024 (access 2 at cycle 3)
    e = fails(".queue MEM_W1\n ITERATIONS 3\n READ 1022, E2\n")
    s = at(e, 3, 3)
    assert "1024" in s


def test_address_field_out_of_slice():
    s = at(fails(".queue MEM_W1\n WRITE 1024, E2\n"), 2)
    assert "1024" in s and "0..1023" in s


def test_ifetch_address_out_of_range():
    s = at(fails(".queue VXM\n IFETCH E0, 256\n"), 2)
    assert "256" in s and "IFETCH" in s


def test_stream_index_out_of_range():
    s = at(fails(".queue MEM_W1\n READ 0, E8\n"), 2)
    assert "E8" in s and "8 streams" in s
    at(fails(".queue MEM_W1\n READ 0, W40\n"), 2)


@pytest.mark.parametrize("text", ["NOP 0", "NOP 65536", "REPEAT 4096, 1", "CONFIG -1",
                                  "NOP -3"])
def test_field_out_of_range(text):
    s = at(fails(f".queue MEM_W1\n READ 0, E0\n {text}\n"), 3)
    assert "out of range" in s


def test_step_range():
    at(fails(".queue MEM_W1\n STEP -32769\n"), 2)
    assemble(".queue MEM_W1\n STEP -32768\n", CFG)


def test_unknown_mnemonic_position_field_opcode_directive():
    s = at(fails(".queue MEM_W1\n\n FROB 1\n"), 3)
    assert "FROB" in s
    s = at(fails("; x\n.queue MEM_W9\n"), 2)
    assert "MEM_W9" in s
    s = at(fails(".queue 13\n"), 1)
    assert "13" in s
    at(fails(".org 5\n"), 1)
    b = Builder(CFG, "t.s")
    with pytest.raises(AsmError, match="no field 'bogus'"):
        b.add("MEM_W1", "NOP", bogus=1, line=7)
    prog = assemble("", CFG)
    prog.queues[4] = [7, 0]           # opcode 7 is undefined
    with pytest.raises(AsmError, match="undefined opcode 7"):
        check(prog)


def test_instruction_before_queue():
    s = at(fails("NOP 1\n"), 1)
    assert ".queue" in s


def test_unit_instruction_on_wrong_queue():
    s = at(fails(".queue VXM\n NOP 1\n READ 0, E0\n"), 3)
    assert "READ" in s and "VXM" in s
    at(fails(".queue SXM_E\n ITERATIONS 2\n"), 2)


@pytest.mark.parametrize("text", ["READ 0", "READ 0, E1, 3", "NOP", "HALT 1", "NOP 1,"])
def test_wrong_operand_count(text):
    s = at(fails(f".queue MEM_W1\n {text}\n"), 2)
    assert "operand" in s


@pytest.mark.parametrize("text", ["NOP 0x", "NOP 1.5", "NOP abc", "NOP 0x1g", "READ 0, X2",
                                  "READ E2, 0", "NOP E1", "NOP - 1"])
def test_malformed_operands(text):
    at(fails(f".queue MEM_W1\n {text}\n"), 2)


def test_numbers():
    prog = assemble(".queue MEM_W1\n nop 0x10\n Nop 010\n STEP -0x10\n step +7\n", CFG)
    assert prog.queues[4][:4] == [isa.encode("NOP", n=16), isa.encode("NOP", n=10),
                                  isa.encode("STEP", s=-16), isa.encode("STEP", s=7)]


def test_data_errors():
    w = DATA.hex()                        # a well-formed word: each case has one thing wrong
    s = at(fails(f".data VXM 0 {w}\n"), 1)
    assert "VXM" in s and "MEM" in s
    s = at(fails(".data MEM_W0 0 0011\n"), 1)
    assert "2 bytes" in s and "a word is 8 bytes" in s
    s = at(fails(f".data MEM_W0 0 {w}00\n"), 1)
    assert "9 bytes" in s
    s = at(fails(f".data MEM_W0 1024 {w}\n"), 1)          # 2 x 512 words: 0..1023
    assert "1024" in s and "bytes" not in s
    assert "malformed hex" in at(fails(f".data MEM_W0 0 {w[:-1]}\n"), 1)    # odd digit count
    assert "malformed hex" in at(fails(f".data MEM_W0 0 zz{w[2:]}\n"), 1)
    at(fails(".data MEM_W0 0\n"), 1)
    at(fails(".data MEM_W0 0 " + "00" * VB + "\n.data MEM_W0 0 " + "11" * VB + "\n"), 2)
    prog = assemble(".data mem_w0 0x3 0011 2233 4455 6677 ; spaced\n", CFG)
    assert prog.data == [(5, 3, bytes.fromhex("0011223344556677"))]


def test_repeat_not_after_unit_instruction():
    s = at(fails(".queue MEM_W1\n NOP 1\n REPEAT 3, 1\n"), 3)
    assert "REPEAT" in s and "NOP" in s
    at(fails(".queue MEM_W1\n REPEAT 1, 1\n"), 2)
    at(fails(".queue MEM_W1\n READ 0, E0\n REPEAT 1, 1\n REPEAT 1, 1\n"), 4)


def test_ifetch_prefetch_rule():
    # (no READ feeds E0: the prefetch rule is checked first, at the IFETCH's own line)
    # IFETCH at address 1 writing words 2, 3 includes word 2 = its address + 1
    s = at(fails(".queue VXM\n NOP 3\n IFETCH E0, 2\n"), 3)
    assert "writes word 2" in s and "prefetch" in s
    # wide: IFETCH at 1 writing 255, 0, 1, 2 (wraps modulo 256) hits word 2 as well
    s = at(fails(".queue VXM\n NOP 3\n IFETCH E0, 255\n", WIDE), 3)
    assert "writes word 2" in s and "prefetch" in s
    # word 3 (= address + 2) on the tiny profile (one word per IFETCH)
    s = at(fails(".queue VXM\n NOP 3\n IFETCH E0, 3\n", TINY), 3)
    assert "writes word 3" in s and "prefetch" in s


def test_program_too_large():
    text = ".queue MEM_W1\n" + " NOP 1\n" * 63
    assert assemble(text, TINY).predicted_cycles == 64   # 63 NOPs + HALT = 64 words
    s = at(fails(text + " NOP 1\n", TINY), 65)           # 64 NOPs + HALT = 65 words
    assert "64" in s and "MEM_W1" in s
    s = at(fails(".queue MEM_W1\n" + " NOP 1\n" * 65, TINY), 66)
    assert "too large" in s


def test_deadlock():
    s = at(fails(".queue MEM_W1\n NOP 2\n SYNC\n"), 3, 2)
    assert "deadlock" in s and "MEM_W1" in s


def test_notify_too_early_is_deadlock():
    # NOTIFY at 0 is seen at 1; the SYNC issued at 2 is not parked yet then
    s = at(fails(".queue MEM_E1\n NOTIFY\n.queue MEM_W1\n NOP 2\n SYNC\n"), 5, 2)
    assert "deadlock" in s


def test_cycle_limit():
    # NOP k (line k + 1) issues at (k - 1) * 65535; NOP 153 (line 154) issues at 9961320 and is
    # still running at cycle 10 000 000
    s = at(fails(".queue VXM\n" + "  NOP 65535\n" * 160), 154, 10_000_000)
    assert "10000000" in s
    s = at(fails(".queue VXM\n NOP 60\n NOP 60\n", max_cycles=100), 3, 100)
    # an engine running past the limit
    s = at(fails(".queue MEM_W1\n ITERATIONS 20000\n COUNTDOWN 1000\n STEP 0\n READ 0, E0\n"),
           5, 10_000_000)
    assert "19999003" in s   # READ at 3, last access 3 + 19999 * 1000


# ---- round trips and API ------------------------------------------------------------------

def _operand_text(f: isa.Field, rng: random.Random, instr: isa.Instr) -> tuple[int, str]:
    if f.kind == "stream":
        index = 0 if instr.name == "IFETCH" else rng.randrange(CFG.streams)   # E0/W0 only
        v = isa.stream_operand(rng.randrange(2), index)
        return v, isa.format_stream(v)
    hi = f.max
    if instr.name in ("READ", "WRITE") and f.name == "addr":
        hi = CFG.slice_words - 1
    if instr.name == "IFETCH" and f.name == "addr":
        hi = CFG.queue_depth - 1
    v = rng.randint(f.min, hi)
    return v, rng.choice([str(v), hex(v) if v >= 0 else str(v)])


def test_unbuilt_unit_instruction_is_rejected():
    with pytest.raises(AsmError, match=r"t.s:2: LW is a mxm instruction and profile 'tiny' "
                                       r"has no mxm unit"):
        assemble(".queue MXM_W\n LW E0, 0, 4\n", TINY, "t.s")
    with pytest.raises(AsmError, match=r"t.s:2: LW is a mxm instruction and profile 'full-novxm' "
                                       r"has no mxm unit"):
        assemble(".queue MXM_W\n LW E0, 0, 4\n", CFG.replace(units=("sxm",)), "t.s")


@pytest.mark.parametrize("instr", [i for i in isa.INSTRUCTIONS if i.unit in ("icu", "mem")],
                         ids=lambda i: i.name)
def test_encode_round_trip(instr):
    rng = random.Random(instr.opcode)
    pos = "MEM_W0" if instr.unit == "mem" else "VXM"
    for _ in range(20):
        vals, texts = {}, []
        for f in instr.fields:
            vals[f.name], text = _operand_text(f, rng, instr)
            texts.append(text)
        word = Builder(CFG).add(pos, instr.name, *texts)
        got, dec = isa.decode(word)
        assert got is instr and dec == vals
        assert word == isa.encode(instr.name, **vals)
        # the text assembler gives the same word, and the disassembly reassembles to it
        line = instr.name.lower() + (" " + ", ".join(texts) if texts else "")
        for text in (line, format_instr(word)):
            b = parse(f".queue {pos}\n{text}\n", CFG)
            assert b._words[CFG.position_index(pos)] == [word]


def test_builder_api():
    b = Builder(CFG)
    b.add("MEM_W1", "READ", 0x10, "E2")
    b.add("mem_e1", "NOP", 6)
    b.add(8, "write", addr=5, s="E2")
    b.data("MEM_W1", 0x10, bytes(range(VB)))
    prog = b.build()
    assert isinstance(prog, Program)
    assert set(prog.queues) == set(range(CFG.num_positions))
    assert prog.queues[8] == [isa.encode("NOP", n=6), isa.encode("WRITE", addr=5, s=2), 0]
    assert prog.data == [(4, 0x10, bytes(range(VB)))]
    assert prog.predicted_cycles == 8
    # default line numbers count add/data calls; given ones are used as is
    b = Builder(CFG, "gen.py")
    b.add("MEM_E1", "NOP", 16)
    b.add("MEM_E1", "WRITE", 5, "E2", line=42, source="WRITE 5, E2")
    with pytest.raises(AsmError) as info:
        b.build()
    assert str(info.value).startswith("gen.py:42: ") and info.value.cycle == 16


def test_check_reruns_on_modified_program():
    prog = assemble(".queue MEM_W1\n READ 0, E2\n.queue MEM_E1\n NOP 6\n WRITE 5, E2\n", CFG,
                    "t.s")
    check(prog)
    assert prog.predicted_cycles == 8
    prog.queues[8][0] = isa.encode("NOP", n=7)
    with pytest.raises(AsmError) as info:
        check(prog)
    assert info.value.line == 5 and info.value.cycle == 7
    # a Program rebuilt from JSON checks the same way (without line numbers)
    prog2 = Program.from_dict(json.loads(json.dumps(prog.to_dict())), CFG)
    with pytest.raises(AsmError, match="cycle 7"):
        check(prog2)


def test_asm_error_format():
    e = AsmError("boom", "f.s", 3, 9)
    assert str(e) == "f.s:3: boom" and e.cycle == 9 and e.message == "boom"
    assert isinstance(e, ValueError)
    assert str(AsmError("boom", "f.s")) == "f.s: boom"


# ---- command line -----------------------------------------------------------------------------

def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asm", *args], check=False, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_cli_ok(tmp_path):
    src = tmp_path / "ok.s"
    src.write_text(".queue MEM_W1\n READ 0x10, E2\n.queue MEM_E1\n NOP 6\n WRITE 5, E2\n")
    out = tmp_path / "ok.json"
    r = _run_cli(str(src), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert "predicted cycles: 8" in r.stdout and "WRITE 5, E2" in r.stdout
    d = json.loads(out.read_text())
    assert d["queues"]["MEM_E1"] == [isa.encode("NOP", n=6), isa.encode("WRITE", addr=5, s=2), 0]
    assert d["predicted_cycles"] == 8


def test_cli_error(tmp_path):
    src = tmp_path / "bad.s"
    src.write_text(".queue MEM_W1\n READ 0x10, E2\n.queue MEM_E1\n NOP 16\n WRITE 5, E2\n")
    r = _run_cli(str(src), "--profile", "default")
    assert r.returncode == 1
    assert f"{src}:5:" in r.stderr and "cycle 16" in r.stderr
    assert "Traceback" not in r.stderr
    r = _run_cli(str(tmp_path / "missing.s"))
    assert r.returncode == 1 and "Traceback" not in r.stderr


def test_doc_examples(monkeypatch):
    # every example in docs/assembly.md assembles, except the "two producers" one; the cycle
    # counts are the ones the document derives by hand (8, 8, 15, 15; the MEM -> SXM -> MXM ->
    # MEM chain, with the units built: 21). The examples are written for the 13-position layout;
    # their `.data` words say the vector size: 8 bytes (full) or 16 (wide, same layout).
    import re
    doc = (ROOT / "docs" / "assembly.md").read_text()
    blocks = [b for b in re.findall(r"^```[a-z]*\n(.*?)^```", doc, re.DOTALL | re.MULTILINE)
              if b.lstrip().startswith((".queue", "; a comment", "; MEM -> SXM"))]
    sizes = {len(h) // 2 for b in blocks for h in re.findall(r"^\.data \S+ \S+ ([0-9a-f]+)", b,
                                                              re.MULTILINE)}
    assert len(sizes) == 1 and sizes <= {CFG.vec_bytes, WIDE.vec_bytes}, sizes
    cfg = CFG if sizes == {CFG.vec_bytes} else WIDE
    assert cfg.positions == CFG.positions and set(UNITS) <= set(cfg.units)
    chain = [b for b in blocks if b.startswith("; MEM -> SXM")]
    assert len(chain) == 1
    e = str(fails(chain[0], cfg.replace(units=())))
    assert f"profile {cfg.name!r} has no sxm unit" in e or f"profile {cfg.name!r} has no mxm unit" in e
    assert assemble(chain[0], cfg).predicted_cycles == 21
    results = []
    for b in blocks:
        if b in chain:
            continue
        if "live until MEM_E1" in b:
            e = fails(b, cfg)
            at(e, 5, 5)
            continue
        results.append(assemble(b, cfg).predicted_cycles)
    assert results == [8, 8, 15, 15]


# ---- MXM and SXM (docs/units.md, docs/mxm.md, docs/sxm.md) ------------------------------------
# Timing used below: MXM LW/ABC element k of an instruction issued at t enters at t + k (dskew 0);
# ABC reads its row at u + 1 and writes it at the end of u + 2; ACC reads row k at t + k, output
# on the SG4 group at t + k + 2. SXM: reads at t, result at t + 2. `active` (Done rule): MXM
# until the last LW element (u + 1), ABC write (u + 3), ACC output (u + 2); SXM data
# instruction: t + 2. Tiny profile positions: 0 MXM_W, 1 SXM_W, 2 MEM_W1, 3 MEM_W0, 4 VXM,
# 5 MEM_E0, 6 MEM_E1, 7 SXM_E, 8 MXM_E.

NEW_INSTRS = [i for i in isa.INSTRUCTIONS if i.unit in UNITS]


@pytest.fixture
def units(monkeypatch):
    """For one test, this module's CFG and TINY (and `fails`' default) are the same profiles
    with (exactly) the MXM and SXM units instantiated (TspConfig.units)."""
    mod = sys.modules[__name__]
    monkeypatch.setattr(mod, "CFG", CFG.replace(units=UNITS))
    monkeypatch.setattr(mod, "TINY", TINY.replace(units=UNITS))
    monkeypatch.setattr(fails, "__defaults__", (mod.CFG,))


def test_units_absent_from_the_profile_are_rejected():
    assert TINY.units == ()         # the tiny profile has no compute units
    assert set(UNITS) <= set(CFG.units)   # the default one has both; without units it rejects them
    for cfg in (TINY, CFG.replace(units=())):
        for pos, text in (("MXM_E", "ABC E0, 0, 1, 0"), ("SXM_W", "SHIFT E0, E1, 1")):
            name, unit = text.split()[0], pos[:3].lower()
            e = fails(f".queue {pos}\n {text}\n", cfg)
            assert at(e, 2).endswith(f"profile {cfg.name!r} has no {unit} unit "
                                     f"(TspConfig.units = ())"), str(e)
            assert name in str(e)


CHAIN = f""".queue MEM_W3
    READ 0, W0          ; 0: map word, W0 at MEM_W3 (2) at 2, at SXM_W (1) at 3
    NOP 2               ; 1, 2
    READ 1, W0          ; 3: x, at SXM_W at 6
    NOP 12              ; 4..15
    WRITE 0x10, E4      ; 16: byte 0 of the int32 result
.queue MEM_W2
    ITERATIONS 2        ; 0
    READ 0x20, W2       ; 1: accesses 1, 2: W2 at MEM_W2 (3) at 3, 4, at MXM_W (0) at 6, 7
    ITERATIONS 1        ; 2
    NOP 14              ; 3..16
    WRITE 0x10, E5      ; 17
.queue MEM_W1
    NOP 18
    WRITE 0x10, E6      ; 18
.queue MEM_W0
    NOP 19
    WRITE 0x10, E7      ; 19
.queue SXM_W
    NOP 3               ; 0..2
    SETMAP W0, 1        ; 3: reads W0 at 3
    NOP 2               ; 4, 5
    PERMUTE W0, W1, 1   ; 6: W1 at SXM_W (1) at 8, at MXM_W (0) at 9
.queue MXM_W
    NOP 6               ; 0..5
    LW W2, 0, 2         ; 6: weight rows at 6, 7
    NOP 1               ; 7
    IW                  ; 8
    ABC W1, 0, 1, 0     ; 9: row 0 read at 10, written at the end of 11
    NOP 2               ; 10, 11
    ACC E4, 0, 1        ; 12: E4..E7 at MXM_W (0) at 14, MEM_W3 (2) at 16 .. MEM_W0 (5) at 19
.data MEM_W3 0 {word(reversed(range(VB)))}
"""                     # the map word reverses the lanes


def test_chain_mem_sxm_mxm_mem(units):
    # Done rule: queues halt at MEM_W3 17, MEM_W2 18, MEM_W1 19, MEM_W0 20, SXM_W 7, MXM_W 13;
    # MEM reads end 3 + 2, writes 19 + 1; SXM 6 + 2; MXM: LW 7 + 1, ABC 9 + 3, ACC 12 + 2.
    # T = max(18, 19, 20, 21, 8, 14, 5, 20, 8, 8, 12, 14) = 21
    prog = assemble(CHAIN, CFG, "t.s")
    assert prog.predicted_cycles == 21
    assert prog.queues[0] == [isa.encode("NOP", n=6), isa.encode("LW", s=34, row=0, count=2),
                              isa.encode("NOP", n=1), isa.encode("IW"),
                              isa.encode("ABC", s=33, acc=0, count=1, mode=0),
                              isa.encode("NOP", n=2), isa.encode("ACC", s=4, acc=0, count=1), 0]
    assert prog.queues[1][1] == isa.encode("SETMAP", m=32, slot=1)
    assert prog.queues[1][3] == isa.encode("PERMUTE", s=32, d=33, slot=1)
    sched = [(e.cycle, e.mnemonic) for e in prog.schedule if e.position in (0, 1)
             and e.mnemonic not in ("NOP", "HALT")]
    assert sched == [(3, "SETMAP"), (6, "LW"), (6, "PERMUTE"), (8, "IW"), (9, "ABC"),
                     (12, "ACC")]
    # one cycle late anywhere breaks the chain
    e = fails(CHAIN.replace("NOP 2               ; 10, 11", "NOP 3"))
    s = at(e, 6, 16)       # ACC at 13: E4 reaches MEM_W3 at 17; the earliest error is at 16
    assert "nothing arrives" in s and "E4" in s and "cycle 17" in s


@pytest.mark.parametrize("text,cycles", [
    # MEM_E3 (10): ITERATIONS 0, READ 1 (accesses 1, 2, 3: E0 at MXM_E (12) at 5, 6, 7).
    # ABC at 5: elements 5, 6, 7, the last written at the end of 9: T = 10 (queue: HALT 6 -> 7)
    (".queue MEM_E3\n ITERATIONS 3\n READ 0, E0\n.queue MXM_E\n NOP 5\n ABC E0, 0, 3, 0\n", 10),
    # LW at 5 with 5 elements 5..9: T = 10
    (".queue MEM_E3\n ITERATIONS 5\n READ 0, E0\n.queue MXM_E\n NOP 5\n LW E0, 0, 5\n", 10),
    # ACC at 0: elements 0, 1, 2, the last driven out in 3: T = 4 (HALT at 1 -> 2)
    (".queue MXM_E\n ACC W0, 0, 3\n", 4),
    # ABC count 1 and two REPEAT copies at 6 and 7: last write at the end of 9: T = 10
    ((".queue MEM_E3\n ITERATIONS 3\n READ 0, E0\n.queue MXM_E\n NOP 5\n ABC E0, 0, 1, 0\n"
     " REPEAT 2, 1\n"), 10),
    # IW alone is no work: T = 2 (HALT at 1)
    (".queue MXM_W\n IW\n", 2),
    # SXM: READ at 0 on MEM_E3 (10), E0 at SXM_E (11) at 3; SHIFT at 3 drives at 4: T = 5
    (".queue MEM_E3\n READ 0, E0\n.queue SXM_E\n NOP 3\n SHIFT E0, E1, 1\n", 5),
])
def test_unit_activity_cycles(units, text, cycles):
    assert assemble(text, CFG, "t.s").predicted_cycles == cycles


@pytest.mark.parametrize("second,line,cycle", [
    ("ABC E0, 4, 1, 0", 7, 6),      # ABC at 5 has elements 5, 6
    ("LW E0, 0, 1", 7, 6),
    ("REPEAT 1, 1", 7, 6),          # the copy of the ABC issues at 6
])
def test_mxm_engine_busy(units, second, line, cycle):
    first = "LW E0, 0, 2" if second.startswith("LW") else "ABC E0, 0, 2, 0"
    e = fails(f".queue MEM_E3\n ITERATIONS 3\n READ 0, E0\n.queue MXM_E\n NOP 5\n {first}\n"
              f" {second}\n")
    s = at(e, line, cycle)
    assert "MXM engine busy" in s and "until cycle 6" in s and "drop" in s


def test_mxm_acc_engine_busy(units):
    e = fails(".queue MXM_E\n ACC W0, 0, 3\n ACC W4, 8, 1\n")
    assert "MXM engine busy" in at(e, 3, 1)
    # the engines are independent: an LW and an ACC run together
    assert assemble(".queue MEM_E3\n ITERATIONS 2\n READ 0, E0\n.queue MXM_E\n NOP 4\n"
                    " ACC W0, 0, 3\n LW E0, 0, 2\n", CFG).predicted_cycles == 8


def test_abc_mode1_hazard(units):
    # ABC at 5 writes row 0 at the end of 7; a mode-1 ABC at 6 reads row 0 at 7: too early
    e = fails(".queue MEM_E3\n ITERATIONS 3\n READ 0, E0\n.queue MXM_E\n NOP 5\n"
              " ABC E0, 0, 1, 0\n ABC E0, 0, 1, 1\n")
    s = at(e, 7, 7)
    assert "accumulator hazard" in s and "row 0" in s
    # a mode-0 ABC there, or another row, is fine
    assert assemble(".queue MEM_E3\n ITERATIONS 2\n READ 0, E0\n.queue MXM_E\n NOP 5\n"
                    " ABC E0, 0, 1, 0\n ABC E0, 1, 1, 1\n", CFG).predicted_cycles == 9
    # one cycle later (accesses at 2, 4: E0 at MXM_E at 6, 8): ABC at 6 writes row 0 at the end
    # of 8, the mode-1 ABC at 8 reads it at 9. T = last write 8 + 2 ends, + 1 = 11
    assert assemble(".queue MEM_E3\n ITERATIONS 2\n COUNTDOWN 2\n READ 0, E0\n.queue MXM_E\n"
                    " NOP 6\n ABC E0, 0, 1, 0\n NOP 1\n ABC E0, 0, 1, 1\n",
                    CFG).predicted_cycles == 11
    # within one ABC: tiny has R = 16 rows, so element 16 of a mode-1 ABC wraps to row 0,
    # written by element 0 long before: fine. READ at 1 on MEM_E1 (6): E0 at MXM_E (8) at
    # 5 .. 21; ABC at 5, last element 21 written at the end of 23: T = 24
    assert assemble(".queue MEM_E1\n ITERATIONS 17\n READ 0, E0\n.queue MXM_E\n NOP 5\n"
                    " ABC E0, 0, 17, 1\n", TINY).predicted_cycles == 24


def test_acc_hazard(units):
    # ABC at 4 writes row 5 at the end of 6; an ACC at 6 reads it at 6: too early
    e = fails(".queue MEM_E3\n READ 0, E0\n.queue MXM_E\n NOP 4\n ABC E0, 5, 1, 0\n NOP 1\n"
              " ACC W0, 5, 1\n")
    s = at(e, 7, 6)
    assert "accumulator hazard" in s and "row 5" in s
    # at 7 it is fine: T = ACC 7 + 2 = 9
    assert assemble(".queue MEM_E3\n READ 0, E0\n.queue MXM_E\n NOP 4\n ABC E0, 5, 1, 0\n"
                    " NOP 2\n ACC W0, 5, 1\n", CFG).predicted_cycles == 9
    # an ACC issued after the ABC but reading a row the ABC writes only later (element 2 at 6)
    e = fails(".queue MEM_E3\n ITERATIONS 3\n READ 0, E0\n.queue MXM_E\n NOP 4\n"
              " ABC E0, 0, 3, 0\n ACC W0, 2, 1\n")
    assert "row 2" in at(e, 7, 5)


def test_acc_group_not_aligned(units):
    e = fails(".queue MXM_E\n NOP 3\n ACC W2, 0, 1\n")
    s = at(e, 3, 3)
    assert "SG4" in s and "not aligned" in s and "W2..W5" in s
    # 6 streams: E4..E7 runs past E5
    six = CFG.replace(streams=6)
    e = fails(".queue MXM_E\n ACC E4, 0, 1\n", six)
    s = at(e, 2, 0)
    assert "past the last stream E5" in s


def test_rotate_transpose_destinations_past_last_stream(units):
    feed = ".queue MEM_E3\n READ 0, E0\n.queue SXM_E\n NOP 3\n"
    s = at(fails(feed + " ROTATE E0, E6, 3\n"), 5, 3)
    assert "destination streams E6..E8" in s and "last stream E7" in s
    assert assemble(feed + " ROTATE E0, E5, 3\n", CFG).predicted_cycles == 5
    # default: m = min(streams 8, vec_bytes 8) = 8, so TRANSPOSE destinations must start at 0
    s = at(fails(".queue SXM_W\n TRANSPOSE W0, E1\n"), 2, 0)
    assert "destination streams E1..E8" in s
    # sources past the last stream read zeros: rejected as well
    s = at(fails(".queue SXM_W\n TRANSPOSE W2, E0\n"), 2, 0)
    assert "source streams W2..W9" in s


TRANSPOSE_TINY = """.queue MEM_W1
    NOP 4
    READ 0, W0          ; 4: at MEM_W1 (2) at 6, SXM_W (1) at 7
    NOP 5               ; 5..9
    WRITE 1, E2         ; 10: destination E2 at SXM_W at 9, MEM_W1 at 10
.queue MEM_W0
    NOP 3
    READ 0, W1          ; 3: at 3 at 5, at 1 at 7
.queue MEM_E0
    NOP 1
    READ 0, W2          ; 1: at 5 at 3, at 1 at 7
.queue MEM_E1
    READ 0, W3          ; 0: at 6 at 2, at 1 at 7
.queue SXM_W
    NOP 7
    TRANSPOSE W0, E0    ; 7: sources W0..W3, destinations E0..E3 at 9
"""


def test_transpose_accepted_tiny(units):
    # T = max(MEM_W1 HALT 11 + 1, write 10 + 1, SXM_W HALT 8 + 1, SXM 7 + 2, ...) = 12
    assert assemble(TRANSPOSE_TINY, TINY).predicted_cycles == 12
    # one source one cycle late: nothing arrives on W3 at SXM_W at cycle 7
    e = fails(TRANSPOSE_TINY.replace("    READ 0, W3", "    NOP 1\n    READ 0, W3"), TINY)
    s = at(e, 17, 7)     # the TRANSPOSE, now line 17
    assert "nothing arrives" in s and "W3" in s


def test_new_consumers_nothing_arrives(units):
    s = at(fails(".queue MXM_E\n NOP 2\n LW E1, 0, 2\n"), 3, 2)
    assert "nothing arrives" in s and "E1" in s
    s = at(fails(".queue SXM_W\n SETMAP W3, 0\n"), 2, 0)
    assert "nothing arrives" in s
    # the second element of an ABC has nothing: READ gives E0 at MXM_E (12) at 4 only
    s = at(fails(".queue MEM_E3\n READ 0, E0\n.queue MXM_E\n NOP 4\n ABC E0, 0, 2, 0\n"), 5, 5)
    assert "nothing arrives" in s


def test_new_producers_two_producers(units):
    # SXM producer: MEM_E2 (9) READ at 1 puts E1 at SXM_E (11) at 5, live until LW at MXM_E
    # (12) at 6; SHIFT at 3 (source E0 from MEM_E3 READ at 0, at 11 at 3) writes E1 at 11 at 5
    e = fails(".queue MEM_E3\n READ 0, E0\n.queue MEM_E2\n NOP 1\n READ 0, E1\n"
              ".queue SXM_E\n NOP 3\n SHIFT E0, E1, 1\n.queue MXM_E\n NOP 6\n LW E1, 0, 1\n")
    s = at(e, 8, 5)
    assert "two producers" in s and "E1" in s
    # MXM producer: ACC E4 at 0 on MXM_W (0): E5 at MEM_W3 (2) at 4, consumed at MEM_W2 (3) at
    # 5; a READ on MEM_W3 at 2 puts E5 there at 4 as well: the READ is the second producer
    e = fails(".queue MXM_W\n ACC E4, 0, 1\n.queue MEM_W3\n NOP 2\n READ 0, E5\n"
              ".queue MEM_W2\n NOP 5\n WRITE 0, E5\n")
    s = at(e, 5, 4)
    assert "two producers" in s and "ACC" in s


def test_permute_distribute_slot_never_loaded(units):
    feed = ".queue MEM_E3\n READ 0, E0\n.queue SXM_E\n NOP 3\n"
    for op in ("PERMUTE", "DISTRIBUTE"):
        s = at(fails(feed + f" {op} E0, E1, 2\n"), 5, 3)
        assert "map slot 2" in s and "SETMAP" in s
    # a SETMAP of another slot does not help
    s = at(fails(".queue MEM_E3\n READ 0, E0\n READ 1, E0\n.queue SXM_E\n NOP 3\n"
                 " SETMAP E0, 1\n DISTRIBUTE E0, E1, 0\n"), 7, 4)
    assert "map slot 0" in s


IDENTITY = word(range(VB))
BAD_LANE = VB - 2                                       # lane 6: it takes source lane 0 again
BAD = word(0 if lane == BAD_LANE else lane for lane in range(VB))
BAD_MAP = f""".queue MEM_E3
    READ 0, E0          ; 0: the map, at SXM_E (11) at 3
    READ 1, E0          ; 1: the data, at 4
.queue SXM_E
    NOP 3
    SETMAP E0, 0        ; 3
    PERMUTE E0, E1, 0   ; 4
.data MEM_E3 0 {BAD}
"""


def test_permute_static_map_not_a_bijection(units):
    # lane 6 repeats source lane 0 (and source lane 6 is never used)
    s = at(fails(BAD_MAP), 7, 4)
    assert f"not a bijection: lane 0 and lane {BAD_LANE} both take source lane 0" in s
    assert "BAD_MAP" in s
    # the same map is fine for DISTRIBUTE (replication allowed): T = SXM 4 + 2 = 6
    assert assemble(BAD_MAP.replace("PERMUTE", "DISTRIBUTE"), CFG).predicted_cycles == 6
    # a bijection is accepted
    good = BAD_MAP.replace(BAD, IDENTITY)
    assert assemble(good, CFG).predicted_cycles == 6
    # ... unless CONFIG powers the superlane down before the READ: the map reads as zeros
    powered_down = f""".queue MEM_E3
    CONFIG 1            ; 0: superlane 0 powered down from cycle 1 on
    NOP 1               ; 1
    READ 0, E0          ; 2: the map reads as zeros, at SXM_E (11) at 5
    READ 1, E0          ; 3: at 6
.queue SXM_E
    NOP 5
    SETMAP E0, 0        ; 5
    PERMUTE E0, E1, 0   ; 6
.data MEM_E3 0 {IDENTITY}
"""
    s = at(fails(powered_down), 9, 6)
    assert "lane 0 and lane 1 both take source lane 0" in s
    # CONFIG at 1 takes effect at 2, after the map READ at 0: accepted.
    # T = max(MEM_E3 HALT 3 + 1, read 2 + 2, SXM_E HALT 6 + 1, SXM 5 + 2) = 7
    assert assemble(f""".queue MEM_E3
    READ 0, E0          ; 0: the map, at SXM_E (11) at 3
    CONFIG 1            ; 1: superlane 0 powered down from cycle 2 on
    READ 1, E0          ; 2: the data (zeros), at 5
.queue SXM_E
    NOP 3
    SETMAP E0, 0        ; 3
    NOP 1               ; 4
    PERMUTE E0, E1, 0   ; 5
.data MEM_E3 0 {IDENTITY}
""", CFG).predicted_cycles == 7
    # a map word written during the program is not statically known: accepted
    unknown = f""".queue MEM_E2
    READ 5, E1          ; 0: E1 at MEM_E3 (10) at 3
.queue MEM_E3
    NOP 3
    WRITE 0, E1         ; 3: word 0 overwritten
    READ 0, E0          ; 4: at SXM_E (11) at 7
    READ 1, E0          ; 5: at 8
.queue SXM_E
    NOP 7
    SETMAP E0, 0        ; 7
    PERMUTE E0, E1, 0   ; 8
.data MEM_E3 0 {BAD}
"""
    # T = max(MEM_E3 HALT 6 + 1, read 5 + 2, SXM_E HALT 9 + 1, SXM 8 + 2) = 10
    assert assemble(unknown, CFG).predicted_cycles == 10


@pytest.mark.parametrize("instr", NEW_INSTRS, ids=lambda i: i.name)
def test_new_instruction_round_trip(units, instr):
    rng = random.Random(instr.opcode)
    pos = "MXM_W" if instr.unit == "mxm" else "SXM_E"
    for _ in range(20):
        vals, texts = {}, []
        for f in instr.fields:
            vals[f.name], text = _operand_text(f, rng, instr)
            texts.append(text)
        word = Builder(CFG).add(pos, instr.name, *texts)
        got, dec = isa.decode(word)
        assert got is instr and dec == vals
        assert word == isa.encode(instr.name, **vals)
        assert Builder(CFG).add(pos, instr.name, **dict(zip(vals, texts))) == word
        line = instr.name.lower() + (" " + ", ".join(texts) if texts else "")
        for text in (line, format_instr(word)):
            b = parse(f".queue {pos}\n{text}\n", CFG)
            assert b._words[CFG.position_index(pos)] == [word]
    # on the wrong unit's queue
    with pytest.raises(AsmError, match="cannot run it"):
        Builder(CFG).add("MEM_W0", instr.name, *texts)


def test_built_program_round_trip(units):
    # the chain, built through the Builder from its own disassembly, gives the same program
    prog = assemble(CHAIN, CFG, "t.s")
    b = Builder(CFG)
    for p, words in prog.queues.items():
        for w in words[:-1]:
            text = format_instr(w)
            name, _, ops = text.partition(" ")
            b.add(p, name, *[o.strip() for o in ops.split(",") if o.strip()])
    for p, a, v in prog.data:
        b.data(p, a, v)
    prog2 = b.build()
    assert prog2.queues == prog.queues and prog2.predicted_cycles == 21
    prog3 = Program.from_dict(json.loads(json.dumps(prog.to_dict())), CFG)
    check(prog3)
    assert prog3.predicted_cycles == 21
