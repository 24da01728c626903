"""Shared MXM test harness: instruction words (any field value, also the 0 that acts as 1),
stream stimuli per cycle, and the Amaranth-simulator run of one `Mxm`. Used by
tests/test_mxm.py, tests/test_mxm_wide.py (RTL) and tests/test_mxm_wide_model.py (model)."""
from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from hdl.mxm import Mxm
from tsp.config import TspConfig
from tsp.isa import BY_NAME, EAST, WEST, encode, stream_operand


def E(i: int) -> int:
    return stream_operand(EAST, i)


def W(i: int) -> int:
    return stream_operand(WEST, i)


def enc(name: str, **fields: int) -> int:
    """Encode; a field value below the field's minimum (0 for count/w/d, which the encoder
    rejects) is put into the word directly."""
    instr = BY_NAME[name]
    word = encode(name, **{k: max(v, instr.field(k).min) for k, v in fields.items()})
    for k, v in fields.items():
        f = instr.field(k)
        if v < f.min:
            word &= ~(((1 << f.width) - 1) << f.offset)
            word |= (v & ((1 << f.width) - 1)) << f.offset
    return word


def LW(s: int, row: int, count: int) -> int:
    return enc("LW", s=s, row=row, count=count)


def IW() -> int:
    return encode("IW")


def ABC(s: int, acc: int, count: int, mode: int = 0) -> int:
    return enc("ABC", s=s, acc=acc, count=count, mode=mode)


def ACC(s: int, acc: int, count: int) -> int:
    return enc("ACC", s=s, acc=acc, count=count)


def LWG(s: int, row: int, count: int, w: int, iw: int = 0) -> int:
    return enc("LWG", s=s, row=row, count=count, w=w, iw=iw)


def LXG(s: int, row: int, count: int, w: int) -> int:
    return enc("LXG", s=s, row=row, count=count, w=w)


def ABX(b: int, acc: int, count: int, mode: int = 0, d: int = 1) -> int:
    return enc("ABX", b=b, acc=acc, count=count, mode=mode, d=d)


class Stim:
    """Instruction words and stream register values at the MXM, per cycle."""

    def __init__(self, cfg: TspConfig, cycles: int):
        self.cfg = cfg
        self.cycles = cycles
        self.prog: dict[int, int] = {}
        self.east = np.zeros((cycles, cfg.streams, cfg.vec_bytes), dtype=np.uint8)
        self.west = np.zeros_like(self.east)
        self.preload: dict[int, list[int]] = {}    # accumulator row -> n int32 values

    def at(self, t: int, word: int) -> Stim:
        assert t not in self.prog, f"two instructions at cycle {t}"
        self.prog[t] = word
        return self

    def vec(self, t: int, operand: int, values) -> Stim:
        regs = self.west if operand >> 5 else self.east
        regs[t, operand & 31] = np.asarray(values, dtype=np.int64) & 0xFF
        return self

    def tile(self, t: int, s: int, rows, w: int) -> None:
        """Put weight rows on streams s..s+w-1, w per cycle from t (row k*w+j on s+j at t+k)."""
        for r, values in enumerate(rows):
            self.vec(t + r // w, s + r % w, values)


def _pack(vecs: np.ndarray) -> int:
    return int.from_bytes(np.ascontiguousarray(vecs, dtype=np.uint8).tobytes(), "little")


def simulate(stim: Stim, pause: tuple[int, int] | None = None) -> tuple[list, np.ndarray]:
    """Run `stim` on the RTL. Returns the per-cycle trace [(wen_e, wen_w, {(dir, stream):
    bytes}, active, err)] and the accumulator rows (4n x n int32) three cycles after the last
    one (write-backs in flight have landed). `pause=(t, gap)`: before cycle t, drop `run` for
    `gap` cycles with one `clear` pulse (a host START in between)."""
    cfg = stim.cfg
    dut = Mxm(cfg)
    V, S, n = cfg.vec_bits, cfg.streams, cfg.vec_bytes
    trace = []
    accum = np.zeros((4 * n, n), dtype=np.int64)

    async def bench(ctx):
        for row, vals in stim.preload.items():
            ctx.set(dut.accum_mem.data[row],
                    sum((v & 0xFFFFFFFF) << (32 * j) for j, v in enumerate(vals)))
        for t in range(stim.cycles):
            if pause is not None and t == pause[0]:
                ctx.set(dut.run, 0)
                ctx.set(dut.issue, 0)
                for g in range(pause[1]):
                    ctx.set(dut.clear, int(g == 1))
                    await ctx.tick()
                ctx.set(dut.clear, 0)
            ctx.set(dut.run, 1)
            word = stim.prog.get(t)
            ctx.set(dut.issue, int(word is not None))
            ctx.set(dut.instr, word or 0)
            ctx.set(dut.cur_e.as_value(), _pack(stim.east[t]))
            ctx.set(dut.cur_w.as_value(), _pack(stim.west[t]))
            wen = (ctx.get(dut.wen_e), ctx.get(dut.wen_w))
            data = (ctx.get(dut.wdata_e.as_value()), ctx.get(dut.wdata_w.as_value()))
            writes = {}
            for d in (0, 1):
                for s in range(S):
                    if wen[d] >> s & 1:
                        writes[(d, s)] = ((data[d] >> (s * V)) & ((1 << V) - 1)).to_bytes(
                            n, "little")
            trace.append((wen[0], wen[1], writes, ctx.get(dut.active), ctx.get(dut.err)))
            await ctx.tick()
        ctx.set(dut.issue, 0)
        for _ in range(3):
            await ctx.tick()
        for row in range(4 * n):
            word = ctx.get(dut.accum_mem.data[row])
            for j in range(n):
                v = (word >> (32 * j)) & 0xFFFFFFFF
                accum[row, j] = v - (1 << 32) if v >> 31 else v

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return trace, accum
