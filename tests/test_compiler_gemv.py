"""Streamed batch-1 GEMV (tspc/gemv.py, docs/compiler.md "Streamed GEMV"): on profiles with an
activation buffer the compiler loads g weight rows per cycle per MXM (LWG), holds x in the
buffer (LXG) and multiplies it against each installed tile (ABX). Results equal numpy, the
predicted cycle count equals the golden model's, and the cycles come close to the bound set by
the MEM read ports (docs/compiler.md "Bounds"). RTL runs: tests/test_compiler_rtl.py."""
from __future__ import annotations

import numpy as np
import pytest

import tspc
from asm import check
from tsp.config import TspConfig
from tspc import Graph
from tspc.bounds import bounds
from tspc.quant import requantize as requantize_ref


def _mnemonics(prog) -> set[str]:
    return {e.mnemonic for p in prog.programs for e in p.schedule}


def _gemv(profile: str, k: int, n: int, seed: int):
    rng = np.random.default_rng(seed)
    g = Graph(profile)
    x = g.input("x", (k,))
    W = rng.integers(-128, 128, size=(k, n))
    g.output("y", x @ g.const("w", W))
    return g, rng.integers(-128, 128, size=k), W


@pytest.mark.parametrize("k,n", [(8, 8), (24, 12), (64, 64), (100, 20), (256, 64), (64, 300),
                                 (1000, 16)])
def test_streamed_gemv_equals_numpy_and_prediction(k: int, n: int) -> None:
    """Shapes with and without padding, one and several column groups (n > 2 x 16 x 8), and
    a long K whose chunks run across segments."""
    g, x, W = _gemv("full", k, n, seed=k * 7 + n)
    prog = tspc.compile(g)
    assert {"LWG", "LXG", "ABX"} <= _mnemonics(prog)
    assert not {"LW", "IW", "ABC"} & _mnemonics(prog)
    res = prog.run({"x": x})
    assert np.array_equal(res.outputs["y"], x @ W)
    assert res.cycles == prog.predicted_cycles == sum(res.segment_cycles)
    assert res.err_flags == [0] * len(prog.programs)
    if k == 1000:        # 125 K-slices, one column block per MXM: more than a queue holds
        assert len(prog.programs) >= 2
    for p in prog.programs:
        predicted = p.predicted_cycles
        check(p)
        assert p.predicted_cycles == predicted


@pytest.mark.parametrize("k,n", [(512, 96), (768, 64)])
def test_streamed_gemv_is_within_5_percent_of_the_stream_bound(k: int, n: int) -> None:
    """Every weight byte crosses the streams once, g = 4 rows per cycle per MXM: the cycle
    count is within 1.05x of (weights + x bytes) / (2 x 4 slices x 8 bytes per cycle)."""
    g, x, W = _gemv("full", k, n, seed=3)
    prog = tspc.compile(g)
    res = prog.run({"x": x})
    assert np.array_equal(res.outputs["y"], x @ W)
    bound = bounds(g.config, 1, k, n)["streams"]
    assert bound == (k * n + k) // 64
    assert res.cycles == prog.predicted_cycles <= 1.05 * bound, (res.cycles, bound)


def test_streamed_gemv_requantize_bias_relu() -> None:
    rng = np.random.default_rng(5)
    k, n = 200, 40
    W = rng.integers(-128, 128, size=(k, n))
    b = rng.integers(-5000, 5000, size=n)
    g = Graph("full")
    x = g.input("x", (k,))
    y = g.requantize(x @ g.const("w", W), multiplier=1518500250, shift=12, bias=b, relu=True)
    g.output("y", y)
    X = rng.integers(-128, 128, size=k)
    prog = tspc.compile(g)
    assert "ABX" in _mnemonics(prog)
    res = prog.run({"x": X})
    ref = requantize_ref(X @ W, b, 1518500250, 12, 0, True)
    assert np.array_equal(res.outputs["y"], ref)
    assert res.cycles == prog.predicted_cycles


def test_streamed_gemv_chain_whose_input_is_a_result() -> None:
    """Layer 2 reads x where layer 1 wrote it (not striped over the slices): still exact."""
    rng = np.random.default_rng(9)
    W1 = rng.integers(-128, 128, size=(96, 48))
    W2 = rng.integers(-128, 128, size=(48, 24))
    g = Graph("full")
    x = g.input("x", (96,))
    h = g.requantize(x @ g.const("w1", W1), multiplier=1518500250, shift=14, relu=True)
    g.output("y", h @ g.const("w2", W2))
    X = rng.integers(-128, 128, size=96)
    prog = tspc.compile(g)
    res = prog.run({"x": X})
    h_ref = requantize_ref(X @ W1, 0, 1518500250, 14, 0, True).astype(np.int64)
    assert np.array_equal(res.outputs["y"], h_ref @ W2)
    assert res.cycles == prog.predicted_cycles


def test_profiles_without_an_activation_buffer_keep_the_tiled_path() -> None:
    """`default` (mxm_xbuf = 0) and `full` with mxm_xbuf = 0 use LW/IW/ABC, same results."""
    for cfg in (TspConfig.profile("default"), TspConfig.profile("full").replace(mxm_xbuf=0)):
        g, x, W = _gemv(cfg, 40, 24, seed=1)
        prog = tspc.compile(g)
        assert not {"LWG", "LXG", "ABX"} & _mnemonics(prog)
        res = prog.run({"x": x})
        assert np.array_equal(res.outputs["y"], x @ W)
        assert res.cycles == prog.predicted_cycles
