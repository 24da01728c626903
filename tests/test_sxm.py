"""SXM unit: the RTL (hdl/sxm.py) and the model (sim/sxm.py) run the same instruction and stream
sequences and must agree every cycle (writes, err, active); expectations below are hand-computed
from docs/units.md section 3 (and docs/sxm.md)."""
from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from hdl.sxm import Sxm
from sim.sxm import BAD_MAP, SxmModel, map_problem
from tsp.config import TspConfig
from tsp.isa import BY_NAME, decode, encode

TINY = TspConfig.profile("tiny")          # 4 streams, 4 lanes
FULL = TspConfig.profile("full")          # 8 streams, 8 lanes
DEFAULT = TspConfig.profile("default")    # 8 streams, 4 lanes (the ECP5-85F target)
WIDE = TspConfig.profile("wide")          # 8 streams, 16 lanes


def E(i: int) -> int:
    return i


def W(i: int) -> int:
    return 32 | i


def raw_encode(name: str, **fields) -> int:
    """`tsp.isa.encode`, but a count field may be 0 (the assembler forbids it; the hardware
    treats it as 1), so the zero-count rule can be tested."""
    instr = BY_NAME[name]
    zeros = [f for f in instr.fields if f.lo >= 1 and fields.get(f.name) == 0]
    word = encode(name, **{k: (f.lo if any(z.name == k for z in zeros) else v)
                           for k, v in fields.items() for f in [instr.field(k)]})
    for f in zeros:
        word &= ~(((1 << f.width) - 1) << f.offset)
    return word


class Seq:
    """Per-cycle inputs: an instruction word (or None) and the east/west stream registers."""

    def __init__(self, cfg: TspConfig, cycles: int):
        self.cfg = cfg
        self.words: list[int | None] = [None] * cycles
        self.east = np.zeros((cycles, cfg.streams, cfg.vec_bytes), dtype=np.uint8)
        self.west = np.zeros_like(self.east)

    def at(self, t: int, name: str | None = None, **fields) -> Seq:
        if name is not None:
            self.words[t] = raw_encode(name, **fields)
        return self

    def stream(self, t: int, operand: int, values) -> Seq:
        (self.west if operand >> 5 else self.east)[t, operand & 31] = values
        return self


def run_rtl(seq: Seq, run_mask=None, clear_at=()) -> list[dict]:
    cfg = seq.cfg
    dut = Sxm(cfg)
    S, n = cfg.streams, cfg.vec_bytes
    out: list[dict] = []

    def pack(rows) -> int:
        return int.from_bytes(bytes(np.asarray(rows, dtype=np.uint8).reshape(-1)), "little")

    async def bench(ctx):
        for t, word in enumerate(seq.words):
            ctx.set(dut.run, 1 if run_mask is None else run_mask[t])
            ctx.set(dut.clear, 1 if t in clear_at else 0)
            ctx.set(dut.issue, word is not None)
            ctx.set(dut.instr, word or 0)
            ctx.set(dut.cur_e.as_value(), pack(seq.east[t]))
            ctx.set(dut.cur_w.as_value(), pack(seq.west[t]))
            writes = []
            for d, wen, wdata in ((0, dut.wen_e, dut.wdata_e), (1, dut.wen_w, dut.wdata_w)):
                mask = ctx.get(wen)
                data = ctx.get(wdata.as_value()).to_bytes(S * n, "little")
                for s in range(S):
                    if mask >> s & 1:
                        writes.append((d, s, tuple(data[s * n:(s + 1) * n])))
            out.append({"writes": sorted(writes), "err": ctx.get(dut.err),
                        "active": bool(ctx.get(dut.active))})
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return out


def run_model(seq: Seq, model: SxmModel | None = None) -> list[dict]:
    model = model or SxmModel(seq.cfg, seq.cfg.position_index("SXM_W"))
    out = []
    for t, word in enumerate(seq.words):
        err = 0
        if word is not None:
            instr, f = decode(word)
            err |= model.issue(t, instr, f, 0)
        active = model.active(t)
        writes, e2 = model.cycle(t, seq.east[t], seq.west[t])
        out.append({"writes": sorted((d, s, tuple(int(b) for b in v)) for d, s, v in writes),
                    "err": err | e2, "active": active})
    return out


def run_both(seq: Seq) -> list[dict]:
    """Run RTL and model; fail at the first cycle where they differ; return the trace."""
    rtl, mdl = run_rtl(seq), run_model(seq)
    for t, (r, m) in enumerate(zip(rtl, mdl, strict=True)):
        assert r == m, f"cycle {t}: RTL {r} != model {m}"
    return rtl


def writes_at(trace: list[dict], t: int) -> dict:
    return {(d, s): list(v) for d, s, v in trace[t]["writes"]}


# ---- maps: PERMUTE / DISTRIBUTE / BAD_MAP --------------------------------------------------

def test_permute_identity_and_reversal():
    seq = Seq(TINY, 8)
    seq.at(0, "SETMAP", m=E(0), slot=0).stream(0, E(0), [0, 1, 2, 3])
    seq.at(1, "SETMAP", m=W(2), slot=3).stream(1, W(2), [3, 2, 1, 0])
    seq.at(2, "PERMUTE", s=E(1), d=E(3), slot=0).stream(2, E(1), [10, 11, 12, 13])
    seq.at(3, "PERMUTE", s=E(1), d=W(0), slot=3).stream(3, E(1), [20, 21, 22, 23])
    tr = run_both(seq)
    # result driven in t+1 (in the register during t+2)
    assert writes_at(tr, 3) == {(0, 3): [10, 11, 12, 13]}
    assert writes_at(tr, 4) == {(1, 0): [23, 22, 21, 20]}
    assert all(c["err"] == 0 for c in tr)
    assert [c["active"] for c in tr] == [False, False, False, True, True, False, False, False]
    assert [bool(c["writes"]) for c in tr] == [False, False, False, True, True, False, False,
                                               False]


def test_bad_map_gives_zeros_and_error_distribute_replicates():
    seq = Seq(TINY, 10)
    seq.at(0, "PERMUTE", s=E(0), d=E(1), slot=2).stream(0, E(0), [1, 2, 3, 4])  # power-on map
    seq.at(1, "SETMAP", m=E(2), slot=1).stream(1, E(2), [0, 2, 2, 9])   # dup 2, 9 >= n
    seq.at(2, "PERMUTE", s=E(0), d=E(1), slot=1).stream(2, E(0), [5, 6, 7, 8])
    seq.at(3, "DISTRIBUTE", s=E(0), d=W(3), slot=1).stream(3, E(0), [5, 6, 7, 8])
    seq.at(4, "SETMAP", m=W(1), slot=1).stream(4, W(1), [1, 0, 3, 3])   # only a duplicate
    seq.at(5, "PERMUTE", s=W(0), d=E(0), slot=1).stream(5, W(0), [5, 6, 7, 8])
    seq.at(6, "DISTRIBUTE", s=W(0), d=E(0), slot=1).stream(6, W(0), [5, 6, 7, 8])
    tr = run_both(seq)
    assert [c["err"] for c in tr] == [BAD_MAP, 0, BAD_MAP, 0, 0, BAD_MAP, 0, 0, 0, 0]
    assert BAD_MAP == 1 << 4
    assert writes_at(tr, 1) == {(0, 1): [0, 0, 0, 0]}     # BAD_MAP: zeros are written
    assert writes_at(tr, 3) == {(0, 1): [0, 0, 0, 0]}
    assert writes_at(tr, 4) == {(1, 3): [5, 7, 7, 0]}     # replication and zero-fill
    assert writes_at(tr, 6) == {(0, 0): [0, 0, 0, 0]}
    assert writes_at(tr, 7) == {(0, 0): [6, 5, 8, 8]}


@pytest.mark.parametrize("cfg, mp, expect", [
    # lane i takes source lane mp[i] (source x = 100, 101, ..), 0 when mp[i] >= n
    (FULL, [7, 7, 0, 200, 8, 3, 3, 1], [107, 107, 100, 0, 0, 103, 103, 101]),
    (WIDE, [15, 15, 0, 200, 16, 3, 3, 3, 7, 6, 5, 4, 255, 1, 2, 8],
     [115, 115, 100, 0, 0, 103, 103, 103, 107, 106, 105, 104, 0, 101, 102, 108]),
], ids=["full", "wide"])
def test_distribute_profiles(cfg, mp, expect):
    n = cfg.vec_bytes
    seq = Seq(cfg, 5)
    seq.at(0, "SETMAP", m=E(7), slot=2).stream(0, E(7), mp)
    seq.at(1, "DISTRIBUTE", s=W(5), d=E(6), slot=2).stream(1, W(5), list(range(100, 100 + n)))
    seq.at(2, "PERMUTE", s=W(5), d=E(6), slot=2).stream(2, W(5), list(range(100, 100 + n)))
    tr = run_both(seq)
    assert writes_at(tr, 2) == {(0, 6): expect}
    assert tr[2]["err"] == BAD_MAP and writes_at(tr, 3) == {(0, 6): [0] * n}


def test_maps_persist_across_clear_and_clear_cancels_result():
    seq = Seq(TINY, 6)
    seq.at(0, "SETMAP", m=E(0), slot=0).stream(0, E(0), [2, 3, 0, 1])
    seq.at(1, "SHIFT", s=E(1), d=E(2), n=1).stream(1, E(1), [9, 9, 9, 9])
    seq.at(3, "PERMUTE", s=E(1), d=E(2), slot=0).stream(3, E(1), [1, 2, 3, 4])
    tr = run_rtl(seq, clear_at=(1,))      # clear wins over an issue in the same cycle
    assert tr[2]["writes"] == [] and not tr[2]["active"]          # the SHIFT was dropped
    assert writes_at(tr, 4) == {(0, 2): [3, 4, 1, 2]} and tr[3]["err"] == 0
    m = SxmModel(TINY, 1)
    mtr = run_model(seq, m)
    assert writes_at(mtr, 2) == {(0, 2): [0, 9, 9, 9]}           # no clear in this run
    m.reset()                                                    # START keeps the maps
    assert m.map_ok(0) and list(m.maps[0]) == [2, 3, 0, 1]


def test_not_running_ignores_issue():
    seq = Seq(TINY, 4)
    seq.at(0, "SHIFT", s=E(0), d=E(1), n=0).stream(0, E(0), [1, 2, 3, 4])
    seq.at(1, "PERMUTE", s=E(0), d=E(1), slot=0)
    tr = run_rtl(seq, run_mask=[0, 0, 1, 1])
    assert all(c["writes"] == [] and c["err"] == 0 and not c["active"] for c in tr)


# ---- SHIFT -------------------------------------------------------------------------------

@pytest.mark.parametrize("k, expect", [
    (0, [1, 2, 3, 4]), (1, [0, 1, 2, 3]), (2, [0, 0, 1, 2]), (3, [0, 0, 0, 1]),
    (4, [0, 0, 0, 0]), (31, [0, 0, 0, 0]), (-1, [2, 3, 4, 0]), (-3, [4, 0, 0, 0]),
    (-4, [0, 0, 0, 0]), (-32, [0, 0, 0, 0])])
def test_shift_tiny(k, expect):
    seq = Seq(TINY, 3)
    seq.at(0, "SHIFT", s=W(3), d=E(0), n=k).stream(0, W(3), [1, 2, 3, 4])
    tr = run_both(seq)
    assert writes_at(tr, 1) == {(0, 0): expect}


@pytest.mark.parametrize("cfg", [FULL, WIDE], ids=["full", "wide"])
def test_shift_back_to_back(cfg):
    n = cfg.vec_bytes
    seq = Seq(cfg, 7)
    x = list(range(1, n + 1))
    for t, k in enumerate([5, -5, n - 1, -n, n]):
        seq.at(t, "SHIFT", s=E(2), d=W(7), n=k).stream(t, E(2), x)
    tr = run_both(seq)
    assert writes_at(tr, 1) == {(1, 7): [0] * 5 + x[:n - 5]}
    assert writes_at(tr, 2) == {(1, 7): x[5:] + [0] * 5}
    assert writes_at(tr, 3) == {(1, 7): [0] * (n - 1) + [1]}
    assert writes_at(tr, 4) == {(1, 7): [0] * n}
    assert writes_at(tr, 5) == {(1, 7): [0] * n}
    assert [c["active"] for c in tr] == [False] + [True] * 5 + [False]


# ---- ROTATE ------------------------------------------------------------------------------

def test_rotate_copies_and_clipping():
    seq = Seq(TINY, 6)
    x = [1, 2, 3, 4]
    seq.at(0, "ROTATE", s=E(0), d=E(1), k=2).stream(0, E(0), x)
    seq.at(1, "ROTATE", s=E(0), d=W(2), k=5).stream(1, E(0), x)     # clipped at W3
    seq.at(2, "ROTATE", s=E(0), d=W(0), k=0).stream(2, E(0), x)     # k = 0 acts as 1
    seq.at(3, "ROTATE", s=W(1), d=E(0), k=4).stream(3, W(1), [7, 8, 9, 10])
    tr = run_both(seq)
    assert writes_at(tr, 1) == {(0, 1): [1, 2, 3, 4], (0, 2): [2, 3, 4, 1]}
    assert writes_at(tr, 2) == {(1, 2): [1, 2, 3, 4], (1, 3): [2, 3, 4, 1]}
    assert writes_at(tr, 3) == {(1, 0): [1, 2, 3, 4]}
    assert writes_at(tr, 4) == {(0, 0): [7, 8, 9, 10], (0, 1): [8, 9, 10, 7],
                                (0, 2): [9, 10, 7, 8], (0, 3): [10, 7, 8, 9]}


# ---- TRANSPOSE ---------------------------------------------------------------------------

def test_transpose_tiny_one_4x4_block():
    seq = Seq(TINY, 5)
    for c in range(4):
        seq.stream(0, E(c), [16 * c + lane for lane in range(4)])
        seq.stream(1, E(c), [16 * c + lane for lane in range(4)])
    seq.at(0, "TRANSPOSE", s=E(0), d=W(0))
    seq.at(1, "TRANSPOSE", s=E(2), d=E(1))      # sources E2, E3 then past the last: zeros
    tr = run_both(seq)
    assert writes_at(tr, 1) == {(1, 0): [0, 16, 32, 48], (1, 1): [1, 17, 33, 49],
                                (1, 2): [2, 18, 34, 50], (1, 3): [3, 19, 35, 51]}
    # destinations E1..E3 (E4 does not exist); dest E(1+a) lane c = source E(2+c) lane a
    assert writes_at(tr, 2) == {(0, 1): [32, 48, 0, 0], (0, 2): [33, 49, 0, 0],
                                (0, 3): [34, 50, 0, 0]}


def test_transpose_8_lanes_one_8x8_block():
    # 8 streams, 8 lanes: m = 8, one block: destination a, lane c = source c, lane a = 16c + a
    seq = Seq(FULL, 3)
    for c in range(8):
        seq.stream(0, W(c), [16 * c + lane for lane in range(8)])
    seq.at(0, "TRANSPOSE", s=W(0), d=E(0))
    tr = run_both(seq)
    got = writes_at(tr, 1)
    assert sorted(got) == [(0, a) for a in range(8)]
    assert got[(0, 0)] == [0, 16, 32, 48, 64, 80, 96, 112]
    assert got[(0, 7)] == [7, 23, 39, 55, 71, 87, 103, 119]
    for a in range(8):
        assert got[(0, a)] == [16 * c + a for c in range(8)]


def test_transpose_wide_two_8x8_blocks():
    seq = Seq(WIDE, 3)
    for c in range(8):
        seq.stream(0, W(c), [16 * c + lane for lane in range(16)])
    seq.at(0, "TRANSPOSE", s=W(0), d=E(0))
    tr = run_both(seq)
    got = writes_at(tr, 1)
    assert sorted(got) == [(0, a) for a in range(8)]
    # destination a, lane 8b + c = source c, lane 8b + a = 16c + 8b + a
    assert got[(0, 0)] == [0, 16, 32, 48, 64, 80, 96, 112, 8, 24, 40, 56, 72, 88, 104, 120]
    assert got[(0, 7)] == [7, 23, 39, 55, 71, 87, 103, 119, 15, 31, 47, 63, 79, 95, 111, 127]
    for a in range(8):
        assert got[(0, a)] == [16 * c + 8 * b + a for b in range(2) for c in range(8)]


# ---- full rate -----------------------------------------------------------------------------

def test_back_to_back_every_cycle_tiny():
    seq = Seq(TINY, 9)
    seq.at(0, "SETMAP", m=E(3), slot=1).stream(0, E(3), [3, 0, 1, 2])
    seq.at(1, "PERMUTE", s=E(0), d=E(1), slot=1).stream(1, E(0), [1, 2, 3, 4])
    seq.at(2, "SHIFT", s=E(0), d=E(1), n=-2).stream(2, E(0), [5, 6, 7, 8])
    seq.at(3, "DISTRIBUTE", s=W(0), d=W(1), slot=1).stream(3, W(0), [9, 10, 11, 12])
    seq.at(4, "ROTATE", s=W(2), d=E(2), k=2).stream(4, W(2), [13, 14, 15, 16])
    for c in range(4):
        seq.stream(5, W(c), [c + 4 * lane for lane in range(4)])
    seq.at(5, "TRANSPOSE", s=W(0), d=W(0))
    seq.at(6, "SETMAP", m=E(0), slot=1).stream(6, E(0), [0, 0, 0, 0])
    seq.at(7, "PERMUTE", s=E(0), d=E(1), slot=1).stream(7, E(0), [1, 2, 3, 4])
    tr = run_both(seq)
    assert writes_at(tr, 2) == {(0, 1): [4, 1, 2, 3]}
    assert writes_at(tr, 3) == {(0, 1): [7, 8, 0, 0]}
    assert writes_at(tr, 4) == {(1, 1): [12, 9, 10, 11]}
    assert writes_at(tr, 5) == {(0, 2): [13, 14, 15, 16], (0, 3): [14, 15, 16, 13]}
    assert writes_at(tr, 6) == {(1, a): [4 * a + c for c in range(4)] for a in range(4)}
    assert writes_at(tr, 8) == {(0, 1): [0, 0, 0, 0]}       # the map loaded at 6 is used at 7
    assert [c["err"] for c in tr] == [0] * 7 + [BAD_MAP, 0]
    assert [c["active"] for c in tr] == [False, False, True, True, True, True, True, False, True]


ODD = TspConfig(lanes=12, streams=5, mem_slices=1, bank_depth=8, queue_depth=16, name="odd")
S11 = TspConfig(lanes=4, streams=11, mem_slices=1, bank_depth=8, queue_depth=16, name="s11")


@pytest.mark.parametrize("cfg, cycles, seed", [(TINY, 300, 1), (FULL, 120, 2), (ODD, 150, 3),
                                               (S11, 150, 4), (WIDE, 120, 5), (DEFAULT, 120, 6)],
                         ids=["tiny", "full", "odd", "s11", "wide", "default"])
def test_random_sequences_rtl_equals_model(cfg, cycles, seed):
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    S, n = cfg.streams, cfg.vec_bytes
    seq = Seq(cfg, cycles)
    seq.east[:] = nrng.integers(0, 256, seq.east.shape)
    seq.west[:] = nrng.integers(0, 256, seq.west.shape)

    def operand() -> int:     # mostly real streams, sometimes an index past the last one
        return (rng.randrange(2) << 5) | (rng.randrange(S) if rng.random() < 0.9
                                          else rng.randrange(32))

    for t in range(cycles - 2):
        if rng.random() < 0.15:
            continue
        op = rng.choice(["SHIFT", "SETMAP", "SETMAP", "PERMUTE", "DISTRIBUTE", "ROTATE",
                         "TRANSPOSE"])
        if op == "SETMAP":
            m = operand()
            if m & 31 < S:
                choice = rng.random()
                mp = (nrng.permutation(n) if choice < 0.6 else
                      nrng.integers(0, n + 3, n) if choice < 0.9 else nrng.integers(0, 256, n))
                seq.stream(t, m, mp)
            seq.at(t, op, m=m, slot=rng.randrange(4))
        elif op == "SHIFT":
            seq.at(t, op, s=operand(), d=operand(), n=rng.randint(-32, 31))
        elif op == "ROTATE":
            seq.at(t, op, s=operand(), d=operand(), k=rng.randint(0, 63) if rng.random() < 0.2
                   else rng.randint(1, S))
        elif op == "TRANSPOSE":
            seq.at(t, op, s=operand(), d=operand())
        else:
            seq.at(t, op, s=operand(), d=operand(), slot=rng.randrange(4))
    tr = run_both(seq)
    assert sum(bool(c["writes"]) for c in tr) > cycles // 3
    assert any(c["err"] for c in tr) and not all(c["err"] for c in tr)


# ---- map_problem ---------------------------------------------------------------------------

def test_transpose_partial_block_when_m_does_not_divide_n():
    # 5 streams, 12 lanes: m = 5, blocks of lanes 0..4, 5..9 and a partial one 10..11
    seq = Seq(ODD, 3)
    for c in range(5):
        seq.stream(0, E(c), [16 * c + lane for lane in range(12)])
    seq.at(0, "TRANSPOSE", s=E(0), d=E(0))
    got = writes_at(run_both(seq), 1)
    # destination a, lane 5b + c = source c, lane 5b + a (zero when 5b + a >= 12)
    assert got[(0, 0)] == [0, 16, 32, 48, 64, 5, 21, 37, 53, 69, 10, 26]
    assert got[(0, 1)] == [1, 17, 33, 49, 65, 6, 22, 38, 54, 70, 11, 27]
    assert got[(0, 2)] == [2, 18, 34, 50, 66, 7, 23, 39, 55, 71, 0, 0]
    assert got[(0, 4)] == [4, 20, 36, 52, 68, 9, 25, 41, 57, 73, 0, 0]


def test_map_problem():
    assert map_problem(TINY, [3, 1, 0, 2], True) is None
    assert map_problem(TINY, bytes([0, 0, 9, 255]), False) is None
    assert map_problem(TINY, [0, 2, 1, 2], True) == \
        "not a bijection: lane 1 and lane 3 both take source lane 2"
    msg = map_problem(TINY, [0, 1, 2, 4], True)
    assert "lane 3 holds 4" in msg and "0..3" in msg
    assert "expected 4" in map_problem(TINY, [0, 1, 2], False)
    assert "not a byte" in map_problem(TINY, [0, 1, 2, 256], False)
    assert map_problem(FULL, np.arange(8)[::-1], True) is None
    assert "expected 8" in map_problem(FULL, np.arange(16)[::-1], True)
    assert map_problem(WIDE, np.arange(16)[::-1], True) is None
