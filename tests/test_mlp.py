# Tests of tspc.quant (VXM requantisation arithmetic, QuantizeMultiplier) and tspc.mlp (int8
# digits, numpy MLP, post-training quantisation, int8 reference). Expected values are computed
# by hand from docs/vxm.md section 3 and the documented mappings.
from __future__ import annotations

import math
import re

import numpy as np
import pytest

from tspc import mlp
from tspc.quant import quantize_multiplier, rdivpot, requantize, srdhm

HALF = 1 << 30          # Q31 0.5
I32MIN, I32MAX = -(1 << 31), (1 << 31) - 1


# ------------------------------------------------------------------------------- tspc.quant

def test_srdhm_by_hand() -> None:
    """x*y/2^31 rounded to nearest with ties toward +inf; the one saturating case."""
    cases = [  # (x, y, expected)
        (-(1 << 15), 1 << 15, 0),          # -0.5 -> 0 (tie up)
        (-3 * (1 << 15), 1 << 15, -1),     # -1.5 -> -1 (tie up)
        (1 << 15, 1 << 15, 1),             # 0.5 -> 1
        (3 * (1 << 15), 1 << 15, 2),       # 1.5 -> 2
        (33, HALF, 17),                    # 16.5 -> 17
        (-1, 3 * (1 << 29), -1),           # -0.75 -> -1
        (15, 3 * (1 << 29), 11),           # 11.25 -> 11
        (I32MIN, I32MIN, I32MAX),          # saturates
        (I32MIN, I32MAX, -I32MAX),         # exact: -(2^31 - 1)
        (I32MAX, I32MAX, I32MAX - 1),      # 2^31 - 2 + 2^-31 -> 2^31 - 2
    ]
    for x, y, want in cases:
        assert int(srdhm(x, y)) == want, f"SRDHM({x}, {y})"
    xs = np.array([c[0] for c in cases])
    ys = np.array([c[1] for c in cases])
    assert srdhm(xs, ys).tolist() == [c[2] for c in cases]


def test_rdivpot_by_hand() -> None:
    """x / 2^(y & 31) rounded to nearest with ties away from zero."""
    cases = [
        (5, 1, 3), (-5, 1, -3), (-6, 2, -2), (6, 2, 2),     # the document's examples
        (7, 2, 2), (-7, 2, -2), (2, 2, 1), (-2, 2, -1),     # 1.75, -1.75, 0.5, -0.5
        (1, 2, 0), (-1, 2, 0), (-3, 0, -3),                 # 0.25, -0.25, e = 0
        (I32MIN, 31, -1), (I32MAX, 31, 1), (5, 33, 3),      # e = 33 & 31 = 1
    ]
    for x, e, want in cases:
        assert int(rdivpot(x, e)) == want, f"RDIVPOT({x}, {e})"
    got = rdivpot(np.array([c[0] for c in cases]), np.array([c[1] for c in cases]))
    assert got.tolist() == [c[2] for c in cases]


def test_requantize_by_hand() -> None:
    cases = [  # (acc, bias, m, s, z, relu, expected int8)
        (1000, 0, HALF, 2, 3, False, 127),     # 500 -> 125 -> 128 -> sat 127
        (-1001, 0, HALF, 2, 3, False, -122),   # -500.5 -> -500 -> -125 -> -122
        (-6, 0, HALF, 1, 0, False, -2),        # -3 -> -1.5 -> -2
        (-255, 0, HALF, 0, 0, False, -127),    # -127.5 -> -127 (SRDHM tie up)
        (90, 10, HALF, 1, -5, False, 20),      # 100 -> 50 -> 25 -> 20
        (90, 10, HALF, 1, -30, False, -5),     # ... 25 - 30
        (90, 10, HALF, 1, -30, True, -5),      # ReLU clamps at z = -30: max(-5, -30)
        (90, 10, HALF, 1, -20, True, 5),       # 25 - 20 = 5 stays
        (-90, 0, HALF, 1, 7, True, 7),         # -45 -> -23 + 7 = -16 -> clamped to z = 7
        (-1000, 0, HALF, 0, 0, False, -128),   # -500 -> sat -128
        (I32MAX, 1, HALF, 0, 0, False, -128),  # acc + bias wraps to -2^31 -> -2^30 -> -128
        (I32MAX, 1, HALF, 0, 0, True, 0),
        (I32MAX, 0, I32MAX, 0, 127, False, 127),   # ADDS saturates at int32
    ]
    for acc, bias, m, s, z, relu, want in cases:
        got = requantize(np.array([[acc]]), np.array([bias]), m, s, z, relu)
        assert got.dtype == np.int8
        assert int(got[0, 0]) == want, f"requantize({acc} + {bias}, {m}, {s}, {z}, {relu})"


def test_requantize_bias_per_channel_and_errors() -> None:
    acc = np.array([[10, 10, 10], [-10, -10, -10]])
    got = requantize(acc, np.array([0, 2, -4]), HALF, 1, 0, False)
    # channel 0: 10 -> 5 -> 2.5 -> 3; channel 1: 12 -> 6 -> 3; channel 2: 6 -> 3 -> 1.5 -> 2
    # row 1: -10 -> -5 -> -2.5 -> -3; -8 -> -4 -> -2; -14 -> -7 -> -3.5 -> -4
    assert got.tolist() == [[3, 3, 2], [-3, -2, -4]]
    with pytest.raises(ValueError, match="s: right shift 32"):
        requantize(acc, np.zeros(3, dtype=np.int32), HALF, 32, 0, False)
    with pytest.raises(ValueError, match="acc: value 2147483648"):
        requantize(np.array([[1 << 31]]), np.array([0]), HALF, 0, 0, False)
    with pytest.raises(TypeError, match="acc"):
        requantize(np.array([[1.0]]), np.array([0]), HALF, 0, 0, False)


def test_quantize_multiplier_known_values() -> None:
    assert quantize_multiplier(0.5) == (1 << 30, 0)
    assert quantize_multiplier(0.25) == (1 << 30, 1)
    assert quantize_multiplier(0.75) == (3 * (1 << 29), 0)
    assert quantize_multiplier(0.1) == (1717986918, 3)      # 0.8 * 2^31 = 1717986918.4
    assert quantize_multiplier(2.0 ** -32) == (1 << 30, 31)
    assert quantize_multiplier(0.5 + 2.0 ** -33) == (1 << 30, 0)        # 2^30 + 0.25
    assert quantize_multiplier(0.5 + 2.0 ** -32) == ((1 << 30) + 1, 0)  # 2^30 + 0.5: tie up
    # 0.6 * 2^31 = 1288490188.8 -> 1288490189
    assert quantize_multiplier(0.6) == (1288490189, 0)


def test_quantize_multiplier_errors() -> None:
    for bad in (0.0, -0.5, 1.0, 1.5, math.nan, math.inf):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            quantize_multiplier(bad)
    with pytest.raises(ValueError, match="left shift"):
        quantize_multiplier(1.0 - 2.0 ** -40)       # rounds to m = 2^31
    with pytest.raises(ValueError, match="right shift of 32"):
        quantize_multiplier(2.0 ** -33)


# ------------------------------------------------------------------------------- tspc.mlp

def test_digit_feature_mapping() -> None:
    got = mlp.quantize_digit_features(np.array([0, 1, 2, 8, 15, 16]))
    # (127 x + 8) // 16: 8/16, 135/16, 262/16, 1024/16, 1913/16, 2040/16
    assert got.dtype == np.int8 and got.tolist() == [0, 8, 16, 64, 119, 127]
    for bad in ([17], [-1], [2.5]):
        with pytest.raises(ValueError, match="0..16"):
            mlp.quantize_digit_features(np.array(bad))


def test_load_digits_int8_split() -> None:
    from sklearn.datasets import load_digits

    d = load_digits()
    xtr, ytr, xte, yte = mlp.load_digits_int8(seed=None)
    assert xtr.shape == (1438, 64) and xte.shape == (359, 64)
    assert xtr.dtype == np.int8 and xte.dtype == np.int8
    assert xte.min() == 0 and xte.max() == 127
    # the test set is samples 4, 9, 14, ... in order; the training set the others in order
    assert np.array_equal(xte, (127 * d.data[4::5].astype(np.int64) + 8) // 16)
    assert np.array_equal(yte, d.target[4::5])
    keep = np.arange(1797) % 5 != 4
    assert np.array_equal(xtr, (127 * d.data[keep].astype(np.int64) + 8) // 16)
    assert np.array_equal(ytr, d.target[keep])
    # a seed permutes the training rows only
    xtr0, ytr0, xte0, yte0 = mlp.load_digits_int8(seed=0)
    assert np.array_equal(xte0, xte) and np.array_equal(yte0, yte)
    assert not np.array_equal(xtr0, xtr)
    order = np.lexsort(np.column_stack([xtr, ytr]).T)
    order0 = np.lexsort(np.column_stack([xtr0, ytr0]).T)
    assert np.array_equal(xtr[order], xtr0[order0]) and np.array_equal(ytr[order], ytr0[order0])


@pytest.fixture(scope="module")
def example() -> tuple[mlp.FloatMLP, mlp.QuantMLP, dict[str, float]]:
    return mlp.build_example(seed=0)


def test_int8_accuracy(example: tuple[mlp.FloatMLP, mlp.QuantMLP, dict[str, float]]) -> None:
    _, qm, stats = example
    assert stats["float_acc"] > 0.9
    assert stats["int8_acc"] > 0.9
    assert stats["agree"] > 0.95
    _, _, xte, yte = mlp.load_digits_int8(0)
    assert np.mean(mlp.predict(qm, xte) == yte) == stats["int8_acc"]


def test_quantized_layers_follow_the_scheme(
        example: tuple[mlp.FloatMLP, mlp.QuantMLP, dict[str, float]]) -> None:
    fp, qm, _ = example
    assert [layer.W.shape for layer in qm.layers] == [(64, 32), (32, 10)]
    assert [layer.relu for layer in qm.layers] == [True, False]
    s_in = mlp.IN_SCALE
    for layer, w, b in zip(qm.layers, fp.weights, fp.biases, strict=True):
        assert layer.W.dtype == np.int8 and layer.bias.dtype == np.int32
        assert layer.z == 0 and 0 <= layer.s <= 31 and (1 << 30) <= layer.m < (1 << 31)
        assert int(np.abs(layer.W.astype(int)).max()) == 127      # symmetric per tensor
        assert layer.in_scale == s_in
        assert np.all(np.abs(layer.W * layer.w_scale - w) <= layer.w_scale / 2 + 1e-9)
        bscale = s_in * layer.w_scale
        assert np.all(np.abs(layer.bias * bscale - b) <= bscale / 2 + 1e-9)
        real = s_in * layer.w_scale / layer.out_scale
        assert abs(layer.m * 2.0 ** (-31 - layer.s) - real) <= real * 2.0 ** -30
        s_in = layer.out_scale


def test_training_is_deterministic(
        example: tuple[mlp.FloatMLP, mlp.QuantMLP, dict[str, float]]) -> None:
    _, qm, _ = example
    _, qm2, _ = mlp.build_example(seed=0)
    for a, b in zip(qm.layers, qm2.layers, strict=True):
        assert np.array_equal(a.W, b.W) and np.array_equal(a.bias, b.bias)
        assert (a.m, a.s, a.z) == (b.m, b.s, b.z)
    _, qm3, _ = mlp.build_example(seed=1)
    assert not np.array_equal(qm.layers[0].W, qm3.layers[0].W)


def test_reference_forward_by_hand() -> None:
    l1 = mlp.QuantLayer(W=np.array([[1, -2], [3, 4]], dtype=np.int8),
                        bias=np.array([10, -3], dtype=np.int32), m=HALF, s=1, z=0, relu=True)
    l2 = mlp.QuantLayer(W=np.array([[2], [-1]], dtype=np.int8),
                        bias=np.array([0], dtype=np.int32), m=3 * (1 << 29), s=0, z=0,
                        relu=False)
    q = mlp.QuantMLP(layers=[l1, l2])
    x = np.array([[5, 6], [-7, -2]], dtype=np.int8)
    h, out = mlp.reference_forward(q, x)
    # row 0: acc [23, 14] + bias = [33, 11]; x 0.5 -> [16.5, 5.5] -> [17, 6];
    #        / 2 -> [8.5, 3] -> [9, 3]; ReLU -> [9, 3]
    # row 1: acc [-13, 6] + bias = [-3, 3]; x 0.5 -> [-1.5, 1.5] -> [-1, 2];
    #        / 2 -> [-0.5, 1] -> [-1, 1]; ReLU -> [0, 1]
    assert h.dtype == np.int8 and h.tolist() == [[9, 3], [0, 1]]
    # layer 2: [18 - 3, 0 - 1] = [15, -1]; x 0.75 -> [11.25, -0.75] -> [11, -1]
    assert out.dtype == np.int8 and out.tolist() == [[11], [-1]]
    with pytest.raises(TypeError, match="int8"):
        mlp.reference_forward(q, x.astype(np.int32))
    with pytest.raises(ValueError, match="layer 0 expects 2 inputs, got 3"):
        mlp.reference_forward(q, np.zeros((1, 3), dtype=np.int8))
