"""cocotb integration tests of the whole top (tb/test_top.py) on Icarus and Verilator.

One simulator build per (simulator, profile) per session, from the debug Verilog of
`hdl.build.emit_verilog`, under build/sim/<sim>-<profile>/. Options (see docs/simulation.md):
--sim, --profile, --seed, --programs, --waves (or TSP_SIM, TSP_PROFILES, TSP_SEED, TSP_PROGRAMS,
TSP_WAVES). Both simulators are required: a missing one fails the run with a message.
"""
from __future__ import annotations

import os
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tb import simbuild
from tb.simbuild import SimulatorError

ROOT = Path(__file__).resolve().parents[1]
SIMS = ("icarus", "verilator")
# Host-port tests and random MEM programs run on `tiny` and `default` (the ECP5-85F target: 4
# lanes, every unit); the random unit programs and the chain run on `full` (the 8-lane slice with
# every unit) and on `default` (the same units at 4 lanes).
PROFILES = ("tiny", "default")
UNIT_PROFILES = ("full", "default")
# Random programs per (simulator, profile) in a full run: 220 in all. Per program, Icarus costs
# about 0.7 s (tiny) and 3 s (8 lanes); Verilator about 0.15 s and 2 s after its build.
PLAN = {("icarus", "tiny"): 70, ("icarus", "default"): 30,
        ("verilator", "tiny"): 80, ("verilator", "default"): 40}
# Random MXM/SXM/VXM programs (tb/randunits.py) per simulator, on the profiles that have units.
UNIT_PLAN = {"icarus": 40, "verilator": 40}
HOST_TESTS = ["csr_identity", "unmapped_decerr", "write_errors_slverr", "busy_slverr",
              "error_flags"]


def _selected(config: pytest.Config, opt: str, env: str, default: tuple[str, ...]) -> list[str]:
    val = config.getoption(opt)
    if val:
        return list(val)
    raw = os.environ.get(env, "")
    return [v for v in re.split(r"[,\s]+", raw) if v] or list(default)


def _waves(config: pytest.Config) -> bool:
    return bool(config.getoption("--waves")) or os.environ.get("TSP_WAVES", "") not in ("", "0")


def check_simulator(sim: str) -> str:
    """Fail (not skip) with a clear message when `sim` is missing or too old; return version."""
    try:
        return simbuild.check_simulator(sim)
    except SimulatorError as e:
        pytest.fail(str(e), pytrace=False)


class SimBuilds:
    """Session view of tb.simbuild: one simulator build per (sim, profile), with timings."""

    def __init__(self, waves: bool):
        self.waves = waves
        self.timings: dict[str, float] = {}

    def build(self, sim: str, profile: str) -> tuple[object, Path]:
        """(runner, build dir) of (sim, profile), building it on first use."""
        check_simulator(sim)
        try:
            built = simbuild.build_sim(sim, profile, waves=self.waves)
        except SimulatorError as e:
            pytest.fail(str(e), pytrace=False)
        self.timings.update(simbuild.TIMINGS)
        return built


@pytest.fixture(scope="session")
def sim_builds(request: pytest.FixtureRequest) -> SimBuilds:
    builds = SimBuilds(_waves(request.config))
    yield builds
    if builds.timings:
        print("\nsimulation build timings: " + ", ".join(
            f"{k} {v:.1f}s" for k, v in builds.timings.items()))


def run_cocotb(sim_builds: SimBuilds, sim: str, profile: str, testcases: list[str],
               env: dict[str, str], name: str) -> dict[str, str]:
    """Run `testcases` of tb/test_top.py on a (sim, profile) build; fail with the log tail."""
    runner, build_dir = sim_builds.build(sim, profile)
    test_dir = build_dir / f"run-{name}"
    test_dir.mkdir(parents=True, exist_ok=True)
    results = test_dir / "results.xml"
    if results.exists():
        results.unlink()
    log = test_dir / "sim.log"
    full_env = {"TSP_PROFILE": profile,
                "PYTHONPATH": os.pathsep.join([str(ROOT)] + (
                    [os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
    full_env.update(env)
    try:
        runner.test(test_module="tb.test_top", hdl_toplevel="tsp_top", testcase=testcases,
                    hdl_toplevel_lang="verilog",
                    build_dir=build_dir, test_dir=test_dir, results_xml=str(results),
                    extra_env=full_env, waves=sim_builds.waves, log_file=log,
                    timescale=("1ns", "1ps") if sim == "icarus" else None)
    except (SystemExit, OSError, RuntimeError, ValueError) as e:
        tail = log.read_text()[-4000:] if log.exists() else ""
        pytest.fail(f"{sim}/{profile}: simulation did not complete ({e}); log {log}:\n{tail}",
                    pytrace=False)
    outcomes = _outcomes(results)
    missing = [t for t in testcases if t not in outcomes]
    bad = {t: o for t, o in outcomes.items() if o != "passed"}
    if missing or bad:
        text = log.read_text() if log.exists() else ""
        lines = [ln for ln in text.splitlines() if "Error" in ln or "assert" in ln.lower()
                 or "FAIL" in ln or "seed" in ln]
        pytest.fail(f"{sim}/{profile}: failed {bad or ''} missing {missing or ''}; full log "
                    f"{log}\n" + "\n".join(lines[-40:]) + "\n--- log tail ---\n"
                    + text[-3000:], pytrace=False)
    return outcomes


def _outcomes(results: Path) -> dict[str, str]:
    if not results.exists():
        return {}
    out = {}
    for case in ET.parse(results).getroot().iter("testcase"):
        name = case.get("name", "")
        failed = case.find("failure") is not None or case.find("error") is not None
        skipped = case.find("skipped") is not None
        out[name] = "failed" if failed else "skipped" if skipped else "passed"
    return out


def _check_selected(request: pytest.FixtureRequest, sim: str, profile: str) -> None:
    cfg = request.config
    if sim not in _selected(cfg, "--sim", "TSP_SIM", SIMS):
        pytest.skip(f"simulator {sim} not selected (--sim / TSP_SIM)")
    if profile not in _selected(cfg, "--profile", "TSP_PROFILES", PROFILES + UNIT_PROFILES):
        pytest.skip(f"profile {profile} not selected (--profile / TSP_PROFILES)")


@pytest.mark.parametrize("sim", SIMS)
def test_simulators_present(sim: str) -> None:
    """Both simulators must be installed: fail loudly, never skip."""
    check_simulator(sim)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("sim", SIMS)
def test_host_port(request: pytest.FixtureRequest, sim_builds: SimBuilds, sim: str,
                   profile: str) -> None:
    """CSRs, DECERR/SLVERR rules and the hardware error flags through the AXI4-Lite port."""
    _check_selected(request, sim, profile)
    run_cocotb(sim_builds, sim, profile, HOST_TESTS, {}, "host")


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("sim", SIMS)
def test_random_programs(request: pytest.FixtureRequest, sim_builds: SimBuilds, sim: str,
                         profile: str) -> None:
    """Random valid programs: memories, CYCLES and stream traces equal the golden model's."""
    _check_selected(request, sim, profile)
    cfg = request.config
    count = cfg.getoption("--programs") or int(os.environ.get("TSP_PROGRAMS", "0") or 0) \
        or PLAN[(sim, profile)]
    seed = cfg.getoption("--seed")
    if seed is None:
        seed = int(os.environ.get("TSP_SEED", "1") or 1)
    # different simulators and profiles get different programs from one base seed
    base = seed * 10 + SIMS.index(sim) * 2 + PROFILES.index(profile)
    env = {"TSP_PROGRAMS": str(count), "TSP_SEED": str(base), "TSP_TRACE_EVERY": os.environ.get("TSP_TRACE_EVERY", "4")}
    t0 = time.monotonic()
    run_cocotb(sim_builds, sim, profile, ["random_programs"], env, "random")
    dt = time.monotonic() - t0
    print(f"\n{sim}/{profile}: {count} random programs (TSP_SEED={base}) in {dt:.1f}s "
          f"({count / dt:.2f} programs/s)")


def _units_profiles() -> list[str]:
    from tsp.config import TspConfig
    return [p for p in UNIT_PROFILES if {"mxm", "sxm"} & set(TspConfig.profile(p).units)]


def _seed(config: pytest.Config) -> int:
    seed = config.getoption("--seed")
    return int(os.environ.get("TSP_SEED", "1") or 1) if seed is None else seed


@pytest.mark.parametrize("profile", _units_profiles())
@pytest.mark.parametrize("sim", SIMS)
def test_unit_programs(request: pytest.FixtureRequest, sim_builds: SimBuilds, sim: str,
                       profile: str) -> None:
    """Random MXM/SXM/VXM programs: memories, CYCLES, error flags (BAD_MAP, ILLEGAL) and
    stream traces equal the golden model's; every MXM, SXM and VXM instruction (VXM: every
    operation, function, type and sat mode) is covered."""
    _check_selected(request, sim, profile)
    cfg = request.config
    count = cfg.getoption("--programs") or int(os.environ.get("TSP_PROGRAMS", "0") or 0) \
        or UNIT_PLAN[sim]
    base = _seed(cfg) * 10 + SIMS.index(sim) * 2 + UNIT_PROFILES.index(profile)
    env = {"TSP_PROGRAMS": str(count), "TSP_SEED": str(base),
           "TSP_TRACE_EVERY": os.environ.get("TSP_TRACE_EVERY", "4"),
           "TSP_VXM_SKIP": os.environ.get("TSP_VXM_SKIP", "")}
    if env["TSP_VXM_SKIP"]:
        print(f"\n{sim}/{profile}: TSP_VXM_SKIP={env['TSP_VXM_SKIP']}: these VXM features are "
              f"left out of the unit programs")
    t0 = time.monotonic()
    run_cocotb(sim_builds, sim, profile, ["unit_programs"], env, "units")
    dt = time.monotonic() - t0
    print(f"\n{sim}/{profile}: {count} unit programs (TSP_SEED={base}) in {dt:.1f}s")


@pytest.mark.parametrize("profile", _units_profiles())
@pytest.mark.parametrize("sim", SIMS)
def test_chain(request: pytest.FixtureRequest, sim_builds: SimBuilds, sim: str,
               profile: str) -> None:
    """MEM -> SXM -> MXM (-> VXM requantisation) -> MEM on both hemispheres: results equal an
    independent numpy / plain-Python computation and the golden model (memories, CYCLES)."""
    _check_selected(request, sim, profile)
    env = {"TSP_SEED": str(_seed(request.config))}
    t0 = time.monotonic()
    run_cocotb(sim_builds, sim, profile, ["chain"], env, "chain")
    print(f"\n{sim}/{profile}: chain test in {time.monotonic() - t0:.1f}s")


# ---- the generators against the golden model (no simulator: fast) -----------------------------
def test_requantize_reference_by_hand() -> None:
    """tb.randunits.requantize_ref on values computed by hand from docs/vxm.md section 3."""
    import numpy as np

    from tb.randunits import requantize_ref
    half = 1 << 30                                          # m = 2^30: M0 = 0.5
    cases = [  # (acc, bias, m, s, z, expected int8)
        (1000, 0, half, 2, 3, 127),      # 500 -> 125 -> 128, saturated to 127
        (-1001, 0, half, 2, 3, -122),    # -500.5 -> -500 (tie up) -> -125 -> -122
        (1, 0, half, 1, 0, 1),           # 0.5 -> 1 (tie up), 1/2 -> 1 (tie away from zero)
        (-6, 0, half, 1, 0, -2),         # -3 -> -1.5 -> -2 (tie away from zero)
        (-255, 0, half, 0, 0, -127),     # -127.5 -> -127 (SRDHM tie toward +inf)
        (90, 10, half, 1, -5, 20),       # bias: 100 -> 50 -> 25 -> 20
        (2**31 - 1, 0, 2**31 - 1, 0, 127, 127),   # ADDS saturates at int32, then int8
        (-2**31, 0, -2**31, 0, 0, 127),  # SRDHM(-2^31, -2^31) = 2^31 - 1
    ]
    for acc, bias, m, s, z, want in cases:
        got = requantize_ref(np.array([[acc]]), np.array([bias]), m, s, z)[0, 0]
        assert got == want, f"requantize_ref({acc} + {bias}, m={m}, s={s}, z={z}) = {got}"


def test_unit_programs_match_model_expectations() -> None:
    """Random unit programs on `full` run on the golden model with exactly the errors the
    generator expects (BAD_MAP, ILLEGAL at the patched VCFG; RANGE from data-dependent shift
    amounts allowed on top, `UnitProgram.err_problem`) and the predicted cycle count,
    and 40 of them cover every VXM item (so the cocotb runs can only fail on the hardware)."""
    from tb.randunits import random_unit_program, vxm_coverage_wanted
    from tb.test_top import run_model
    from tsp.config import TspConfig
    cfg = TspConfig.profile("full")
    covered: set[str] = set()
    for i in range(40):
        up = random_unit_program(cfg, 11 * 100_003 + i)
        _, res = run_model(cfg, up.program.queues, up.program.data, trace=False)
        why = up.err_problem(res.err_flags, res.err_position, res.err_bit, res.err_cycle)
        assert why is None, f"seed {11 * 100_003 + i}: model {why} (generator " \
                            f"{up.expected_err})\n{up.listing()}"
        assert res.cycles == up.program.predicted_cycles
        covered |= up.covered
    missing = vxm_coverage_wanted(cfg) - covered
    assert not missing, f"40 unit programs did not cover {sorted(missing)}"


def test_chain_program_matches_reference_on_model() -> None:
    """The chain program with the VXM step, run on the golden model: Y1, Y2 (numpy) and Z1
    (requantize_ref) read back from its memories, no errors, the predicted cycles."""
    import numpy as np

    from tb.randunits import chain_program, read_result
    from tb.test_top import run_model
    from tsp.config import TspConfig
    cfg = TspConfig.profile("full")
    for seed in (1, 2, 3):
        cp = chain_program(cfg, seed)
        assert set(cp.expected) == {"Y1", "Y2", "Z1"}
        m, res = run_model(cfg, cp.program.queues, cp.program.data, trace=False)
        assert res.err_flags == 0 and res.cycles == cp.program.predicted_cycles
        for name, exp in cp.expected.items():
            got = read_result(cfg, cp.outputs[name], m.read_mem)
            assert got.dtype == exp.dtype and np.array_equal(got, exp), f"seed {seed}: {name}"
