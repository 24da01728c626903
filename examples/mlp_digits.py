"""An int8 MLP classifier for scikit-learn's 8 x 8 digits, trained in numpy, run on the TSP slice.

    python examples/mlp_digits.py [--backend model|icarus|verilator] [--samples N]
                                  [--plot build/reports/mlp.png]

Trains a 64-32-10 MLP (tspc.mlp: numpy, Adam, a fixed seed), quantises it to int8 (per-tensor
weights, int32 biases, gemmlowp requantisation), compiles `requantize(relu)(x @ W1 + b1) @ W2 +
b2` for the `full` profile (MXM + VXM) and classifies the test samples in batches of 120 on the
chosen backend. Every int8 logit must equal the numpy int8 reference (tspc.mlp.reference_forward)
and every batch's measured cycle count the compiler's prediction.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tspc
from tspc import mlp

BATCH = 120


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="model", choices=tspc.BACKENDS)
    ap.add_argument("--samples", type=int, default=0, help="test samples (default: all)")
    ap.add_argument("--plot", default="", help="activity PNG of the first batch (model)")
    ap.add_argument("--profile", default="full")
    args = ap.parse_args(argv)
    _, q, acc = mlp.build_example()
    _, _, Xte, yte = mlp.load_digits_int8()
    if args.samples:
        Xte, yte = Xte[:args.samples], yte[:args.samples]
    prog = tspc.compile(mlp.graph(q, BATCH, args.profile))
    print(prog.summary())
    logits, cycles, secs = [], 0, 0.0
    for s in range(0, len(Xte), BATCH):
        xb = Xte[s:s + BATCH]
        rows = len(xb)
        if rows < BATCH:                      # pad the last batch with zero images
            xb = np.concatenate([xb, np.zeros((BATCH - rows, xb.shape[1]), dtype=xb.dtype)])
        t = time.perf_counter()
        res = prog.run({"x": xb}, backend=args.backend,
                       activity=bool(args.plot) and s == 0)
        secs += time.perf_counter() - t
        if args.plot and s == 0:
            from tspc.activity import plot, summarize
            print(summarize(prog.config, res.model_results))
            png = plot(prog.config, res.model_results, args.plot,
                       title="MLP 64-32-10, batch 120")
            print(f"activity plot: {png}")
        logits.append(res.outputs["logits"][:rows])
        cycles += res.cycles
    logits = np.concatenate(logits)
    ref = mlp.reference_forward(q, Xte)[-1]
    same = bool(np.array_equal(logits, ref))
    pred = np.argmax(logits, axis=1)
    accuracy = float(np.mean(pred == yte))
    print(f"{len(Xte)} test samples on {args.backend}: logits == numpy int8 reference: {same}; "
          f"accuracy {accuracy:.4f} (float model {acc['float_acc']:.4f}); {cycles} cycles in "
          f"all ({prog.predicted_cycles} per batch of {BATCH}, predicted), {secs:.1f} s")
    if not same:
        raise SystemExit("RTL/model logits differ from the numpy int8 reference")
    return {"samples": len(Xte), "same": same, "accuracy": accuracy, "cycles": cycles,
            "cycles_per_batch": prog.predicted_cycles, "seconds": secs}


if __name__ == "__main__":
    main()
