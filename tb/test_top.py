"""cocotb tests of `hdl.top.TspTop` (run through tests/test_cocotb.py, one build per profile).

Environment (set by tests/test_cocotb.py; see docs/simulation.md):
  TSP_PROFILE      profile the build was made for ("tiny", "default", ...)
  TSP_PROGRAMS     number of random programs for `random_programs`
  TSP_SEED         base seed (program i uses seed TSP_SEED * 100003 + i)
  TSP_TRACE_EVERY  compare the per-cycle stream trace on every N-th program (0: never)
  TSP_VXM_SKIP     VXM features left out of the random unit programs, comma-separated
                   (tb.randunits.VXM_FEATURES: wrong_kind, sat); empty: none (the default)

Expected values come from the golden model (sim.TspModel) running the same program, and from
the host-port rules of docs/architecture.md section 5 computed by hand.
"""
from __future__ import annotations

import os
import time

import cocotb
import numpy as np

from sim import TspModel
from tb.harness import (
    CSR,
    DECERR,
    ID_VALUE,
    OKAY,
    SLVERR,
    STATUS_DONE,
    STATUS_ERROR,
    STATUS_RUNNING,
    TspTB,
    profile_from_env,
)
from tb.randprog import RandomProgram, random_program
from tb.randunits import (
    VXM_FEATURES,
    chain_program,
    random_unit_program,
    read_result,
    vxm_coverage_wanted,
)
from tsp.config import TspConfig
from tsp.hostmap import ERR_BITS
from tsp.isa import ISA_VERSION, encode, stream_operand

BAD_MAP = 1 << ERR_BITS["BAD_MAP"]


def _vxm_skip() -> frozenset[str]:
    raw = os.environ.get("TSP_VXM_SKIP", "")
    skip = frozenset(v.strip() for v in raw.split(",") if v.strip())
    bad = skip - set(VXM_FEATURES)
    if bad:
        raise ValueError(f"TSP_VXM_SKIP={raw!r}: unknown feature(s) {sorted(bad)}; known: "
                         f"{', '.join(VXM_FEATURES)}")
    return skip


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    try:
        return int(raw) if raw else default
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer, not {raw!r}") from None


def run_model(cfg: TspConfig, queues: dict[int, list[int]], data, trace: bool):
    """Run the golden model on raw queues and initial data."""
    m = TspModel(cfg)
    for pos, words in queues.items():
        if words:
            m.load_queue(pos, list(words))
    for pos, addr, blob in data:
        m.write_mem(pos, addr, blob)
    return m, m.run(trace=trace)


async def _new_tb(dut) -> TspTB:
    tb = TspTB(dut, profile_from_env())
    await tb.init()
    return tb


def _describe(rp: RandomProgram, base: int, i: int) -> str:
    return (f"program {i} of TSP_SEED={base}: tb.randprog.random_program(cfg, seed={rp.seed})"
            f"\n{rp.listing()}")


# ---- (a) random programs against the golden model ------------------------------------------
async def compare_with_model(tb: TspTB, program, windows, trace: bool, where: str,
                             expected_err: tuple[int, int, int] | None = None,
                             unit_program=None):
    """Run `program` on the hardware and on the golden model; compare error flags (and with
    `expected_err` = (flags, position, cycle) computed by the generator, or no flags; for a
    `unit_program` (tb.randunits.UnitProgram) its `err_problem`, which also allows RANGE from
    data-dependent shifts), CYCLES (also with the assembler's prediction), the stream trace
    (when `trace`) and the MEM `windows` [(position, first word, count)]. Returns (model,
    model result, hw run)."""
    cfg = tb.cfg
    model, res = run_model(cfg, program.queues, program.data, trace)
    await tb.load_program(program)
    hw = await tb.run(trace=trace, timeout_cycles=20 * (res.cycles + 100))
    got = (hw.err_flags, hw.err_position, hw.err_cycle) if hw.err_flags else (0, None, None)
    mod = (res.err_flags, res.err_position, res.err_cycle) if res.err_flags else (0, None, None)
    exp = expected_err or (0, None, None)
    if unit_program is not None:
        why = unit_program.err_problem(res.err_flags, res.err_position, res.err_bit,
                                       res.err_cycle)
        assert got == mod and (hw.err_bit == res.err_bit or not hw.err_flags) and why is None, (
            f"error (flags, position, cycle): hw={got} model={mod} (bits {hw.err_bit}, "
            f"{res.err_bit}) generator={exp}: {why}; {where}")
    else:
        assert got == mod == exp, (
            f"error (flags, position, cycle): hw={got} model={mod} expected={exp} "
            f"(ERR_WHERE={hw.err_where:#x}); {where}")
    assert hw.cycles == res.cycles, f"CYCLES hw={hw.cycles} model={res.cycles}; {where}"
    pred = program.predicted_cycles
    if pred is not None:
        assert hw.cycles == pred, f"CYCLES hw={hw.cycles} predicted={pred}; {where}"
    if trace:
        div = res.trace.first_divergence(hw.east, hw.west)
        if div is not None:
            cyc, d, pos, s, exp_v, act = div
            pname = cfg.positions[pos] if pos is not None else "?"
            raise AssertionError(
                f"stream trace diverges first at cycle {cyc}, {d}{s} at position {pos} "
                f"({pname}): expected {None if exp_v is None else exp_v.tolist()}, got "
                f"{None if act is None else act.tolist()}; {where}")
    for pos, lo, n in windows:
        got_m = await tb.read_mem(pos, lo, n)
        exp_m = np.stack([np.asarray(model.read_mem(pos, lo + k), dtype=np.uint8)
                          for k in range(n)])
        if not np.array_equal(got_m, exp_m):
            bad = int(np.argwhere((got_m != exp_m).any(axis=1))[0][0])
            raise AssertionError(
                f"MEM {cfg.positions[pos]} word {lo + bad}: expected "
                f"{exp_m[bad].tolist()}, got {got_m[bad].tolist()}; {where}")
    return model, res, hw


@cocotb.test()
async def random_programs(dut):
    """Random valid programs: final memories, CYCLES and (every N-th) the stream trace."""
    tb = await _new_tb(dut)
    cfg = tb.cfg
    count = _env_int("TSP_PROGRAMS", 4)
    base = _env_int("TSP_SEED", 1)
    every = _env_int("TSP_TRACE_EVERY", 4)
    t0 = time.monotonic()
    total_cycles = 0
    for i in range(count):
        seed = base * 100_003 + i
        rp = random_program(cfg, seed)
        trace = every > 0 and i % every == 0
        _, _, hw = await compare_with_model(tb, rp.program, rp.windows, trace,
                                            _describe(rp, base, i))
        total_cycles += hw.cycles
    dt = time.monotonic() - t0
    dut._log.info("TSP_STATS programs=%d cycles=%d seconds=%.2f", count, total_cycles, dt)


@cocotb.test()
async def unit_programs(dut):
    """Random MXM/SXM/VXM programs (tb/randunits.py): memories, CYCLES, error flags (BAD_MAP
    where the generator put a non-bijective PERMUTE map, ILLEGAL where it patched in an illegal
    VCFG, RANGE where data shifts by an amount outside 0..31: hardware == model) and every N-th stream trace equal the golden model's; every unit instruction (and
    every VXM operation, function, type and sat mode) is covered by the run."""
    tb = await _new_tb(dut)
    cfg = tb.cfg
    count = _env_int("TSP_PROGRAMS", 4)
    base = _env_int("TSP_SEED", 1)
    every = _env_int("TSP_TRACE_EVERY", 4)
    skip = _vxm_skip()
    if skip and "vxm" in cfg.units:
        dut._log.warning("TSP_VXM_SKIP: the VXM features %s are left out of the comparison",
                         ",".join(sorted(skip)))
    t0 = time.monotonic()
    total_cycles = 0
    covered: set[str] = set()
    for i in range(count):
        seed = base * 100_003 + i
        up = random_unit_program(cfg, seed, skip=skip)
        where = (f"unit program {i} of TSP_SEED={base}: tb.randunits.random_unit_program(cfg, "
                 f"seed={seed}, skip={set(skip) or '{}'})\n{up.listing()}")
        trace = every > 0 and i % every == 0
        _, _, hw = await compare_with_model(tb, up.program, up.windows, trace, where,
                                            up.expected_err, unit_program=up)
        total_cycles += hw.cycles
        covered |= up.covered
    wanted = set()
    if "mxm" in cfg.units:
        wanted |= {"LW", "IW", "ABC0", "ABC1", "ACC", "LWG_w1_iw"}
        if cfg.mxm_xbuf:                # the wide loads and the activation buffer
            wanted |= {f"LWG_w{cfg.mxm_load_width}_iw", f"LXG_w{cfg.mxm_load_width}",
                       "ABX0", "ABX1"}
    if "sxm" in cfg.units:
        wanted |= {"SHIFT", "SETMAP", "PERMUTE_OK", "PERMUTE_BAD", "DISTRIBUTE", "ROTATE",
                   "TRANSPOSE"}
    if "vxm" in cfg.units:
        wanted |= vxm_coverage_wanted(cfg, skip)
    if count >= 20:
        assert wanted <= covered, (f"{count} unit programs of TSP_SEED={base} did not cover "
                                   f"{sorted(wanted - covered)}")
    dt = time.monotonic() - t0
    dut._log.info("TSP_STATS unit programs=%d cycles=%d seconds=%.2f covered=%s", count,
                  total_cycles, dt, ",".join(sorted(covered)))


@cocotb.test()
async def chain(dut):
    """MEM -> SXM -> MXM (-> VXM) -> MEM on both hemispheres (tb.randunits.chain_program): the
    int32 results read back through the host port equal np.matmul of the int8 inputs, the
    VXM's int8 requantisation of them (profiles with the VXM) equals the plain-Python
    reference `tb.randunits.requantize_ref` (both independent of the golden model), and
    memories, CYCLES and the stream trace equal the golden model's."""
    tb = await _new_tb(dut)
    cfg = tb.cfg
    seed = _env_int("TSP_SEED", 1)
    cp = chain_program(cfg, seed)
    where = (f"tb.randunits.chain_program(cfg, seed={seed})\n{cp.program.listing()}")
    await compare_with_model(tb, cp.program, cp.windows, True, where)
    words: dict[tuple[int, int], np.ndarray] = {}
    for pos, lo, n in cp.windows:
        for k, w in enumerate(await tb.read_mem(pos, lo, n)):
            words[(pos, lo + k)] = w
    for name, exp in cp.expected.items():
        got = read_result(cfg, cp.outputs[name], lambda p, a: words[(p, a)])
        if not np.array_equal(got, exp):
            r, j = (int(v) for v in np.argwhere(got != exp)[0])
            raise AssertionError(f"{name}[{r}][{j}] = {got[r][j]}, the reference expects "
                                 f"{exp[r][j]} (inputs {', '.join(cp.inputs)}); {where}")


# ---- (b) host port -------------------------------------------------------------------------
@cocotb.test()
async def csr_identity(dut):
    """ID, ISA_VERSION, CONFIG0/1 and CTRL read back as docs/architecture.md section 5 says."""
    tb = await _new_tb(dut)
    cfg = tb.cfg
    assert await tb.csr("ID") == ID_VALUE
    assert await tb.csr("ISA_VERSION") == ISA_VERSION
    cfg0 = cfg.lanes | cfg.superlanes << 8 | cfg.streams << 16 | cfg.mem_slices << 24
    assert await tb.csr("CONFIG0") == cfg0
    cfg1 = ((cfg.bank_depth.bit_length() - 1) | (cfg.queue_depth.bit_length() - 1) << 8
            | cfg.num_positions << 16)
    assert await tb.csr("CONFIG1") == cfg1
    assert await tb.csr("CTRL") == 0
    status = await tb.csr("STATUS")
    assert status & STATUS_RUNNING == 0, f"STATUS={status:#x} after reset"


async def _sample_state(tb: TspTB) -> dict:
    """A few locations an erroneous access could alias to."""
    cfg = tb.cfg
    m0 = cfg.mem_positions[0]
    return {
        "imem0": await tb.read_imem(0, 0, 2),
        "imem_last": await tb.read_imem(cfg.num_positions - 1, 0, 2),
        "mem0": (await tb.read_mem(m0, 0, 2)).tolist(),
        "mem_last": (await tb.read_mem(cfg.mem_positions[-1], 0, 1)).tolist(),
        "csrs": [await tb.read_ok(a) for n, a in CSR.items() if n != "CTRL"],
    }


async def _fill_known(tb: TspTB) -> None:
    cfg = tb.cfg
    for pos in (0, cfg.num_positions - 1):
        await tb.write_imem(pos, [0x1111_0000 + pos, 0x2222_0000 + pos])
    for pos in (cfg.mem_positions[0], cfg.mem_positions[-1]):
        vec = (np.arange(2 * cfg.vec_bytes) * 7 + pos).astype(np.uint8)
        await tb.write_mem(pos, 0, vec)


@cocotb.test()
async def unmapped_decerr(dut):
    """Unmapped addresses answer DECERR on read and write, and a write changes nothing."""
    tb = await _new_tb(dut)
    cfg, am = tb.cfg, tb.amap
    await _fill_known(tb)
    before = await _sample_state(tb)
    non_mem = [p for p in range(cfg.num_positions) if p not in cfg.mem_positions]
    addrs = [0x0028, 0x0FFC, 0x8000, am.imem_base - 4,
             am.mem(non_mem[0]),                 # MEM window of MXM_W: not a MEM slice
             am.mem(cfg.vxm_position) + 4,
             am.end, 0xFFFF_FFFC]
    imem_end = am.imem(cfg.num_positions)
    if imem_end < am.mem_base:
        addrs.append(imem_end)                   # just past the last instruction memory
    for a in addrs:
        _, rresp = await tb.read32(a)
        assert rresp == DECERR, f"read of unmapped {a:#x} answered {rresp.name}, not DECERR"
        wresp = await tb.write32(a, 0xDEAD_BEEF)
        assert wresp == DECERR, f"write to unmapped {a:#x} answered {wresp.name}, not DECERR"
    assert await _sample_state(tb) == before, "a DECERR write changed the design's state"


@cocotb.test()
async def write_errors_slverr(dut):
    """Partial WSTRB and writes to read-only CSRs answer SLVERR and change nothing."""
    tb = await _new_tb(dut)
    cfg = tb.cfg
    imem = tb.amap.imem(1)
    await tb.write_ok(imem, 0x1122_3344)
    r = await tb.axil.write(imem, b"\x55\x66")            # WSTRB = 0b0011
    assert r.resp == SLVERR, f"partial-strobe write answered {r.resp.name}, not SLVERR"
    r = await tb.axil.write(imem + 2, b"\x77\x88")        # WSTRB = 0b1100
    assert r.resp == SLVERR, f"partial-strobe write answered {r.resp.name}, not SLVERR"
    assert await tb.read_ok(imem) == 0x1122_3344, "a partial-strobe write changed IMEM"
    memaddr = tb.mem_addr(cfg.mem_positions[0], 0)
    await tb.write_ok(memaddr, 0x0A0B_0C0D)
    r = await tb.axil.write(memaddr + 3, b"\x99")           # WSTRB = 0b1000
    assert r.resp == SLVERR, f"partial-strobe MEM write answered {r.resp.name}"
    assert await tb.read_ok(memaddr) == 0x0A0B_0C0D, "a partial-strobe write changed MEM"
    for name in ("ID", "ISA_VERSION", "CONFIG0", "CONFIG1", "STATUS", "CYCLES", "ERR_FLAGS",
                 "ERR_WHERE", "ERR_CYCLE"):
        before = await tb.csr(name)
        resp = await tb.write32(CSR[name], 0xFFFF_FFFF)
        assert resp == SLVERR, f"write to read-only {name} answered {resp.name}, not SLVERR"
        assert await tb.csr(name) == before, f"a rejected write changed {name}"


@cocotb.test()
async def busy_slverr(dut):
    """While a program runs: IMEM/MEM accesses and START answer SLVERR, CSR reads work."""
    tb = await _new_tb(dut)
    cfg = tb.cfg
    m0 = cfg.mem_positions[0]
    vec = (np.arange(cfg.vec_bytes) + 1).astype(np.uint8)
    await tb.write_mem(m0, 3, vec)
    queues = {p: [0] for p in range(cfg.num_positions)}
    queues[cfg.vxm_position] = [encode("NOP", n=400), 0]
    for p, words in queues.items():
        await tb.write_imem(p, words)
    await tb.start()
    status = await tb.csr("STATUS")
    assert status & STATUS_RUNNING, f"STATUS={status:#x} right after START"
    imem = tb.amap.imem(cfg.vxm_position)
    _, resp = await tb.read32(imem)
    assert resp == SLVERR, f"IMEM read while running answered {resp.name}, not SLVERR"
    resp = await tb.write32(imem, 0)
    assert resp == SLVERR, f"IMEM write while running answered {resp.name}, not SLVERR"
    madr = tb.mem_addr(m0, 3)
    _, resp = await tb.read32(madr)
    assert resp == SLVERR, f"MEM read while running answered {resp.name}, not SLVERR"
    resp = await tb.write32(madr, 0xFFFF_FFFF)
    assert resp == SLVERR, f"MEM write while running answered {resp.name}, not SLVERR"
    resp = await tb.write32(CSR["CTRL"], 1)
    assert resp == SLVERR, f"START while running answered {resp.name}, not SLVERR"
    c1 = await tb.csr("CYCLES")
    c2 = await tb.csr("CYCLES")
    assert c2 > c1, f"CYCLES does not advance while running ({c1}, {c2})"
    assert int(dut.irq_done.value) == 0, "irq_done high while running"
    status = await tb.wait_done(timeout_cycles=2000)
    assert status & STATUS_ERROR == 0
    # NOP 400 at cycle 0, HALT at 400: nothing active from cycle 401 on.
    assert await tb.csr("CYCLES") == 401
    assert int(dut.irq_done.value) == 1, "irq_done low while STATUS.done"
    assert await tb.read_imem(cfg.vxm_position, 0, 1) == [encode("NOP", n=400)]
    got = await tb.read_mem(m0, 3, 1)
    assert got[0].tolist() == vec.tolist(), "a rejected MEM write changed memory"


# ---- hardware error flags (programs loaded raw, bypassing the assembler) ------------------
def _mem_name(cfg: TspConfig, i: int) -> int:
    return cfg.position_index(f"MEM_E{i}")


def _error_programs(cfg: TspConfig) -> list[tuple[str, dict, int, int, int, int]]:
    """(name, queues, flags, position, bit, cycle): expected values from section 3/4 by hand."""
    e0, e1 = _mem_name(cfg, 0), _mem_name(cfg, min(1, cfg.mem_slices - 1))
    E = lambda i: stream_operand(0, i)
    out = []
    # ITERATIONS 4 @0; READ 0 @1 (bank 0, accesses 1..4); WRITE 1 @2 (bank 0, accesses 2..5)
    q = {e0: [encode("ITERATIONS", n=4), encode("READ", addr=0, s=E(0)),
              encode("WRITE", addr=1, s=E(1)), 0]}
    out.append(("BANK_CONFLICT", q, 0b0001, e0, 0, 2))
    # ITERATIONS 4 @0; READ 0 @1 (accesses 1..4); READ 8 @2: read engine busy
    q = {e0: [encode("ITERATIONS", n=4), encode("READ", addr=0, s=E(0)),
              encode("READ", addr=8, s=E(1)), 0]}
    out.append(("ENGINE_BUSY", q, 0b0010, e0, 1, 2))
    # SYNC @0 and no NOTIFY anywhere: parked from cycle 1, everything else halted at 0: T = 1.
    q = {e1: [encode("SYNC"), 0]}
    out.append(("DEADLOCK", q, 0b0100, 0xFFFF, 2, 1))
    # READ on the VXM queue and undefined opcode 7 on MEM_E1, both at cycle 1 (after NOP 1):
    # the lower position (VXM) is recorded.
    q = {cfg.vxm_position: [encode("NOP", n=1), encode("READ", addr=0, s=E(0)), 0],
         e1: [encode("NOP", n=1), 7, 0]}
    out.append(("ILLEGAL", q, 0b1000, cfg.vxm_position, 3, 1))
    if "vxm" in cfg.units and "S" in cfg.vxm_stages:
        # VCONST c0, 40 @0; VCFG k (the first S stage) SHL by c0 @1; VRUN @2 (zeros in): stage
        # k acts at 2 + 1 + k with y = 40 outside 0..31 (docs/vxm.md section 3)
        k = cfg.vxm_stages.index("S")
        q = {cfg.vxm_position: [encode("VCONST", c=0, imm=40),
                                encode("VCFG", k=k, op=10, type=2, dst=2, x=2, y=3),
                                encode("VRUN", a=E(0), ta=0, b=E(0), tb=3, d=E(0), td=0, sat=0),
                                0]}
        out.append(("RANGE", q, 0b100000, cfg.vxm_position, 5, 3 + k))
    return out


@cocotb.test()
async def error_flags(dut):
    """Each hardware error flag: flags, ERR_WHERE, ERR_CYCLE as computed by hand and by the
    golden model; STATUS.error set."""
    tb = await _new_tb(dut)
    cfg = tb.cfg
    for name, q, flags, pos, bit, cyc in _error_programs(cfg):
        queues = {p: q.get(p, [0]) for p in range(cfg.num_positions)}
        for p, words in queues.items():
            await tb.write_imem(p, words)
        _, res = run_model(cfg, queues, [], trace=False)
        hw = await tb.run(timeout_cycles=2000)
        got = (hw.err_flags, hw.err_position, hw.err_bit, hw.err_cycle)
        model = (res.err_flags, res.err_position, res.err_bit, res.err_cycle)
        assert got == model, (f"{name}: hardware (flags, position, bit, cycle) = {got}, "
                              f"golden model {model}")
        assert got == (flags, pos, bit, cyc), (
            f"{name}: hardware (flags, position, bit, cycle) = {got}, expected "
            f"{(flags, pos, bit, cyc)} (docs/architecture.md sections 3-4)")
        assert hw.status & STATUS_ERROR, f"{name}: STATUS.error not set ({hw.status:#x})"
        assert hw.status & STATUS_DONE
    # A clean run afterwards clears the flags (cleared at START).
    for p in range(cfg.num_positions):
        await tb.write_imem(p, [0])
    hw = await tb.run()
    assert (hw.err_flags, hw.status & STATUS_ERROR) == (0, 0), "START did not clear ERR_FLAGS"
    assert OKAY == 0
