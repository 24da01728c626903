"""GEMV at batch 1 on the TSP slice: y = x @ W, x (K,) int8, W (K x N) int8 -> int32 (N,).

    python examples/gemv.py [--k 256 --n 64] [--backend model|icarus|verilator] [--profile full]

At batch 1 every weight is used once, so the MEM read ports set the pace. On `full` the MXMs
load 4 weight rows per cycle (LWG from four slices) and hold x in their activation buffer
(LXG, ABX): docs/compiler.md, "Streamed GEMV". On `default` (no buffer) each 4 x 4 tile takes
n + 1 cycles (LW, IW). The script prints the cycle count against the stream-bandwidth bound
(docs/compiler.md, "Bounds").
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tspc


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=256)
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--profile", default="full",
                    help="profile (default: full, the 8-lane slice; `default` is 4 lanes)")
    ap.add_argument("--backend", default="model", choices=tspc.BACKENDS)
    ap.add_argument("--waves", action="store_true")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, size=args.k, dtype=np.int64)
    W = rng.integers(-128, 128, size=(args.k, args.n), dtype=np.int64)
    g = tspc.Graph(args.profile)
    xi = g.input("x", (args.k,))
    g.output("y", xi @ g.const("w", W))
    prog = tspc.compile(g)
    res = prog.run({"x": x}, backend=args.backend, waves=args.waves)
    ok = bool(np.array_equal(res.outputs["y"], x @ W))
    from tspc.bounds import bounds
    b = bounds(prog.config, 1, args.k, args.n)
    print(f"GEMV 1x{args.k}x{args.n} on {args.backend}: {res.cycles} cycles (predicted "
          f"{prog.predicted_cycles}), result == numpy: {ok}; lower bounds: compute "
          f"{b['compute']}, streams {b['streams']}, weight-load path {b['weight_path']} cycles; "
          f"ratio to the stream bound {res.cycles / b['streams']:.2f}x")
    if not ok:
        raise SystemExit("GEMV result differs from numpy")
    return {"cycles": res.cycles, "ok": ok, **b}


if __name__ == "__main__":
    main()
