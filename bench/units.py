"""Compute-unit throughput: MXM utilisation on a sequence of int8 GEMM tiles with
double-buffered weights, and SXM (and, where built, VXM) vectors per cycle.

    python bench/units.py [--profile default] [--tiles 8] [--no-rtl]

Every program is built through `asm.TimedBuilder` (so the assembler's checker verifies its
schedule and predicts its cycle count), run on the golden model and, unless --no-rtl, on the
RTL in Amaranth's simulator through the AXI4-Lite host port. The script checks that the RTL's
cycle count equals the model's and the checker's, and that the GEMM results equal numpy's, then
prints and saves build/reports/units_<profile>.json. Not a test.

MXM utilisation = MACs done / (array cells x cycles), MACs done = ABC vectors x n x n:
- steady state: over the cycles from the first to the last ABC vector (the streaming phase);
- whole program: over the program's cycle count (adds weight preload, pipeline fill, drain).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "tests"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

from asm import TimedBuilder
from sim import TspModel
from tsp.config import TspConfig, join_sg4


def _vec(a: np.ndarray) -> bytes:
    return np.asarray(a, dtype=np.int8).view(np.uint8).tobytes()


def gemm_tiles(cfg: TspConfig, tiles: int, rows: int, seed: int = 1):
    """A stream of `tiles` GEMM tiles on MXM_W: tile j multiplies `rows` int8 activation
    vectors X_j (rows x n) by its own n x n int8 weights W_j. X is read from MEM_W3 on W0, W
    from MEM_W2 on W1; tile j+1's weights load (LW) while tile j computes (ABC) and are
    installed (IW) with tile j's last vector; tile j-1's int32 results leave (ACC, SG4 E0..E3)
    while tile j computes and are written by MEM_W3, W2, W1, W0 (one byte plane each, bank 1).

    Returns (program, X, W, where): `where[b]` = position holding byte plane b of the results.
    """
    n = cfg.vec_bytes
    if rows < n + 2:
        raise ValueError(f"rows per tile must be >= n + 2 = {n + 2} so the next tile's LW ends "
                         f"before its IW")
    if 2 * rows > 4 * n:
        raise ValueError(f"two tiles of {rows} rows must fit the {4 * n} accumulator rows")
    if tiles * rows > cfg.bank_depth:
        raise ValueError(f"{tiles} tiles x {rows} rows do not fit one bank ({cfg.bank_depth})")
    rng = np.random.default_rng(seed)
    X = rng.integers(-128, 128, size=(tiles, rows, n), dtype=np.int64)
    W = rng.integers(-128, 128, size=(tiles, n, n), dtype=np.int64)
    P = cfg.position_index
    mxm, xs, ws = P("MXM_W"), P("MEM_W3"), P("MEM_W2")
    outs = [P("MEM_W3"), P("MEM_W2"), P("MEM_W1"), P("MEM_W0")]
    hop = {p: abs(p - mxm) for p in range(cfg.num_positions)}
    tb = TimedBuilder(cfg, filename="<bench gemm_tiles>")
    L0 = 8                                  # first LW: after the weight slice's loop setup
    S0 = L0 + n + 1                         # first ABC (IW at L0 + n)
    s = [S0 + j * rows for j in range(tiles + 1)]
    bank1 = cfg.bank_depth

    # MXM_W queue
    tb.at(L0, mxm, "LW", "W1", 0, n)
    tb.at(L0 + n, mxm, "IW")
    for j in range(tiles):
        tb.at(s[j], mxm, "ABC", "W0", (j % 2) * rows, rows, 0)
        if j + 1 < tiles:
            tb.at(s[j] + 1, mxm, "LW", "W1", 0, n)
            tb.at(s[j] + rows - 1, mxm, "IW")
        if j >= 1:
            tb.at(s[j] + 2, mxm, "ACC", "E0", ((j - 1) % 2) * rows, rows)
    tb.at(s[tiles] + 2, mxm, "ACC", "E0", ((tiles - 1) % 2) * rows, rows)

    # activations: one READ loop over all tiles; element at u is at MXM_W at u + 2 + hop
    rd_x = S0 - 2 - hop[xs]
    tb.at(rd_x - 3, xs, "ITERATIONS", tiles * rows)
    tb.at(rd_x - 2, xs, "STEP", 1)
    tb.at(rd_x - 1, xs, "COUNTDOWN", 1)
    tb.at(rd_x, xs, "READ", 0, "W0")
    # weights: one READ of n rows per tile, 2 + hop cycles before its LW
    tb.at(0, ws, "STEP", 1)
    tb.at(1, ws, "COUNTDOWN", 1)
    lw = [L0] + [s[j] + 1 for j in range(tiles - 1)]
    for j, c in enumerate(lw):
        tb.at(c - 2 - hop[ws] - 1, ws, "ITERATIONS", n)
        tb.at(c - 2 - hop[ws], ws, "READ", j * n, "W1")
    # results: ACC of tile j at a_j (byte plane b at position p during a_j + k + 2 + hop)
    set_iter = {xs: rd_x + 1}
    for p in outs[2:]:
        tb.at(0, p, "STEP", 1)
        tb.at(1, p, "COUNTDOWN", 1)
    for j in range(tiles):
        a = s[j + 1] + 2
        for b, p in enumerate(outs):
            c = a + 2 + hop[p]
            if p == xs:
                if set_iter.pop(xs, None) is not None:
                    tb.at(rd_x + 1, p, "ITERATIONS", rows)
            else:
                tb.at(c - 1, p, "ITERATIONS", rows)
            tb.at(c, p, "WRITE", bank1 + j * rows, f"E{b}")
    for j in range(tiles):
        for k in range(rows):
            tb.data(xs, j * rows + k, _vec(X[j, k]))
        for i in range(n):
            tb.data(ws, j * n + i, _vec(W[j, i]))
    return tb.build(), X, W, outs


def gemm_result(read, outs, tiles: int, rows: int, bank1: int) -> np.ndarray:
    """(tiles, rows, n) int32 from the byte planes: read(position, addr) -> uint8 vector."""
    C = []
    for j in range(tiles):
        C.append([join_sg4(np.stack([read(p, bank1 + j * rows + k) for p in outs]))
                  for k in range(rows)])
    return np.asarray(C, dtype=np.int64)


def sxm_stream(cfg: TspConfig, count: int, seed: int = 2):
    """`count` vectors read from MEM_W3 (W0), permuted by SXM_W (PERMUTE, one per cycle with
    REPEAT) onto E0 and written back by MEM_W3 into bank 1."""
    n = cfg.vec_bytes
    rng = np.random.default_rng(seed)
    V = rng.integers(0, 256, size=(count, n), dtype=np.int64)
    perm = rng.permutation(n)
    P = cfg.position_index
    sxm, ms = P("SXM_W"), P("MEM_W3")
    hop = abs(ms - sxm)
    tb = TimedBuilder(cfg, filename="<bench sxm_stream>")
    tb.at(0, ms, "ITERATIONS", 1)
    tb.at(1, ms, "STEP", 1)
    tb.at(2, ms, "COUNTDOWN", 1)
    tb.at(3, ms, "READ", cfg.bank_depth - 1, "W1")        # the map: last word of bank 0
    tb.at(4, ms, "ITERATIONS", count)
    tb.at(5, ms, "READ", 0, "W0")                          # the data, one vector per cycle
    t0 = 5 + 2 + hop                                       # first vector at SXM_W
    tb.at(3 + 2 + hop, sxm, "SETMAP", "W1", 0)
    tb.at(t0, sxm, "PERMUTE", "W0", "E0", 0)
    tb.at(t0 + 1, sxm, "REPEAT", count - 1, 1)
    tb.at(t0 + 2 + hop, ms, "WRITE", cfg.bank_depth, "E0")
    for k in range(count):
        tb.data(ms, k, bytes(V[k].astype(np.uint8)))
    tb.data(ms, cfg.bank_depth - 1, bytes(perm.astype(np.uint8)))
    return tb.build(), V, perm, (t0, t0 + count - 1)


def vxm_requant(cfg: TspConfig, count: int, seed: int = 3):
    """`count` int32 vectors (byte planes in MEM_W3..MEM_W0, SG4 on E0..E3) requantised to int8
    by the VXM in one pass (SRDHM, RDIVPOT, ADDS zero point, saturating VRUN result: docs/vxm.md
    section 3), one
    vector per cycle (REPEAT), written by MEM_E0 from E4. Returns (program, int32 inputs,
    (multiplier, shift, zero point), streaming window)."""
    n = cfg.vec_bytes
    rng = np.random.default_rng(seed)
    acc = rng.integers(-(1 << 15), 1 << 15, size=(count, n), dtype=np.int64)
    m, shift, zp = 1518500250, 7, -3                   # M0 = 0.7071..., M = M0 / 2^7
    P = cfg.position_index
    vxm, out = P("VXM"), P("MEM_E0")
    planes = [P("MEM_W3"), P("MEM_W2"), P("MEM_W1"), P("MEM_W0")]
    tb = TimedBuilder(cfg, filename="<bench vxm_requant>")
    for i, (c, imm) in enumerate([(0, m & 0xFFFF), (1, shift), (2, zp)]):
        tb.at(i, vxm, "VCONST", c, imm)
    tb.at(3, vxm, "VCONSTH", 0, m >> 16)
    # stages by kind (vxm_stages): SRDHM on the first M stage, RDIVPOT on the first S stage
    # after it, ADDS (zero point) on the first G stage after that; int8 by VRUN's saturation
    kinds = cfg.vxm_stages
    try:
        km = kinds.index("M")
        ks = kinds.index("S", km + 1)
        kg = kinds.index("G", ks + 1)
    except ValueError:
        raise ValueError(f"vxm_stages {kinds!r} has no M, S, G sequence for requantisation")
    for i, (k, op, x, y) in enumerate([(km, "SRDHM", "r0", "c0"), (ks, "RDIVPOT", "r2", "c1"),
                                       (kg, "ADDS", "r2", "c2")]):
        tb.at(4 + i, vxm, "VCFG", k, op, "i32", "r2", x, y)
    t0 = 12
    for b, p in enumerate(planes):
        c = t0 - 2 - abs(vxm - p)
        tb.at(c - 3, p, "ITERATIONS", count)
        tb.at(c - 2, p, "STEP", 1)
        tb.at(c - 1, p, "COUNTDOWN", 1)
        tb.at(c, p, "READ", 0, f"E{b}")
        for k in range(count):
            tb.data(p, k, bytes(((acc[k] >> (8 * b)) & 0xFF).astype(np.uint8)))
    tb.at(t0, vxm, "VRUN", "E0", "i32", "E0", "none", "E4", "i8", "sat")
    tb.at(t0 + 1, vxm, "REPEAT", count - 1, 1)
    from tsp.isa import BY_NAME, dfunc_of
    w = t0 + dfunc_of(BY_NAME["VRUN"], cfg) + abs(out - vxm)
    tb.at(w - 3, out, "ITERATIONS", count)
    tb.at(w - 2, out, "STEP", 1)
    tb.at(w - 1, out, "COUNTDOWN", 1)
    tb.at(w, out, "WRITE", 0, "E4")
    return tb.build(), acc, (m, shift, zp), (t0, t0 + count - 1)


def requant_reference(acc: np.ndarray, m: int, shift: int, zp: int) -> np.ndarray:
    """Independent reference: gemmlowp SRDHM + RDIVPOT + zero point, saturated to int8, in
    plain Python integers (docs/vxm.md section 3)."""
    def srdhm(a: int, b: int) -> int:
        if a == b == -(1 << 31):
            return (1 << 31) - 1
        p = a * b
        nudge = (1 << 30) if p >= 0 else 1 - (1 << 30)
        q = abs(p + nudge) >> 31
        return q if p + nudge >= 0 else -q
    def rdivpot(a: int, e: int) -> int:
        mask = (1 << e) - 1
        return (a >> e) + (1 if (a & mask) > (mask >> 1) + (1 if a < 0 else 0) else 0)
    f = np.vectorize(lambda a: max(-128, min(127, rdivpot(srdhm(int(a), m), shift) + zp)))
    return f(acc).astype(np.int64)


def run_model(prog):
    m = TspModel(prog.config)
    for p, a, v in prog.data:
        m.write_mem(p, a, v)
    for p, words in prog.queues.items():
        m.load_queue(p, words)
    t = time.perf_counter()
    res = m.run()
    return m, res, time.perf_counter() - t


def run_rtl(prog, reads: list[tuple[int, int]]):
    """Run `prog` on TspTop in Amaranth's simulator; returns (CSRs, {(p, a): vector}, s)."""
    from hdl_harness import AxilDriver, load_words, read_vec, run_program, simulate, write_vec

    from hdl.top import TspTop
    cfg = prog.config
    top = TspTop(cfg)
    out: dict = {}

    async def bench(ctx):
        drv = AxilDriver(top)
        for p, a, v in prog.data:
            await write_vec(ctx, drv, cfg, p, a, v)
        await load_words(ctx, drv, cfg, prog.queues)
        out["csr"] = await run_program(ctx, drv)
        for p, a in reads:
            out[(p, a)] = await read_vec(ctx, drv, cfg, p, a)

    t = time.perf_counter()
    simulate(top, bench)
    return out.pop("csr"), out, time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="default")
    ap.add_argument("--tiles", type=int, default=16)
    ap.add_argument("--rows", type=int, default=0, help="vectors per tile (default 2n)")
    ap.add_argument("--no-rtl", action="store_true", help="golden model only")
    ap.add_argument("--out", default=str(ROOT / "build" / "reports"))
    args = ap.parse_args(argv)
    cfg = TspConfig.profile(args.profile)
    if "mxm" not in cfg.units or "sxm" not in cfg.units:
        ap.error(f"profile {cfg.name} has units {cfg.units}; this benchmark needs mxm and sxm")
    n = cfg.vec_bytes
    rows = args.rows or 2 * n
    report: dict = {"profile": cfg.name, "config": cfg.summary()}

    # ---- MXM ---------------------------------------------------------------------------
    t = time.perf_counter()
    prog, X, W, outs = gemm_tiles(cfg, args.tiles, rows)
    compile_s = time.perf_counter() - t
    model, res, model_s = run_model(prog)
    bank1 = cfg.bank_depth
    ref = np.einsum("jki,jil->jkl", X, W)
    C_model = gemm_result(model.read_mem, outs, args.tiles, rows, bank1)
    if not np.array_equal(C_model, ref) or res.err_flags:
        raise SystemExit(f"golden model GEMM result wrong (err_flags {res.err_flags:#x})")
    abc = sorted(t for t, p, mn in res.issue_log if mn == "ABC")
    first, last = abc[0], abc[-1] + rows - 1
    macs = args.tiles * rows * n * n
    mxm = {
        "tiles": args.tiles, "rows_per_tile": rows, "array": f"{n}x{n}", "macs": macs,
        "cycles_predicted": prog.predicted_cycles, "cycles_model": res.cycles,
        "steady_window": [first, last],
        "utilisation_steady": macs / (n * n * (last - first + 1)),
        "utilisation_program": macs / (n * n * res.cycles),
        "schedule_s": compile_s, "model_s": model_s,
    }
    if not args.no_rtl:
        reads = [(p, bank1 + j * rows + k) for j in range(args.tiles) for k in range(rows)
                 for p in outs]
        csr, vecs, rtl_s = run_rtl(prog, reads)
        C_rtl = gemm_result(lambda p, a: vecs[(p, a)], outs, args.tiles, rows, bank1)
        mxm.update(cycles_rtl=csr["CYCLES"], rtl_err_flags=csr["ERR_FLAGS"], rtl_s=rtl_s,
                   rtl_result_matches_numpy=bool(np.array_equal(C_rtl, ref)))
        if csr["CYCLES"] != res.cycles or not mxm["rtl_result_matches_numpy"]:
            raise SystemExit(f"RTL disagrees: {mxm}")
    if prog.predicted_cycles != res.cycles:
        raise SystemExit(f"predicted {prog.predicted_cycles} != model {res.cycles}")
    report["mxm"] = mxm

    # ---- SXM ---------------------------------------------------------------------------
    count = min(4 * n, cfg.bank_depth - 1)
    prog, V, perm, (f0, f1) = sxm_stream(cfg, count)
    model, res, _ = run_model(prog)
    got = np.stack([model.read_mem(cfg.position_index("MEM_W3"), bank1 + k)
                    for k in range(count)])
    if not np.array_equal(got, V[:, perm]) or res.err_flags:
        raise SystemExit("golden model SXM result wrong")
    sxm = {"vectors": count, "window": [f0, f1],
           "vectors_per_cycle": count / (f1 - f0 + 1),
           "bytes_per_cycle": count * n / (f1 - f0 + 1),
           "cycles_predicted": prog.predicted_cycles, "cycles_model": res.cycles}
    if not args.no_rtl:
        P = cfg.position_index("MEM_W3")
        csr, vecs, _ = run_rtl(prog, [(P, bank1 + k) for k in range(count)])
        ok = all(np.array_equal(vecs[(P, bank1 + k)], V[k, perm]) for k in range(count))
        sxm.update(cycles_rtl=csr["CYCLES"], rtl_result_ok=ok)
        if csr["CYCLES"] != res.cycles or not ok:
            raise SystemExit(f"RTL disagrees: {sxm}")
    report["sxm"] = sxm

    # ---- VXM ---------------------------------------------------------------------------
    if "vxm" in cfg.units:
        count = min(4 * n, cfg.bank_depth)
        prog, acc, (m, sh, zp), (f0, f1) = vxm_requant(cfg, count)
        model, res, _ = run_model(prog)
        out_p = cfg.position_index("MEM_E0")
        ref = requant_reference(acc, m, sh, zp)
        got = np.stack([model.read_mem(out_p, k).view(np.int8) for k in range(count)])
        if not np.array_equal(got, ref) or res.err_flags:
            raise SystemExit("golden model VXM requantisation wrong")
        vxm = {"vectors": count, "window": [f0, f1], "alu_stages": cfg.vxm_alus,
               "vectors_per_cycle": count / (f1 - f0 + 1),
               "lane_results_per_cycle": count * n / (f1 - f0 + 1),
               "alu_ops_per_cycle": count * n * 3 / (f1 - f0 + 1),
               "cycles_predicted": prog.predicted_cycles, "cycles_model": res.cycles}
        if not args.no_rtl:
            csr, vecs, _ = run_rtl(prog, [(out_p, k) for k in range(count)])
            ok = all(np.array_equal(vecs[(out_p, k)].view(np.int8), ref[k])
                     for k in range(count))
            vxm.update(cycles_rtl=csr["CYCLES"], rtl_result_ok=ok)
            if csr["CYCLES"] != res.cycles or not ok:
                raise SystemExit(f"RTL disagrees: {vxm}")
        report["vxm"] = vxm

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"units_{cfg.name}.json"
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"profile {cfg.name}: {n}x{n} MXM, {args.tiles} GEMM tiles of {rows} x {n} x {n}")
    print(f"  MXM utilisation: steady state {mxm['utilisation_steady']:.1%} "
          f"(cycles {first}..{last}), whole program {mxm['utilisation_program']:.1%} "
          f"({mxm['cycles_model']} cycles; predicted "
          f"{mxm['cycles_predicted']}" + (f", RTL {mxm['cycles_rtl']}" if 'cycles_rtl' in mxm
                                          else "") + ")")
    print(f"  SXM PERMUTE: {sxm['vectors_per_cycle']:.2f} vectors/cycle "
          f"({sxm['bytes_per_cycle']:.0f} bytes/cycle) over {count} vectors")
    if "vxm" in report:
        v = report["vxm"]
        print(f"  VXM requantisation (3 ALU ops + saturation per lane): "
              f"{v['vectors_per_cycle']:.2f} "
              f"vectors/cycle, {v['alu_ops_per_cycle']:.0f} ALU ops/cycle over {v['vectors']} "
              f"vectors")
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
