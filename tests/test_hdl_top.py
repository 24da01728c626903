"""Fast differential tests of the whole RTL (TspTop) in Amaranth's simulator, against sim.TspModel.

Every program is loaded through the AXI4-Lite host port, run, and compared with the golden model:
final memories, CYCLES, error flags and first-error record, and the stream registers of every
position on every cycle (dbg_east/dbg_west). Directed programs cover each ICU and MEM feature and
each hardware error; random programs come from tb.randprog (fixed seeds).
"""
from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator
from hdl_harness import AxilDriver, load_words, read_vec, write_vec

from hdl.axil import RESP_DECERR, RESP_OKAY, RESP_SLVERR
from hdl.top import CSR, ID_VALUE, TspTop
from sim import TspModel
from tb.randprog import random_program
from tsp import isa
from tsp.config import TspConfig
from tsp.isa import EAST, WEST, encode
from tsp.isa import stream_operand as so

TINY = TspConfig.profile("tiny")


def _unflatten(cfg: TspConfig, value: int) -> np.ndarray:
    n = cfg.num_positions * cfg.streams * cfg.vec_bytes
    raw = np.frombuffer(value.to_bytes(n, "little"), dtype=np.uint8)
    return raw.reshape(cfg.num_positions, cfg.streams, cfg.vec_bytes)


def run_rtl(cfg: TspConfig, queues: dict[int, list[int]], data, readback, trace=True):
    """Load and run on the RTL; returns (csrs, {(p, a): vec}, east, west)."""
    top = TspTop(cfg, debug=True)
    drv = AxilDriver(top)
    result = {}
    samples = {}

    async def sampler(ctx):
        while True:
            await ctx.tick()
            if ctx.get(top.dbg_running):
                t = ctx.get(top.dbg_cycle)
                samples[t] = (ctx.get(top.dbg_east), ctx.get(top.dbg_west))

    async def bench(ctx):
        for p, a, vec in data:
            await write_vec(ctx, drv, cfg, p, a, vec)
        await load_words(ctx, drv, cfg, queues)
        assert await drv.write(ctx, CSR["CTRL"], 1) == RESP_OKAY
        for _ in range(20000):
            status, _ = await drv.read(ctx, CSR["STATUS"])
            if status & 2 and not status & 1:
                break
        else:
            raise AssertionError("RTL did not finish")
        csrs = {}
        for name in ("STATUS", "CYCLES", "ERR_FLAGS", "ERR_WHERE", "ERR_CYCLE"):
            csrs[name], _ = await drv.read(ctx, CSR[name])
        mems = {}
        for p, a in readback:
            mems[(p, a)] = await read_vec(ctx, drv, cfg, p, a)
        result.update(csrs=csrs, mems=mems)

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if trace:
        sim.add_testbench(sampler, background=True)
    sim.run()
    east = west = None
    if trace:
        cycles = sorted(samples)
        assert cycles == list(range(len(cycles))), "dbg_cycle samples are not 0..T"
        east = np.stack([_unflatten(cfg, samples[t][0]) for t in cycles])
        west = np.stack([_unflatten(cfg, samples[t][1]) for t in cycles])
    return result["csrs"], result["mems"], east, west


def compare(cfg: TspConfig, queues: dict[int, list[int]], data=(), readback=None, label=""):
    """Run on model and RTL; assert they agree on everything. Returns the model's RunResult."""
    model = TspModel(cfg)
    for p, a, vec in data:
        model.write_mem(p, a, vec)
    for p, words in queues.items():
        model.load_queue(p, words)
    res = model.run(trace=True, max_cycles=5000)
    if readback is None:
        readback = [(p, a) for p in cfg.mem_positions for a in range(8)]
    csrs, mems, east, west = run_rtl(cfg, queues, data, readback)
    where = f"[{label}]"
    assert csrs["CYCLES"] == res.cycles, f"{where} cycles: RTL {csrs['CYCLES']} model {res.cycles}"
    assert csrs["ERR_FLAGS"] == res.err_flags, f"{where} error flags"
    if res.err_flags:
        assert csrs["ERR_WHERE"] == (res.err_position | (res.err_bit << 16)), f"{where} ERR_WHERE"
        assert csrs["ERR_CYCLE"] == res.err_cycle, f"{where} ERR_CYCLE"
    assert csrs["STATUS"] == (2 | (4 if res.err_flags else 0))
    div = res.trace.first_divergence(east, west)
    assert div is None, (f"{where} first stream divergence (cycle, dir, position, stream, "
                         f"expected, actual): {div}")
    assert len(east) == res.cycles + 1
    for (p, a), vec in mems.items():
        np.testing.assert_array_equal(vec, model.read_mem(p, a),
                                      err_msg=f"{where} MEM {cfg.positions[p]} word {a}")
    return res


def pos(name: str, cfg: TspConfig = TINY) -> int:
    return cfg.position_index(name)


def vec(seed: int, cfg: TspConfig = TINY) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, cfg.vec_bytes, dtype=np.uint8)


E = lambda s: so(EAST, s)
W = lambda s: so(WEST, s)


def test_read_write_across_hemispheres():
    w1, e1 = pos("MEM_W1"), pos("MEM_E1")
    q = {w1: [encode("READ", addr=3, s=E(2)), encode("READ", addr=70, s=W(1))],
         e1: [encode("NOP", n=2 + e1 - w1), encode("WRITE", addr=7, s=E(2))],
         pos("MEM_W0"): [encode("NOP", n=4), encode("WRITE", addr=65, s=W(1))]}
    compare(TINY, q, data=[(w1, 3, vec(1)), (w1, 70, vec(2))],
            readback=[(e1, 7), (pos("MEM_W0"), 1), (pos("MEM_W0"), 65)])


def test_loops_repeat_and_west_streams():
    e1, w0 = pos("MEM_E1"), pos("MEM_W0")
    q = {e1: [encode("ITERATIONS", n=4), encode("STEP", s=-1), encode("COUNTDOWN", d=2),
              encode("READ", addr=5, s=W(3)), encode("REPEAT", n=1, d=9)],
         w0: [encode("ITERATIONS", n=8), encode("NOP", n=4),
              encode("WRITE", addr=64, s=W(3))]}
    data = [(e1, a, vec(a)) for a in range(8)]
    compare(TINY, q, data=data, readback=[(w0, a) for a in range(64, 72)])


def test_gather_scatter():
    w1, w0, e0 = pos("MEM_W1"), pos("MEM_W0"), pos("MEM_E0")
    amap = np.zeros(TINY.vec_bytes, np.uint8)
    amap[0] = 66  # address 66 (bank 1)
    q = {w1: [encode("READ", addr=0, s=E(0)), encode("READ", addr=1, s=E(1))],
         w0: [encode("NOP", n=3), encode("GATHER", s=E(2), m=E(0))],
         e0: [encode("NOP", n=5), encode("SCATTER", s=E(2), m=E(1))]}
    amap2 = amap.copy()
    amap2[0] = 5
    data = [(w1, 0, amap), (w1, 1, amap2), (w0, 66, vec(9))]
    compare(TINY, q, data=data, readback=[(e0, 5), (w0, 66)])


def test_sync_notify_nop_and_halt():
    q = {pos("MEM_W1"): [encode("SYNC"), encode("READ", addr=0, s=E(0))],
         pos("MEM_E0"): [encode("SYNC"), encode("NOP", n=3), encode("WRITE", addr=1, s=E(0))],
         pos("VXM"): [encode("NOP", n=7), encode("NOTIFY")]}
    compare(TINY, q, data=[(pos("MEM_W1"), 0, vec(3))], readback=[(pos("MEM_E0"), 1)])


def test_ifetch_loads_and_runs_code():
    # MEM_W0 reads an instruction vector onto E1; the VXM queue IFETCHes it and runs it.
    w0, v = pos("MEM_W0"), pos("VXM")
    notify = encode("NOTIFY")
    code = np.frombuffer(int(notify).to_bytes(4, "little"), np.uint8)
    # READ at 0 -> E1 at MEM_W0 at 2 -> at VXM at 3: IFETCH issues at 3 and writes word 5.
    q = {w0: [encode("READ", addr=2, s=E(1))],
         v: [encode("NOP", n=3), encode("IFETCH", s=E(1), addr=5), encode("NOP", n=2),
             encode("NOP", n=1), encode("NOP", n=1), encode("HALT"), encode("HALT")],
         pos("MEM_E1"): [encode("SYNC"), encode("READ", addr=0, s=W(0))]}
    # word 5 (HALT) is replaced by NOTIFY at run time; it releases MEM_E1's SYNC.
    compare(TINY, q, data=[(w0, 2, code)], readback=[(w0, 2)])


def test_config_power_down():
    w1, e1 = pos("MEM_W1"), pos("MEM_E1")
    q = {w1: [encode("CONFIG", flags=1), encode("READ", addr=3, s=E(0)), encode("CONFIG", flags=0),
              encode("READ", addr=3, s=E(1))],
         e1: [encode("CONFIG", flags=1), encode("NOP", n=5), encode("WRITE", addr=9, s=E(0)),
              encode("CONFIG", flags=0), encode("WRITE", addr=10, s=E(1))]}
    compare(TINY, q, data=[(w1, 3, vec(4)), (e1, 9, vec(5))], readback=[(e1, 9), (e1, 10)])


@pytest.mark.parametrize("case", ["bank_conflict", "engine_busy", "illegal", "deadlock",
                                  "unit_op_on_placeholder", "unbuilt_unit"])
def test_hardware_errors_match_model(case):
    w0 = pos("MEM_W0")
    if case == "bank_conflict":
        q = {w0: [encode("READ", addr=1, s=E(0)), encode("NOP", n=2),
                  encode("ITERATIONS", n=3), encode("READ", addr=2, s=E(1)),
                  encode("WRITE", addr=3, s=E(0))]}
    elif case == "engine_busy":
        q = {w0: [encode("ITERATIONS", n=5), encode("READ", addr=1, s=E(0)),
                  encode("READ", addr=2, s=E(1))]}
    elif case == "illegal":
        q = {w0: [encode("NOP", n=2), 63, encode("READ", addr=1, s=E(0))]}
    elif case == "deadlock":
        q = {w0: [encode("NOP", n=3), encode("SYNC")]}
    elif case == "unbuilt_unit":   # defined in the ISA but not integrated: ILLEGAL
        q = {pos("MXM_W"): [encode("NOP", n=1), encode("LW", s=E(0), row=0, count=4)]}
    else:
        q = {pos("SXM_E"): [encode("NOP", n=1), encode("READ", addr=1, s=E(0))]}
    res = compare(TINY, q, data=[(w0, a, vec(a)) for a in range(4)],
                  readback=[(w0, a) for a in range(4)], label=case)
    assert res.err_flags, f"{case} raised no error flag in the model"


@pytest.mark.parametrize("seed", range(6))
def test_random_programs_tiny(seed):
    rp = random_program(TINY, seed)
    prog = rp.program
    readback = [(p, a) for (p, first, n) in rp.windows for a in range(first, first + n)]
    res = compare(TINY, prog.queues, data=prog.data, readback=readback,
                  label=f"random seed {seed}")
    assert prog.predicted_cycles == res.cycles, f"seed {seed}: checker predicted " \
        f"{prog.predicted_cycles}, model measured {res.cycles}"


def test_host_port_errors_change_nothing():
    cfg = TINY
    top = TspTop(cfg)
    drv = AxilDriver(top)
    amap = cfg.address_map()
    e0 = pos("MEM_E0")
    seen = {}

    async def bench(ctx):
        seen["id"] = await drv.read(ctx, CSR["ID"])
        seen["isa"] = await drv.read(ctx, CSR["ISA_VERSION"])
        seen["cfg0"] = await drv.read(ctx, CSR["CONFIG0"])
        seen["unmapped_csr"] = await drv.read(ctx, 0x28)
        seen["unmapped_gap"] = await drv.write(ctx, 0x8000, 1)
        seen["mem_on_vxm"] = await drv.read(ctx, amap.mem(pos("VXM")))
        seen["past_end"] = await drv.write(ctx, amap.end, 1)
        seen["ro_csr"] = await drv.write(ctx, CSR["CYCLES"], 5)
        seen["partial"] = await drv.write(ctx, amap.mem(e0), 0xFFFFFFFF, strb=0x3)
        seen["after_partial"] = await drv.read(ctx, amap.mem(e0))
        # a long program, then accesses while it runs
        await drv.write(ctx, amap.imem(e0), encode("NOP", n=200))
        seen["start"] = await drv.write(ctx, CSR["CTRL"], 1)
        seen["start_again"] = await drv.write(ctx, CSR["CTRL"], 1)
        seen["imem_running"] = await drv.write(ctx, amap.imem(e0), 0)
        seen["mem_running"] = await drv.write(ctx, amap.mem(e0), 0x1234)
        seen["status_running"] = await drv.read(ctx, CSR["STATUS"])
        while (await drv.read(ctx, CSR["STATUS"]))[0] & 1:
            pass
        seen["imem_after"] = await drv.read(ctx, amap.imem(e0))
        seen["mem_after"] = await drv.read(ctx, amap.mem(e0))
        seen["cycles"] = await drv.read(ctx, CSR["CYCLES"])

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen["id"] == (ID_VALUE, RESP_OKAY)
    assert seen["isa"] == (isa.ISA_VERSION, RESP_OKAY)
    assert seen["cfg0"] == (cfg.lanes | cfg.superlanes << 8 | cfg.streams << 16
                            | cfg.mem_slices << 24, RESP_OKAY)
    assert seen["unmapped_csr"] == (0, RESP_DECERR)
    assert seen["unmapped_gap"] == RESP_DECERR
    assert seen["mem_on_vxm"] == (0, RESP_DECERR)
    assert seen["past_end"] == RESP_DECERR
    assert seen["ro_csr"] == RESP_SLVERR
    assert seen["partial"] == RESP_SLVERR
    assert seen["after_partial"] == (0, RESP_OKAY)
    assert seen["start"] == RESP_OKAY
    assert seen["start_again"] == RESP_SLVERR
    assert seen["imem_running"] == RESP_SLVERR
    assert seen["mem_running"] == RESP_SLVERR
    assert seen["status_running"] == (1, RESP_OKAY)
    assert seen["imem_after"] == (encode("NOP", n=200), RESP_OKAY)
    assert seen["mem_after"] == (0, RESP_OKAY)
    # NOP 200 issues at 0, HALT at 200 (active in its issue cycle), so T = 201
    assert seen["cycles"] == (201, RESP_OKAY)
