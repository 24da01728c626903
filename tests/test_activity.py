# Tests of the activity record (`TspModel.run(activity=True)`, sim/model.py ACTIVITY_BITS) and of
# tspc/activity.py (stats, summarize, plot). Hand-built programs with hand-derived activity from
# docs/architecture.md (MEM engines: access k at t0 + k*d), docs/mxm.md (element k of LW/ABC/ACC
# at t+k, ACC output written in t+k+1), docs/sxm.md (operands read at t, result written in t+1),
# docs/vxm.md (ALU stage k at t+1+k, function stage t+A+1 and t+A+2, result on the streams
# during t+A+4).
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from sim import TspModel
from sim.model import ACTIVITY_BITS, ModelError, RunResult
from tsp.config import TspConfig
from tsp.isa import encode, stream_operand
from tspc.activity import CATEGORIES, plot, rows, stats, summarize

ROOT = Path(__file__).resolve().parents[1]
# the 8-lane slice with the MXM and SXM built, no VXM; FULL is the same with the VXM
CFG = TspConfig.profile("full").replace(units=("mxm", "sxm"), name="full-novxm")
FULL = TspConfig.profile("full")
N = CFG.vec_bytes                       # 8
MXM_W, SXM_W, MEM_W3, MEM_W2, MEM_W1 = 0, 1, 2, 3, 4


def E(i: int) -> int:
    return stream_operand(0, i)


def W(i: int) -> int:
    return stream_operand(1, i)


def queue(items: list[tuple[int, str, dict]]) -> list[int]:
    """Instruction words issuing each (cycle, mnemonic, fields) at exactly its cycle: NOP gaps
    in between (a NOP n occupies n cycles, any other instruction here 1), HALT at the end."""
    words, now = [], 0
    for c, name, f in sorted(items, key=lambda x: x[0]):
        assert c >= now, f"{name} at {c} overlaps the previous instruction"
        if c > now:
            words.append(encode("NOP", n=c - now))
        words.append(encode(name, **f))
        now = c + 1
    return words + [encode("HALT")]


def run(queues: dict[int, list], cfg: TspConfig = CFG, **kw) -> tuple[TspModel, RunResult]:
    m = TspModel(cfg)
    for p, items in queues.items():
        m.load_queue(p, queue(items))
    return m, m.run(**kw)


def cycles(mask: np.ndarray) -> list[int]:
    return [int(t) for t in np.flatnonzero(mask)]


# ---- MEM ----------------------------------------------------------------------------------------
MEM_PROG = {MEM_W1: [(0, "ITERATIONS", {"n": 5}), (3, "READ", {"addr": 0, "s": E(2)}),
                     (10, "ITERATIONS", {"n": 3}), (11, "COUNTDOWN", {"d": 2}),
                     (12, "WRITE", {"addr": 600, "s": W(0)})]}


def test_mem_read_and_write_engines():
    _, res = run(MEM_PROG, activity=True)
    a = res.activity
    # the write engine's accesses at 12, 14, 16 keep the slice active through 16: T = 17
    assert res.cycles == 17 and a.bits.shape == (17, CFG.num_positions)
    assert cycles(a.busy(MEM_W1, "RD")) == [3, 4, 5, 6, 7]          # READ of 5 words at 3
    assert cycles(a.busy("MEM_W1", "OUT")) == [4, 5, 6, 7, 8]       # data loaded at end of u+1
    assert cycles(a.busy(MEM_W1, "WR")) == [12, 14, 16]             # n = 3, d = 2
    for name in ("GATHER", "SCATTER", "CONFLICT"):
        assert not a.busy(MEM_W1, name).any()
    # nothing else happened anywhere else
    others = np.delete(a.bits, MEM_W1, axis=1)
    assert not others.any()
    assert cycles(a.issues(MEM_W1, "READ")) == [3]
    assert cycles(a.issues(MEM_W1, "WRITE")) == [12]
    assert cycles(a.issues(MEM_W1, "ITERATIONS")) == [0, 10]
    assert cycles(a.issues(MEM_W1)) == [0, 1, 3, 4, 10, 11, 12, 13]  # with NOPs and HALT


def test_mem_gather_scatter_and_bank_conflict():
    # GATHER at 5 and SCATTER at 7 (one access each, the map stream E7 reads as address 0)
    _, res = run({MEM_W3: [(5, "GATHER", {"s": E(0), "m": E(7)}),
                           (7, "SCATTER", {"s": E(0), "m": E(7)})]}, activity=True)
    a = res.activity
    assert cycles(a.busy(MEM_W3, "RD")) == [5] and cycles(a.busy(MEM_W3, "GATHER")) == [5]
    assert cycles(a.busy(MEM_W3, "WR")) == [7] and cycles(a.busy(MEM_W3, "SCATTER")) == [7]
    assert cycles(a.busy(MEM_W3, "OUT")) == [6]
    # WRITE of 3 words from address 1 at 1 (accesses 1, 2, 3 in bank 0) and a READ of address 0
    # (bank 0) at 3: the write at 3 is suppressed (BANK_CONFLICT) but used its access slot
    _, res = run({MEM_W2: [(0, "ITERATIONS", {"n": 3}), (1, "WRITE", {"addr": 1, "s": E(0)}),
                           (2, "ITERATIONS", {"n": 1}), (3, "READ", {"addr": 0, "s": E(1)})]},
                 activity=True)
    b = res.activity
    assert cycles(b.busy(MEM_W2, "WR")) == [1, 2, 3]
    assert cycles(b.busy(MEM_W2, "RD")) == [3]
    assert cycles(b.busy(MEM_W2, "CONFLICT")) == [3]
    assert res.err_cycle == 3


# ---- MXM ----------------------------------------------------------------------------------------
MXM_PROG = {MXM_W: [(5, "LW", {"s": W(1), "row": 0, "count": 8}), (13, "IW", {}),
                    (14, "ABC", {"s": W(0), "acc": 0, "count": 4, "mode": 0}),
                    (18, "ACC", {"s": E(0), "acc": 0, "count": 4})]}


def test_mxm_engines():
    _, res = run(MXM_PROG, activity=True)
    a = res.activity
    # the last ACC element (21) is driven out in 22; nothing is left in 23
    assert res.cycles == 23
    assert cycles(a.busy(MXM_W, "LW")) == list(range(5, 13))
    assert cycles(a.busy(MXM_W, "IW")) == [13]
    assert cycles(a.busy(MXM_W, "ABC")) == [14, 15, 16, 17]
    assert cycles(a.busy(MXM_W, "ACC")) == [18, 19, 20, 21]
    assert cycles(a.busy(MXM_W, "OUT")) == [19, 20, 21, 22]
    assert not np.delete(a.bits, MXM_W, axis=1).any()


def test_mxm_stats_and_summary():
    _, res = run(MXM_PROG, activity=True)
    st = stats(CFG, res)
    u = st["units"]["MXM_W"]
    assert st["cycles"] == 23 and st["segments"] == [23]
    assert u["engines"] == {"LW": 8, "IW": 1, "ABC": 4, "ACC": 4}
    assert u["macs"] == 4 * 8 * 8
    assert u["mac_utilisation"] == pytest.approx(4 / 23)            # 256 / (64 * 23)
    assert u["instructions"] == {"NOP": 3, "HALT": 1, "LW": 1, "IW": 1, "ABC": 1, "ACC": 1}
    assert st["units"]["MXM_E"]["macs"] == 0
    text = summarize(CFG, res)
    assert "activity of 23 cycles" in text
    assert "MAC utilisation 256 / (8 x 8 x 23) = 17.4%" in text
    line = next(x for x in text.splitlines() if x.startswith("MXM_W"))
    assert line.split()[:4] == ["MXM_W", "LW", "8", "34.8%"]        # 8 / 23
    assert any(x.split()[:3] == ["ABC", "4", "17.4%"] for x in text.splitlines())


def test_segments_concatenate():
    _, r1 = run(MXM_PROG, activity=True)
    _, r2 = run(MEM_PROG, activity=True)
    st = stats(CFG, [r1, r2, r1])
    assert st["cycles"] == 23 + 17 + 23 and st["segments"] == [23, 17, 23]
    assert st["units"]["MXM_W"]["engines"]["ABC"] == 8
    assert st["units"]["MEM_W1"]["engines"] == {"rd": 5, "wr": 3}
    assert st["units"]["MXM_W"]["mac_utilisation"] == pytest.approx(8 / 63)
    assert "3 segments (23 + 17 + 23)" in summarize(CFG, [r1, r2, r1]).splitlines()[0]


# ---- SXM and VXM --------------------------------------------------------------------------------
def test_sxm_ops():
    _, res = run({SXM_W: [(4, "SHIFT", {"s": E(0), "d": E(1), "n": 1}),
                          (5, "SETMAP", {"m": E(0), "slot": 0})]}, activity=True)
    a = res.activity
    assert res.cycles == 7                      # HALT issues at 6
    assert cycles(a.busy(SXM_W, "SHIFT")) == [4]
    assert cycles(a.busy(SXM_W, "SETMAP")) == [5]
    assert cycles(a.busy(SXM_W, "OUT")) == [5]  # the SHIFT result is written in t + 1
    assert stats(CFG, res)["units"]["SXM_W"]["engines"] == {"op": 2}


def test_vxm_vrun_pipeline_and_config():
    vxm = FULL.vxm_position
    A = FULL.vxm_alus
    _, res = run({vxm: [(0, "VCONST", {"c": 0, "imm": 5}),
                        (2, "VRUN", {"a": E(0), "ta": 2, "b": E(0), "tb": 3, "d": E(4),
                                     "td": 0, "sat": 0})]}, cfg=FULL, activity=True)
    a = res.activity
    assert cycles(a.busy(vxm, "CFG")) == [0]
    assert cycles(a.busy(vxm, "VRUN")) == [2]
    assert cycles(a.busy(vxm, "PIPE")) == list(range(3, 2 + A + 3))   # t+1 .. t+A+2
    assert cycles(a.busy(vxm, "OUT")) == [2 + A + 3]                   # on streams in t+A+4
    assert res.cycles == 2 + A + 4
    assert stats(FULL, res)["units"]["VXM"]["engines"] == {"in": 1, "pipe": A + 2, "cfg": 1}


# ---- the default costs nothing and changes nothing ---------------------------------------------
def _gemm():
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from units import gemm_tiles
    finally:
        sys.path.remove(str(ROOT / "bench"))
    prog, _, _, _ = gemm_tiles(CFG, 3, 16)
    return prog


@pytest.mark.parametrize("kw", [{}, {"activity": False}, {"activity": True}])
def test_activity_does_not_change_the_run(kw):
    prog = _gemm()

    def go(**k):
        m = TspModel(CFG)
        for p, addr, v in prog.data:
            m.write_mem(p, addr, v)
        for p, words in prog.queues.items():
            m.load_queue(p, words)
        return m, m.run(trace=True, **k)

    m0, r0 = go()
    m1, r1 = go(**kw)
    assert r1.cycles == r0.cycles == prog.predicted_cycles
    assert (r1.err_flags, r1.err_position, r1.err_cycle) == (r0.err_flags, r0.err_position,
                                                              r0.err_cycle)
    assert r1.issue_log == r0.issue_log
    np.testing.assert_array_equal(m1.mem, m0.mem)
    np.testing.assert_array_equal(r1.trace.east, r0.trace.east)
    np.testing.assert_array_equal(r1.trace.west, r0.trace.west)
    assert r0.activity is None
    assert (r1.activity is None) == (not kw.get("activity"))
    if kw.get("activity"):
        # 3 tiles of 16 vectors: 48 ABC elements, 3 + 1 LW of 8 rows
        st = stats(CFG, r1)["units"]["MXM_W"]
        assert st["engines"]["ABC"] == 48 and st["engines"]["LW"] == 3 * 8
        assert st["engines"]["IW"] == 3


def test_activity_errors():
    _, res = run(MXM_PROG)
    with pytest.raises(ValueError, match="activity=True"):
        summarize(CFG, res)
    _, res = run(MXM_PROG, activity=True)
    with pytest.raises(ValueError, match="profile 'full-novxm'"):
        stats(FULL, res)
    with pytest.raises(ValueError, match="no results"):
        stats(CFG, [])
    with pytest.raises(ModelError, match="no activity 'RD' at position 0"):
        res.activity.busy(MXM_W, "RD")
    with pytest.raises(ValueError, match="cycle_range"):
        plot(CFG, res, "/nonexistent/x.png", cycle_range=(10, 99))


# ---- plot ---------------------------------------------------------------------------------------
def test_rows_of_the_13_position_layout():
    rs = rows(CFG)
    # MXM_W 4, SXM_W 1, 4 MEM x 2, (no VXM built), 4 MEM x 2, SXM_E 1, MXM_E 4
    assert len(rs) == 26
    assert [r.label for r in rs[:7]] == ["MXM_W LW", "MXM_W IW", "MXM_W ABC", "MXM_W ACC",
                                         "SXM_W op", "MEM_W3 rd", "MEM_W3 wr"]
    assert len(rows(FULL)) == 29            # + the VXM's 3 rows
    assert len(rows(TspConfig.profile("default"))) == 29   # same layout and units at 4 lanes
    assert set(ACTIVITY_BITS) == {"mem", "mxm", "sxm", "vxm"}


def _colours(path: Path) -> np.ndarray:
    import matplotlib.image
    img = matplotlib.image.imread(str(path))[:, :, :3]
    return np.unique((img * 255).round().astype(int).reshape(-1, 3), axis=0)


def _has(colours: np.ndarray, rgb: tuple[float, float, float]) -> bool:
    want = np.round(np.array(rgb) * 255).astype(int)
    return bool((np.abs(colours - want).max(axis=1) <= 1).any())


def test_plot_png(tmp_path):
    _, r1 = run(MXM_PROG, activity=True)
    _, r2 = run(MEM_PROG, activity=True)
    out = plot(CFG, [r1, r2], tmp_path / "sub" / "act.png", title="mxm then mem")
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    assert width >= 800 and height >= 26 * 15 and len(data) > 10_000
    colours = _colours(out)
    for busy in ("LW", "IW", "ABC", "ACC", "READ", "WRITE"):
        assert _has(colours, CATEGORIES[busy]), busy
    for idle in ("SCATTER", "bank conflict", "PERMUTE"):
        assert not _has(colours, CATEGORIES[idle]), idle


def test_plot_long_run_is_binned(tmp_path):
    _, r1 = run(MXM_PROG, activity=True)
    segs = [r1] * 500                                # 11500 cycles
    out = plot(CFG, segs, tmp_path / "long.png", max_columns=1000)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out2 = plot(CFG, segs, tmp_path / "zoom.png", cycle_range=(20, 60))
    assert _has(_colours(out2), CATEGORIES["IW"])     # IW pulses at 13 + 23 k
