"""`python -m hdl.build`: the main job. Files, summary contents, --help, and a clear error."""
import json
import subprocess
import sys
from pathlib import Path

from hdl.build import main, units_line
from tsp.config import TspConfig

ROOT = Path(__file__).resolve().parents[1]


def test_build_writes_verilog_and_summary(tmp_path, capsys):
    assert main(["--profile", "tiny", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "profile 'tiny'" in out
    assert "units       : MEM (placeholder positions: MXM, SXM, VXM)" in out
    v = tmp_path / "tiny" / "tsp_top.v"
    text = v.read_text()
    assert "module tsp_top(" in text
    summary = json.loads((tmp_path / "tiny" / "tsp_top_summary.json").read_text())
    ports = {p["name"]: p for p in summary["ports"]}
    assert ports["s_axil__awaddr"] == {"name": "s_axil__awaddr", "dir": "input", "width": 32}
    assert ports["s_axil__rdata"]["dir"] == "output" and ports["irq_done"]["width"] == 1
    assert "dbg_east" not in ports                      # debug ports only with --debug
    assert len(summary["memories"]["mem_banks"]) == 4   # 2 x 2 MEM slices in tiny
    assert summary["windows"]["mem"]["MEM_W1"] == hex(0x100000 + 2 * 0x200)
    assert summary["csr"]["CYCLES"] == "0x18"


def test_build_help_and_bad_profile():
    run = [sys.executable, "-m", "hdl.build"]
    h = subprocess.run(run + ["--help"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert h.returncode == 0 and "--profile" in h.stdout and "--out" in h.stdout
    bad = subprocess.run(run + ["--profile", "huge"], cwd=ROOT, capture_output=True, text=True,
                         check=False)
    assert bad.returncode == 2
    assert "error: unknown profile 'huge'; known profiles:" in bad.stderr
    assert "Traceback" not in bad.stderr
    blocked = subprocess.run(run + ["--profile", "tiny", "--out", "/proc/no-such-dir"], cwd=ROOT,
                             capture_output=True, text=True, check=False)
    assert blocked.returncode == 1 and "error: cannot write the output directory" in blocked.stderr
    assert "Traceback" not in blocked.stderr


def test_units_line_names_only_missing_units():
    assert units_line(TspConfig.profile("default")) == "MEM, MXM, SXM, VXM"
    assert units_line(TspConfig.profile("default").replace(units=("mxm",))) == (
        "MEM, MXM (placeholder positions: SXM, VXM)")
