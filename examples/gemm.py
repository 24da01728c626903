"""Tiled int8 GEMM on the TSP slice: C = A @ B, (M x K) @ (K x N) -> int32, tiled over both MXMs.

    python examples/gemm.py [--m 64 --k 64 --n 64] [--backend model|icarus|verilator]
                            [--profile full] [--plot build/reports/gemm.png]

Compiles the program, runs it on the chosen backend through the host port's memory layout, checks
the result against numpy and the measured cycle count against the compiler's prediction, and
prints the cycle count, MXM utilisation and (with --plot, golden model only) the activity plot.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tspc


def build(m: int, k: int, n: int, profile: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    A = rng.integers(-128, 128, size=(m, k), dtype=np.int64)
    B = rng.integers(-128, 128, size=(k, n), dtype=np.int64)
    g = tspc.Graph(profile)
    a = g.input("a", (m, k))
    g.output("c", a @ g.const("b", B))
    return g, A, B


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--m", type=int, default=64)
    ap.add_argument("--k", type=int, default=64)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--profile", default="full",
                    help="profile (default: full, the 8-lane slice; `default` is 4 lanes)")
    ap.add_argument("--backend", default="model", choices=tspc.BACKENDS)
    ap.add_argument("--waves", action="store_true", help="write an FST waveform (RTL)")
    ap.add_argument("--plot", default="", help="activity PNG path (golden model only)")
    args = ap.parse_args(argv)
    g, A, B = build(args.m, args.k, args.n, args.profile)
    prog = tspc.compile(g)
    print(prog.summary())
    res = prog.run({"a": A}, backend=args.backend, waves=args.waves,
                   activity=bool(args.plot))
    ok = bool(np.array_equal(res.outputs["c"], A @ B))
    cfg = prog.config
    peak = 2 * cfg.vec_bytes ** 2
    util = args.m * args.k * args.n / (peak * res.cycles)
    print(f"GEMM {args.m}x{args.k}x{args.n} on {args.backend}: {res.cycles} cycles "
          f"(predicted {prog.predicted_cycles}), result == numpy: {ok}, MXM utilisation "
          f"{util:.1%} of {peak} MACs/cycle")
    if res.wave_file:
        print(f"waveform: {res.wave_file}")
    if args.plot:
        from tspc.activity import plot, summarize
        print(summarize(cfg, res.model_results))
        print(f"activity plot: {plot(cfg, res.model_results, args.plot, title='GEMM')}")
    if not ok:
        raise SystemExit("GEMM result differs from numpy")
    return {"cycles": res.cycles, "predicted": prog.predicted_cycles, "ok": ok,
            "utilisation": util}


if __name__ == "__main__":
    main()
