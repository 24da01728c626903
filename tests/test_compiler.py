"""The compiler (tspc): results equal numpy / the independent int8 reference, the predicted cycle
count equals the golden model's, every compiled segment passes the assembler's checker, and bad
programs get clear errors before anything runs. The RTL runs are in tests/test_compiler_rtl.py.
"""
from __future__ import annotations

import numpy as np
import pytest

import tspc
from asm import check
from tsp.config import TspConfig
from tsp.vxm import EXP_TABLE
from tspc import Graph, TspcError
from tspc.quant import requantize as requantize_ref

# the 8-lane slice without the VXM: operations that need the VXM are clear errors on it
NO_VXM = TspConfig.profile("full").replace(units=("mxm", "sxm"), name="full-novxm")
# the 8-lane slice without the MXMs' activation buffer: batch-1 GEMVs take the tiled path
# (LW/IW/ABC per tile) instead of the streamed one (tests/test_compiler_gemv.py)
TILED = TspConfig.profile("full").replace(mxm_xbuf=0, name="full-tiled")


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
    g, X, W = _gemm("full", m, k, n, seed=m * 1000 + k * 10 + n)
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
    g = Graph("full")
    x = g.input("x", (24,))
    W = np.full((24, 12), -128)
    g.output("y", x @ g.const("w", W))
    res = tspc.compile(g).run({"x": np.full(24, -128)})
    assert res.outputs["y"].shape == (12,)
    assert np.all(res.outputs["y"] == 24 * 16384)


def test_gemm_uses_both_mxms_at_full_rate() -> None:
    """64 x 64 x 64 on two 8 x 8 MXMs: 262144 MACs need at least 2048 cycles at 128 MACs per
    cycle; the schedule must be within 5% of that (segment fill and drain included)."""
    g, _, _ = _gemm("full", 64, 64, 64, seed=5)
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
    g, _, _ = _gemm("full", 64, 64, 64, seed=9)
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
    gd = Graph(NO_VXM)
    xd = gd.input("x", (4, 8))
    yd = xd @ gd.const("w", np.zeros((8, 8), dtype=np.int8))
    _err(lambda: gd.requantize(yd, 1 << 30, 1), "no VXM", "'full-novxm'")


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
    ref = requantize_ref(X @ W, np.zeros(8, dtype=np.int64), 1 << 30, 1, 4, True)
    assert np.array_equal(res.outputs["y"], ref)


def test_memory_does_not_fit() -> None:
    g = Graph("full")
    x = g.input("x", (2048, 64))                  # 2048 x 8 words per hemisphere copy
    g.output("y", x @ g.const("w", np.zeros((64, 8), dtype=np.int8)))
    _err(lambda: tspc.compile(g), "input 'x'", "does not fit", "hemisphere")


def test_run_input_errors() -> None:
    g, X, _ = _gemm("full", 4, 8, 8, seed=1)
    prog = tspc.compile(g)
    _err(lambda: prog.run({}), "missing input", "x")
    _err(lambda: prog.run({"x": X, "z": X}), "unknown input", "z")
    _err(lambda: prog.run({"x": X[:2]}), "input 'x'", "shape (4, 8)")
    _err(lambda: prog.run({"x": X + 200}), "input 'x'", "outside int8")
    _err(lambda: prog.run({"x": X.astype(float)}), "input 'x'", "integers")
    _err(lambda: prog.run({"x": X}, backend="spice"), "unknown backend", "model")


def test_graph_without_outputs_or_units() -> None:
    _err(lambda: tspc.compile(Graph("full")), "no outputs")
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
    gd = Graph(NO_VXM)
    _err(lambda: gd.relu(gd.input("a", (4, 8))), "relu", "no VXM")


# ---- transpose through the SXM ---------------------------------------------------------------
@pytest.mark.parametrize("m,k", [(8, 8), (16, 24), (37, 13)])
def test_transpose(m: int, k: int) -> None:
    """X^T for block-aligned and ragged shapes equals numpy's."""
    X = np.random.default_rng(m * 100 + k).integers(-128, 128, size=(m, k))
    g = Graph("full")
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


def test_reshape_views() -> None:
    """(K,) <-> (1, K) and a flatten (M, 8j) -> (1, M*8j) are views of the same words (no
    instruction moves anything); results come back in the requested shapes."""
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
    _err(lambda: g.output("bad", g.reshape(xv, (1, 16))), "host tensor")
    # flatten of a computed (5, 16) tensor: a view, then a GEMV on both MXMs reads it
    A = rng.integers(-128, 128, size=(5, 16))
    W2 = rng.integers(-128, 128, size=(80, 12))
    g = Graph("full")
    r = g.relu(g.input("a", A.shape))
    f = g.reshape(r, -1)
    assert f.op == "view" and g.reshape(r, (1, 80)).op == "view"
    g.output("flat", f)
    g.output("z", f @ g.const("w", W2))
    prog = tspc.compile(g)
    assert not any(e.mnemonic == "SHIFT" for p in prog.programs for e in p.schedule)
    o = prog.run({"a": A}).outputs
    assert np.array_equal(o["flat"], np.maximum(A, 0).reshape(-1))
    assert np.array_equal(o["z"], np.maximum(A, 0).reshape(-1) @ W2)


@pytest.mark.parametrize("src,dst", [((3, 10), (5, 6)), ((2, 12), (24,)), ((1, 24), (4, 6)),
                                     ((6, 4), (3, 8)), ((24, 1), (3, 8)), ((37, 13), (13, 37)),
                                     ((40, 24), (30, 32)), ((5, 5), (25,)), ((9, 7), (-1, 9))])
def test_reshape_moves_elements(src, dst) -> None:
    """Reshapes that move elements between words and lanes (K not a multiple of 8, up to 8
    pieces per result word) equal numpy's row-major reshape; the source is computed on the
    chip (its padding lanes are not zero: exp(0) = 127) and the result's padding lanes are
    zero (checked in MEM)."""
    X = np.random.default_rng(sum(src) * 31 + dst[-1]).integers(-128, 128, size=src)
    g = Graph("full")
    e = g.exp(g.input("x", src), frac_bits=4)
    y = g.reshape(e, dst)
    assert y.op == "reshape"
    g.output("y", y)
    prog = tspc.compile(g)
    res = prog.run({"x": X})
    ex = np.minimum(np.where(X > 0, 32768, EXP_TABLE[np.clip(-(X << 4), 0, 4095)]), 32767) >> 8
    ref = np.reshape(ex, dst)
    assert res.outputs["y"].shape == ref.shape
    assert np.array_equal(res.outputs["y"], ref)
    assert res.cycles == prog.predicted_cycles
    # padding lanes of the result words are zero: read the words back from the model's MEM
    st = prog.lowered.stores[y.name]
    k2 = y.shape[1]
    if k2 % 8:
        from sim import TspModel
        m = TspModel(prog.config)
        for p, a, v in prog.host_writes({"x": X}):
            m.write_mem(p, a, v)
        for q in prog.programs:
            for pos in range(prog.config.num_positions):
                m.load_queue(pos, q.queues.get(pos) or [0])
            m.run()
        for (mb, cb, r, _), (p, a) in prog._output_words(y):
            if cb == st.cblocks - 1:
                assert not np.any(m.read_mem(p, a)[k2 % 8:]), (mb, cb, r)


def test_reshape_composed_with_matmul_and_add() -> None:
    """reshape -> matmul (GEMM and GEMV), reshape -> add with an input, a reshape of a reshape
    (one move from the original) and a reshape of a matmul's requantized result."""
    rng = np.random.default_rng(43)
    X = rng.integers(-128, 128, size=(3, 10))
    Z = rng.integers(-128, 128, size=(6, 5))
    W1 = rng.integers(-128, 128, size=(6, 7))
    W2 = rng.integers(-128, 128, size=(30, 9))
    W3 = rng.integers(-128, 128, size=(12, 4))
    g = Graph("full")
    x = g.input("x", X.shape)
    r = g.reshape(g.relu(x), (5, 6))
    g.output("mm", r @ g.const("w1", W1))
    g.output("gemv", g.reshape(r, (30,)) @ g.const("w2", W2))
    g.output("sum", g.add(g.reshape(r, (6, 5)), g.input("z", Z.shape)))
    q = g.requantize(x @ g.const("w3", np.eye(10, 12, dtype=np.int64)), 2147483647, 0)
    g.output("rq", g.reshape(q, (4, 9)) @ g.const("w4", W3[:9]))
    prog = tspc.compile(g)
    res = prog.run({"x": X, "z": Z})
    R = np.maximum(X, 0).reshape(5, 6)
    o = res.outputs
    assert np.array_equal(o["mm"], R @ W1)
    assert np.array_equal(o["gemv"], R.reshape(30) @ W2)
    assert np.array_equal(o["sum"], np.clip(R.reshape(6, 5) + Z, -128, 127))
    Q = np.pad(X, ((0, 0), (0, 2)))                 # x @ [I | 0], requantized by 1.0
    assert np.array_equal(o["rq"], Q.reshape(4, 9) @ W3[:9])
    assert res.cycles == prog.predicted_cycles


def test_reshape_errors() -> None:
    g = Graph("full")
    x = g.input("x", (4, 6))
    _err(lambda: g.reshape(x, (5, 5)), "reshape of 'x'", "24 elements", "(5, 5)")
    _err(lambda: g.reshape(x, (0, 24)), "reshape of 'x'", "positive")
    _err(lambda: g.reshape(x, (-1, -1)), "reshape of 'x'", "at most one -1")
    _err(lambda: g.reshape(x, (-1, 5)), "reshape of 'x'", "infer", "5")
    _err(lambda: g.reshape(x, (2, 3, 4)), "reshape of 'x'", "1-D", "2-D")
    _err(lambda: g.reshape(x, (2.0, 12)), "reshape of 'x'", "integers")
    _err(lambda: g.reshape(x, "24"), "reshape of 'x'")
    y = x @ g.const("w", np.zeros((6, 8), dtype=np.int8))
    _err(lambda: g.reshape(y, (8, 4)), "reshape of 'matmul0'", "int32", "requantize")
    assert g.reshape(g.reshape(x, -1), (4, 6)) is x
    gd = Graph(NO_VXM)
    xd = gd.input("x", (4, 6))
    _err(lambda: gd.reshape(xd, (6, 4)), "reshape of 'x'", "'full-novxm'", "VXM")
    gw = Graph("wide")                   # 16 lanes: a word of (2, 16) gathers 16 rows of one
    _err(lambda: gw.reshape(gw.input("x", (32, 1)), (2, 16)), "reshape of 'x'", "16 pieces",
         "at most 8")


# ---- rsqrt ------------------------------------------------------------------------------------
def test_rsqrt_reference_from_the_spec() -> None:
    """tspc.quant's RSQRT table is the one of tsp/vxm.py; hand-computed values of the int8
    formula (frac_bits 4, out_frac_bits 4: p = 0, y = RSQRT(x) >> 24)."""
    from tsp.vxm import RSQRT_TABLE
    from tspc.quant import rsqrt_int8, rsqrt_table, vxm_rsqrt
    assert np.array_equal(rsqrt_table(), RSQRT_TABLE.astype(np.int64))
    # x = 1: 2^30; x = 2: e2 = 0, j = 512, round(2^19 / sqrt(512)) = 23170, << 15
    assert vxm_rsqrt(np.array([1, 2, 0, -7])).tolist() == [1 << 30, 23170 << 15, 2**31 - 1,
                                                          2**31 - 1]
    got = rsqrt_int8(np.array([16, 64, 1, 2, 0, -5, 127]), 4, 4).tolist()
    # 16/sqrt(x/16) = 64/sqrt(x): 16, 8, 64, floor(45.25), x <= 0 -> 127, floor(5.679)
    assert got == [16, 8, 64, 45, 127, 127, 5]


@pytest.mark.parametrize("fb,ob", [(4, 4), (5, 3), (0, 6), (7, 1), (8, 0), (3, 2)])
def test_rsqrt_all_int8_inputs(fb: int, ob: int) -> None:
    """All 256 int8 inputs: equal to tspc.quant.rsqrt_int8 (the spec formula), and for x > 0
    within (-1, 0] LSB of the float 2^ob / sqrt(x / 2^fb), up to the 16-bit table's relative
    rounding (<= 0.5 / 16392 of at most 64, i.e. 0.002 LSB)."""
    from tspc.quant import rsqrt_int8
    X = np.arange(-128, 128).reshape(16, 16)
    g = Graph("full")
    g.output("y", g.rsqrt(g.input("x", X.shape), frac_bits=fb, out_frac_bits=ob))
    prog = tspc.compile(g)
    res = prog.run({"x": X})
    y = res.outputs["y"].astype(np.int64)
    assert np.array_equal(y, rsqrt_int8(X, fb, ob))
    assert res.cycles == prog.predicted_cycles
    pos = X > 0
    exact = 2.0 ** ob / np.sqrt(X[pos] / 2.0 ** fb)
    d = y[pos] - exact
    assert d.max() <= 0.002 and d.min() > -1.002, (d.min(), d.max())
    assert np.all(y[~pos] == 127)


def test_rsqrt_in_a_chain_and_errors() -> None:
    """requantize -> rsqrt -> matmul; bad parameters name the operation and the tensor."""
    from tspc.quant import rsqrt_int8
    rng = np.random.default_rng(44)
    X = rng.integers(-128, 128, size=(12, 8))
    W = rng.integers(-128, 128, size=(8, 8))
    W2 = rng.integers(-128, 128, size=(8, 5))
    g = Graph("full")
    h = g.requantize(g.input("x", X.shape) @ g.const("w", W), 1 << 30, 8, relu=True)
    g.output("y", g.rsqrt(h, frac_bits=5, out_frac_bits=3) @ g.const("w2", W2))
    res = tspc.compile(g).run({"x": X})
    H = requantize_ref(X @ W, np.zeros(8, dtype=np.int64), 1 << 30, 8, 0, True)
    assert np.array_equal(res.outputs["y"], rsqrt_int8(H, 5, 3).astype(np.int64) @ W2)
    x = g.input("a", (4, 8))
    _err(lambda: g.rsqrt(x, frac_bits=9), "rsqrt of 'a'", "frac_bits", "[0, 8]")
    _err(lambda: g.rsqrt(x, out_frac_bits=7), "rsqrt of 'a'", "out_frac_bits", "[0, 6]")
    _err(lambda: g.rsqrt(x, frac_bits=True), "rsqrt of 'a'", "frac_bits")
    _err(lambda: g.rsqrt(x, frac_bits=6, out_frac_bits=4), "rsqrt of 'a'", "<= 12", "-2")
    _err(lambda: g.rsqrt(h @ g.const("w3", W)), "rsqrt", "int32")
    gd = Graph(NO_VXM)
    _err(lambda: gd.rsqrt(gd.input("a", (4, 8))), "rsqrt", "no VXM")


def test_reshape_next_to_weights_that_fill_a_slice() -> None:
    """GEMV weights (496 x 40, N-split: three column blocks of 62 tiles in the west, 1488 words)
    fill MEM_W3, where a reshape would stage pieces: the reshape uses the east slices only and
    stays correct."""
    rng = np.random.default_rng(45)
    V = rng.integers(-128, 128, size=496)
    W = rng.integers(-8, 8, size=(496, 40))
    X = rng.integers(-128, 128, size=(4, 15))
    g = Graph(TILED)
    g.output("y", g.input("v", (496,)) @ g.const("w", W))
    g.output("r", g.reshape(g.relu(g.input("x", X.shape)), (6, 10)))
    prog = tspc.compile(g)
    low = prog.lowered
    w3 = prog.config.position_index("MEM_W3")
    assert sum(1 for c in low.stores["w"].copies.values() for locs in c.blocks.values()
               for p, _ in locs if p == w3) * 8 >= 1024            # MEM_W3 is full of weights
    sxm = {prog.config.positions[e.position] for p in prog.programs for e in p.schedule
           if e.mnemonic == "SHIFT"}
    assert sxm == {"SXM_E"}
    res = prog.run({"v": V, "x": X})
    assert np.array_equal(res.outputs["y"], V @ W)
    assert np.array_equal(res.outputs["r"], np.maximum(X, 0).reshape(6, 10))


@pytest.mark.parametrize("profile, m, k, n, requant", [
    (TILED, 1, 1024, 16, False),       # GEMV: one unit per MXM of 128 tiles
    ("full", 16, 1000, 8, True),       # one row block, requantized: the drain after the last run
    ("full", 20, 600, 12, False),      # M-split, several units each cut into runs
    ("default", 1, 900, 8, False),     # 4 x 4 MXMs: 225 tiles per unit
])
def test_long_k_runs_across_segments(profile: str, m: int, k: int, n: int,
                                     requant: bool) -> None:
    """A matmul unit whose K-tiles need more words than a queue holds (about 4 per tile) is cut
    into runs of K-tiles in consecutive segments; the accumulators keep the partial sums across
    START. Results equal numpy, cycles equal the prediction (run() checks every segment)."""
    rng = np.random.default_rng(k + n)
    X = rng.integers(-128, 128, size=(m, k) if m > 1 else (k,))
    W = rng.integers(-128, 128, size=(k, n))
    g = Graph(profile)
    y = g.input("x", X.shape) @ g.const("w", W)
    if requant:
        y = g.requantize(y, multiplier=1 << 30, shift=12, zero_point=3)
    g.output("y", y)
    prog = tspc.compile(g)
    words_per_tile = 4            # LW, IW, ABC and a READ's two words, at least
    assert -(-k // prog.config.vec_bytes) * words_per_tile > prog.config.queue_depth
    assert len(prog.segment_cycles) >= 2
    res = prog.run({"x": X})
    ref = X.astype(np.int64) @ W.astype(np.int64)
    if requant:
        ref = requantize_ref(ref, np.zeros(n, dtype=np.int64), 1 << 30, 12, 3, False)
    assert np.array_equal(res.outputs["y"], ref)
    assert res.cycles == prog.predicted_cycles


# ---- the default profile: the ECP5-85F target, 4 lanes with every unit ------------------------
DEFAULT = TspConfig.profile("default")


def test_default_profile_is_4_lanes_with_every_unit() -> None:
    assert DEFAULT.vec_bytes == 4 and set(DEFAULT.units) == {"mxm", "sxm", "vxm"}


@pytest.mark.parametrize("m,k,n", [(1, 21, 9), (13, 10, 7), (4, 4, 4), (33, 17, 9)])
def test_default_gemm_and_gemv(m: int, k: int, n: int) -> None:
    """GEMM and GEMV (m = 1, a 1-D input) on 4 x 4 MXMs: numpy's int32 product, exactly at the
    predicted cycle count."""
    g, X, W = _gemm("default", m, k, n, seed=100 + m + k + n, vector=m == 1)
    prog = tspc.compile(g)
    res = prog.run({"x": X})
    assert np.array_equal(res.outputs["y"], X @ W)
    assert res.outputs["y"].shape == ((n,) if m == 1 else (m, n))
    assert res.cycles == prog.predicted_cycles


def test_default_gemm_uses_both_mxms() -> None:
    """64 x 64 x 64 on two 4 x 4 MXMs: 262144 MACs at 2 x 16 per cycle need at least 8192
    cycles; with the fill and drain of the many queue-sized segments (a 4-byte vector carries
    one instruction word) the schedule stays within 10% of that."""
    g, X, W = _gemm("default", 64, 64, 64, seed=7)
    prog = tspc.compile(g)
    assert 8192 <= prog.predicted_cycles <= 8192 * 1.10
    res = prog.run({"x": X})
    assert np.array_equal(res.outputs["y"], X @ W)


def test_default_requantize_relu_tanh_transpose_reshape() -> None:
    """The VXM and SXM operations of the compiler at n = 4 against independent references:
    requantize + ReLU (tspc.quant's int8 formula), tanh (the TANH table of docs/vxm.md
    section 4 at x << 3, Q15 high byte), transpose (numpy, one TRANSPOSE per 4 x 4 block) and
    an element-moving reshape (numpy)."""
    rng = np.random.default_rng(21)
    X = rng.integers(-128, 128, size=(13, 10))
    W = rng.integers(-128, 128, size=(10, 7))
    T = rng.integers(-128, 128, size=(9, 6))
    R = rng.integers(-128, 128, size=(4, 6))
    g = Graph("default")
    g.output("q", g.requantize(g.input("x", X.shape) @ g.const("w", W), 1 << 30, 8, relu=True))
    t = g.input("t", T.shape)
    g.output("tanh", g.tanh(t, frac_bits=5))
    g.output("tt", g.transpose(t))
    g.output("r", g.reshape(g.input("r", R.shape), (6, 4)))
    prog = tspc.compile(g)
    res = prog.run({"x": X, "t": T, "r": R})
    o = res.outputs
    assert np.array_equal(o["q"], requantize_ref(X @ W, np.zeros(7, dtype=np.int64), 1 << 30,
                                                 8, 0, True))
    assert o["q"].min() >= 0
    from tsp.vxm import TANH_TABLE
    q8 = T << 3
    t15 = np.where(q8 < 0, -1, 1) * TANH_TABLE[np.minimum(np.abs(q8), 2047)]
    assert np.array_equal(o["tanh"], np.minimum(t15, 32767) >> 8)
    assert np.array_equal(o["tt"], T.T)
    assert np.array_equal(o["r"], R.reshape(6, 4))
    assert res.cycles == prog.predicted_cycles
    sxm = sum(1 for p in prog.programs for e in p.schedule if e.mnemonic == "TRANSPOSE")
    assert sxm == -(-9 // 4) * -(-6 // 4)           # 3 x 2 blocks of 4 x 4
