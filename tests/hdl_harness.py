"""Amaranth-simulator harness for TspTop: an async AXI4-Lite manager and program helpers.

Used by the fast unit tests (tests/test_hdl_*.py). The cocotb testbenches in tb/ use
cocotbext-axi instead; this one exists because Amaranth's simulator runs Python testbenches.
"""
from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from hdl.top import CSR, TspTop
from tsp.config import TspConfig


class AxilDriver:
    """Drives `top.s_axil` from an Amaranth async testbench."""

    def __init__(self, top: TspTop):
        self.bus = top.s_axil

    async def write(self, ctx, addr: int, data: int, strb: int = 0xF) -> int:
        b = self.bus
        ctx.set(b.awaddr, addr)
        ctx.set(b.wdata, data)
        ctx.set(b.wstrb, strb)
        ctx.set(b.awvalid, 1)
        ctx.set(b.wvalid, 1)
        ctx.set(b.bready, 1)
        while not ctx.get(b.awready):   # settled value before the edge
            await ctx.tick()
        await ctx.tick()                  # the handshake happens at this edge
        ctx.set(b.awvalid, 0)
        ctx.set(b.wvalid, 0)
        while not ctx.get(b.bvalid):
            await ctx.tick()
        resp = ctx.get(b.bresp)
        await ctx.tick()                  # bvalid & bready at this edge
        ctx.set(b.bready, 0)
        return resp

    async def read(self, ctx, addr: int) -> tuple[int, int]:
        b = self.bus
        ctx.set(b.araddr, addr)
        ctx.set(b.arvalid, 1)
        ctx.set(b.rready, 1)
        while not ctx.get(b.arready):
            await ctx.tick()
        await ctx.tick()
        ctx.set(b.arvalid, 0)
        while not ctx.get(b.rvalid):
            await ctx.tick()
        data, resp = ctx.get(b.rdata), ctx.get(b.rresp)
        await ctx.tick()
        ctx.set(b.rready, 0)
        return data, resp


async def load_words(ctx, drv: AxilDriver, cfg: TspConfig, queues: dict[int, list[int]]):
    amap = cfg.address_map()
    for p, words in queues.items():
        for i, w in enumerate(words):
            assert await drv.write(ctx, amap.imem(p) + 4 * i, w) == 0


async def write_vec(ctx, drv: AxilDriver, cfg: TspConfig, p: int, addr: int, vec) -> None:
    amap = cfg.address_map()
    v = (np.frombuffer(bytes(vec), dtype=np.uint8) if isinstance(vec, (bytes, bytearray))
         else np.asarray(vec, dtype=np.uint8))
    for lane in range(cfg.vec_bytes // 4):
        word = int.from_bytes(bytes(v[4 * lane:4 * lane + 4]), "little")
        resp = await drv.write(ctx, amap.mem(p) + addr * amap.word_stride + 4 * lane, word)
        assert resp == 0, f"MEM write {p}:{addr} answered {resp}"


async def read_vec(ctx, drv: AxilDriver, cfg: TspConfig, p: int, addr: int) -> np.ndarray:
    amap = cfg.address_map()
    out = bytearray()
    for lane in range(cfg.vec_bytes // 4):
        data, resp = await drv.read(ctx, amap.mem(p) + addr * amap.word_stride + 4 * lane)
        assert resp == 0
        out += data.to_bytes(4, "little")
    return np.frombuffer(bytes(out), dtype=np.uint8)


async def run_program(ctx, drv: AxilDriver, limit: int = 100_000) -> dict:
    """START, wait for done; returns the CSR values after the run."""
    assert await drv.write(ctx, CSR["CTRL"], 1) == 0
    for _ in range(limit):
        status, _ = await drv.read(ctx, CSR["STATUS"])
        if status & 2 and not status & 1:
            break
    else:
        raise AssertionError("program did not finish")
    out = {}
    for name in ("STATUS", "CYCLES", "ERR_FLAGS", "ERR_WHERE", "ERR_CYCLE"):
        out[name], _ = await drv.read(ctx, CSR[name])
    return out


def simulate(top: TspTop, bench, vcd: str | None = None) -> None:
    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
