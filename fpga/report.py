# Utilisation/timing report of an FPGA build: parses Yosys's `stat` (JSON, or the text log as a
# fallback) and nextpnr's `--report` JSON (or its log, `<name>.tim`), and writes
# build/reports/fpga_<profile>.json plus a printed summary.
"""Parse Yosys/nextpnr outputs into one report dict; write it as JSON; format a summary."""
import json
import math
import re
from pathlib import Path

from tsp.config import TspConfig

__all__ = ["ReportError", "expected_mem_dp16kd", "format_summary", "make_report",
           "parse_nextpnr_log", "parse_nextpnr_report", "parse_yosys_log",
           "parse_yosys_stat_json", "write_report"]

#: DP16KD aspect ratios (depth, width) usable for a 1-read 1-write memory (pseudo-dual-port).
DP16KD_CONFIGS = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))
DP16KD_BITS = 18 * 1024
#: Words of the VXM's function ROM (EXP 4096 + TANH 2048 + RSQRT 1024 entries of 16 bits,
#: docs/vxm.md section 4); the RTL has one ROM per two lanes (one read port per lane).
VXM_ROM_WORDS, VXM_ROM_BITS = 4096 + 2048 + 1024, 16
#: The resources summarised (in this order).
KEY_RESOURCES = ("LUT4", "TRELLIS_FF", "DP16KD", "MULT18X18D")


class ReportError(ValueError):
    """A tool output file is missing or not in the expected format."""


def _blocks_for(depth: int, width: int) -> int:
    return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in DP16KD_CONFIGS)


def expected_mem_dp16kd(config: TspConfig) -> dict:
    """Block RAMs the MEM slices need: 2 banks x 2*mem_slices slices of bank_depth x vec_bits.

    `min_blocks` is the count with the best DP16KD aspect ratio per bank (what Yosys maps);
    `imem_max_blocks` the most the instruction memories (queue_depth x 32 per position) can add
    (they may also land in LUT RAM); `vxm_rom_blocks` what the VXM's function ROMs need (one
    7168 x 16 ROM per two lanes, 0 without a VXM); `bits_lower_bound` the bare capacity bound
    of the MEM banks.
    """
    banks = 2 * 2 * config.mem_slices
    per_bank = _blocks_for(config.bank_depth, config.vec_bits)
    mem_bits = banks * config.bank_depth * config.vec_bits
    return {
        "banks": banks,
        "blocks_per_bank": per_bank,
        "min_blocks": banks * per_bank,
        "imem_max_blocks": config.num_positions * _blocks_for(config.queue_depth, 32),
        "vxm_rom_blocks": (-(-config.vec_bytes // 2) * _blocks_for(VXM_ROM_WORDS, VXM_ROM_BITS)
                           if "vxm" in config.units else 0),
        "mem_bits": mem_bits,
        "bits_lower_bound": math.ceil(mem_bits / DP16KD_BITS),
    }


# ---- Yosys --------------------------------------------------------------------------------------

def parse_yosys_stat_json(path: Path) -> dict[str, int]:
    """Cell counts by type of the whole design from `stat -json` output."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReportError(f"Yosys statistics file {path} does not exist") from None
    except json.JSONDecodeError as e:
        raise ReportError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    design = data.get("design")
    if design is None:
        modules = data.get("modules", {})
        if len(modules) != 1:
            raise ReportError(f"{path}: no 'design' totals and {len(modules)} modules")
        design = next(iter(modules.values()))
    cells = design.get("num_cells_by_type")
    if not isinstance(cells, dict):
        raise ReportError(f"{path}: no 'num_cells_by_type' in the design statistics")
    return {k: int(v) for k, v in cells.items() if not k.startswith("$scopeinfo")}


_CELL_LINE = re.compile(r"^\s+(\d+)\s{3}([A-Za-z_$][\w$]*)\s*$")
_PASS_HEADER = re.compile(r"^\d+(\.\d+)*\. ")


def parse_yosys_log(path: Path) -> dict[str, int]:
    """Cell counts by type from the last `Printing statistics` block of a Yosys log."""
    path = Path(path)
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        raise ReportError(f"Yosys log {path} does not exist") from None
    starts = [i for i, line in enumerate(lines) if "Printing statistics" in line]
    if not starts:
        raise ReportError(f"{path}: no 'Printing statistics' block (did synthesis finish?)")
    block = []
    for line in lines[starts[-1] + 1:]:
        if _PASS_HEADER.match(line):
            break
        block.append(line)
    for i, line in enumerate(block):
        if "=== design hierarchy ===" in line:
            block = block[i:]
            break
    cells = {}
    for line in block:
        mt = _CELL_LINE.match(line)
        if mt and not mt.group(2).startswith("$scopeinfo"):
            cells[mt.group(2)] = int(mt.group(1))
    if not cells:
        raise ReportError(f"{path}:{starts[-1] + 1}: statistics block lists no cells")
    return cells


# ---- nextpnr ------------------------------------------------------------------------------------

def parse_nextpnr_report(path: Path) -> dict:
    """`{"utilisation": {bel: {"used", "available"}}, "fmax": {clock: {"achieved",
    "constraint"}}}` (MHz) from nextpnr's `--report` JSON."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReportError(f"nextpnr report {path} does not exist") from None
    except json.JSONDecodeError as e:
        raise ReportError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
    if "utilization" not in data or "fmax" not in data:
        raise ReportError(f"{path}: expected 'utilization' and 'fmax' keys, got {sorted(data)}")
    util = {k: {"used": int(v["used"]), "available": int(v["available"])}
            for k, v in data["utilization"].items()}
    fmax = {k: {"achieved": float(v["achieved"]), "constraint": float(v["constraint"])}
            for k, v in data["fmax"].items()}
    return {"utilisation": util, "fmax": fmax}


_UTIL_LINE = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%")
_FMAX_LINE = re.compile(
    r"^Info: Max frequency for clock\s+'([^']+)':\s+([\d.]+) MHz \((?:PASS|FAIL) at ([\d.]+) MHz\)")


def parse_nextpnr_log(path: Path) -> dict:
    """Same as `parse_nextpnr_report`, from nextpnr's log (`<name>.tim`): the last
    'Device utilisation' table and the last 'Max frequency' line of each clock (post-route)."""
    path = Path(path)
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        raise ReportError(f"nextpnr log {path} does not exist") from None
    util, fmax = {}, {}
    for line in lines:
        mu = _UTIL_LINE.match(line)
        if mu:
            util[mu.group(1)] = {"used": int(mu.group(2)), "available": int(mu.group(3))}
        mf = _FMAX_LINE.match(line)
        if mf:
            fmax[mf.group(1)] = {"achieved": float(mf.group(2)),
                                 "constraint": float(mf.group(3))}
    if not util:
        raise ReportError(f"{path}: no 'Device utilisation' lines (did placement run?)")
    return {"utilisation": util, "fmax": fmax}


# ---- report -------------------------------------------------------------------------------------

def _resource(used: int, total: int | None) -> dict:
    pct = round(100.0 * used / total, 2) if total else None
    return {"used": used, "total": total, "percent": pct}


def make_report(*, config: TspConfig, board: str, device: str, totals: dict,
                synth_cells: dict[str, int], pnr: dict | None = None,
                wall_time_s: dict | None = None, clock_mhz: float | None = None) -> dict:
    """Assemble the report dict.

    From synthesis alone, "LUT4" counts LUT4 cells plus two per CCU2C carry cell (the LUT4s of
    the slice it occupies); after place and route it is nextpnr's TRELLIS_COMB count.
    """
    res = {
        "LUT4": synth_cells.get("LUT4", 0) + 2 * synth_cells.get("CCU2C", 0),
        "TRELLIS_FF": synth_cells.get("TRELLIS_FF", 0),
        "DP16KD": synth_cells.get("DP16KD", 0),
        "MULT18X18D": synth_cells.get("MULT18X18D", 0),
    }
    tot = {k: totals.get(k) for k in KEY_RESOURCES}
    fmax = {}
    if pnr is not None:
        util = pnr["utilisation"]
        for key, bel in (("LUT4", "TRELLIS_COMB"), ("TRELLIS_FF", "TRELLIS_FF"),
                         ("DP16KD", "DP16KD"), ("MULT18X18D", "MULT18X18D")):
            if bel in util:
                res[key] = util[bel]["used"]
                tot[key] = util[bel]["available"]
        for clk, f in pnr["fmax"].items():
            fmax[clk] = {"achieved_mhz": round(f["achieved"], 2),
                         "constraint_mhz": round(f["constraint"], 2),
                         "pass": f["achieved"] >= f["constraint"]}
    return {
        "profile": config.name,
        "board": board,
        "device": device,
        "flow": "place-and-route" if pnr is not None else "synth-only",
        "clock_mhz": clock_mhz,
        "resources": {k: _resource(res[k], tot[k]) for k in KEY_RESOURCES},
        "fmax": fmax,
        "expected_mem_dp16kd": expected_mem_dp16kd(config),
        "synth_cells": dict(sorted(synth_cells.items())),
        "pnr_utilisation": pnr["utilisation"] if pnr is not None else None,
        "wall_time_s": wall_time_s or {},
        "config": config.summary(),
    }


def write_report(report: dict, path: Path) -> Path:
    """Write `report` as indented JSON to `path` (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


def format_summary(report: dict) -> str:
    """A short human-readable table of the report."""
    head = (f"FPGA {report['flow']}: profile {report['profile']}, board {report['board']} "
            f"({report['device']})")
    lines = [head]
    for key, r in report["resources"].items():
        total = f"/ {r['total']:6d}  {r['percent']:6.2f}%" if r["total"] else ""
        lines.append(f"  {key:11s} {r['used']:7d} {total}")
    exp = report["expected_mem_dp16kd"]
    lines.append(f"  MEM banks need >= {exp['min_blocks']} DP16KD "
                 f"({exp['banks']} banks x {exp['blocks_per_bank']})")
    if exp.get("vxm_rom_blocks"):
        lines.append(f"  VXM function ROMs need {exp['vxm_rom_blocks']} DP16KD")
    for clk, f in report["fmax"].items():
        verdict = "PASS" if f["pass"] else "FAIL"
        lines.append(f"  Fmax {clk}: {f['achieved_mhz']:.2f} MHz "
                     f"({verdict} at {f['constraint_mhz']:.2f} MHz)")
    if report["wall_time_s"]:
        lines.append("  wall time: " + ", ".join(
            f"{k} {v:.1f} s" for k, v in report["wall_time_s"].items()))
    return "\n".join(lines)
