# The numeric side of the compiler's MLP example: scikit-learn's 8x8 digits as int8, a small
# float32 MLP trained with plain numpy (ReLU hidden layer, softmax cross-entropy, Adam), its
# post-training int8 quantisation for the chip (int8 weights, int32 biases, per-layer (m, s, z)
# for the VXM requantisation), and the numpy int8 reference forward pass the RTL must match.
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from tspc.quant import INT32_MAX, INT32_MIN, quantize_multiplier, requantize

TEST_EVERY = 5          # sample i of load_digits is a test sample iff i % 5 == 4 (359 of 1797)
IN_SCALE = 1.0 / 127.0  # real input feature = x_int8 * IN_SCALE (zero point 0)


def quantize_digit_features(x: np.ndarray) -> np.ndarray:
    """Map digit pixel values 0..16 to int8 0..127: q = (127 * x + 8) // 16, i.e.
    round(x * 127 / 16) with ties up (0 -> 0, 1 -> 8, 8 -> 64, 16 -> 127)."""
    xi = np.asarray(x)
    if xi.size and (np.any(xi != np.round(xi)) or xi.min() < 0 or xi.max() > 16):
        raise ValueError("quantize_digit_features: pixel values must be integers in 0..16")
    xi = xi.astype(np.int64)
    return ((127 * xi + 8) // 16).astype(np.int8)


def load_digits_int8(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """scikit-learn's digits (1797 x 64) as int8 features (quantize_digit_features) and int64
    labels: (Xtr_q, ytr, Xte_q, yte). Fixed interleaved split: sample i (in the dataset's
    order) is a test sample iff i % 5 == 4, giving 359 test and 1438 training samples (the
    last-360 split puts other writers in the test set and caps an MLP near 91%). The test set
    is in the dataset's order; `seed` only permutes the order of the training rows
    (seed=None keeps the dataset's order). The real value of a feature is x_int8 / 127."""
    from sklearn.datasets import load_digits

    d = load_digits()
    xq = quantize_digit_features(d.data)
    y = d.target.astype(np.int64)
    test = np.arange(len(y)) % TEST_EVERY == TEST_EVERY - 1
    xtr, ytr = xq[~test], y[~test]
    xte, yte = xq[test], y[test]
    if seed is not None:
        perm = np.random.default_rng(seed).permutation(len(xtr))
        xtr, ytr = xtr[perm], ytr[perm]
    return xtr, ytr, xte, yte


# ---------------------------------------------------------------------------------------------
# Float model

@dataclass
class FloatMLP:
    """Float32 MLP: layer i computes x @ weights[i] + biases[i], ReLU on every layer but the
    last. Inputs are real features (x_int8 * IN_SCALE)."""
    weights: list[np.ndarray]
    biases: list[np.ndarray]


def float_forward(p: FloatMLP, x: np.ndarray) -> list[np.ndarray]:
    """Per-layer float32 outputs (post-ReLU for hidden layers; logits last)."""
    outs = []
    h = np.asarray(x, dtype=np.float32)
    for i, (w, b) in enumerate(zip(p.weights, p.biases, strict=True)):
        h = h @ w + b
        if i < len(p.weights) - 1:
            h = np.maximum(h, 0.0)
        outs.append(h)
    return outs


def float_predict(p: FloatMLP, xq: np.ndarray) -> np.ndarray:
    """Labels predicted by the float model for int8 inputs `xq` (dequantised by IN_SCALE)."""
    return np.argmax(float_forward(p, dequantize_inputs(xq))[-1], axis=1)


def dequantize_inputs(xq: np.ndarray) -> np.ndarray:
    """int8 features -> float32 real values (x * IN_SCALE)."""
    return np.asarray(xq, dtype=np.float32) * np.float32(IN_SCALE)


def train_mlp(hidden: int = 32, epochs: int = 30, seed: int = 0, batch: int = 32,
              lr: float = 3e-3, data: tuple[np.ndarray, np.ndarray] | None = None) -> FloatMLP:
    """Train a 64-hidden-10 float32 MLP (ReLU, softmax cross-entropy, Adam, minibatches of
    `batch`) on the int8 digits training set (or `data` = (Xq, y)), deterministic in `seed`
    (He-uniform initialisation and per-epoch shuffles from numpy's default_rng(seed))."""
    if hidden < 1 or epochs < 0 or batch < 1:
        raise ValueError(f"train_mlp: bad hidden={hidden}, epochs={epochs} or batch={batch}")
    if data is None:
        xtr, ytr, _, _ = load_digits_int8(seed)
    else:
        xtr, ytr = data
    x = dequantize_inputs(xtr)
    y = np.asarray(ytr, dtype=np.int64)
    n_in, n_out = x.shape[1], 10
    rng = np.random.default_rng(seed)
    sizes = [n_in, hidden, n_out]
    ws = [rng.uniform(-1, 1, (k, n)).astype(np.float32) * np.float32(np.sqrt(6.0 / k))
          for k, n in itertools.pairwise(sizes)]
    bs = [np.zeros(n, dtype=np.float32) for n in sizes[1:]]
    params = ws + bs
    mom = [np.zeros_like(q) for q in params]
    vel = [np.zeros_like(q) for q in params]
    b1, b2, eps = 0.9, 0.999, 1e-8
    t = 0
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):
            idx = order[start:start + batch]
            xb, yb = x[idx], y[idx]
            h_pre = xb @ ws[0] + bs[0]
            h = np.maximum(h_pre, 0.0)
            logits = h @ ws[1] + bs[1]
            logits -= logits.max(axis=1, keepdims=True)
            prob = np.exp(logits)
            prob /= prob.sum(axis=1, keepdims=True)
            g = prob
            g[np.arange(len(yb)), yb] -= 1.0
            g /= np.float32(len(yb))
            gw1 = h.T @ g
            gb1 = g.sum(axis=0)
            gh = (g @ ws[1].T) * (h_pre > 0)
            gw0 = xb.T @ gh
            gb0 = gh.sum(axis=0)
            grads = [gw0, gw1, gb0, gb1]
            t += 1
            c1 = 1.0 - b1 ** t
            c2 = 1.0 - b2 ** t
            for q, gq, mq, vq in zip(params, grads, mom, vel, strict=True):
                mq *= b1
                mq += (1 - b1) * gq
                vq *= b2
                vq += (1 - b2) * gq * gq
                q -= (lr * (mq / c1) / (np.sqrt(vq / c2) + eps)).astype(np.float32)
    return FloatMLP(weights=ws, biases=bs)


# ---------------------------------------------------------------------------------------------
# Quantised model

@dataclass
class QuantLayer:
    """One layer on the chip: acc = x_int8 @ W (int32, exact), then the VXM requantisation
    out = requantize(acc, bias, m, s, z, relu) (tspc.quant). W is int8 (K, N), bias int32 (N,).
    Real values: x = x_int8 * in_scale, W = W_int8 * w_scale, out = (out_int8 - z) * out_scale."""
    W: np.ndarray
    bias: np.ndarray
    m: int
    s: int
    z: int
    relu: bool
    in_scale: float = 0.0
    w_scale: float = 0.0
    out_scale: float = 0.0


@dataclass
class QuantMLP:
    """An int8 MLP: its layers in order; the last one outputs int8 logits."""
    layers: list[QuantLayer] = field(default_factory=list)
    in_scale: float = IN_SCALE


def quantize_mlp(p: FloatMLP, calibration_data: np.ndarray,
                 in_scale: float = IN_SCALE) -> QuantMLP:
    """Post-training quantisation of `p`. `calibration_data` are int8 inputs (real value
    x * in_scale, zero point 0). Per layer: symmetric per-tensor int8 weights
    (w_scale = max|W| / 127, W_int8 = round(W / w_scale) in -127..127), int32 biases
    round(b / (in_scale * w_scale)), output scale = calibrated max / 127 with zero point 0
    (hidden layers: max of the float ReLU activations; last layer: max |logit|), and (m, s) =
    quantize_multiplier(in_scale * w_scale / out_scale). Hidden layers use ReLU, the last
    layer does not; the next layer's in_scale is this layer's out_scale."""
    xq = np.asarray(calibration_data)
    if xq.ndim != 2 or xq.shape[1] != p.weights[0].shape[0]:
        raise ValueError(f"quantize_mlp: calibration_data has shape {xq.shape}, expected "
                         f"(n, {p.weights[0].shape[0]})")
    acts = float_forward(p, xq.astype(np.float64) * in_scale)
    q = QuantMLP(in_scale=in_scale)
    s_in = float(in_scale)
    last = len(p.weights) - 1
    for i, (w, b) in enumerate(zip(p.weights, p.biases, strict=True)):
        wmax = float(np.max(np.abs(w)))
        amax = float(np.max(np.abs(acts[i])))
        if wmax == 0.0 or amax == 0.0:
            raise ValueError(f"quantize_mlp: layer {i} has all-zero weights or activations")
        w_scale = wmax / 127.0
        out_scale = amax / 127.0
        wq = np.clip(np.round(w.astype(np.float64) / w_scale), -127, 127).astype(np.int8)
        bq = np.round(b.astype(np.float64) / (s_in * w_scale))
        if bq.min() < INT32_MIN or bq.max() > INT32_MAX:
            raise ValueError(f"quantize_mlp: layer {i} bias does not fit in int32")
        mult, shift = quantize_multiplier(s_in * w_scale / out_scale)
        q.layers.append(QuantLayer(W=wq, bias=bq.astype(np.int32), m=mult, s=shift, z=0,
                                   relu=i < last, in_scale=s_in, w_scale=w_scale,
                                   out_scale=out_scale))
        s_in = out_scale
    return q


def reference_forward(q: QuantMLP, xq: np.ndarray) -> list[np.ndarray]:
    """The int8 reference: per-layer int8 outputs for int8 inputs `xq` (n, K), each layer
    acc = x @ W exactly in integers, then tspc.quant.requantize."""
    x = np.asarray(xq)
    if x.dtype != np.int8:
        raise TypeError(f"reference_forward: inputs must be int8, got {x.dtype}")
    outs = []
    for i, layer in enumerate(q.layers):
        if x.shape[-1] != layer.W.shape[0]:
            raise ValueError(f"reference_forward: layer {i} expects {layer.W.shape[0]} "
                             f"inputs, got {x.shape[-1]}")
        acc = x.astype(np.int64) @ layer.W.astype(np.int64)
        x = requantize(acc, layer.bias, layer.m, layer.s, layer.z, layer.relu)
        outs.append(x)
    return outs


def graph(q: QuantMLP, batch: int, profile: str = "full"):
    """The chip program of `q` for a batch of `batch` samples: `x @ W + bias` requantized
    (ReLU on the hidden layers) per layer, output "logits" (int8); a `tspc.Graph`."""
    from tspc.graph import Graph
    g = Graph(profile)
    h = g.input("x", (batch, q.layers[0].W.shape[0]))
    for i, L in enumerate(q.layers):
        h = g.requantize(h @ g.const(f"w{i}", L.W), L.m, L.s, L.z, bias=L.bias, relu=L.relu,
                         name=f"h{i}")
    g.output("logits", h)
    return g


def predict(q: QuantMLP, xq: np.ndarray) -> np.ndarray:
    """Labels: argmax of the int8 logits (the first maximum on ties, as numpy's argmax)."""
    return np.argmax(reference_forward(q, xq)[-1], axis=1)


def build_example(hidden: int = 32, epochs: int = 30,
                  seed: int = 0) -> tuple[FloatMLP, QuantMLP, dict[str, float]]:
    """Train, quantise (calibrated on the training set) and evaluate: returns the float model,
    the int8 model and {"float_acc", "int8_acc", "agree"} on the test set."""
    xtr, ytr, xte, yte = load_digits_int8(seed)
    fp = train_mlp(hidden=hidden, epochs=epochs, seed=seed, data=(xtr, ytr))
    qm = quantize_mlp(fp, xtr)
    fpred = float_predict(fp, xte)
    qpred = predict(qm, xte)
    return fp, qm, {"float_acc": float(np.mean(fpred == yte)),
                    "int8_acc": float(np.mean(qpred == yte)),
                    "agree": float(np.mean(fpred == qpred))}


if __name__ == "__main__":
    import time

    t0 = time.perf_counter()
    _, qm, stats = build_example()
    dt = time.perf_counter() - t0
    print(f"float test accuracy {stats['float_acc']:.4f}, int8 {stats['int8_acc']:.4f}, "
          f"agreement {stats['agree']:.4f} ({dt:.2f} s)")
    for k, layer in enumerate(qm.layers):
        print(f"layer {k}: W {layer.W.shape} m={layer.m} s={layer.s} z={layer.z} "
              f"relu={layer.relu} M={layer.in_scale * layer.w_scale / layer.out_scale:.6g}")
