# The VXM's RANGE error end to end (docs/vxm.md section 3, docs/architecture.md section 4): a
# program assembled with a legal shift constant, then patched (as if loaded through the host port
# without the assembler) so that a VCONST holds an out-of-range shift. The assembler rejects the
# patched program; loaded anyway, the golden model (sim.TspModel) and the RTL top (TspTop in
# Amaranth's simulator, tests/hdl_harness.py) end with ERR_FLAGS bit 5, the first-error record
# at the VXM position and the stage's cycle, the result computed with y & 31 and no memory
# changed except the program's own output word. Expected values are worked out by hand below.
from __future__ import annotations

import numpy as np
import pytest
from hdl_harness import AxilDriver, load_words, read_vec, run_program, simulate, write_vec

from asm import AsmError, assemble, check
from hdl.top import TspTop
from sim import TspModel
from tsp import isa
from tsp.config import TspConfig
from tsp.hostmap import ERR_BITS

# tiny with the VXM: positions 0 MXM_W, 1 SXM_W, 2 MEM_W1, 3 MEM_W0, 4 VXM, 5 MEM_E0, 6 MEM_E1,
# 7 SXM_E, 8 MXM_E; 4 lanes, 4 streams, stages GMSG (A = 4, VRUN dfunc 8)
CFG = TspConfig.profile("tiny").replace(units=("vxm",))
W0, VXM, E0 = 3, 4, 5
RANGE_BIT = 5

# MEM_W0 READs word 0 at 0: on E0 at MEM_W0 at 2, at the VXM at 3. The VRUN at 3 (i8 operand,
# sign-extended) runs SHRA i32 by c1 in stage 2 at 3 + 1 + 2 = 6; its i8 result is on E2 at the
# VXM at 3 + 8 = 11, at MEM_E0 at 12, where the WRITE to word 1 takes it.
TEXT = """\
.queue MEM_W0
 READ 0, E0
.queue VXM
 VCONST c1, 3
 VCFG 2, SHRA, i32, r2, r2, c1
 NOP 1
 VRUN E0, i8, E1, none, E2, i8, wrap
.queue MEM_E0
 NOP 12
 WRITE 1, E2
"""
INPUT = [0x80, 0x40, 0xFF, 0x10]            # -128, 64, -1, 16
BY_3 = [0xF0, 0x08, 0xFF, 0x02]             # >> 3: -16, 8, -1, 2
BY_8 = [0xFF, 0x00, 0xFF, 0x00]             # >> (40 & 31 = 8): -1, 0, -1, 0
STAGE_CYCLE = 6
# memory preloaded in every word the test reads back: only MEM_E0 word 1 may change
WORDS = [(p, a) for p in CFG.mem_positions for a in range(4)]


def _pre(p: int, a: int) -> np.ndarray:
    if (p, a) == (W0, 0):
        return np.array(INPUT, dtype=np.uint8)
    return np.array([(17 * p + 5 * a + i) & 0xFF for i in range(CFG.vec_bytes)], np.uint8)


def _program(shift: int) -> dict[int, list[int]]:
    """The assembled program with the VCONST of c1 patched to `shift` (bypassing the checker)."""
    prog = assemble(TEXT, CFG, "t.s")
    queues = {p: list(words) for p, words in prog.queues.items()}
    assert isa.decode(queues[VXM][0])[0].name == "VCONST"
    queues[VXM][0] = isa.encode("VCONST", c=1, imm=shift)
    return queues


def _model(queues: dict[int, list[int]]):
    m = TspModel(CFG)
    for p, a in WORDS:
        m.write_mem(p, a, _pre(p, a))
    for p, words in queues.items():
        m.load_queue(p, words)
    res = m.run()
    return res, {(p, a): m.read_mem(p, a) for p, a in WORDS}


def _rtl(queues: dict[int, list[int]]):
    top = TspTop(CFG)
    drv = AxilDriver(top)
    out: dict = {}

    async def bench(ctx):
        for p, a in WORDS:
            await write_vec(ctx, drv, CFG, p, a, _pre(p, a))
        await load_words(ctx, drv, CFG, queues)
        out["csrs"] = await run_program(ctx, drv)
        out["mems"] = {(p, a): await read_vec(ctx, drv, CFG, p, a) for p, a in WORDS}

    simulate(top, bench)
    return out["csrs"], out["mems"]


def test_assembler_rejects_the_patched_program():
    assert assemble(TEXT, CFG).predicted_cycles == 14      # MEM_E0 WRITE at 12, HALT at 13
    prog = assemble(TEXT, CFG, "t.s")
    prog.queues[VXM][0] = isa.encode("VCONST", c=1, imm=40)
    with pytest.raises(AsmError) as info:
        check(prog)
    e = info.value
    assert (e.line, e.cycle, e.position) == (7, 3, VXM)
    assert ("stage 2 SHRA shift c1 = 40 is outside 0..31; c1 is set by VCONST at cycle 0 "
            "(line 4)") in str(e)
    assert f"RANGE (error bit 5) in cycle {STAGE_CYCLE}" in str(e)


@pytest.mark.parametrize("shift,flags,result", [(3, 0, BY_3), (40, 1 << RANGE_BIT, BY_8),
                                                (-24, 1 << RANGE_BIT, BY_8)])
def test_model_reports_range(shift, flags, result):
    """-24 = 0xFFFFFFE8: & 31 = 8, like 40."""
    assert ERR_BITS["RANGE"] == RANGE_BIT
    res, mems = _model(_program(shift))
    assert res.err_flags == flags
    if flags:
        assert (res.err_position, res.err_bit, res.err_cycle) == (VXM, RANGE_BIT, STAGE_CYCLE)
    assert res.cycles == 14
    for (p, a), vec in mems.items():
        want = result if (p, a) == (E0, 1) else list(_pre(p, a))
        assert list(vec) == want, f"{CFG.positions[p]} word {a}"


def test_rtl_top_reports_range():
    """The RTL top through the host port: ERR_FLAGS = bit 5, ERR_WHERE = VXM | 5 << 16,
    ERR_CYCLE = 6, STATUS done + error, CYCLES = 14, and the memories as in the model."""
    csrs, mems = _rtl(_program(40))
    assert csrs["ERR_FLAGS"] == 1 << RANGE_BIT
    assert csrs["ERR_WHERE"] == VXM | RANGE_BIT << 16
    assert csrs["ERR_CYCLE"] == STAGE_CYCLE
    assert csrs["STATUS"] == 2 | 4
    assert csrs["CYCLES"] == 14
    for (p, a), vec in mems.items():
        want = BY_8 if (p, a) == (E0, 1) else list(_pre(p, a))
        assert list(vec) == want, f"{CFG.positions[p]} word {a}"
