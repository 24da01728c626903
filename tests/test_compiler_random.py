"""Random tensor programs through the compiler: every one must give numpy's results (an
independent reference per operation, below) and exactly the predicted cycle count on the golden
model; a few also run on both RTL simulators. Seeds are fixed; a failure prints the seed and the
program."""
from __future__ import annotations

import numpy as np
import pytest

import tspc
from tsp.vxm import EXP_TABLE, RSQRT_TABLE, TANH_TABLE
from tspc.quant import requantize as requantize_ref


def _tanh_ref(x: np.ndarray, fb: int) -> np.ndarray:
    q8 = x.astype(np.int64) << (8 - fb)
    t = np.where(q8 < 0, -1, 1) * TANH_TABLE[np.minimum(np.abs(q8), 2047)]
    return (np.minimum(t, 32767) >> 8).astype(np.int64)


def _exp_ref(x: np.ndarray, fb: int) -> np.ndarray:
    q8 = x.astype(np.int64) << (8 - fb)
    e = np.where(q8 > 0, 32768, np.where(q8 > -4096, EXP_TABLE[np.clip(-q8, 0, 4095)], 0))
    return (np.minimum(e, 32767) >> 8).astype(np.int64)


def _rsqrt_ref(x: np.ndarray, fb: int, ob: int) -> np.ndarray:
    """docs/compiler.md: RSQRT(x << (12 - 2 ob - fb)) >> 24, the RSQRT of docs/vxm.md section 4
    (x <= 0: 2^31 - 1), written out here per element from the table."""
    out = np.empty(x.shape, dtype=np.int64)
    for idx, v in np.ndenumerate(x.astype(np.int64) << (12 - 2 * ob - fb)):
        if v <= 0:
            y = (1 << 31) - 1
        else:
            e2 = (int(v).bit_length() - 1) & ~1
            j = v << (8 - e2) if e2 <= 8 else v >> (e2 - 8)
            y = int(RSQRT_TABLE[j]) << (15 - e2 // 2)
        out[idx] = y >> 24
    return out


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
        op = rng.choice(["matmul", "matmul", "add", "max", "relu", "tanh", "exp", "transpose",
                         "reshape", "rsqrt"])
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
        elif op == "reshape":             # a factorisation of the element count, 2 to 320
            count = mm * kk               # columns if there is one ((N, 1): one word a row)
            rows = [d for d in range(1, count + 1) if count % d == 0 and
                    2 <= count // d <= 320] or [count]
            r2 = int(rng.choice(rows))
            shape = (count,) if r2 == 1 and rng.random() < 0.5 else (r2, count // r2)
            cur = g.reshape(cur, shape)
            ref = ref.reshape(shape[-1]).reshape(1, -1) if len(shape) == 1 else \
                ref.reshape(shape)
            desc.append(f"reshape{shape}")
        elif op == "rsqrt":
            fb = int(rng.integers(0, 9))
            ob = int(rng.integers(0, (12 - fb) // 2 + 1))
            cur, ref = g.rsqrt(cur, fb, ob), _rsqrt_ref(ref, fb, ob)
            desc.append(f"rsqrt(frac_bits={fb}, out_frac_bits={ob})")
        else:
            cur, ref = g.transpose(cur), ref.T.copy()
            desc.append("transpose")
    if cur is x:                                  # nothing computed: one more relu
        cur, ref = g.relu(cur), np.maximum(ref, 0)
    g.output("out", cur)
    if cur.vector:                                # a 1-D result comes back 1-D
        ref = ref.reshape(-1)
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
