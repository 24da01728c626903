"""Numerical error of the VXM's fixed-point functions and of its requantisation chain, measured on
the golden model's own helpers (sim/vxm.py) over the whole int32 input range.

    python -m bench.vxm_error          (or: python bench/vxm_error.py)

Prints the tables of docs/vxm.md section 7 and writes build/reports/vxm_error.json. Not a test;
it runs in a few seconds. How "the whole input range" is covered without 2^32 evaluations:

- EXP: every x in [-4096, 0] is evaluated; for x < -4096 the output is the constant 0 and the
  error 32768 * e^(x/256) falls as x falls, so its maximum is at x = -4096 (plus a sample). For
  x > 0 the output is clamped to exp(0) (the function is defined for x <= 0): not an error.
- TANH: every x in [-2048, 2048]; beyond, the output is the constant +-32767 and the error
  32768 * tanh(|x|/256) - 32767 grows with |x|, so its maximum is at |x| = 2^31 (plus a sample).
- RSQRT: x <= 0 gives 2^31 - 1 (no real value: excluded). For x > 0 the output is constant on
  each piece of equal (e2, j); on a piece the error y - 2^30/sqrt(x) and the ratio
  y * sqrt(x) / 2^30 are monotonic in x, so their extremes are at the piece's two end points:
  every end point of every piece is evaluated (all x < 1024 are pieces of one value), plus a
  random sample as a cross-check.
- Requantisation SAT_i8(RDIVPOT(SRDHM(x, m), s) + z) against round(x * m / 2^(31 + s)) + z
  (exact rational arithmetic, ties away from zero, saturated to int8): SRDHM rounds u = x * m /
  2^31 once, RDIVPOT rounds again; the result can differ from the single rounding only when u is
  within 1/2 of a rounding boundary (k + 1/2) * 2^s of RDIVPOT, i.e. for at most 3 consecutive x
  per boundary (m >= 2^30). Every such x around every boundary in the unsaturated output range
  is evaluated, plus the int32 extremes (where the zero-point ADD can wrap) and a sample.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sim.vxm import INT32_MAX, INT32_MIN, alu_vec, func_vec
from tsp.vxm import ALU_BY_NAME, FUNC_BY_NAME

OUT = ROOT / "build" / "reports" / "vxm_error.json"


def _worst(err: np.ndarray, x: np.ndarray) -> tuple[float, int]:
    i = int(np.argmax(err))
    return float(err[i]), int(x[i])


def exp_error(rng: np.random.Generator) -> dict:
    """EXP: Q8 input, Q15 output, against e^(x/256) for x <= 0."""
    table = np.arange(-4096, 1, dtype=np.int64)
    tail = np.concatenate([[INT32_MIN, -4097], rng.integers(INT32_MIN, -4096, 100000)])
    x = np.concatenate([table, tail]).astype(np.int64)
    y = func_vec(FUNC_BY_NAME["EXP"], x).astype(np.float64)
    ref = np.exp(x / 256.0) * 32768.0
    err = np.abs(y - ref)
    lsb, at = _worst(err, x)
    lsb_t, at_t = _worst(err[:table.size], x[:table.size])
    tail_lsb, tail_at = _worst(err[table.size:], x[table.size:])
    clamp = func_vec(FUNC_BY_NAME["EXP"], np.array([1, 256, INT32_MAX]))
    return {"function": "EXP", "domain": "x <= 0 (x > 0 is clamped to exp(0) = 32768)",
            "evaluated": int(x.size), "max_abs_err_lsb": lsb, "at_x": at,
            "max_abs_err_real": lsb / 32768.0,
            "table_region_max_lsb": lsb_t, "table_region_at_x": at_t,
            "below_table_max_lsb": tail_lsb, "below_table_at_x": tail_at,
            "x_gt_0_outputs": sorted({int(v) for v in clamp})}


def tanh_error(rng: np.random.Generator) -> dict:
    """TANH: Q8 input, Q15 output, against tanh(x/256) over all int32."""
    core = np.arange(-2048, 2049, dtype=np.int64)
    tail = np.concatenate([[INT32_MIN, INT32_MIN + 1, INT32_MAX, 2049, -2049],
                           rng.integers(INT32_MIN, INT32_MAX, 100000, endpoint=True)])
    x = np.concatenate([core, tail]).astype(np.int64)
    y = func_vec(FUNC_BY_NAME["TANH"], x).astype(np.float64)
    ref = np.tanh(x / 256.0) * 32768.0
    err = np.abs(y - ref)
    lsb, at = _worst(err, x)
    core_mask = np.abs(x) <= 2047
    lsb_c, at_c = _worst(err[core_mask], x[core_mask])
    return {"function": "TANH", "domain": "all int32", "evaluated": int(x.size),
            "max_abs_err_lsb": lsb, "at_x": at, "max_abs_err_real": lsb / 32768.0,
            "table_region_max_lsb": lsb_c, "table_region_at_x": at_c,
            "saturated_output": int(func_vec(FUNC_BY_NAME["TANH"], np.array([INT32_MAX]))[0])}


def rsqrt_pieces() -> np.ndarray:
    """All x < 1024, and both end points of every (e2, j) piece for x >= 1024."""
    xs = [np.arange(1, 1024, dtype=np.int64)]
    j = np.arange(256, 1024, dtype=np.int64)
    for e2 in range(10, 31, 2):
        lo = j << (e2 - 8)
        hi = ((j + 1) << (e2 - 8)) - 1
        keep = lo <= INT32_MAX
        xs += [lo[keep], np.minimum(hi[keep], INT32_MAX)]
    return np.unique(np.concatenate(xs))


def rsqrt_error(rng: np.random.Generator) -> dict:
    """RSQRT: y ~ 2^30 / sqrt(x) for x > 0."""
    ends = rsqrt_pieces()
    sample = rng.integers(1, INT32_MAX, 1_000_000, endpoint=True)
    out = {"function": "RSQRT", "domain": "x > 0 (x <= 0 gives 2^31 - 1)",
           "evaluated": int(ends.size), "cross_check_sample": int(sample.size)}
    for name, x in (("", ends), ("sample_", sample)):
        y = func_vec(FUNC_BY_NAME["RSQRT"], x).astype(np.float64)
        ref = 2.0 ** 30 / np.sqrt(x.astype(np.float64))
        err = np.abs(y - ref)
        rel = err / ref
        lsb, at = _worst(err, x)
        r, at_r = _worst(rel, x)
        out[name + "max_abs_err_lsb"] = lsb
        out[name + "at_x"] = at
        out[name + "max_rel_err"] = r
        out[name + "rel_at_x"] = at_r
        if not name:
            out["max_abs_err_real"] = lsb * 2.0 ** -30
            big = x >= 1 << 20
            lsb_b, at_b = _worst(err[big], x[big])
            out["x_ge_2^20_max_abs_err_lsb"] = lsb_b
            out["x_ge_2^20_at_x"] = at_b
    if out["sample_max_rel_err"] > out["max_rel_err"] * (1 + 1e-12) or \
            out["sample_max_abs_err_lsb"] > out["max_abs_err_lsb"] + 1e-6:
        raise RuntimeError("RSQRT: a sampled input exceeds the piece end-point maximum: the "
                           "monotonicity argument is wrong")
    return out


# ---- requantisation ---------------------------------------------------------------------------
def chain(x: np.ndarray, m: int, s: int, z: int) -> np.ndarray:
    """The section 3 program on the model's ALU helpers."""
    op = {n: o.code for n, o in ALU_BY_NAME.items()}
    r = alu_vec(op["SRDHM"], 2, x, m)
    r = alu_vec(op["RDIVPOT"], 2, r, s)
    r = alu_vec(op["ADD"], 2, r, z)
    return alu_vec(op["SAT"], 0, r, 0)


def exact(x: np.ndarray, m: int, s: int, z: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """round(x * m / 2^(31+s)) + z saturated to int8: ties away from zero, and ties up
    (toward +inf); and which x are exact ties. |x * m| <= 2^62 and the rounding term 2^(30+s)
    <= 2^61, so int64 is exact."""
    p = x * np.int64(m)
    sh = 31 + s
    half = np.int64(1) << (sh - 1)
    a = np.abs(p)
    away = np.where(p >= 0, 1, -1) * ((a + half) >> sh)
    up = (p + half) >> sh
    tie = (a & ((np.int64(1) << sh) - 1)) == half
    return np.clip(away + z, -128, 127), np.clip(up + z, -128, 127), tie


def candidates(m: int, s: int, z: int, rng: np.random.Generator) -> np.ndarray:
    """Every x near a second-rounding boundary in the unsaturated range, the int32 extremes,
    a dense window around 0 and a random sample."""
    k = np.arange(-130 - z, 129 - z, dtype=np.int64)            # boundaries (k + 1/2) * 2^s
    b2 = (2 * k + 1) << s                                        # 2 * boundary, in u units
    lo = np.floor((b2 - 1) * 2.0 ** 30 / m).astype(np.int64) - 2   # u = b - 1/2
    hi = np.ceil((b2 + 1) * 2.0 ** 30 / m).astype(np.int64) + 2    # u = b + 1/2
    width = int((hi - lo).max()) + 1
    near = (lo[:, None] + np.arange(width)[None, :]).ravel()
    edges = np.concatenate([np.arange(INT32_MIN, INT32_MIN + 400), np.arange(INT32_MAX - 399,
                                                                             INT32_MAX + 1)])
    x = np.concatenate([near, edges, np.arange(-1000, 1001),
                        rng.integers(INT32_MIN, INT32_MAX, 1000, endpoint=True)])
    return np.unique(x[(x >= INT32_MIN) & (x <= INT32_MAX)].astype(np.int64))


def requant_error(rng: np.random.Generator) -> dict:
    """The chain against the exact rounding, over multipliers m, shifts s and zero points z.
    Mismatches are split into: at exact ties of x * m / 2^(31+s) (a tie convention question)
    and elsewhere (double rounding: SRDHM then RDIVPOT); inputs where the zero-point ADD wraps
    int32 are counted apart."""
    ms = sorted({1 << 30, (1 << 30) + 1, 3 << 29, 0x5A827999, (1 << 31) - 1, (1 << 31) - 128,
                 *(int(v) for v in rng.integers(1 << 30, 1 << 31, 14))})
    shifts = [0, 1, 2, 3, 4, 6, 8, 12, 16, 20, 24, 28, 31]
    zps = [0, -128, 127, 5, -37]
    total = wraps = ties = 0
    tie_vs_away = tie_vs_up = dbl = 0
    worst_tie = worst_dbl = None
    wrap_rows = []
    srdhm, rdiv = ALU_BY_NAME["SRDHM"].code, ALU_BY_NAME["RDIVPOT"].code
    for m in ms:
        for s in shifts:
            for z in zps:
                x = candidates(m, s, z, rng)
                got = chain(x, m, s, z)
                away, up, tie = exact(x, m, s, z)
                pre = alu_vec(rdiv, 2, alu_vec(srdhm, 2, x, m), s) + z
                wrap = (pre > INT32_MAX) | (pre < INT32_MIN)
                total += x.size
                wraps += int(wrap.sum())
                ties += int((tie & ~wrap).sum())
                d = np.where(wrap, 0, np.abs(got - away))
                t_away = tie & (d > 0)
                tie_vs_away += int(t_away.sum())
                tie_vs_up += int((tie & ~wrap & (got != up)).sum())
                other = ~tie & (d > 0)
                dbl += int(other.sum())
                for mask, which in ((t_away, "tie"), (other, "dbl")):
                    if mask.any():
                        i = int(np.argmax(np.where(mask, d, -1)))
                        row = {"err": int(d[i]), "x": int(x[i]), "m": m, "s": s, "z": z,
                               "model": int(got[i]), "exact": int(away[i]),
                               "x_times_M": f"{int(x[i]) * m}/2^{31 + s}"}
                        if which == "tie" and (worst_tie is None or row["err"] > worst_tie["err"]):
                            worst_tie = row
                        if which == "dbl" and (worst_dbl is None or row["err"] > worst_dbl["err"]):
                            worst_dbl = row
                if wrap.any():
                    i = int(np.argmax(wrap))
                    wrap_rows.append({"m": m, "s": s, "z": z, "wrapping_x": int(wrap.sum()),
                                      "example_x": int(x[i]), "model": int(got[i]),
                                      "exact": int(away[i])})
    return {"multipliers": ms, "shifts": shifts, "zero_points": zps,
            "inputs_evaluated": total,
            "max_err_int8_lsb": max(r["err"] for r in (worst_tie, worst_dbl, {"err": 0}) if r),
            "double_rounding_mismatches": dbl, "double_rounding_worst": worst_dbl,
            "exact_ties": ties, "tie_mismatches_vs_half_away": tie_vs_away,
            "tie_mismatches_vs_half_up": tie_vs_up, "tie_worst": worst_tie,
            "zero_point_add_wraps": wraps, "wrap_cases": wrap_rows}


def double_rounding_rate(rng: np.random.Generator) -> dict:
    """Fraction of inputs off by one (non-tie double rounding) for x uniform over the
    unsaturated range |x * M| < 128 (z = 0), per shift s, over a few multipliers; the expected
    rate is about 2^-(s+1) (u = x * M0 falls in the half-unit just below a boundary)."""
    out = {}
    for s in (1, 2, 3, 4, 6, 8, 10, 12, 16):
        bad = n = 0
        for m in (int(v) for v in rng.integers(1 << 30, 1 << 31, 6)):
            span = int(128 * 2.0 ** (31 + s) / m)
            x = rng.integers(-span, span, 200_000, endpoint=True).astype(np.int64) \
                if 2 * span + 1 > 200_000 else np.arange(-span, span + 1, dtype=np.int64)
            got = chain(x, m, s, 0)
            away, _, tie = exact(x, m, s, 0)
            bad += int(((got != away) & ~tie).sum())
            n += x.size
        out[str(s)] = {"rate": bad / n, "2^-(s+1)": 2.0 ** -(s + 1)}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT, help="JSON report (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the random cross-check samples")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    report = {"command": "python -m bench.vxm_error", "seed": args.seed,
              "functions": [exp_error(rng), tanh_error(rng), rsqrt_error(rng)],
              "requantisation": requant_error(rng)}
    report["requantisation"]["double_rounding_rate_by_shift"] = double_rounding_rate(rng)
    report["seconds"] = round(time.perf_counter() - t0, 2)
    print("function  max |err| (LSB)  at x          max |err| (real)  max rel err  at x")
    for f in report["functions"]:
        rel = f"{f['max_rel_err']:.3e}" if "max_rel_err" in f else "-"
        rat = str(f.get("rel_at_x", "-"))
        print(f"{f['function']:<8}  {f['max_abs_err_lsb']:<15.6f}  {f['at_x']:<12}  "
              f"{f['max_abs_err_real']:<16.3e}  {rel:<11}  {rat}")
    for f in report["functions"]:
        extra = {k: v for k, v in f.items() if k not in ("function", "max_abs_err_lsb", "at_x",
                                                        "max_abs_err_real", "max_rel_err",
                                                        "rel_at_x")}
        print(f"  {f['function']}: {extra}")
    q = report["requantisation"]
    print(f"requantisation: {len(q['multipliers'])} multipliers x {len(q['shifts'])} shifts x "
          f"{len(q['zero_points'])} zero points, {q['inputs_evaluated']} inputs: max error "
          f"{q['max_err_int8_lsb']} int8 LSB against round(x*M)+z (ties away from zero)")
    print(f"  double rounding (non-tie inputs): {q['double_rounding_mismatches']} inputs off "
          f"by 1, e.g. {q['double_rounding_worst']}")
    print(f"  exact ties: {q['exact_ties']}; {q['tie_mismatches_vs_half_away']} differ from "
          f"half-away, {q['tie_mismatches_vs_half_up']} from half-up, e.g. {q['tie_worst']}")
    rates = q["double_rounding_rate_by_shift"]
    print("  off-by-one rate for uniform x (z = 0), by shift s: " + ", ".join(
        f"s={k}: {v['rate']:.2e}" for k, v in rates.items()))
    print(f"  zero-point ADD wraps int32 (excluded above): {q['zero_point_add_wraps']} inputs")
    for row in q["wrap_cases"]:
        print(f"    {row}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out} ({report['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
