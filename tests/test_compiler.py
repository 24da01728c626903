"""The compiler (tspc): results equal numpy / the independent int8 reference, the predicted cycle
count equals the golden model's, every compiled segment passes the assembler's checker, and bad
programs get clear errors before anything runs. The RTL runs are in tests/test_compiler_rtl.py.
"""
from __future__ import annotations

import numpy as np
import pytest

import tspc
from asm import check
from tspc import Graph, TspcError
from tspc.quant import requantize as requantize_ref


def _gemm(profile: str, m: int, k: int, n: int, seed: int, vector: bool = False):
    rng = np.random.default_rng(seed)
    g = Graph(profile)
    x = g.input("x", (k,) if vector else (m, k))
    W = rng.integers(-128, 128, size=(k, n))
    g.output("y", x @ g.const("w", W))
    X = rng.integers(-128, 128, size=(k,) if vector else (m, k))
    return g, X, W


@pytest.mark.parametrize("m,k,n", [(1, 8, 8), (3, 5, 7), (16, 16, 16), (20, 24, 10),
                                   (33, 17, 9), (64, 64, 64), (1, 64, 64)])
def test_gemm_int32_equals_numpy_and_prediction(m: int, k: int, n: int) -> None:
    """int8 x int8 -> int32 GEMM of shapes that are and are not multiples of the 8 x 8 array."""
    g, X, W = _gemm("default", m, k, n, seed=m * 1000 + k * 10 + n)
    prog = tspc.compile(g)
    res = prog.run({"x": X})
    assert np.array_equal(res.outputs["y"], X @ W)          # exact: |sum| < 2^31 here
    assert res.outputs["y"].dtype == np.int32
    assert res.cycles == prog.predicted_cycles == sum(res.segment_cycles)
    assert res.err_flags == [0] * len(prog.programs)
    for p in prog.programs:                                  # independently re-checked
        predicted = p.predicted_cycles
        check(p)
        assert p.predicted_cycles == predicted


def test_gemv_vector_shape_and_extremes() -> None:
    """A 1-D input gives a 1-D result; all -128 operands (the largest products) stay exact."""
    g = Graph("default")
    x = g.input("x", (24,))
    W = np.full((24, 12), -128)
    g.output("y", x @ g.const("w", W))
    res = tspc.compile(g).run({"x": np.full(24, -128)})
    assert res.outputs["y"].shape == (12,)
    assert np.all(res.outputs["y"] == 24 * 16384)


def test_gemm_uses_both_mxms_at_full_rate() -> None:
    """64 x 64 x 64 on two 8 x 8 MXMs: 262144 MACs need at least 2048 cycles at 128 MACs per
    cycle; the schedule must be within 5% of that (segment fill and drain included)."""
    g, _, _ = _gemm("default", 64, 64, 64, seed=5)
    prog = tspc.compile(g)
    assert prog.predicted_cycles <= 2048 * 1.05
    issued = {p: 0 for p in ("MXM_W", "MXM_E")}
    for p in prog.programs:
        for e in p.schedule:
            name = p.config.positions[e.position]
            if name in issued and e.mnemonic == "ABC":
                issued[name] += 1
    assert issued["MXM_W"] > 0 and issued["MXM_E"] > 0


def test_requantize_bias_relu_matches_reference() -> None:
    """matmul -> requantize (per-channel bias, multiplier, shift, ReLU) on the VXM equals the
    independent numpy implementation of docs/vxm.md (tspc.quant)."""
    rng = np.random.default_rng(7)
    m, k, n = 40, 20, 12
    W = rng.integers(-128, 128, size=(k, n))
    b = rng.integers(-20000, 20000, size=n)
    X = rng.integers(-128, 128, size=(m, k))
    for relu, z in ((True, 0), (False, -5)):
        g = Graph("full")
        x = g.input("x", (m, k))
        y = g.requantize(x @ g.const("w", W), multiplier=1518500250, shift=9, zero_point=z,
                         bias=b, relu=relu)
        g.output("y", y)
        prog = tspc.compile(g)
        res = prog.run({"x": X})
        ref = requantize_ref(X @ W, b, 1518500250, 9, z, relu)
        assert np.array_equal(res.outputs["y"], ref)
        assert res.outputs["y"].dtype == np.int8
        assert res.cycles == prog.predicted_cycles


def test_requantize_hand_computed() -> None:
    """One output by hand: x = [2, 3], w = [[100], [50]] -> acc 350; + bias 10 = 360;
    SRDHM(360, 2^30) = 180 (x 0.5); RDIVPOT(180, 2) = 45; + zero point 3 = 48."""
    g = Graph("full")
    x = g.input("x", (1, 2))
    g.output("y", g.requantize(x @ g.const("w", [[100], [50]]), multiplier=1 << 30, shift=2,
                               zero_point=3, bias=[10]))
    res = tspc.compile(g).run({"x": [[2, 3]]})
    assert res.outputs["y"].tolist() == [[48]]


def test_two_layer_chain_and_relu_op() -> None:
    """A layer's int8 result feeds the next matmul on the chip (both hemispheres); relu()
    folds into the requantization."""
    rng = np.random.default_rng(3)
    W1, W2 = rng.integers(-128, 128, size=(16, 24)), rng.integers(-128, 128, size=(24, 8))
    X = rng.integers(-128, 128, size=(35, 16))
    g = Graph("full")
    x = g.input("x", X.shape)
    h = g.relu(g.requantize(x @ g.const("w1", W1), 1 << 30, 8))
    g.output("y", g.requantize(h @ g.const("w2", W2), 1 << 30, 7))
    prog = tspc.compile(g)
    res = prog.run({"x": X})
    h_ref = requantize_ref(X @ W1, np.zeros(24, dtype=np.int64), 1 << 30, 8, 0, True)
    y_ref = requantize_ref(h_ref.astype(np.int64) @ W2, np.zeros(8, dtype=np.int64), 1 << 30, 7, 0,
                           False)
    assert np.array_equal(res.outputs["y"], y_ref)
    assert res.cycles == prog.predicted_cycles


def test_mlp_digits_equals_int8_reference_on_model() -> None:
    """The digits MLP (tspc.mlp) on the golden model: every prediction of a 120-sample batch
    equals the numpy int8 reference."""
    from tspc import mlp
    _, q, _ = mlp.build_example()
    _, _, Xte, _ = mlp.load_digits_int8()
    g = mlp.graph(q, 120)
    prog = tspc.compile(g)
    res = prog.run({"x": Xte[:120]})
    assert np.array_equal(res.outputs["logits"], mlp.reference_forward(q, Xte[:120])[-1])


def test_segments_fit_queues() -> None:
    """A program longer than one queue is cut into segments that each fit `queue_depth`."""
    g, _, _ = _gemm("default", 64, 64, 64, seed=9)
    prog = tspc.compile(g)
    assert len(prog.programs) > 1
    for p in prog.programs:
        assert max(len(w) for w in p.queues.values()) <= p.config.queue_depth


# ---- errors ----------------------------------------------------------------------------------
def _err(fn, *words: str) -> str:
    with pytest.raises(TspcError) as e:
        fn()
    msg = str(e.value)
    for w in words:
        assert w in msg, msg
    return msg


def test_shape_and_dtype_errors() -> None:
    g = Graph("full")
    x = g.input("x", (4, 8))
    w = g.const("w", np.zeros((9, 8), dtype=np.int8))
    _err(lambda: x @ w, "matmul", "'x'", "'w'", "8 != 9")
    w2 = g.const("w2", np.zeros((8, 8), dtype=np.int8))
    y = x @ w2
    _err(lambda: y @ w2, "matmul", "int32", "requantize it first")
    _err(lambda: x @ g.requantize(y, 1 << 30, 1), "weights must be a graph input or const")
    _err(lambda: g.const("big", [[300]]), "const 'big'", "int8", "300")
    _err(lambda: g.input("x", (4, 8)), "already exists")
    _err(lambda: g.input("v", (0, 3)), "shape")
    _err(lambda: g.input("f", (2, 2), dtype="float32"), "input 'f'", "int8")


def test_requantize_parameter_errors() -> None:
    g = Graph("full")
    x = g.input("x", (4, 8))
    y = x @ g.const("w", np.zeros((8, 8), dtype=np.int8))
    _err(lambda: g.requantize(y, 5, 1), "multiplier", "[1073741824, 2147483647]")
    _err(lambda: g.requantize(y, 1 << 30, 32), "shift", "[0, 31]")
    _err(lambda: g.requantize(y, 1 << 30, 1, zero_point=200), "zero_point")
    _err(lambda: g.requantize(y, 1 << 30, 1, bias=[1, 2]), "bias", "8 values")
    _err(lambda: g.requantize(x, 1 << 30, 1), "requantize of 'x'", "matmul result")
    gd = Graph("default")
    xd = gd.input("x", (4, 8))
    yd = xd @ gd.const("w", np.zeros((8, 8), dtype=np.int8))
    _err(lambda: gd.requantize(yd, 1 << 30, 1), "no VXM", "'default'")


def test_relu_with_zero_point_needs_two_general_stages() -> None:
    g = Graph("full")                  # GMSG: one G stage after the shifter
    x = g.input("x", (4, 8))
    g.output("y", g.requantize(x @ g.const("w", np.ones((8, 8), dtype=np.int8)), 1 << 30, 1,
                               zero_point=4, relu=True))
    _err(lambda: tspc.compile(g), "requantize", "GMSG", "ReLU")
    g = Graph("wide")                  # GMSGG: zero point and ReLU fit
    x = g.input("x", (4, 8))
    W = np.ones((8, 8), dtype=np.int8)
    g.output("y", g.requantize(x @ g.const("w", W), 1 << 30, 1, zero_point=4, relu=True))
    X = np.arange(32).reshape(4, 8) - 16
    res = tspc.compile(g).run({"x": X})
    assert np.array_equal(res.outputs["y"], requantize_ref(X @ W, np.zeros(8, dtype=np.int64), 1 << 30, 1, 4,
                                                                True))


def test_memory_does_not_fit() -> None:
    g = Graph("default")
    x = g.input("x", (2048, 64))                  # 2048 x 8 words per hemisphere copy
    g.output("y", x @ g.const("w", np.zeros((64, 8), dtype=np.int8)))
    _err(lambda: tspc.compile(g), "input 'x'", "does not fit", "hemisphere")


def test_run_input_errors() -> None:
    g, X, _ = _gemm("default", 4, 8, 8, seed=1)
    prog = tspc.compile(g)
    _err(lambda: prog.run({}), "missing input", "x")
    _err(lambda: prog.run({"x": X, "z": X}), "unknown input", "z")
    _err(lambda: prog.run({"x": X[:2]}), "input 'x'", "shape (4, 8)")
    _err(lambda: prog.run({"x": X + 200}), "input 'x'", "outside int8")
    _err(lambda: prog.run({"x": X.astype(float)}), "input 'x'", "integers")
    _err(lambda: prog.run({"x": X}, backend="spice"), "unknown backend", "model")


def test_graph_without_outputs_or_units() -> None:
    _err(lambda: tspc.compile(Graph("default")), "no outputs")
    g = Graph("tiny")
    x = g.input("x", (4, 4))
    _err(lambda: x @ g.const("w", np.zeros((4, 4), dtype=np.int8)), "no MXM", "'tiny'")


# ---- elementwise VXM passes ------------------------------------------------------------------
def test_elementwise_int8_ops() -> None:
    """add/sub saturate at int8, minimum/maximum/relu are exact; operands of odd shapes."""
    rng = np.random.default_rng(21)
    A = rng.integers(-128, 128, size=(37, 20))
    B = rng.integers(-128, 128, size=(37, 20))
    g = Graph("full")
    a, b = g.input("a", A.shape), g.input("b", B.shape)
    for name, t in (("add", g.add(a, b)), ("sub", g.sub(a, b)), ("min", g.minimum(a, b)),
                    ("max", g.maximum(a, b)), ("relu", g.relu(a))):
        g.output(name, t)
    prog = tspc.compile(g)
    o = prog.run({"a": A, "b": B}).outputs
    assert np.array_equal(o["add"], np.clip(A + B, -128, 127))
    assert np.array_equal(o["sub"], np.clip(A - B, -128, 127))
    assert np.array_equal(o["min"], np.minimum(A, B))
    assert np.array_equal(o["max"], np.maximum(A, B))
    assert np.array_equal(o["relu"], np.maximum(A, 0))


def test_tanh_exp_follow_the_tables_within_one_lsb() -> None:
    """tanh/exp of int8 Q5 / Q4 inputs: the spec formula of docs/vxm.md section 4 (table at
    x << (8 - frac_bits), Q15 saturated to int16, high byte) exactly, and within 1 Q7 LSB of
    the float functions (exp for x <= 0)."""
    from tsp.vxm import EXP_TABLE, TANH_TABLE
    X = np.arange(-128, 128).reshape(16, 16)
    g = Graph("full")
    x = g.input("x", X.shape)
    g.output("tanh", g.tanh(x, frac_bits=5))
    g.output("exp", g.exp(x, frac_bits=4))
    o = tspc.compile(g).run({"x": X}).outputs
    q8 = X << 3
    t15 = np.where(q8 < 0, -1, 1) * TANH_TABLE[np.minimum(np.abs(q8), 2047)]
    assert np.array_equal(o["tanh"], np.minimum(t15, 32767) >> 8)
    q8 = X << 4
    e15 = np.where(q8 > 0, 32768, np.where(q8 > -4096, EXP_TABLE[np.clip(-q8, 0, 4095)], 0))
    assert np.array_equal(o["exp"], np.minimum(e15, 32767) >> 8)
    assert np.abs(o["tanh"] / 128 - np.tanh(X / 32)).max() <= 1 / 128
    neg = X <= 0
    assert np.abs(o["exp"][neg] / 128 - np.exp(X[neg] / 16)).max() <= 1 / 128


def test_residual_block_elementwise_feeds_matmul() -> None:
    """requantize(x @ w1) + x (saturating) -> @ w2: an elementwise result is a matmul's input."""
    rng = np.random.default_rng(22)
    X = rng.integers(-128, 128, size=(40, 16))
    W1 = rng.integers(-128, 128, size=(16, 16))
    W2 = rng.integers(-128, 128, size=(16, 8))
    g = Graph("full")
    x = g.input("x", X.shape)
    h = g.add(g.requantize(x @ g.const("w1", W1), 1 << 30, 9), x)
    g.output("y", h @ g.const("w2", W2))
    prog = tspc.compile(g)
    res = prog.run({"x": X})
    z = np.zeros(16, dtype=np.int64)
    h_ref = np.clip(requantize_ref(X @ W1, z, 1 << 30, 9, 0, False).astype(np.int64) + X,
                    -128, 127)
    assert np.array_equal(res.outputs["y"], h_ref @ W2)
    assert res.cycles == prog.predicted_cycles


def test_elementwise_errors() -> None:
    g = Graph("full")
    a, b = g.input("a", (4, 8)), g.input("b", (4, 9))
    _err(lambda: g.add(a, b), "add", "shapes differ", "'a'", "'b'")
    y = a @ g.const("w", np.zeros((8, 8), dtype=np.int8))
    _err(lambda: g.add(y, y), "add", "int32", "requantize")
    _err(lambda: g.tanh(a, frac_bits=9), "tanh", "frac_bits", "[0, 8]")
    gd = Graph("default")
    _err(lambda: gd.relu(gd.input("a", (4, 8))), "relu", "no VXM")


# ---- transpose through the SXM ---------------------------------------------------------------
@pytest.mark.parametrize("m,k", [(8, 8), (16, 24), (37, 13)])
def test_transpose(m: int, k: int) -> None:
    """X^T for block-aligned and ragged shapes equals numpy's."""
    X = np.random.default_rng(m * 100 + k).integers(-128, 128, size=(m, k))
    g = Graph("default")
    g.output("y", g.transpose(g.input("x", X.shape)))
    prog = tspc.compile(g)
    res = prog.run({"x": X})
    assert np.array_equal(res.outputs["y"], X.T)
    assert res.cycles == prog.predicted_cycles
    sxm = sum(1 for p in prog.programs for e in p.schedule if e.mnemonic == "TRANSPOSE")
    assert sxm == -(-m // 8) * -(-k // 8)          # one SXM TRANSPOSE per 8 x 8 block


def test_transpose_feeds_matmul_and_elementwise() -> None:
    """(X^T @ W) and max(X^T, Z): a transposed tensor as matmul activations and as an
    elementwise operand."""
    rng = np.random.default_rng(31)
    X = rng.integers(-128, 128, size=(24, 16))
    W = rng.integers(-128, 128, size=(24, 8))
    Z = rng.integers(-128, 128, size=(16, 24))
    g = Graph("full")
    xt = g.transpose(g.input("x", X.shape))
    g.output("y", xt @ g.const("w", W))
    g.output("m", g.maximum(xt, g.input("z", Z.shape)))
    res = tspc.compile(g).run({"x": X, "z": Z})
    assert np.array_equal(res.outputs["y"], X.T @ W)
    assert np.array_equal(res.outputs["m"], np.maximum(X.T, Z))


def test_transpose_errors() -> None:
    _err(lambda: Graph("wide").transpose(Graph("wide").input("x", (4, 4))), "belongs to another")
    g = Graph("wide")                 # 16 lanes, 8 streams: 8 x 8 blocks of 16-lane vectors
    _err(lambda: g.transpose(g.input("x", (4, 4))), "transpose", "'wide'", "streams")


def test_reshape_views_and_unsupported_reshape() -> None:
    """(K,) <-> (1, K) are views of the same words; a reshape that moves elements between
    words is rejected with the shapes in the message."""
    rng = np.random.default_rng(41)
    x = rng.integers(-128, 128, size=16)
    W = rng.integers(-128, 128, size=(16, 8))
    g = Graph("full")
    xv = g.input("x", (16,))
    y = g.requantize(g.reshape(xv, (1, 16)) @ g.const("w", W), 1 << 30, 6)
    g.output("y", g.reshape(y, (8,)))
    res = tspc.compile(g).run({"x": x})
    ref = requantize_ref((x @ W).reshape(1, 8), np.zeros(8, dtype=np.int64), 1 << 30, 6, 0,
                         False)
    assert res.outputs["y"].shape == (8,)
    assert np.array_equal(res.outputs["y"], ref.reshape(8))
    _err(lambda: g.reshape(xv, (4, 4)), "reshape of 'x'", "(16,)", "(4, 4)", "not support")
    _err(lambda: g.output("bad", g.reshape(xv, (1, 16))), "host tensor")
