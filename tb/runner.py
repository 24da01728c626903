# Python API that runs assembled programs on the RTL (Icarus or Verilator through cocotb),
# loading them through the AXI4-Lite host port: the RTL backend of the compiler (tspc/).
"""`run_rtl`: run one `asm.Program`, or a sequence of them, on the simulated top.

    from tb.runner import run_rtl
    r = run_rtl([prog1, prog2], reads=[(5, 0), (5, 1)], sim="verilator")
    r.cycles, r.err_flags, r.mem[(5, 0)]      # [T1, T2], [0, 0], uint8 (vec_bytes,)

The simulator build (tb/simbuild.py) is cached per process and on disk under build/sim/; the
cocotb test that runs the programs is tb/run_program.py. See docs/simulation.md, "Running a
program on the RTL from Python".
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from asm.program import Program
from tb.simbuild import ROOT, SIMS, TOPLEVEL, SimulatorError, build_sim
from tsp.config import PROFILES, TspConfig

__all__ = ["RtlRun", "RtlRunError", "SimulatorError", "run_rtl"]

RUNS_DIR = ROOT / "build" / "sim" / "runs"
_KEEP_RUNS = 50            # default work folders kept (older than an hour beyond these: removed)
_TEST = "run_programs"


class RtlRunError(RuntimeError):
    """The simulation did not complete (or its cocotb test failed); `log` is the full log."""

    def __init__(self, message: str, log: Path | None = None) -> None:
        super().__init__(message)
        self.log = log


@dataclass
class RtlRun:
    """Result of `run_rtl`. Per-program lists have one entry per program that ran: fewer than
    the programs given when one raised an error flag and `keep_going` was off."""

    cycles: list[int]                    # CYCLES of each program
    total_cycles: int                    # sum of `cycles`
    err_flags: list[int]                 # ERR_FLAGS of each program (0: no error)
    err_where: list[int]                 # ERR_WHERE (bits 15:0 position, 23:16 flag bit)
    err_cycle: list[int]                 # ERR_CYCLE
    mem: dict[tuple[int, int], np.ndarray]   # (position, addr) -> uint8 (vec_bytes,)
    wave_file: Path | None               # FST (or Verilator VCD) file when waves=True
    seconds: float                       # wall time of the simulation (not the build)
    log: Path                            # the simulator's log
    sim: str = "icarus"
    profile: str = ""
    build_seconds: float = 0.0           # wall time of build_sim (about 0 when cached)
    status: list[int] = field(default_factory=list)   # STATUS after each program
    workdir: Path | None = None          # job, result, log and wave files

    @property
    def programs_run(self) -> int:
        """How many programs ran."""
        return len(self.cycles)

    @property
    def ok(self) -> bool:
        """No program raised an error flag."""
        return not any(self.err_flags)


# ---- input checks -----------------------------------------------------------------------------
def _programs(programs: Program | Sequence[Program]) -> list[Program]:
    progs = [programs] if isinstance(programs, Program) else list(programs)
    if not progs:
        raise ValueError("run_rtl: `programs` is empty; give an asm.Program or a list of them")
    for i, p in enumerate(progs):
        if not isinstance(p, Program):
            raise TypeError(f"run_rtl: programs[{i}] is a {type(p).__name__}, not an "
                            "asm.Program")
    cfg = progs[0].config
    for i, p in enumerate(progs[1:], 1):
        if p.config != cfg:
            raise ValueError(f"run_rtl: programs[{i}] ({p.filename}) has config "
                             f"{p.config.name!r} {p.config}, which differs from programs[0]'s "
                             f"{cfg.name!r} {cfg}; all programs must share one config")
    if cfg.name not in PROFILES or PROFILES[cfg.name] != cfg:
        raise ValueError(f"run_rtl: the programs' config {cfg.name!r} is not a named profile "
                         f"(tsp.config.PROFILES: {', '.join(PROFILES)}); the RTL is built per "
                         "named profile")
    for i, p in enumerate(progs):
        _check_program(p, i, cfg)
    return progs


def _check_program(p: Program, i: int, cfg: TspConfig) -> None:
    for pos, words in p.queues.items():
        if not 0 <= pos < cfg.num_positions:
            raise ValueError(f"run_rtl: programs[{i}] has a queue at position {pos}, outside "
                             f"0..{cfg.num_positions - 1}")
        if len(words) > cfg.queue_depth:
            raise ValueError(f"run_rtl: programs[{i}] queue {cfg.positions[pos]} has "
                             f"{len(words)} words, more than queue_depth={cfg.queue_depth}")
    for k, (pos, addr, blob) in enumerate(p.data):
        _check_word(pos, addr, cfg, f"programs[{i}].data[{k}]")
        if len(blob) != cfg.vec_bytes:
            raise ValueError(f"run_rtl: programs[{i}].data[{k}] has {len(blob)} bytes, "
                             f"expected vec_bytes={cfg.vec_bytes}")


def _check_word(pos: object, addr: object, cfg: TspConfig, where: str) -> tuple[int, int]:
    if isinstance(pos, str):
        try:
            pos = cfg.position_index(pos)
        except ValueError as e:
            raise ValueError(f"run_rtl: {where}: {e}") from None
    if isinstance(pos, bool) or not isinstance(pos, (int, np.integer)) \
            or int(pos) not in cfg.mem_positions:
        raise ValueError(f"run_rtl: {where}: position {pos!r} is not a MEM slice of profile "
                         f"{cfg.name!r}; MEM slices are at {list(cfg.mem_positions)} "
                         f"({', '.join(cfg.positions[q] for q in cfg.mem_positions)})")
    if isinstance(addr, bool) or not isinstance(addr, (int, np.integer)) \
            or not 0 <= addr < cfg.slice_words:
        raise ValueError(f"run_rtl: {where}: address {addr!r} outside 0..{cfg.slice_words - 1}")
    return int(pos), int(addr)


def _reads(reads: Sequence[tuple[int, int]], cfg: TspConfig) -> list[tuple[int, int]]:
    out = []
    for i, r in enumerate(reads):
        try:
            pos, addr = r
        except (TypeError, ValueError):
            raise ValueError(f"run_rtl: reads[{i}] = {r!r} is not a (position, addr) "
                             "pair") from None
        out.append(_check_word(pos, addr, cfg, f"reads[{i}]"))
    return out


# ---- the run ----------------------------------------------------------------------------------
def _timeout(p: Program, timeout_cycles: int | None) -> int:
    if timeout_cycles is not None:
        return int(timeout_cycles)
    if p.predicted_cycles is None:
        return 1_000_000
    return 4 * p.predicted_cycles + 10_000


def _job(progs: list[Program], reads: list[tuple[int, int]], keep_going: bool,
         timeout_cycles: int | None) -> dict:
    return {
        "profile": progs[0].config.name,
        "keep_going": bool(keep_going),
        "programs": [{"queues": {str(pos): [int(w) for w in words]
                                 for pos, words in p.queues.items()},
                      "data": [[pos, addr, bytes(blob).hex()] for pos, addr, blob in p.data],
                      "timeout_cycles": _timeout(p, timeout_cycles)} for p in progs],
        "reads": [[pos, addr] for pos, addr in reads],
    }


@contextmanager
def _run_env(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables and put the project root on sys.path (cocotb's runner builds
    the simulator's environment from os.environ, which overrides its extra_env, and sets
    PYTHONPATH from sys.path) for the duration of one run."""
    saved = {k: os.environ.get(k) for k in values}
    added = str(ROOT) not in sys.path
    os.environ.update(values)
    if added:
        sys.path.insert(0, str(ROOT))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if added and str(ROOT) in sys.path:
            sys.path.remove(str(ROOT))


def _new_workdir(sim: str, profile: str) -> Path:
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    _prune(RUNS_DIR)
    return Path(tempfile.mkdtemp(prefix=f"{sim}-{profile}-{time.strftime('%Y%m%d-%H%M%S')}-",
                                 dir=RUNS_DIR))


def _prune(runs_dir: Path) -> None:
    """Remove default work folders older than an hour beyond the newest `_KEEP_RUNS`."""
    try:
        dirs = sorted((d for d in runs_dir.iterdir() if d.is_dir()),
                      key=lambda d: d.stat().st_mtime, reverse=True)
    except OSError:
        return
    now = time.time()
    for d in dirs[_KEEP_RUNS:]:
        try:
            if now - d.stat().st_mtime > 3600:
                shutil.rmtree(d, ignore_errors=True)
        except OSError:
            pass


def _tail(log: Path, n: int = 4000) -> str:
    return log.read_text(errors="replace")[-n:] if log.exists() else "(no log written)"


def _failures(results: Path) -> list[str]:
    """Failure messages of the results XML (empty when the test passed)."""
    out = []
    for case in ET.parse(results).getroot().iter("testcase"):
        for tag in ("failure", "error"):
            el = case.find(tag)
            if el is not None:
                out.append(f"{case.get('name')}: {el.get('message', '')} {el.text or ''}".strip())
    return out


def run_rtl(programs: Program | Sequence[Program], reads: Sequence[tuple[int, int]],
            sim: str = "icarus", waves: bool = False, workdir: str | Path | None = None, *,
            keep_going: bool = False, timeout_cycles: int | None = None) -> RtlRun:
    """Run `programs` in order on the RTL of their profile in `sim` ("icarus" or "verilator").

    Each program's data words and queues are written through the AXI4-Lite host port, then
    START, wait for done, read CYCLES and the ERR_* CSRs. MEM and the compute units' state
    persist from one program to the next. After the last program that ran, the MEM words
    `reads` [(position, addr)] (position an index or a name such as "MEM_E0") are read back.
    After a program that raises an error flag, the later ones are skipped unless `keep_going`.

    `waves`: also dump an FST waveform (separate build, build/sim/<sim>-<profile>-waves/).
    `workdir`: folder for the job, result, log and wave files (default: a new folder under
    build/sim/runs/). `timeout_cycles`: per-program limit (default 4 x predicted + 10000, or
    1000000 when the prediction is unknown).

    Raises ValueError/TypeError for bad input (before anything is built), `SimulatorError`
    when the simulator is missing or its build fails, `RtlRunError` (with the log tail) when
    the simulation does not complete.
    """
    if sim not in SIMS:
        raise ValueError(f"run_rtl: unknown simulator {sim!r}; known: {', '.join(SIMS)}")
    progs = _programs(programs)
    cfg = progs[0].config
    words = _reads(reads, cfg)
    t0 = time.monotonic()
    runner, build_dir = build_sim(sim, cfg.name, waves=waves)
    build_seconds = time.monotonic() - t0
    work = Path(workdir).resolve() if workdir is not None else _new_workdir(sim, cfg.name)
    work.mkdir(parents=True, exist_ok=True)
    job, result, log = work / "job.json", work / "result.json", work / "sim.log"
    results_xml = work / "results.xml"
    # Icarus: FST where the +dumpfile_path plusarg says; Verilator: dump.fst (or dump.vcd
    # when built with VCD tracing, see tb.simbuild.verilator_wave_format) in the run folder.
    waves_at = [work / f"{TOPLEVEL}.fst"] if sim == "icarus" else [work / "dump.fst",
                                                                    work / "dump.vcd"]
    for f in (result, results_xml, *waves_at):
        if f.exists():
            f.unlink()
    job.write_text(json.dumps(_job(progs, words, keep_going, timeout_cycles)))
    plusargs = [f"+dumpfile_path={waves_at[0]}"] if waves and sim == "icarus" else []
    t0 = time.monotonic()
    problem = None
    with _run_env({"TSP_JOB": str(job), "TSP_RESULT": str(result), "TSP_PROFILE": cfg.name}):
        try:
            runner.test(test_module="tb.run_program", hdl_toplevel=TOPLEVEL,
                        hdl_toplevel_lang="verilog", testcase=_TEST, build_dir=build_dir,
                        test_dir=work, results_xml=str(results_xml), waves=waves,
                        plusargs=plusargs, log_file=log,
                        timescale=("1ns", "1ps") if sim == "icarus" else None)
        except (SystemExit, OSError, RuntimeError, ValueError) as e:  # runner: SystemExit
            problem = f"the simulator exited with an error ({e!r})"
    seconds = time.monotonic() - t0
    if problem is None and results_xml.exists():
        fails = _failures(results_xml)
        if fails:
            problem = "the cocotb test failed: " + "; ".join(fails)[:2000]
    if problem is None and not result.exists():
        problem = "no result file was written"
    if problem is not None:
        raise RtlRunError(f"run_rtl on {sim}/{cfg.name} ({len(progs)} program(s)): {problem}; "
                          f"log {log}:\n{_tail(log)}", log)
    data = json.loads(result.read_text())
    runs = data["runs"]
    mem = {(pos, addr): np.frombuffer(bytes.fromhex(h), dtype=np.uint8).copy()
           for pos, addr, h in data["mem"]}
    cycles = [r["cycles"] for r in runs]
    return RtlRun(cycles=cycles, total_cycles=sum(cycles),
                  err_flags=[r["err_flags"] for r in runs],
                  err_where=[r["err_where"] for r in runs],
                  err_cycle=[r["err_cycle"] for r in runs], mem=mem,
                  wave_file=next((f for f in waves_at if f.exists()), None) if waves else None,
                  seconds=seconds, log=log, sim=sim, profile=cfg.name,
                  build_seconds=build_seconds, status=[r["status"] for r in runs], workdir=work)
