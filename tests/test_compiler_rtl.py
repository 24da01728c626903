"""Compiled programs on the RTL (Icarus and Verilator, through the AXI4-Lite host port): results
equal numpy / the int8 reference and every segment's measured cycle count equals the compiler's
prediction (CompiledProgram.run raises otherwise; the assertions repeat it)."""
from __future__ import annotations

import numpy as np
import pytest

import tspc
from tspc import mlp
from tspc.quant import requantize as requantize_ref

SIMS = ("icarus", "verilator")


@pytest.mark.parametrize("sim", SIMS)
def test_gemm_on_rtl(sim: str) -> None:
    """A 64 x 64 x 64 int32 GEMM on Verilator; on Icarus (slower per cycle) a 40 x 48 x 24 one,
    which has the same structure (both MXMs, several segments of K accumulation and int32
    planes). The default profile: the FPGA target's RTL, 4 x 4 MXMs."""
    rng = np.random.default_rng(11)
    m, k, n = (64, 64, 64) if sim == "verilator" else (40, 48, 24)
    A = rng.integers(-128, 128, size=(m, k))
    B = rng.integers(-128, 128, size=(k, n))
    g = tspc.Graph("default")
    g.output("c", g.input("a", A.shape) @ g.const("b", B))
    prog = tspc.compile(g)
    res = prog.run({"a": A}, backend=sim)
    assert np.array_equal(res.outputs["c"], A @ B)
    assert res.segment_cycles == prog.segment_cycles and res.cycles == prog.predicted_cycles


@pytest.mark.parametrize("sim", SIMS)
def test_gemv_and_ragged_shapes_on_rtl(sim: str) -> None:
    """GEMV at batch 1 and a matmul whose shapes are not multiples of the array, in one graph
    run as one compiled program (N-split over both MXMs and M-split)."""
    rng = np.random.default_rng(12)
    x = rng.integers(-128, 128, size=40)
    W = rng.integers(-128, 128, size=(40, 20))
    A = rng.integers(-128, 128, size=(37, 13))
    B = rng.integers(-128, 128, size=(13, 11))
    g = tspc.Graph("default")
    g.output("y", g.input("x", (40,)) @ g.const("w", W))
    g.output("c", g.input("a", A.shape) @ g.const("b", B))
    prog = tspc.compile(g)
    res = prog.run({"x": x, "a": A}, backend=sim)
    assert np.array_equal(res.outputs["y"], x @ W)
    assert np.array_equal(res.outputs["c"], A @ B)
    assert res.cycles == prog.predicted_cycles


def _mlp():
    _, q, _ = mlp.build_example()
    _, _, Xte, _ = mlp.load_digits_int8()
    return q, Xte, tspc.compile(mlp.graph(q, 120))


def test_mlp_digits_on_rtl() -> None:
    """The int8 digits MLP on Verilator, every test sample (three batches of 120, the last
    padded with zero images): every logit equals the numpy int8 reference. (Icarus runs the same
    compiled structures in the other tests of this file; a batch there takes 30 s.)"""
    sim = "verilator"
    q, Xte, prog = _mlp()
    for s in range(0, len(Xte), 120):
        xb = Xte[s:s + 120]
        rows = len(xb)
        xb = np.concatenate([xb, np.zeros((120 - rows, 64), dtype=xb.dtype)])
        res = prog.run({"x": xb}, backend=sim)
        ref = mlp.reference_forward(q, xb)[-1]
        assert np.array_equal(res.outputs["logits"], ref), f"batch at sample {s}"
        assert res.cycles == prog.predicted_cycles


@pytest.mark.parametrize("sim", SIMS)
def test_elementwise_and_functions_on_rtl(sim: str) -> None:
    """Elementwise VXM passes and the TANH table on the RTL equal the golden model's run of
    the same compiled program (and the saturating sum equals numpy)."""
    rng = np.random.default_rng(13)
    A = rng.integers(-128, 128, size=(20, 16))
    B = rng.integers(-128, 128, size=(20, 16))
    g = tspc.Graph("full")
    a, b = g.input("a", A.shape), g.input("b", B.shape)
    s = g.add(a, b)
    g.output("s", s)
    g.output("t", g.tanh(g.maximum(s, b), frac_bits=5))
    prog = tspc.compile(g)
    res = prog.run({"a": A, "b": B}, backend=sim)
    ref = prog.run({"a": A, "b": B}, backend="model")
    assert np.array_equal(res.outputs["s"], np.clip(A + B, -128, 127))
    assert np.array_equal(res.outputs["t"], ref.outputs["t"])
    assert res.cycles == ref.cycles == prog.predicted_cycles


def test_waveform_on_request() -> None:
    """run(waves=True) on Icarus returns the waveform file of the run (FST, non-empty)."""
    g = tspc.Graph("default")
    g.output("y", g.input("x", (8,)) @ g.const("w", np.eye(8, dtype=np.int8)))
    prog = tspc.compile(g)
    res = prog.run({"x": np.arange(8)}, backend="icarus", waves=True)
    assert res.outputs["y"].tolist() == list(range(8))
    assert res.wave_file is not None and res.wave_file.exists()
    assert res.wave_file.stat().st_size > 1000


@pytest.mark.parametrize("sim", SIMS)
def test_transpose_on_rtl(sim: str) -> None:
    """SXM transposes (spread over the slices, TRANSPOSE at SXM_W, gathered back) on the RTL."""
    X = np.random.default_rng(14).integers(-128, 128, size=(20, 12))
    g = tspc.Graph("default")
    g.output("y", g.transpose(g.input("x", X.shape)))
    prog = tspc.compile(g)
    res = prog.run({"x": X}, backend=sim)
    assert np.array_equal(res.outputs["y"], X.T)
    assert res.cycles == prog.predicted_cycles


def test_reshape_and_rsqrt_on_rtl() -> None:
    """An element-moving reshape (SXM SHIFTs, VXM byte merge, zero padding) feeding a matmul,
    and rsqrt (SHL pre-shift, RSQRT table, top byte) on Verilator: equal to numpy's reshape and
    to tspc.quant.rsqrt_int8, at the predicted cycle count."""
    from tspc.quant import rsqrt_int8
    rng = np.random.default_rng(15)
    X = rng.integers(-128, 128, size=(3, 10))
    W = rng.integers(-128, 128, size=(6, 5))
    g = tspc.Graph("full")
    x = g.input("x", X.shape)
    r = g.reshape(x, (5, 6))
    g.output("r", r)
    g.output("y", r @ g.const("w", W))
    g.output("q", g.rsqrt(x, frac_bits=5, out_frac_bits=3))
    prog = tspc.compile(g)
    res = prog.run({"x": X}, backend="verilator")
    assert np.array_equal(res.outputs["r"], X.reshape(5, 6))
    assert np.array_equal(res.outputs["y"], X.reshape(5, 6) @ W)
    assert np.array_equal(res.outputs["q"], rsqrt_int8(X, 5, 3))
    assert res.segment_cycles == prog.segment_cycles and res.cycles == prog.predicted_cycles


def test_long_k_gemv_on_rtl() -> None:
    """A GEMV on `default` (no activation buffer: the tiled path) whose K (648: 162 tiles per
    unit) needs more words than a queue holds: its units are cut into runs of K-tiles in
    consecutive segments, and the MXM accumulators must keep the partial sums across START on
    the RTL too (Verilator)."""
    rng = np.random.default_rng(14)
    x = rng.integers(-128, 128, size=648)
    W = rng.integers(-128, 128, size=(648, 20))
    g = tspc.Graph("default")
    g.output("y", g.input("x", (648,)) @ g.const("w", W))
    prog = tspc.compile(g)
    assert len(prog.segment_cycles) >= 2
    res = prog.run({"x": x}, backend="verilator")
    assert np.array_equal(res.outputs["y"], x @ W)
    assert res.segment_cycles == prog.segment_cycles and res.cycles == prog.predicted_cycles


@pytest.mark.parametrize("sim", SIMS)
def test_streamed_gemv_on_rtl(sim: str) -> None:
    """Streamed batch-1 GEMVs on `full` (LWG w = 4 with iw, LXG, ABX; tspc/gemv.py): x from the
    host inside the weight regions (1x256x64, int32), x written by an earlier layer
    (requantized 96 -> 48 with ReLU, then 48 -> 24), and a long K whose chunks run across
    segments (1x1000x16). Exact results and cycles on both simulators."""
    rng = np.random.default_rng(15)
    W1 = rng.integers(-128, 128, size=(256, 64))
    W2 = rng.integers(-128, 128, size=(96, 48))
    W3 = rng.integers(-128, 128, size=(48, 24))
    W4 = rng.integers(-128, 128, size=(1000, 16))
    x1, x2, x4 = (rng.integers(-128, 128, size=k) for k in (256, 96, 1000))
    g = tspc.Graph("full")
    g.output("y1", g.input("x1", (256,)) @ g.const("w1", W1))
    h = g.requantize(g.input("x2", (96,)) @ g.const("w2", W2), multiplier=1518500250,
                     shift=14, relu=True)
    g.output("y2", h @ g.const("w3", W3))
    g.output("y4", g.input("x4", (1000,)) @ g.const("w4", W4))
    prog = tspc.compile(g)
    names = {e.mnemonic for p in prog.programs for e in p.schedule}
    assert {"LWG", "LXG", "ABX"} <= names and not {"LW", "ABC"} & names
    res = prog.run({"x1": x1, "x2": x2, "x4": x4}, backend=sim)
    assert np.array_equal(res.outputs["y1"], x1 @ W1)
    hr = requantize_ref(x2 @ W2, 0, 1518500250, 14, 0, True).astype(np.int64)
    assert np.array_equal(res.outputs["y2"], hr @ W3)
    assert np.array_equal(res.outputs["y4"], x4 @ W4)
    assert res.segment_cycles == prog.segment_cycles and res.cycles == prog.predicted_cycles
