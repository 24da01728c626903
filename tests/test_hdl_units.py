"""Unit tests of single RTL blocks in Amaranth's simulator, with hand-derived expectations."""
from amaranth.sim import Simulator

from hdl.streams import StreamFabric
from tsp.config import TspConfig

CFG = TspConfig.profile("tiny")        # 9 positions, 4 streams, 4-byte vectors


def test_fabric_moves_one_hop_per_cycle_overwrites_and_falls_off():
    fab = StreamFabric(CFG)
    P = CFG.num_positions
    seen = {}

    async def bench(ctx):
        # cycle 0: position 2 writes 0xAA on east stream 1 and 0xBB on west stream 3
        ctx.set(fab.wen[2][0], 0b0010)
        ctx.set(fab.wdata[2][0][1], 0xAA)
        ctx.set(fab.wen[2][1], 0b1000)
        ctx.set(fab.wdata[2][1][3], 0xBB)
        await ctx.tick()
        ctx.set(fab.wen[2][0], 0)
        ctx.set(fab.wen[2][1], 0)
        for t in range(1, P + 2):
            seen[t] = ([ctx.get(fab.cur[p][0][1]) for p in range(P)],
                       [ctx.get(fab.cur[p][1][3]) for p in range(P)])
            if t == 3:      # position 5 overwrites east stream 1 as the value passes
                ctx.set(fab.wen[5][0], 0b0010)
                ctx.set(fab.wdata[5][0][1], 0xCC)
            await ctx.tick()
            ctx.set(fab.wen[5][0], 0)
        ctx.set(fab.clear, 1)
        await ctx.tick()
        seen["clear"] = [ctx.get(fab.cur[p][d][s]) for p in range(P) for d in (0, 1)
                         for s in range(CFG.streams)]

    sim = Simulator(fab)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # produced in cycle 0 at position 2: at position 2 + k (east) / 2 - k (west) in cycle 1 + k
    assert seen[1][0] == [0, 0, 0xAA, 0, 0, 0, 0, 0, 0]
    assert seen[3][0] == [0, 0, 0, 0, 0xAA, 0, 0, 0, 0]
    assert seen[4][0] == [0, 0, 0, 0, 0, 0xCC, 0, 0, 0]      # overwritten at position 5
    assert seen[7][0] == [0, 0, 0, 0, 0, 0, 0, 0, 0xCC]      # last position
    assert seen[8][0] == [0] * P                              # fell off the east edge
    assert seen[1][1] == [0, 0, 0xBB, 0, 0, 0, 0, 0, 0]
    assert seen[3][1] == [0xBB, 0, 0, 0, 0, 0, 0, 0, 0]
    assert seen[4][1] == [0] * P                              # fell off the west edge
    # other streams were never disturbed, and clear zeroes everything
    assert seen["clear"] == [0] * (P * 2 * CFG.streams)
