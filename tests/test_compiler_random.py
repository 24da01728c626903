"""Random tensor programs through the compiler: every one must give numpy's results (an
independent reference per operation, below) and exactly the predicted cycle count on the golden
model; a few also run on both RTL simulators. Seeds are fixed; a failure prints the seed and the
program."""
from __future__ import annotations

import numpy as np
import pytest

import tspc
from tsp.vxm import EXP_TABLE, TANH_TABLE
from tspc.quant import requantize as requantize_ref


def _tanh_ref(x: np.ndarray, fb: int) -> np.ndarray:
    q8 = x.astype(np.int64) << (8 - fb)
    t = np.where(q8 < 0, -1, 1) * TANH_TABLE[np.minimum(np.abs(q8), 2047)]
    return (np.minimum(t, 32767) >> 8).astype(np.int64)


def _exp_ref(x: np.ndarray, fb: int) -> np.ndarray:
    q8 = x.astype(np.int64) << (8 - fb)
    e = np.where(q8 > 0, 32768, np.where(q8 > -4096, EXP_TABLE[np.clip(-q8, 0, 4095)], 0))
    return (np.minimum(e, 32767) >> 8).astype(np.int64)


def random_program(seed: int):
    """(graph, inputs, expected outputs, description) of a random chain of 1-4 operations on
    one or two int8 inputs."""
    rng = np.random.default_rng(seed)
    g = tspc.Graph("full")
    m, k = int(rng.integers(1, 40)), int(rng.integers(1, 40))
    X = rng.integers(-128, 128, size=(m, k))
    x = g.input("x", X.shape)
    cur, ref, desc = x, X.astype(np.int64), [f"x {m}x{k}"]
    inputs = {"x": X}
    for i in range(int(rng.integers(1, 5))):
        op = rng.choice(["matmul", "matmul", "add", "max", "relu", "tanh", "exp", "transpose"])
        mm, kk = ref.shape
        if op == "matmul":
            n = int(rng.integers(1, 30))
            W = rng.integers(-128, 128, size=(kk, n))
            bias = rng.integers(-5000, 5000, size=n) if rng.random() < 0.5 else None
            mult, shift = int(rng.integers(1 << 30, 1 << 31)), int(rng.integers(4, 14))
            relu = bool(rng.random() < 0.5)
            z = 0 if relu else int(rng.integers(-20, 20))
            acc = cur @ g.const(f"w{i}", W)
            cur = g.requantize(acc, mult, shift, z, bias=bias, relu=relu)
            ref = requantize_ref(ref @ W, np.zeros(n, np.int64) if bias is None else bias,
                                 mult, shift, z, relu).astype(np.int64)
            desc.append(f"@ w{i} ({kk}x{n}) requant(m={mult}, s={shift}, z={z}, "
                        f"bias={'yes' if bias is not None else 'no'}, relu={relu})")
        elif op in ("add", "max"):
            name = f"y{i}"
            Y = rng.integers(-128, 128, size=(mm, kk))
            inputs[name] = Y
            y = g.input(name, Y.shape)
            cur = g.add(cur, y) if op == "add" else g.maximum(cur, y)
            ref = np.clip(ref + Y, -128, 127) if op == "add" else np.maximum(ref, Y)
            desc.append(f"{op} {name}")
        elif op == "relu":
            cur, ref = g.relu(cur), np.maximum(ref, 0)
            desc.append("relu")
        elif op in ("tanh", "exp"):
            fb = int(rng.integers(3, 8))
            cur = g.tanh(cur, fb) if op == "tanh" else g.exp(cur, fb)
            ref = _tanh_ref(ref, fb) if op == "tanh" else _exp_ref(ref, fb)
            desc.append(f"{op}(frac_bits={fb})")
        else:
            cur, ref = g.transpose(cur), ref.T.copy()
            desc.append("transpose")
    if cur is x:                                  # nothing computed: one more relu
        cur, ref = g.relu(cur), np.maximum(ref, 0)
    g.output("out", cur)
    return g, inputs, ref, " -> ".join(desc)


@pytest.mark.parametrize("seed", range(24))
def test_random_program_on_model(seed: int) -> None:
    g, inputs, ref, desc = random_program(seed)
    prog = tspc.compile(g)
    res = prog.run(inputs)
    assert np.array_equal(res.outputs["out"], ref), f"seed {seed}: {desc}"
    assert res.cycles == prog.predicted_cycles, f"seed {seed}: {desc}"


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_random_programs_on_rtl(sim: str) -> None:
    for seed in ((100,) if sim == "icarus" else (100, 101)):
        g, inputs, ref, desc = random_program(seed)
        prog = tspc.compile(g)
        res = prog.run(inputs, backend=sim)
        assert np.array_equal(res.outputs["out"], ref), f"seed {seed}: {desc}"
        assert res.cycles == prog.predicted_cycles, f"seed {seed}: {desc}"
