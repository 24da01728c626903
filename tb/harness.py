"""cocotb harness of `hdl.top.TspTop`: clock, reset, AXI4-Lite host port, programs, trace.

`TspTB(dut, cfg)` drives the top through cocotbext-axi's `AxiLiteMaster` only (the same host
port an FPGA board would use). CSR addresses and values follow docs/architecture.md section 5;
window addresses come from `cfg.address_map()`.

    tb = TspTB(dut, cfg)
    await tb.init()                      # clock + reset
    await tb.load_program(prog)          # every queue's words + prog.data
    run = await tb.run(trace=True)       # START, wait for done, read CYCLES/ERR_*; Trace arrays
    words = await tb.read_mem(pos, 0, 8) # (8, vec_bytes) uint8
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge
from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiResp

from tsp.config import TspConfig
from tsp.hostmap import (
    CSR,
    CTRL_START,
    ID_VALUE,
    STATUS_DONE,
    STATUS_ERROR,
    STATUS_RUNNING,
)

__all__ = [
    "CSR",
    "DECERR",
    "ID_VALUE",
    "OKAY",
    "SLVERR",
    "STATUS_DONE",
    "STATUS_ERROR",
    "STATUS_RUNNING",
    "HostError",
    "HwRun",
    "TraceSampler",
    "TspTB",
    "profile_from_env",
]

OKAY, SLVERR, DECERR = AxiResp.OKAY, AxiResp.SLVERR, AxiResp.DECERR


class HostError(RuntimeError):
    """A host-port access answered with an unexpected response."""


def profile_from_env() -> TspConfig:
    """The profile named by the TSP_PROFILE environment variable (default "default")."""
    return TspConfig.profile(os.environ.get("TSP_PROFILE", "default"))


@dataclass
class HwRun:
    """What the hardware reports after a run (read through the host port)."""

    cycles: int
    status: int
    err_flags: int
    err_where: int
    err_cycle: int
    east: np.ndarray | None = None     # (T+1, P, S, V) uint8 when traced
    west: np.ndarray | None = None

    @property
    def err_position(self) -> int:
        return self.err_where & 0xFFFF

    @property
    def err_bit(self) -> int:
        return (self.err_where >> 16) & 0xFF


class TraceSampler:
    """Samples dbg_east/dbg_west once per cycle while dbg_running (debug builds only).

    Samples are taken at the falling clock edge, when the registers hold their value for the
    whole cycle, and stored at index `dbg_cycle`: sample t is E/W[p][s](t).
    """

    def __init__(self, dut, cfg: TspConfig):
        self.dut = dut
        self.cfg = cfg
        self.nbytes = cfg.num_positions * cfg.streams * cfg.vec_bytes
        self.samples: dict[int, tuple[bytes, bytes]] = {}
        self.final_cycle: int | None = None
        self._task = None

    def _grab(self) -> tuple[bytes, bytes]:
        e = self.dut.dbg_east.value.to_unsigned().to_bytes(self.nbytes, "little")
        w = self.dut.dbg_west.value.to_unsigned().to_bytes(self.nbytes, "little")
        return e, w

    async def _run(self) -> None:
        seen_running = False
        while True:
            await FallingEdge(self.dut.clk)
            running = self.dut.dbg_running.value
            if not running.is_resolvable:
                continue
            if int(running):
                seen_running = True
                self.samples[int(self.dut.dbg_cycle.value)] = self._grab()
            elif seen_running:
                # First cycle after the end: the counter stopped at T; sample T if missing.
                t = int(self.dut.dbg_cycle.value)
                self.final_cycle = t
                if t not in self.samples:
                    self.samples[t] = self._grab()
                return

    def start(self) -> None:
        self.samples.clear()
        self.final_cycle = None
        self._task = cocotb.start_soon(self._run())

    def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None

    def arrays(self, cycles: int) -> tuple[np.ndarray, np.ndarray]:
        """(T+1, P, S, V) east and west arrays for a run of `cycles` cycles."""
        cfg = self.cfg
        shape = (cfg.num_positions, cfg.streams, cfg.vec_bytes)
        missing = [t for t in range(cycles + 1) if t not in self.samples]
        if missing:
            raise HostError(f"trace sampler missed cycles {missing[:8]} "
                            f"(of 0..{cycles}); sampled {sorted(self.samples)[:4]}..")
        east = np.empty((cycles + 1, *shape), dtype=np.uint8)
        west = np.empty_like(east)
        for t in range(cycles + 1):
            e, w = self.samples[t]
            east[t] = np.frombuffer(e, dtype=np.uint8).reshape(shape)
            west[t] = np.frombuffer(w, dtype=np.uint8).reshape(shape)
        return east, west


class TspTB:
    """Testbench around one `TspTop` instance (see module docstring)."""

    def __init__(self, dut, cfg: TspConfig, period_ns: int = 10):
        self.dut = dut
        self.cfg = cfg
        self.amap = cfg.address_map()
        self.period_ns = period_ns
        self.log = dut._log
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil", bus_separator="__"),
                                  dut.clk, dut.rst)
        self._quiet()
        self.sampler = TraceSampler(dut, cfg) if hasattr(dut, "dbg_east") else None

    def _quiet(self) -> None:
        import logging
        for lg in (self.axil.write_if.log, self.axil.read_if.log):
            lg.setLevel(logging.WARNING)

    # ---- clock and reset --------------------------------------------------------------
    async def init(self) -> None:
        """Start the clock and apply a synchronous reset."""
        cocotb.start_soon(Clock(self.dut.clk, self.period_ns, unit="ns").start())
        await self.reset()

    async def reset(self, cycles: int = 4) -> None:
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, cycles)
        self.dut.rst.value = 0
        await RisingEdge(self.dut.clk)

    # ---- raw 32-bit accesses ------------------------------------------------------------
    async def read32(self, addr: int) -> tuple[int, AxiResp]:
        """One 32-bit read: (value, response)."""
        r = await self.axil.read(addr, 4)
        return int.from_bytes(r.data, "little"), r.resp

    async def write32(self, addr: int, value: int) -> AxiResp:
        """One whole-word write; returns the response."""
        r = await self.axil.write(addr, (value & 0xFFFF_FFFF).to_bytes(4, "little"))
        return r.resp

    async def read_ok(self, addr: int) -> int:
        value, resp = await self.read32(addr)
        if resp != OKAY:
            raise HostError(f"read of {addr:#x} answered {resp.name}")
        return value

    async def write_ok(self, addr: int, value: int) -> None:
        resp = await self.write32(addr, value)
        if resp != OKAY:
            raise HostError(f"write of {value:#x} to {addr:#x} answered {resp.name}")

    async def write_block(self, addr: int, data: bytes) -> None:
        """Whole-word writes of `data` (length a multiple of 4) from `addr` on, pipelined."""
        r = await self.axil.write(addr, bytes(data))
        if r.resp != OKAY:
            raise HostError(f"block write of {len(data)} bytes at {addr:#x} answered "
                            f"{r.resp.name}")

    async def read_block(self, addr: int, length: int) -> bytes:
        r = await self.axil.read(addr, length)
        if r.resp != OKAY:
            raise HostError(f"block read of {length} bytes at {addr:#x} answered "
                            f"{r.resp.name}")
        return bytes(r.data)

    # ---- CSRs ---------------------------------------------------------------------------
    async def csr(self, name: str) -> int:
        """Read the CSR called `name` (a key of `CSR`)."""
        return await self.read_ok(CSR[name])

    # ---- instruction and data memories --------------------------------------------------
    async def write_imem(self, position: int, words: list[int], base: int = 0) -> None:
        """Write instruction words to the IMEM window of `position` from word `base` on."""
        if base + len(words) > self.cfg.queue_depth:
            raise ValueError(f"{len(words)} words from {base} do not fit in the "
                             f"{self.cfg.queue_depth}-word queue of position {position}")
        if words:
            data = b"".join((w & 0xFFFF_FFFF).to_bytes(4, "little") for w in words)
            await self.write_block(self.amap.imem(position) + 4 * base, data)

    async def read_imem(self, position: int, base: int, count: int) -> list[int]:
        data = await self.read_block(self.amap.imem(position) + 4 * base, 4 * count)
        return [int.from_bytes(data[4 * i:4 * i + 4], "little") for i in range(count)]

    def mem_addr(self, position: int, word: int) -> int:
        """Host byte address of MEM word `word` of `position`."""
        if position not in self.cfg.mem_positions:
            raise ValueError(f"position {position} ({self.cfg.positions[position]}) is not a "
                             "MEM slice")
        if not 0 <= word < self.cfg.slice_words:
            raise ValueError(f"MEM word {word} outside 0..{self.cfg.slice_words - 1}")
        return self.amap.mem(position) + word * self.amap.word_stride

    async def write_mem(self, position: int, word: int, data) -> None:
        """Write vectors (array-like (n, vec_bytes) or flat bytes) from MEM word `word` on."""
        v = self.cfg.vec_bytes
        arr = np.asarray(bytearray(data) if isinstance(data, (bytes, bytearray)) else data,
                         dtype=np.uint8).reshape(-1, v)
        if self.amap.word_stride == v:
            self.mem_addr(position, word + len(arr) - 1)
            await self.write_block(self.mem_addr(position, word), arr.tobytes())
        else:
            for i, row in enumerate(arr):
                await self.write_block(self.mem_addr(position, word + i), row.tobytes())

    async def read_mem(self, position: int, word: int, count: int = 1) -> np.ndarray:
        """Read `count` MEM words from `word` on: (count, vec_bytes) uint8."""
        v = self.cfg.vec_bytes
        if self.amap.word_stride == v:
            self.mem_addr(position, word + count - 1)
            data = await self.read_block(self.mem_addr(position, word), count * v)
        else:
            data = b"".join([await self.read_block(self.mem_addr(position, word + i), v)
                             for i in range(count)])
        return np.frombuffer(data, dtype=np.uint8).reshape(count, v).copy()

    async def load_program(self, prog) -> None:
        """Write every queue's words (followed by a HALT word when there is room, so nothing
        from an earlier program runs) and `prog.data` through the host port."""
        for pos in range(self.cfg.num_positions):
            words = list(prog.queues.get(pos, []))
            if len(words) < self.cfg.queue_depth:
                words.append(0)  # HALT
            await self.write_imem(pos, words)
        # coalesce consecutive words into one (pipelined) block write
        runs: list[tuple[int, int, bytearray]] = []
        for pos, addr, data in sorted(prog.data, key=lambda d: (d[0], d[1])):
            if runs and runs[-1][0] == pos and runs[-1][1] + len(runs[-1][2]) // \
                    self.cfg.vec_bytes == addr:
                runs[-1][2].extend(data)
            else:
                runs.append((pos, addr, bytearray(data)))
        for pos, addr, data in runs:
            await self.write_mem(pos, addr, data)

    # ---- running ------------------------------------------------------------------------
    async def start(self) -> None:
        await self.write_ok(CSR["CTRL"], CTRL_START)

    async def wait_done(self, timeout_cycles: int = 100_000, poll: int = 16) -> int:
        """Poll STATUS until done; returns STATUS. Raises HostError on timeout."""
        waited = 0
        while True:
            status = await self.csr("STATUS")
            if status & STATUS_DONE and not status & STATUS_RUNNING:
                return status
            if waited > timeout_cycles:
                raise HostError(f"program not done after {timeout_cycles} cycles "
                                f"(STATUS={status:#x}, CYCLES={await self.csr('CYCLES')})")
            await ClockCycles(self.dut.clk, poll)
            waited += poll

    async def run(self, trace: bool = False, timeout_cycles: int = 100_000) -> HwRun:
        """START, wait for done, read the result CSRs (and the stream trace when asked)."""
        if trace and self.sampler is None:
            raise HostError("trace=True needs a debug build (dbg_east/dbg_west ports)")
        if trace:
            self.sampler.start()
        await self.start()
        status = await self.wait_done(timeout_cycles)
        run = HwRun(cycles=await self.csr("CYCLES"), status=status,
                    err_flags=await self.csr("ERR_FLAGS"), err_where=await self.csr("ERR_WHERE"),
                    err_cycle=await self.csr("ERR_CYCLE"))
        if trace:
            for _ in range(8):
                if self.sampler.final_cycle is not None:
                    break
                await ClockCycles(self.dut.clk, 1)
            self.sampler.stop()
            run.east, run.west = self.sampler.arrays(run.cycles)
        return run
