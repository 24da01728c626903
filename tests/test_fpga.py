# Tests of the FPGA flow: UART rx/tx and the UART-to-AXI4-Lite bridge in the Amaranth simulator
# (against a small AXI4-Lite register-file stand-in defined here), the report parsers, and a
# Yosys synth-only run of the real design for the ECP5 board (block RAM and DSP mapping), and the
# DSP budget (multipliers of chosen unit positions mapped to LUTs).
import functools
import gc
import json
import operator
import os
import time
import warnings
from pathlib import Path

import pytest
from amaranth.hdl import Elaboratable, Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from fpga import report as rpt
from fpga.bridge import AxiLiteBridge, BridgeClient, BridgeError, UartAxiBridge
from fpga.build import Multiplier, build, find_multipliers, plan_dsp
from fpga.uart import UartRx, UartTx, uart_divisor
from hdl.axil import AxiLiteSignature
from tsp.config import TspConfig

ROOT = Path(__file__).resolve().parents[1]


def _run(dut, *testbenches, processes=()):
    """Simulate `dut` at 1 MHz until the testbenches finish (processes run in the background)."""
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for tb in testbenches:
        sim.add_testbench(tb)
    for proc in processes:
        sim.add_process(proc)
    sim.run()
    return sim


# ---- UART --------------------------------------------------------------------------------------

def test_uart_divisor():
    assert uart_divisor(25e6, 115200) == 217          # 25e6 / 115200 = 217.01
    assert uart_divisor(8e6, 1e6) == 8
    with pytest.raises(ValueError, match="too high"):
        uart_divisor(1e6, 500e3)                     # 2 cycles per bit
    with pytest.raises(ValueError, match="baud"):
        uart_divisor(1e6, -1)
    with pytest.raises(ValueError, match="cannot be made"):
        uart_divisor(1e6, 180e3)                     # 5.56 -> 6 cycles: 166.7 kbit/s, 7% off


def _frame_bits(byte: int, stop: int = 1) -> list[int]:
    """Line levels of one 8N1 frame, hand-built: start 0, 8 data bits LSB first, stop."""
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]


def test_uart_tx_waveform():
    """Every cycle of the tx line for byte 0xA5 (0b1010_0101) at 8 cycles per bit."""
    dut = UartTx(8e6, 1e6)
    # 0xA5 LSB first: 1 0 1 0 0 1 0 1
    expected = [0] * 8 + [b for b in (1, 0, 1, 0, 0, 1, 0, 1) for _ in range(8)] + [1] * 8
    line = []

    async def tb(ctx):
        assert ctx.get(dut.tx) == 1 and ctx.get(dut.ready) == 1
        ctx.set(dut.data, 0xA5)
        ctx.set(dut.valid, 1)
        await ctx.tick()
        ctx.set(dut.valid, 0)
        ctx.set(dut.data, 0)
        for _ in range(len(expected)):
            line.append(ctx.get(dut.tx))
            assert ctx.get(dut.ready) == 0
            await ctx.tick()
        assert ctx.get(dut.ready) == 1 and ctx.get(dut.tx) == 1

    _run(dut, tb)
    assert line == expected


async def _drive_line(ctx, sig, bits, period):
    for b in bits:
        ctx.set(sig, b)
        await ctx.tick().repeat(period)


def _collect_rx(dut, got, errs):
    async def mon(ctx):
        async for _clk, _rst, valid, err, data in ctx.tick().sample(
                dut.valid, dut.frame_err, dut.data):
            if valid:
                got.append(data)
            if err:
                errs.append(len(got))
    return mon


def test_uart_rx_bytes_and_framing_error():
    dut = UartRx(10e6, 1e6)       # 10 cycles per bit
    got, errs = [], []

    async def tb(ctx):
        await ctx.tick().repeat(5)
        for byte in (0x00, 0xFF, 0x5A, 0x81):
            await _drive_line(ctx, dut.rx, _frame_bits(byte), 10)
        # bad stop bit, then the line stays low for a while (a break), then idles
        await _drive_line(ctx, dut.rx, _frame_bits(0x33, stop=0) + [0] * 3 + [1] * 2, 10)
        # a 3-cycle glitch is no start bit
        await _drive_line(ctx, dut.rx, [0, 1], 3)
        await ctx.tick().repeat(40)
        await _drive_line(ctx, dut.rx, _frame_bits(0xC3) + [1], 10)

    _run(dut, tb, processes=[_collect_rx(dut, got, errs)])
    assert got == [0x00, 0xFF, 0x5A, 0x81, 0xC3]
    assert errs == [4]            # one framing error, after the fourth good byte


def test_uart_loopback():
    """UartTx drives UartRx: the bytes come back in order, back to back."""
    m = Module()
    m.submodules.tx = tx = UartTx(12e6, 1e6)
    m.submodules.rx = rx = UartRx(12e6, 1e6)
    m.d.comb += rx.rx.eq(tx.tx)
    sent = [0x55, 0x00, 0xFF, 0x12, 0xED, 0x80, 0x01]
    got, errs = [], []

    async def tb(ctx):
        for byte in sent:
            ctx.set(tx.data, byte)
            ctx.set(tx.valid, 1)
            await ctx.tick().until(tx.ready)
            await ctx.tick()
        ctx.set(tx.valid, 0)
        await ctx.tick().repeat(12 * 12)

    _run(m, tb, processes=[_collect_rx(rx, got, errs)])
    assert got == sent and errs == []


# ---- AXI4-Lite stand-in --------------------------------------------------------------------------

STANDIN_ID = 0xCAFEF00D


class AxiLiteRegs(wiring.Component):
    """Test fixture: AXI4-Lite subordinate with ID (0x0, read-only) and two RW registers
    (0x4, 0x8). Writes to 0x0 answer SLVERR, other addresses DECERR (reads return 0). It takes
    AW before W (wready only after the address), and answers reads one cycle late, to exercise
    the manager's handshakes."""

    s_axil: In(AxiLiteSignature(32, 32))

    def elaborate(self, platform):
        m = Module()
        bus = self.s_axil
        regs = [Signal(32, name=f"reg{i}") for i in range(2)]
        aw_got, w_got = Signal(), Signal()
        awaddr, wdata, wstrb = Signal(32), Signal(32), Signal(4)
        ar_got = Signal()
        araddr = Signal(32)

        m.d.comb += [bus.awready.eq(~aw_got & ~bus.bvalid),
                     bus.wready.eq(aw_got & ~w_got & ~bus.bvalid)]
        with m.If(bus.awvalid & bus.awready):
            m.d.sync += [aw_got.eq(1), awaddr.eq(bus.awaddr)]
        with m.If(bus.wvalid & bus.wready):
            m.d.sync += [w_got.eq(1), wdata.eq(bus.wdata), wstrb.eq(bus.wstrb)]
        with m.If(aw_got & w_got & ~bus.bvalid):
            m.d.sync += bus.bvalid.eq(1)
            with m.If(wstrb != 0xF):
                m.d.sync += bus.bresp.eq(0b10)
            with m.Elif(awaddr == 0x0):
                m.d.sync += bus.bresp.eq(0b10)
            with m.Elif(awaddr == 0x4):
                m.d.sync += [bus.bresp.eq(0), regs[0].eq(wdata)]
            with m.Elif(awaddr == 0x8):
                m.d.sync += [bus.bresp.eq(0), regs[1].eq(wdata)]
            with m.Else():
                m.d.sync += bus.bresp.eq(0b11)
        with m.If(bus.bvalid & bus.bready):
            m.d.sync += [bus.bvalid.eq(0), aw_got.eq(0), w_got.eq(0)]

        m.d.comb += bus.arready.eq(~ar_got & ~bus.rvalid)
        with m.If(bus.arvalid & bus.arready):
            m.d.sync += [ar_got.eq(1), araddr.eq(bus.araddr)]
        with m.If(ar_got & ~bus.rvalid):
            m.d.sync += [bus.rvalid.eq(1), ar_got.eq(0)]
            with m.Switch(araddr):
                with m.Case(0x0):
                    m.d.sync += [bus.rdata.eq(STANDIN_ID), bus.rresp.eq(0)]
                with m.Case(0x4):
                    m.d.sync += [bus.rdata.eq(regs[0]), bus.rresp.eq(0)]
                with m.Case(0x8):
                    m.d.sync += [bus.rdata.eq(regs[1]), bus.rresp.eq(0)]
                with m.Default():
                    m.d.sync += [bus.rdata.eq(0), bus.rresp.eq(0b11)]
        with m.If(bus.rvalid & bus.rready):
            m.d.sync += bus.rvalid.eq(0)
        return m


class _BridgeBench(Elaboratable):
    def __init__(self, bridge):
        self.bridge = bridge
        self.regs = AxiLiteRegs()

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = self.bridge
        m.submodules.regs = self.regs
        wiring.connect(m, self.bridge.m_axil, self.regs.s_axil)
        return m


# ---- bridge, byte level ------------------------------------------------------------------------

def _bridge_session(frames, timeout_cycles=0, gap_after=None):
    """Send `frames` (lists of bytes; an int item means "wait this many cycles") to an
    AxiLiteBridge + stand-in and return the reply bytes after each frame. `tx_ready` is only
    high one cycle in three, to exercise the reply handshake."""
    bridge = AxiLiteBridge(timeout_cycles)
    bench = _BridgeBench(bridge)
    replies: list[list[int]] = []
    got: list[int] = []

    async def sink(ctx):
        n = 0
        async for _clk, _rst, valid, ready, data in ctx.tick().sample(
                bridge.tx_valid, bridge.tx_ready, bridge.tx_data):
            if valid and ready:
                got.append(data)
            n += 1
            ctx.set(bridge.tx_ready, n % 3 == 0)

    async def tb(ctx):
        for frame in frames:
            start = len(got)
            for item in frame:
                if isinstance(item, tuple):        # ("err",): a framing-error strobe
                    ctx.set(bridge.rx_err, 1)
                    await ctx.tick()
                    ctx.set(bridge.rx_err, 0)
                    continue
                if item < 0:                       # -n: idle for n cycles
                    await ctx.tick().repeat(-item)
                    continue
                ctx.set(bridge.rx_data, item)
                ctx.set(bridge.rx_valid, 1)
                await ctx.tick()
                ctx.set(bridge.rx_valid, 0)
                await ctx.tick().repeat(3)         # bytes arrive a few cycles apart
            await ctx.tick().repeat(60)            # enough for any reply at 1 byte / 3 cycles
            replies.append(got[start:])

    _run(bench, tb, processes=[sink])
    return replies


def test_bridge_write_then_read():
    replies = _bridge_session([
        [0x57, 0x04, 0x00, 0x00, 0x00, 0x78, 0x56, 0x34, 0x12],   # write 0x4 = 0x12345678
        [0x57, 0x08, 0x00, 0x00, 0x00, 0xEF, 0xBE, 0xAD, 0xDE],   # write 0x8 = 0xDEADBEEF
        [0x52, 0x04, 0x00, 0x00, 0x00],                           # read 0x4
        [0x52, 0x08, 0x00, 0x00, 0x00],                           # read 0x8
        [0x52, 0x00, 0x00, 0x00, 0x00],                           # read ID
    ])
    assert replies == [
        [0x00],
        [0x00],
        [0x00, 0x78, 0x56, 0x34, 0x12],
        [0x00, 0xEF, 0xBE, 0xAD, 0xDE],
        [0x00, 0x0D, 0xF0, 0xFE, 0xCA],
    ]


def test_bridge_error_responses():
    replies = _bridge_session([
        [0x57, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00],   # write read-only ID: SLVERR
        [0x52, 0x00, 0x00, 0x00, 0x00],                           # ID unchanged
        [0x52, 0x00, 0x01, 0x00, 0x00],                           # read 0x100: DECERR
        [0x57, 0x00, 0x00, 0x00, 0x08, 0x01, 0x02, 0x03, 0x04],   # write 0x08000000: DECERR
        [0x52, 0x08, 0x00, 0x00, 0x00],                           # 0x8 untouched (address LE)
        [0x41],                                                   # 'A': unknown command
        [0x52, 0x04, 0x00, ("err",)],                             # framing error mid-frame
        [0x52, 0x00, 0x00, 0x00, 0x00],                           # still in sync afterwards
    ])
    assert replies == [
        [0x02],
        [0x00, 0x0D, 0xF0, 0xFE, 0xCA],
        [0x03, 0x00, 0x00, 0x00, 0x00],
        [0x03],
        [0x00, 0x00, 0x00, 0x00, 0x00],
        [0x80],
        [0x82],
        [0x00, 0x0D, 0xF0, 0xFE, 0xCA],
    ]


def test_bridge_timeout_resynchronises():
    replies = _bridge_session([
        [0x57, 0x04, 0x00, -30],               # stalls: 30 idle cycles > timeout of 20
        [0x52, 0x04, 0x00, -10, 0x00, 0x00],   # 10-cycle gap < timeout: still one frame
    ], timeout_cycles=20)
    assert replies == [[0x81], [0x00, 0x00, 0x00, 0x00, 0x00]]


def test_bridge_rejects_bad_parameters():
    with warnings.catch_warnings():   # the half-built components are collected unused
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="timeout_cycles"):
            AxiLiteBridge(-1)
        with pytest.raises(ValueError, match="too high"):
            UartAxiBridge(1e6, 1e6)
        with pytest.raises(ValueError, match="timeout_s"):
            UartAxiBridge(25e6, 115200, timeout_s=-1)
        gc.collect()


# ---- bridge over the serial lines ---------------------------------------------------------------

def test_uart_bridge_end_to_end():
    """Host bytes go over a real serial line (10 cycles per bit) into UartAxiBridge; replies are
    decoded from its tx line by a UartRx in the bench."""
    bridge = UartAxiBridge(1e6, 100e3, timeout_s=2e-3)
    bench = _BridgeBench(bridge)
    mon_rx = UartRx(1e6, 100e3)

    top = Module()
    top.submodules.bench = bench
    top.submodules.mon = mon_rx
    top.d.comb += mon_rx.rx.eq(bridge.tx)
    got, errs = [], []

    async def tb(ctx):
        await ctx.tick().repeat(20)
        frames = [[0x57, 0x08, 0x00, 0x00, 0x00, 0x44, 0x33, 0x22, 0x11],
                  [0x52, 0x08, 0x00, 0x00, 0x00]]
        for frame in frames:
            for byte in frame:
                await _drive_line(ctx, bridge.rx, _frame_bits(byte), 10)
            await ctx.tick().repeat(5 * 10 * 10 + 50)

    _run(top, tb, processes=[_collect_rx(mon_rx, got, errs)])
    assert got == [0x00, 0x00, 0x44, 0x33, 0x22, 0x11] and errs == []


# ---- host-side client ---------------------------------------------------------------------------

class _FakePort:
    """Replays canned reply bytes and records what the client sent."""

    def __init__(self, replies: bytes):
        self.sent = b""
        self.replies = replies

    def write(self, data: bytes) -> int:
        self.sent += data
        return len(data)

    def read(self, n: int) -> bytes:
        out, self.replies = self.replies[:n], self.replies[n:]
        return out


def test_bridge_client_frames_and_errors():
    port = _FakePort(bytes([0x00, 0x00, 0x31, 0x50, 0x53, 0x54]))
    client = BridgeClient(port)
    client.write(0x10, 1)
    assert client.read(0x0) == 0x54535031
    assert port.sent == bytes([0x57, 0x10, 0, 0, 0, 0x01, 0, 0, 0, 0x52, 0, 0, 0, 0])
    with pytest.raises(BridgeError, match="DECERR"):
        BridgeClient(_FakePort(bytes([0x03, 0, 0, 0, 0]))).read(0x40)
    with pytest.raises(BridgeError, match="bad command"):
        BridgeClient(_FakePort(bytes([0x80]))).read(0x40)   # one byte only: must not wait for 5
    with pytest.raises(BridgeError, match="expected 1 reply bytes, got 0"):
        BridgeClient(_FakePort(b"")).write(0x0, 0)
    with pytest.raises(ValueError, match="address"):
        BridgeClient(_FakePort(b"")).write(1 << 32, 0)


# ---- report parsers -----------------------------------------------------------------------------

def test_expected_mem_dp16kd():
    # default (4 lanes): 16 banks of 1024 x 32 bits; 1024 x 18 (2 wide) or 512 x 36 (2 deep)
    # -> 2 per bank (2048 x 9 would need 4)
    exp = rpt.expected_mem_dp16kd(TspConfig.profile("default"))
    assert (exp["banks"], exp["blocks_per_bank"], exp["min_blocks"]) == (16, 2, 32)
    assert exp["bits_lower_bound"] == 29          # 16 * 1024 * 32 / 18432 = 28.4
    assert exp["imem_max_blocks"] == 13           # 256 x 32 fits one 512 x 36 block
    # the VXM: one 7168 x 16 ROM per two lanes; 1024 x 18 -> 7 deep, 1 wide = 7 blocks (512 x
    # 36: 14; 2048 x 9: 4 x 2 = 8; 8192 x 2: 8); 4 lanes: 2 ROMs = 14. With all three:
    # 32 + 13 + 14 = 59, the synthesised count (docs/fpga.md)
    assert exp["vxm_rom_blocks"] == 14
    # full (8 lanes): 16 banks of 512 x 64 bits; a DP16KD is 512 x 36 at most that deep -> 2
    # per bank; 4 ROMs
    full = rpt.expected_mem_dp16kd(TspConfig.profile("full"))
    assert (full["min_blocks"], full["vxm_rom_blocks"]) == (32, 28)
    # wide (16 lanes): 16 banks of 512 x 128 bits -> 4 per bank
    assert rpt.expected_mem_dp16kd(TspConfig.profile("wide"))["min_blocks"] == 64
    # tiny: 8 banks of 64 x 32 bits -> 1 block each; no VXM
    tiny = rpt.expected_mem_dp16kd(TspConfig.profile("tiny"))
    assert (tiny["min_blocks"], tiny["vxm_rom_blocks"]) == (8, 0)


def test_parse_yosys_outputs(tmp_path):
    stat = {"modules": {"\\top": {"num_cells_by_type": {"LUT4": 1}}},
            "design": {"num_cells_by_type": {"$scopeinfo": 3, "LUT4": 120, "CCU2C": 5,
                                             "TRELLIS_FF": 77, "DP16KD": 4}}}
    (tmp_path / "s.json").write_text(json.dumps(stat))
    assert rpt.parse_yosys_stat_json(tmp_path / "s.json") == {
        "LUT4": 120, "CCU2C": 5, "TRELLIS_FF": 77, "DP16KD": 4}
    log = """2.51. Printing statistics.

=== top ===

        +----------Local Count, excluding submodules.
        |
       37 cells
       31   $scopeinfo
        6   TRELLIS_IO
      786 submodules
       31   CCU2C
      313   LUT4
        2   DP16KD
      418   TRELLIS_FF

2.52. Executing CHECK pass (checking for obvious problems).
"""
    (tmp_path / "y.rpt").write_text(log)
    assert rpt.parse_yosys_log(tmp_path / "y.rpt") == {
        "TRELLIS_IO": 6, "CCU2C": 31, "LUT4": 313, "DP16KD": 2, "TRELLIS_FF": 418}
    (tmp_path / "bad.rpt").write_text("nothing here\n")
    with pytest.raises(rpt.ReportError, match="Printing statistics"):
        rpt.parse_yosys_log(tmp_path / "bad.rpt")
    with pytest.raises(rpt.ReportError, match="does not exist"):
        rpt.parse_yosys_stat_json(tmp_path / "missing.json")


def test_parse_nextpnr_log_and_report(tmp_path):
    log = """Info: Device utilisation:
Info: \t          TRELLIS_IO:       8/    365     2%
Info: \t              DP16KD:      64/    208    30%
Info: \t          TRELLIS_FF:    1000/  83640     1%
Info: \t        TRELLIS_COMB:    2000/  83640     2%
Info: Max frequency for clock '$glbnet$clk': 39.00 MHz (FAIL at 25.00 MHz)
Info: Max frequency for clock '$glbnet$clk': 41.50 MHz (PASS at 25.00 MHz)
"""
    (tmp_path / "t.tim").write_text(log)
    got = rpt.parse_nextpnr_log(tmp_path / "t.tim")
    assert got["utilisation"]["DP16KD"] == {"used": 64, "available": 208}
    assert got["utilisation"]["TRELLIS_COMB"] == {"used": 2000, "available": 83640}
    assert got["fmax"] == {"$glbnet$clk": {"achieved": 41.5, "constraint": 25.0}}  # last wins

    report = rpt.make_report(config=TspConfig.profile("default"), board="b", device="d",
                             totals={}, synth_cells={"LUT4": 1, "DP16KD": 64}, pnr=got)
    assert report["resources"]["LUT4"] == {"used": 2000, "total": 83640, "percent": 2.39}
    assert report["resources"]["DP16KD"] == {"used": 64, "total": 208, "percent": 30.77}
    assert report["fmax"]["$glbnet$clk"]["pass"] is True
    assert "Fmax $glbnet$clk: 41.50 MHz (PASS" in rpt.format_summary(report)

    (tmp_path / "r.json").write_text(json.dumps({
        "utilization": {"DP16KD": {"used": 3, "available": 208}},
        "fmax": {"clk": {"achieved": 99.5, "constraint": 25}}}))
    assert rpt.parse_nextpnr_report(tmp_path / "r.json") == {
        "utilisation": {"DP16KD": {"used": 3, "available": 208}},
        "fmax": {"clk": {"achieved": 99.5, "constraint": 25.0}}}


def test_synth_only_report_counts_carry_luts():
    report = rpt.make_report(config=TspConfig.profile("tiny"), board="b", device="d",
                             totals={"LUT4": 1000, "DP16KD": 10},
                             synth_cells={"LUT4": 100, "CCU2C": 10, "TRELLIS_FF": 5})
    assert report["flow"] == "synth-only"
    assert report["resources"]["LUT4"] == {"used": 120, "total": 1000, "percent": 12.0}
    assert report["resources"]["DP16KD"] == {"used": 0, "total": 10, "percent": 0.0}
    assert report["resources"]["MULT18X18D"]["total"] is None


# ---- DSP budget ---------------------------------------------------------------------------------

def test_find_multipliers_in_rtlil():
    rtlil = """module \\top.tsp.mxm_w
  wire width 8 \\a
  cell $mul $12
    parameter \\A_SIGNED 1
    parameter \\A_WIDTH 8
    parameter \\B_SIGNED 1
    parameter \\B_WIDTH 8
    parameter \\Y_WIDTH 16
    connect \\A \\a
  end
  cell $add $13
    parameter \\A_WIDTH 16
  end
end
module \\top.tsp.vxm
  cell $mul $7
    parameter \\A_WIDTH 32
    parameter \\B_WIDTH 20
  end
end
"""
    muls = find_multipliers(rtlil)
    assert muls == [Multiplier("top.tsp.mxm_w", "$12", 8, 8), Multiplier("top.tsp.vxm", "$7", 32, 20)]
    # 18-bit pieces: 8x8 -> 1 block; 32x20 -> 2 x 2 blocks
    assert [m.dsps for m in muls] == [1, 4]


def _muls(module: str, n: int, width: int) -> list[Multiplier]:
    return [Multiplier(module, f"${i}", width, width) for i in range(n)]


def test_plan_dsp_8_lanes_with_vxm():
    # the 8-lane slice with the VXM (`full`): two MXMs of 8 x 8 MACs (64 each, one DSP each)
    # and a 32 x 32 multiplier per lane (2 x 2 DSPs each, 32 in all): 160 > 156
    mxm = _muls("t.tsp.mxm_w", 64, 8) + _muls("t.tsp.mxm_e", 64, 8)
    vxm = _muls("t.tsp.vxm", 8, 32)
    plan = plan_dsp(mxm + vxm, 156)
    # 4 DSPs too many: four 8x8 MACs (64 partial-product bits per DSP saved, against 256 for a
    # 32x32) go to LUTs, the first four by module and cell name
    assert plan.estimate == 156
    assert [(m.module, m.cell) for m in plan.soft] == [("t.tsp.mxm_e", f"${i}") for i in
                                                       ("0", "1", "10", "11")]
    assert plan.yosys_commands() == [
        "booth t.tsp.mxm_e/$0 t.tsp.mxm_e/$1 t.tsp.mxm_e/$10 t.tsp.mxm_e/$11"]
    assert plan_dsp(mxm, 156).soft == () and plan_dsp(mxm, 156).yosys_commands() == []
    # a unit chosen by name goes to LUTs entirely (submodules too), whatever the budget
    plan = plan_dsp(mxm + _muls("t.tsp.vxm.alu", 8, 32), 156, ["t.tsp.vxm"])
    assert plan.estimate == 128 and len(plan.soft) == 8
    assert plan.as_dict()["soft_multipliers"] == {"t.tsp.vxm.alu": 8}
    # default (4 lanes): 2 x 16 MACs + 4 x 4 = 48 DSPs, all hard
    small = _muls("t.tsp.mxm_w", 16, 8) + _muls("t.tsp.mxm_e", 16, 8) + _muls("t.tsp.vxm", 4, 32)
    assert plan_dsp(small, 156).estimate == 48 and plan_dsp(small, 156).soft == ()
    # wide (16 lanes): two MXMs of 256 MACs: 512 - 156 = 356 of them go to LUTs
    wide = _muls("t.tsp.mxm_w", 256, 8) + _muls("t.tsp.mxm_e", 256, 8)
    assert len(plan_dsp(wide, 156).soft) == 356


class _Multiplier(Elaboratable):
    """`n` registered a x b products of `width`-bit unsigned operands, XOR-reduced into `out`."""

    def __init__(self, width: int, n: int):
        self.a = Signal(width)
        self.b = Signal(width)
        self.out = Signal()
        self.width, self.n = width, n

    def elaborate(self, platform):
        m = Module()
        bits = []
        for i in range(self.n):
            a = Signal(unsigned(self.width), name=f"a{i}")
            b = Signal(unsigned(self.width), name=f"b{i}")
            p = Signal(2 * self.width, name=f"p{i}")
            m.d.sync += [a.eq(self.a.rotate_left(i)), b.eq(self.b.rotate_right(i)), p.eq(a * b)]
            bits.append(p.xor())
        m.d.sync += self.out.eq(functools.reduce(operator.xor, bits))
        return m


class _MulCore(wiring.Component):
    """Stand-in TSP with multipliers at the positions MXM_W (two 8x8) and VXM (two 32x32)."""

    s_axil: In(AxiLiteSignature(32, 32))
    irq_done: Out(1)

    def elaborate(self, platform):
        m = Module()
        m.submodules.regs = regs = AxiLiteRegs()
        wiring.connect(m, wiring.flipped(self.s_axil), regs.s_axil)
        m.submodules.mxm_w = mxm = _Multiplier(8, 2)
        m.submodules.vxm = vxm = _Multiplier(32, 2)
        m.d.sync += [mxm.a.eq(self.s_axil.wdata), mxm.b.eq(self.s_axil.awaddr),
                     vxm.a.eq(self.s_axil.wdata), vxm.b.eq(self.s_axil.awaddr)]
        m.d.comb += self.irq_done.eq(mxm.out ^ vxm.out)
        return m


def test_dsp_plan_in_synthesis(tmp_path):
    """The plan's `booth` commands keep the chosen multipliers out of MULT18X18D."""
    def run(tag, **kw):
        report = build("tiny", "ulx3s-85f", synth_only=True, out=tmp_path / tag,
                       report_dir=tmp_path / "r", core=_MulCore(), quiet=True, **kw)
        return report["resources"]["MULT18X18D"]["used"], report["resources"]["LUT4"]["used"]
    # all in DSPs: 2 x (8x8: 1 DSP) + 2 x (32x32 unsigned: 2 x 2 pieces of at most 18x18)
    hard, hard_luts = run("hard")
    assert hard == 2 * 1 + 2 * 4
    # MXM_W by name (its two 8x8 to LUTs), then a budget of 4: the two 32x32 need 8, so one of
    # them goes to LUTs as well
    soft, soft_luts = run("soft", soft_mul=["MXM_W"], dsp_budget=4)
    assert soft == 4
    # a 32x32 multiplier in LUTs is well over 1000 LUT4 (about 2.9k measured, docs/fpga.md)
    assert soft_luts - hard_luts > 1000, (hard_luts, soft_luts)
    with pytest.raises(ValueError, match="unknown position 'XYZ'"):
        build("tiny", "ulx3s-85f", synth_only=True, out=tmp_path / "x", quiet=True,
              soft_mul=["XYZ"])


# ---- synthesis ----------------------------------------------------------------------------------

class _StandInCore(wiring.Component):
    """The register-file stand-in with the TSP's ports, to test the board flow itself."""

    s_axil: In(AxiLiteSignature(32, 32))
    irq_done: Out(1)

    def elaborate(self, platform):
        m = Module()
        m.submodules.regs = regs = AxiLiteRegs()
        wiring.connect(m, wiring.flipped(self.s_axil), regs.s_axil)
        m.d.comb += self.irq_done.eq(self.s_axil.wvalid)
        return m


def test_board_flow_synth_only_standin(tmp_path):
    """The board top (clock, reset, UART bridge, LEDs) synthesises for the ULX3S 85F."""
    report = build("tiny", "ulx3s-85f", synth_only=True, out=tmp_path / "fpga",
                   report_dir=tmp_path / "reports", core=_StandInCore(), quiet=True)
    saved = json.loads((tmp_path / "reports" / "fpga_tiny.json").read_text())
    assert saved["flow"] == "synth-only" and saved["device"] == "LFE5U-85F"
    cells = report["synth_cells"]
    assert cells.get("TRELLIS_FF", 0) > 50        # UART + bridge + registers are not optimised away
    assert cells.get("TRELLIS_IO", 0) == 6        # clk, button, uart rx/tx, 2 LEDs
    assert report["resources"]["DP16KD"]["used"] == 0


# CI synthesises the real target, the default profile (4 lanes with every unit; the earlier
# 8-lane MXM+SXM default took about 4.6 minutes of Yosys time on an otherwise idle core, 14 on a
# loaded shared machine, see docs/fpga.md);
# TSP_FPGA_SYNTH_PROFILE=tiny is a quicker check while developing.
SYNTH_PROFILE = os.environ.get("TSP_FPGA_SYNTH_PROFILE", "default")


def test_synth_only_real_design(tmp_path):
    """Yosys synth_ecp5 of the real TspTop (profile TSP_FPGA_SYNTH_PROFILE, default 'default'):
    it finishes, the MEM banks map to DP16KD block RAM, every MXM MAC to one MULT18X18D, and
    the logic fits the LFE5U-85F."""
    cfg = TspConfig.profile(SYNTH_PROFILE)
    t0 = time.monotonic()
    report = build(SYNTH_PROFILE, "ulx3s-85f", synth_only=True, out=tmp_path / "fpga",
                   report_dir=tmp_path / "reports", quiet=True)
    elapsed = time.monotonic() - t0
    print(f"synth-only {SYNTH_PROFILE}: {elapsed:.1f} s; {report['resources']}")
    exp = rpt.expected_mem_dp16kd(cfg)
    brams = report["resources"]["DP16KD"]["used"]
    assert brams > 0
    # the MEM banks and the VXM's function ROMs are block RAM; the instruction memories may be
    # too (one block each at most) or land in LUT RAM
    lo = exp["min_blocks"] + exp["vxm_rom_blocks"]
    assert lo <= brams <= lo + exp["imem_max_blocks"], (brams, exp)
    # every stream register (2 directions x positions x streams x vec_bits) is a flip-flop that
    # reaches a pin through the host port: none may be optimised away
    assert report["resources"]["TRELLIS_FF"]["used"] >= 2 * cfg.num_positions * cfg.streams * (
        cfg.vec_bits)
    # every MXM MAC (lanes x lanes per MXM, 8x8 bits) in one MULT18X18D, none in LUTs, as
    # long as the profile's MXMs fit the device's DSPs
    mxms = sum(1 for i in range(cfg.num_positions) if cfg.unit_kind(i) == "mxm") \
        if "mxm" in cfg.units else 0
    macs = mxms * cfg.vec_bytes ** 2
    dsp = report["resources"]["MULT18X18D"]
    # a VXM adds a 32x32 multiplier per lane (2 x 2 DSPs each); what exceeds the device goes
    # to LUTs (the DSP plan), so the count is capped at the device's
    vxm = 4 * cfg.vec_bytes if "vxm" in cfg.units else 0
    assert dsp["used"] == min(macs + vxm, dsp["total"]), (dsp, macs, vxm)
    for res in ("LUT4", "TRELLIS_FF"):
        r = report["resources"][res]
        assert r["used"] <= r["total"], f"{SYNTH_PROFILE} does not fit the device: {res} {r}"
