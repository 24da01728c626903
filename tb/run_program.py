# cocotb test module behind tb/runner.py `run_rtl`: runs a sequence of assembled programs on the
# top through the AXI4-Lite host port and writes the counters and requested MEM words to a file.
"""cocotb test `run_programs`: job file in, result file out (both JSON).

Environment:
  TSP_JOB     path of the job file written by `tb.runner.run_rtl`:
              {"profile": str, "keep_going": bool,
               "programs": [{"queues": {"<pos>": [word, ...]},
                             "data": [[pos, addr, "hex"], ...], "timeout_cycles": int}, ...],
               "reads": [[pos, addr], ...]}
  TSP_RESULT  path of the result file written here:
              {"runs": [{"cycles", "status", "err_flags", "err_where", "err_cycle"}, ...],
               "mem": [[pos, addr, "hex"], ...], "seconds": float}

Programs run in order on one instance: each is loaded (its queues, each followed by a HALT
when there is room, and its data words), started, and waited for; MEM (and the compute units'
state) carries over from one program to the next because START clears neither. After an error
flag the remaining programs are skipped unless `keep_going`. The requested words are read after
the last program that ran.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import cocotb

from tb.harness import TspTB
from tsp.config import TspConfig


def _env_path(name: str) -> Path:
    raw = os.environ.get(name, "")
    if not raw:
        raise RuntimeError(f"environment variable {name} is not set (tb/run_program.py is run by "
                           "tb.runner.run_rtl, which sets it)")
    return Path(raw)


def _program(entry: dict, index: int) -> SimpleNamespace:
    """The job's program `index` as the duck-typed object `TspTB.load_program` takes."""
    try:
        queues = {int(p): [int(w) for w in words] for p, words in entry["queues"].items()}
        data = [(int(p), int(a), bytes.fromhex(h)) for p, a, h in entry["data"]]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"job file: program {index} is malformed ({e})") from None
    return SimpleNamespace(queues=queues, data=data)


def _runs(reads: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """Requested words coalesced into (position, first address, count) runs."""
    out: list[list[int]] = []
    for pos, addr in sorted(set(reads)):
        if out and out[-1][0] == pos and out[-1][1] + out[-1][2] == addr:
            out[-1][2] += 1
        else:
            out.append([pos, addr, 1])
    return [(p, a, n) for p, a, n in out]


@cocotb.test()
async def run_programs(dut):
    """Run the job's programs in order; record CYCLES and the ERR_* CSRs; read MEM words."""
    job = json.loads(_env_path("TSP_JOB").read_text())
    result_path = _env_path("TSP_RESULT")
    cfg = TspConfig.profile(job["profile"])
    tb = TspTB(dut, cfg)
    await tb.init()
    t0 = time.monotonic()
    runs = []
    for i, entry in enumerate(job["programs"]):
        await tb.load_program(_program(entry, i))
        hw = await tb.run(timeout_cycles=int(entry["timeout_cycles"]))
        runs.append({"cycles": hw.cycles, "status": hw.status, "err_flags": hw.err_flags,
                     "err_where": hw.err_where, "err_cycle": hw.err_cycle})
        dut._log.info("program %d: CYCLES=%d ERR_FLAGS=%#x ERR_WHERE=%#x ERR_CYCLE=%d", i,
                      hw.cycles, hw.err_flags, hw.err_where, hw.err_cycle)
        if hw.err_flags and not job.get("keep_going", False):
            dut._log.warning("program %d raised ERR_FLAGS=%#x: the %d later program(s) are "
                             "skipped (keep_going is off)", i, hw.err_flags,
                             len(job["programs"]) - i - 1)
            break
    mem = []
    for pos, addr, count in _runs([(int(p), int(a)) for p, a in job["reads"]]):
        words = await tb.read_mem(pos, addr, count)
        mem.extend([pos, addr + k, words[k].tobytes().hex()] for k in range(count))
    tmp = result_path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"runs": runs, "mem": mem, "seconds": time.monotonic() - t0}))
    tmp.replace(result_path)
