# Tests of tb/runner.py `run_rtl` (programs on the RTL through the host port) on the `tiny`
# profile, on Icarus and Verilator: expected memories and cycle counts derived by hand from the
# timing law (docs/architecture.md, docs/assembly.md), also checked against the golden model.
"""run_rtl: copies, a two-program sequence, error flags, waves, bad input."""
from __future__ import annotations

import numpy as np
import pytest

from asm import Program, assemble
from sim import TspModel
from tb.runner import RtlRunError, run_rtl
from tsp.config import TspConfig
from tsp.hostmap import ERR_BITS, STATUS_DONE, STATUS_ERROR
from tsp.isa import encode

SIMS = ("icarus", "verilator")
TINY = TspConfig.profile("tiny")
# tiny positions: MXM_W 0, SXM_W 1, MEM_W1 2, MEM_W0 3, VXM 4, MEM_E0 5, MEM_E1 6, SXM_E 7, MXM_E 8
MEM_W1, MEM_W0, MEM_E1 = 2, 3, 6
D1 = bytes([0x11, 0x22, 0x33, 0x44])
D2 = bytes([0xA5, 0x5A, 0x00, 0xFF])

# READ at MEM_W1 in cycle 0 puts the word on E2 at position 2 in cycle 2; one hop per cycle
# east, it is at MEM_E1 (position 6) in cycle 6, where the WRITE issues. MEM_E1 issues HALT in
# cycle 7, so T = 8 (docs/assembly.md, "a copy across the chip").
COPY = f"""
.queue MEM_W1
    READ 0x10, E2
.queue MEM_E1
    NOP 6
    WRITE 5, E2
.data MEM_W1 0x10 {D1.hex()}
"""
COPY_CYCLES = 8

# Program 2 of a sequence: MEM_E1 reads word 5 (written by program 1, no .data for it here) in
# cycle 0: on W1 at position 6 in cycle 2, at MEM_W0 (position 3) in cycle 5: WRITE 7 there,
# HALT in cycle 6. MEM_W1 gets new data at 0x10 and copies it to MEM_E1 word 6 exactly as COPY
# (WRITE at cycle 6, HALT at 7): T = 8.
BACK = f"""
.queue MEM_E1
    READ 5, W1
    NOP 5
    WRITE 6, E2
.queue MEM_W0
    NOP 5
    WRITE 7, W1
.queue MEM_W1
    READ 0x10, E2
.data MEM_W1 0x10 {D2.hex()}
"""
BACK_CYCLES = 8


def _model(programs: list[Program], reads: list[tuple[int, int]]):
    """Golden model over the same sequence (state kept between runs): cycles, words."""
    m = TspModel(programs[0].config)
    cycles = []
    for p in programs:
        for pos, words in p.queues.items():
            m.load_queue(pos, list(words))
        for pos, addr, blob in p.data:
            m.write_mem(pos, addr, blob)
        res = m.run()
        assert res.err_flags == 0
        cycles.append(res.cycles)
    return cycles, {r: m.read_mem(*r) for r in reads}


@pytest.mark.parametrize("sim", SIMS)
def test_copy_between_hemispheres(sim: str) -> None:
    """One READ -> WRITE copy from MEM_W1 to MEM_E1: the copied word, CYCLES, no error."""
    prog = assemble(COPY, TINY)
    assert prog.predicted_cycles == COPY_CYCLES
    reads = [(MEM_E1, 5), ("MEM_W1", 0x10)]
    r = run_rtl(prog, reads, sim=sim)
    assert r.cycles == [COPY_CYCLES] and r.total_cycles == COPY_CYCLES
    assert r.err_flags == [0] and r.err_where == [0] and r.err_cycle == [0] and r.ok
    assert r.status == [STATUS_DONE]
    assert set(r.mem) == {(MEM_E1, 5), (MEM_W1, 0x10)}
    for key in r.mem:
        assert r.mem[key].dtype == np.uint8 and r.mem[key].tolist() == list(D1), key
    model_cycles, model_mem = _model([prog], [(MEM_E1, 5), (MEM_W1, 0x10)])
    assert model_cycles == r.cycles
    assert all(np.array_equal(model_mem[k], r.mem[k]) for k in r.mem)
    assert r.wave_file is None and r.log.exists() and r.seconds > 0


@pytest.mark.parametrize("sim", SIMS)
def test_sequence_keeps_memory(sim: str) -> None:
    """Program 2 reads the word program 1 wrote (MEM persists across START, programs run in
    order) and its own data overwrites program 1's at MEM_W1 0x10."""
    p1, p2 = assemble(COPY, TINY, "copy.s"), assemble(BACK, TINY, "back.s")
    assert (p1.predicted_cycles, p2.predicted_cycles) == (COPY_CYCLES, BACK_CYCLES)
    reads = [(MEM_E1, 5), (MEM_W0, 7), (MEM_E1, 6), (MEM_W1, 0x10)]
    r = run_rtl([p1, p2], reads, sim=sim)
    assert r.cycles == [COPY_CYCLES, BACK_CYCLES] and r.total_cycles == 16
    assert r.err_flags == [0, 0] and r.programs_run == 2
    want = {(MEM_E1, 5): D1, (MEM_W0, 7): D1, (MEM_E1, 6): D2, (MEM_W1, 0x10): D2}
    assert {k: v.tobytes() for k, v in r.mem.items()} == want
    model_cycles, model_mem = _model([p1, p2], reads)
    assert model_cycles == r.cycles
    assert {k: v.tobytes() for k, v in model_mem.items()} == want


def _illegal_program() -> Program:
    """Undefined opcode 7 at MEM_E1 after NOP 1 (bypassing the assembler): ILLEGAL at
    position 6 in cycle 1 (docs/architecture.md section 4)."""
    queues = {p: [0] for p in range(TINY.num_positions)}
    queues[MEM_E1] = [encode("NOP", n=1), 7, 0]
    return Program(TINY, queues)


@pytest.mark.parametrize("sim", SIMS)
def test_error_flags_and_keep_going(sim: str) -> None:
    """An ILLEGAL program: ERR_FLAGS, ERR_WHERE, ERR_CYCLE; the next program is skipped unless
    keep_going, and then runs clean (START clears the flags)."""
    bad, good = _illegal_program(), assemble(COPY, TINY)
    illegal = ERR_BITS["ILLEGAL"]
    r = run_rtl([bad, good], [(MEM_E1, 5)], sim=sim)
    assert r.programs_run == 1 and not r.ok
    assert r.err_flags == [1 << illegal]
    assert r.err_where == [(illegal << 16) | MEM_E1] and r.err_cycle == [1]
    assert r.status[0] & STATUS_ERROR
    r = run_rtl([bad, good], [(MEM_E1, 5)], sim=sim, keep_going=True)
    assert r.programs_run == 2 and r.err_flags == [1 << illegal, 0]
    assert r.cycles[1] == COPY_CYCLES and r.mem[(MEM_E1, 5)].tobytes() == D1


def test_timeout_raises_with_log() -> None:
    """A program longer than timeout_cycles: RtlRunError carrying the log and its tail."""
    prog = assemble(".queue MEM_E0\n    NOP 2000\n", TINY)
    with pytest.raises(RtlRunError, match="not done after") as exc:
        run_rtl(prog, [], sim="icarus", timeout_cycles=100)
    assert exc.value.log is not None and exc.value.log.exists()


def test_waves(tmp_path) -> None:
    """waves=True: the FST file exists in the work folder and is not empty."""
    r = run_rtl(assemble(COPY, TINY), [(MEM_E1, 5)], sim="icarus", waves=True,
                workdir=tmp_path / "run")
    assert r.cycles == [COPY_CYCLES] and r.mem[(MEM_E1, 5)].tobytes() == D1
    assert r.wave_file is not None and r.wave_file.parent == tmp_path / "run"
    assert r.wave_file.suffix == ".fst" and r.wave_file.stat().st_size > 0


# ---- bad input: rejected before anything is built or run -------------------------------------
def test_mismatched_configs() -> None:
    other = assemble(".queue MEM_E0\n    NOP 1\n", TspConfig.profile("default"))
    with pytest.raises(ValueError, match=r"programs\[1\].*'default'.*programs\[0\]'s 'tiny'"):
        run_rtl([assemble(COPY, TINY), other], [], sim="icarus")


def test_unknown_simulator() -> None:
    with pytest.raises(ValueError, match="unknown simulator 'modelsim'.*icarus, verilator"):
        run_rtl(assemble(COPY, TINY), [], sim="modelsim")


def test_unnamed_config() -> None:
    custom = TINY.replace(bank_depth=32)
    with pytest.raises(ValueError, match="not a named profile"):
        run_rtl(assemble(".queue MEM_E0\n    NOP 1\n", custom), [], sim="icarus")


def test_bad_inputs() -> None:
    prog = assemble(COPY, TINY)
    with pytest.raises(ValueError, match=r"reads\[1\].*position 4 is not a MEM slice"):
        run_rtl(prog, [(MEM_E1, 0), (4, 0)])
    with pytest.raises(ValueError, match=r"reads\[0\].*address 128 outside 0..127"):
        run_rtl(prog, [(MEM_E1, 128)])
    with pytest.raises(ValueError, match="programs` is empty"):
        run_rtl([], [])
    with pytest.raises(TypeError, match=r"programs\[1\] is a str"):
        run_rtl([prog, "COPY"], [])
