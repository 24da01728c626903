"""Fast differential tests of the whole RTL (TspTop) in Amaranth's simulator, against sim.TspModel.

Every program is loaded through the AXI4-Lite host port, run, and compared with the golden model:
final memories, CYCLES, error flags and first-error record, and the stream registers of every
position on every cycle (dbg_east/dbg_west). Directed programs cover each ICU and MEM feature and
each hardware error; random programs come from tb.randprog (fixed seeds).
"""
from __future__ import annotations

import sys

import numpy as np
import pytest
from amaranth.sim import Simulator
from hdl_harness import AxilDriver, load_words, read_vec, write_vec

from hdl.axil import RESP_DECERR, RESP_OKAY, RESP_SLVERR
from hdl.top import CSR, ID_VALUE, TspTop
from sim import TspModel
from tb.randprog import random_program
from tsp import isa
from tsp.config import TspConfig, join_sg4
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


def compare(cfg: TspConfig, queues: dict[int, list[int]], data=(), readback=None, label="",
            mems_out: dict | None = None):
    """Run on model and RTL; assert they agree on everything. Returns the model's RunResult;
    `mems_out`, if given, receives the RTL's read-back memories {(position, addr): vector}."""
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
    if mems_out is not None:
        mems_out.update(mems)
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
    # MEM_W0 reads an instruction vector onto E0; the VXM queue IFETCHes it and runs it.
    w0, v = pos("MEM_W0"), pos("VXM")
    notify = encode("NOTIFY")
    code = np.frombuffer(int(notify).to_bytes(4, "little"), np.uint8)
    # READ at 0 -> E0 at MEM_W0 at 2 -> at VXM at 3: IFETCH issues at 3 and writes word 5.
    q = {w0: [encode("READ", addr=2, s=E(0))],
         v: [encode("NOP", n=3), encode("IFETCH", s=E(0), addr=5), encode("NOP", n=2),
             encode("NOP", n=1), encode("NOP", n=1), encode("HALT"), encode("HALT")],
         pos("MEM_E1"): [encode("SYNC"), encode("READ", addr=0, s=W(0))]}
    # word 5 (HALT) is replaced by NOTIFY at run time; it releases MEM_E1's SYNC.
    compare(TINY, q, data=[(w0, 2, code)], readback=[(w0, 2)])


@pytest.mark.parametrize("stream", ["E1", "W3", "W5"])
def test_ifetch_other_stream_is_illegal(stream):
    # IFETCH reads E0/W0 only: any other stream index (W5: even one >= streams) is ILLEGAL, a
    # one-cycle no-op that writes no instruction word. Words encoded directly (the assembler
    # rejects these). tiny: 4-byte vectors, one word per IFETCH.
    w1, w0, v, e0 = pos("MEM_W1"), pos("MEM_W0"), pos("VXM"), pos("MEM_E0")
    code = np.frombuffer(int(encode("NOP", n=20)).to_bytes(4, "little"), np.uint8)
    s = (E if stream[0] == "E" else W)(int(stream[1:]))
    # NOP 20 reaches VXM (4) at cycle 4 on E0 (MEM_W0 (3) READ at 1), E1 (MEM_W1 (2) READ at
    # 0) and W3 (MEM_E0 (5) READ at 1), so any fetch (even from the wrong stream) is visible
    q = {w1: [encode("READ", addr=2, s=E(1))],
         w0: [encode("NOP", n=1), encode("READ", addr=2, s=E(0))],
         e0: [encode("NOP", n=1), encode("READ", addr=2, s=W(3))],
         v: [encode("NOP", n=4), encode("IFETCH", s=s, addr=5), encode("NOP", n=1),
             encode("NOP", n=1), encode("NOP", n=1), encode("HALT")]}
    data = [(w1, 2, code), (w0, 2, code), (e0, 2, code)]
    res = compare(TINY, q, data=data, readback=[(w1, 2), (w0, 2), (e0, 2)], label=stream)
    # ILLEGAL at 4 (one cycle), then the old words 2..5: NOPs at 5, 6, 7 and HALT at 8;
    # a fetched NOP 20 in word 5 would run at 8 and delay the HALT to 28
    assert [(t, n) for t, p, n in res.issue_log if p == v] == [
        (0, "NOP"), (4, "ILLEGAL"), (5, "NOP"), (6, "NOP"), (7, "NOP"), (8, "HALT")]
    assert res.err_flags == 1 << 3 and res.cycles == 9
    assert (res.err_position, res.err_bit, res.err_cycle) == (v, 3, 4)


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



# ---- compute units (MXM, SXM) integrated at the top level ------------------------------------
# Programs are written with tsp.isa.encode (raw words, as the host would load them);
# every timing below is derived by hand from docs/units.md and docs/architecture.md.
OUT_SLICES = ("MEM_E1", "MEM_E0", "MEM_W0", "MEM_W1")   # slice that stores SG4 byte b
UNITS = ("mxm", "sxm")                                   # the units these tests exercise


@pytest.fixture
def units_on(monkeypatch):
    """For one test, this module's TINY is the tiny profile with the MXM and SXM units."""
    monkeypatch.setattr(sys.modules[__name__], "TINY", TINY.replace(units=UNITS))


def i8vec(values) -> np.ndarray:
    """int8 values -> the uint8 vector as stored in MEM."""
    return np.asarray(values, dtype=np.int8).view(np.uint8)


def sg4_rows(cfg: TspConfig, mems: dict, addr: int, rows: int) -> np.ndarray:
    """int32 rows reassembled from SG4 bytes stored at addr.. of the OUT_SLICES (byte b in
    OUT_SLICES[b])."""
    ps = [pos(name, cfg) for name in OUT_SLICES]
    return np.stack([join_sg4(np.stack([mems[(p, addr + k)] for p in ps]))
                     for k in range(rows)])


def out_queues(cfg: TspConfig, acc_t: int, addr: int, rows: int, busy_until: dict) -> dict:
    """Tails of the four OUT_SLICES queues writing the SG4 output of an `ACC W0, .., rows`
    issued at acc_t at MXM_E: stream W{b} is at MXM_E during acc_t + 2 + k and at position p
    during acc_t + 2 + k + (MXM_E - p). `busy_until[p]` is the cycle at which p's queue issues
    its next instruction (default 1, after its ITERATIONS). Returns {p: [NOP, WRITE]}."""
    mx = pos("MXM_E", cfg)
    tails = {}
    for b, name in enumerate(OUT_SLICES):
        p = pos(name, cfg)
        t_write = acc_t + 2 + (mx - p)
        gap = t_write - busy_until.get(p, 1)
        assert gap >= 1, f"{name}: WRITE at {t_write} is too early"
        tails[p] = [encode("NOP", n=gap), encode("WRITE", addr=addr, s=W(b))]
    return tails


def test_mem_sxm_permute_mem(units_on):
    # tiny: MEM_E1 = 6, SXM_E = 7. Map read at 0 onto E0 -> at SXM_E at 3 (SETMAP at 3); data
    # read at 1 onto E1 -> at SXM_E at 4 (PERMUTE at 4, dskew 0). Result on W2 at SXM_E during 6
    # (dfunc 2), at MEM_E1 during 7: WRITE at 7.
    e1, sx = pos("MEM_E1"), pos("SXM_E")
    perm = np.array([2, 0, 3, 1], np.uint8)
    x = np.array([10, 20, 30, 40], np.uint8)
    q = {e1: [encode("READ", addr=0, s=E(0)), encode("READ", addr=1, s=E(1)),
              encode("NOP", n=5), encode("WRITE", addr=10, s=W(2))],
         sx: [encode("NOP", n=3), encode("SETMAP", m=E(0), slot=1),
              encode("PERMUTE", s=E(1), d=W(2), slot=1)]}
    mems = {}
    res = compare(TINY, q, data=[(e1, 0, perm), (e1, 1, x)], readback=[(e1, 10)], label="sxm",
                  mems_out=mems)
    assert res.err_flags == 0
    assert res.cycles == 9          # MEM_E1's HALT issues at 8 (active in its issue cycle)
    np.testing.assert_array_equal(mems[(e1, 10)], [30, 10, 40, 20])   # x[perm[i]]


@pytest.mark.parametrize("profile", ["tiny", "default", "full", "wide"])
def test_mem_mxm_mem_matmul(units_on, profile):
    # MEM_E1 reads the n weight rows at 1..n onto E0 -> at MXM_E at t_lw = 3 + (MXM_E - MEM_E1)
    # on: LW at t_lw; IW at t_lw + n (the shadow as during that cycle holds all n rows). ABC at
    # t_abc = t_lw + n + 1 over 4 activation vectors that MEM_E0 reads onto E1 at
    # t_abc - 2 - (MXM_E - MEM_E0) on; rows 0..3 are written at the ends of t_abc + 2 + k.
    # ACC at t_acc = t_abc + 3 (row k read at t_acc + k, after its write) onto W0..W3, written
    # by the four OUT_SLICES (one WRITE each, ITERATIONS 4). tiny: t_lw 5, IW 9, ABC 10, ACC 13;
    # default (n = 4; MEM_E1 8, MXM_E 12): t_lw 7, IW 11, ABC 12, ACC 15; full (n = 8, same
    # positions): t_lw 7, IW 15, ABC 16, ACC 19; wide (n = 16): t_lw 7, IW 23, ABC 24, ACC 27.
    cfg = TspConfig.profile(profile).replace(units=UNITS)
    n = cfg.vec_bytes
    e1, e0, mx = pos("MEM_E1", cfg), pos("MEM_E0", cfg), pos("MXM_E", cfg)
    rng = np.random.default_rng(7)
    wts = rng.integers(-128, 128, (n, n)).astype(np.int8)
    xs = rng.integers(-128, 128, (4, n)).astype(np.int8)
    wts[0, :] = xs[:, 0] = -128           # the largest products: -128 * -128
    t_lw = 3 + mx - e1
    t_abc = t_lw + n + 1
    t_acc = t_abc + 3
    t_act = t_abc - 2 - (mx - e0)
    tails = out_queues(cfg, acc_t=t_acc, addr=16, rows=4, busy_until={e1: 3, e0: t_act + 1})
    q = {mx: [encode("NOP", n=t_lw), encode("LW", s=E(0), row=0, count=n),
              encode("NOP", n=n - 1), encode("IW"), encode("ABC", s=E(1), acc=0, count=4, mode=0),
              encode("NOP", n=2), encode("ACC", s=W(0), acc=0, count=4)]}
    q.update({p: [encode("ITERATIONS", n=4)] + tail for p, tail in tails.items()})
    q[e1][:1] = [encode("ITERATIONS", n=n), encode("READ", addr=0, s=E(0)),
                 encode("ITERATIONS", n=4)]
    q[e0][1:1] = [encode("NOP", n=t_act - 1), encode("READ", addr=0, s=E(1))]
    data = [(e1, k, i8vec(wts[k])) for k in range(n)] + [(e0, k, i8vec(xs[k])) for k in range(4)]
    readback = [(pos(name, cfg), 16 + k) for name in OUT_SLICES for k in range(4)]
    mems = {}
    res = compare(cfg, q, data=data, readback=readback, label=f"mxm {profile}", mems_out=mems)
    assert res.err_flags == 0
    # the last activity: MEM_W1's write of row 3 at t_acc + 2 + (MXM_E - MEM_W1) + 3
    assert res.cycles == t_acc + 2 + (mx - pos("MEM_W1", cfg)) + 3 + 1
    # tiny: MEM_W1 2, MXM_E 8: 13 + 2 + 6 + 3 + 1 = 25; default: MEM_W1 4: 15 + 2 + 8 + 3 + 1
    # = 29; full: 19 + 2 + 8 + 3 + 1 = 33; wide: 27 + 2 + 8 + 3 + 1 = 41
    assert res.cycles == {"tiny": 25, "default": 29, "full": 33, "wide": 41}[profile]
    expect = xs.astype(np.int64) @ wts.astype(np.int64)      # y_k[j] = sum_i x_k[i] W[i][j]
    np.testing.assert_array_equal(sg4_rows(cfg, mems, 16, 4), expect)


def test_mem_sxm_mxm_mem_chain(units_on):
    # tiny: MEM_E0 5, MEM_E1 6, SXM_E 7, MXM_E 8.
    # Map: MEM_E1 READ at 0 onto E3 -> at SXM_E at 3: SETMAP at 3.
    # Weights: MEM_E1 READ x4 at 2..5 onto E0 -> at MXM_E at 6..9: LW at 6; IW at 10.
    # Activations: MEM_E0 READ x4 at 4..7 onto E2 -> at SXM_E at 8..11: PERMUTE E2 -> E1 at 8
    # and REPEAT 3, 1 (copies at 9, 10, 11); results on E1 at SXM_E during 10..13, at MXM_E at
    # 11..14: ABC at 11 into rows 4..7 (written at the ends of 13..16); ACC at 14 onto W0..W3.
    rng = np.random.default_rng(11)
    wts = rng.integers(-128, 128, (4, 4)).astype(np.int8)
    xs = rng.integers(-128, 128, (4, 4)).astype(np.int8)
    perm = np.array([3, 2, 0, 1], np.uint8)
    e1, e0, sx, mx = pos("MEM_E1"), pos("MEM_E0"), pos("SXM_E"), pos("MXM_E")
    tails = out_queues(TINY, acc_t=14, addr=20, rows=4, busy_until={e1: 3, e0: 5})
    q = {sx: [encode("NOP", n=3), encode("SETMAP", m=E(3), slot=0), encode("NOP", n=4),
              encode("PERMUTE", s=E(2), d=E(1), slot=0), encode("REPEAT", n=3, d=1)],
         mx: [encode("NOP", n=6), encode("LW", s=E(0), row=0, count=4), encode("NOP", n=3),
              encode("IW"), encode("ABC", s=E(1), acc=4, count=4, mode=0), encode("NOP", n=2),
              encode("ACC", s=W(0), acc=4, count=4)]}
    q.update({p: [encode("ITERATIONS", n=4)] + tail for p, tail in tails.items()})
    q[e1] = [encode("READ", addr=8, s=E(3))] + q[e1][:1] + [encode("READ", addr=0, s=E(0))] \
        + q[e1][1:]
    q[e0][1:1] = [encode("NOP", n=3), encode("READ", addr=0, s=E(2))]
    data = ([(e1, k, i8vec(wts[k])) for k in range(4)] + [(e1, 8, perm)]
            + [(e0, k, i8vec(xs[k])) for k in range(4)])
    readback = [(pos(n), 20 + k) for n in OUT_SLICES for k in range(4)]
    mems = {}
    res = compare(TINY, q, data=data, readback=readback, label="chain", mems_out=mems)
    assert res.err_flags == 0
    assert res.cycles == 26         # MEM_W1 (2) writes at 14+2+6+3 = 25, the last activity
    permuted = xs[:, perm]                                    # x'_k[i] = x_k[perm[i]]
    expect = permuted.astype(np.int64) @ wts.astype(np.int64)
    np.testing.assert_array_equal(sg4_rows(TINY, mems, 20, 4), expect)


@pytest.mark.parametrize("other", ["none", "illegal_east", "illegal_west"])
def test_bad_map_reaches_error_flags(units_on, other):
    # tiny: SXM_W = 1, MEM_W1 = 2. A non-bijective map (lane 0 and 1 both take lane 0) read at
    # 0 onto W0 -> at SXM_W at 3: SETMAP at 3; PERMUTE at 4 raises BAD_MAP (bit 4) at 4.
    # In the same cycle 4 an ILLEGAL word issues at MEM_E0 (5, after SXM_W: BAD_MAP is the
    # first error) or at MXM_W (0, before SXM_W: ILLEGAL at 0 is the first error).
    # MEM_W1 also reads a non-zero vector onto W2 at 3 (at SXM_W during 6), which the PERMUTE's
    # all-zero result (driven in 5, in W2 at SXM_W during 6) must replace.
    w1, sx = pos("MEM_W1"), pos("SXM_W")
    bad = np.array([0, 0, 1, 2], np.uint8)
    q = {w1: [encode("READ", addr=5, s=W(0)), encode("READ", addr=6, s=W(1)),
              encode("NOP", n=1), encode("READ", addr=6, s=W(2))],
         sx: [encode("NOP", n=3), encode("SETMAP", m=W(0), slot=2),
              encode("PERMUTE", s=W(1), d=W(2), slot=2)]}
    expect_where = sx | 4 << 16
    flags = 1 << 4
    if other != "none":
        p = pos("MEM_E0") if other == "illegal_east" else pos("MXM_W")
        q[p] = [encode("NOP", n=4), 63]
        flags |= 1 << 3
        if other == "illegal_west":
            expect_where = p | 3 << 16
    res = compare(TINY, q, data=[(w1, 5, bad), (w1, 6, vec(3))], readback=[(w1, 5)],
                  label=f"bad_map {other}")
    assert res.err_flags == flags
    assert (res.err_position | res.err_bit << 16) == expect_where
    assert res.err_cycle == 4
    np.testing.assert_array_equal(res.trace.west[5, w1, 2], vec(3))
    assert not res.trace.west[6, sx, 2].any()      # the PERMUTE wrote zeros over it


@pytest.mark.parametrize("built", [(), UNITS, ("sxm",)])
def test_units_instantiated_only_when_configured(built):
    from amaranth.hdl import Fragment
    frag = Fragment.get(TspTop(TINY.replace(units=built)), None)
    names = {sub[1] for sub in frag.subfragments}
    for unit in ("mxm_w", "mxm_e", "sxm_w", "sxm_e"):
        assert (unit in names) == (unit[:3] in built), f"{unit} with units={built}"
    assert "vxm" not in names and {"mem_w1", "mem_e1", "q_vxm"} <= names
