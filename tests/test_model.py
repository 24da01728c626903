# Tests of the golden model (sim/) against expectations derived by hand from
# docs/architecture.md: timing law, ICU occupancy, SYNC/NOTIFY, prefetch, MEM engines, loop
# registers, CONFIG power-down, error flags and the "Done" cycle count.
from __future__ import annotations

import time

import numpy as np
import pytest

from sim import TspModel
from sim.model import BANK_CONFLICT, DEADLOCK, ENGINE_BUSY, ILLEGAL, ModelError
from tsp.config import TspConfig
from tsp.isa import encode, stream_operand

# 8-byte vectors, MXM and SXM built, no VXM (the 8-lane slice, the earlier default profile)
CFG = TspConfig.profile("full").replace(units=("mxm", "sxm"), name="full-novxm")
VB = CFG.vec_bytes
WIDE = TspConfig.profile("wide")        # 16-byte vectors, MXM and SXM built, same layout
# CFG (and default, full, wide) layout: MXM_W 0, SXM_W 1, MEM_W3 2, MEM_W2 3, MEM_W1 4, MEM_W0 5, VXM 6,
#                 MEM_E0 7, MEM_E1 8, MEM_E2 9, MEM_E3 10, SXM_E 11, MXM_E 12
MXM_W, MEM_W3, MEM_W2, MEM_W1, MEM_W0, VXM = 0, 2, 3, 4, 5, 6
MEM_E0, MEM_E1, MEM_E3, MXM_E = 7, 8, 10, 12


def E(i: int) -> int:
    return stream_operand(0, i)


def W(i: int) -> int:
    return stream_operand(1, i)


def I(name: str, **kw: int) -> int:
    return encode(name, **kw)


def vec(seed: int, n: int = VB) -> np.ndarray:
    """A recognisable non-zero vector (of CFG's size unless `n` is given)."""
    return ((np.arange(n) * 7 + seed * 13 + 1) % 251 + 1).astype(np.uint8)


def model(cfg: TspConfig = CFG, keep_alive: int | None = None) -> TspModel:
    """A model; with keep_alive=n the MXM_E queue runs NOP n; HALT, so T >= n + 1."""
    m = TspModel(cfg)
    if keep_alive is not None:
        m.load_queue(cfg.num_positions - 1, [I("NOP", n=keep_alive), I("HALT")])
    return m


def log_of(res, position: int) -> list[tuple[int, str]]:
    return [(t, name) for t, p, name in res.issue_log if p == position]


# ---- streams and the timing law --------------------------------------------------------------
def test_read_travels_east_by_timing_law():
    m = model(keep_alive=20)
    v = vec(1)
    m.write_mem(MEM_W1, 5, v)
    m.load_queue(MEM_W1, [I("READ", addr=5, s=E(2))])
    res = m.run(trace=True)
    assert res.cycles == 21
    east, west = res.trace.east, res.trace.west
    assert east.shape == (22, 13, 8, VB) and west.shape == east.shape
    assert not west.any()
    for t in range(22):
        for p in range(13):
            expect = v if (p >= MEM_W1 and t == 2 + p - MEM_W1) else np.zeros(VB, np.uint8)
            np.testing.assert_array_equal(east[t, p, 2], expect, err_msg=f"t={t} p={p}")
    # only stream 2 ever carries anything; the value fell off the east edge after cycle 10
    assert not east[:, :, [0, 1, 3, 4, 5, 6, 7]].any()
    assert not east[11:].any()


def test_read_travels_west_and_falls_off():
    m = model(keep_alive=20)
    v = vec(2)
    m.write_mem(MEM_E1, 100, v)
    m.load_queue(MEM_E1, [I("READ", addr=100, s=W(3))])
    res = m.run(trace=True)
    west = res.trace.west
    for p in range(13):
        for t in range(22):
            hit = p <= MEM_E1 and t == 2 + MEM_E1 - p
            assert west[t, p, 3].any() == hit, (t, p)
            if hit:
                np.testing.assert_array_equal(west[t, p, 3], v)
    assert not west[11:].any() and not res.trace.east.any()   # at position 0 at cycle 10


@pytest.mark.parametrize("write_at,stored", [(16, True), (15, False), (17, False)])
def test_read_then_write_at_the_right_cycle(write_at, stored):
    # The spec's diagram: MEM_W1 READ at 10, value at MEM_E1 (4 positions on) at 16.
    m = model()
    v = vec(3)
    m.write_mem(MEM_W1, 5, v)
    m.write_mem(MEM_E1, 7, np.full(VB, 0xEE, np.uint8))
    m.load_queue(MEM_W1, [I("NOP", n=10), I("READ", addr=5, s=E(2))])
    m.load_queue(MEM_E1, [I("NOP", n=write_at), I("WRITE", addr=7, s=E(2))])
    res = m.run()
    expect = v if stored else np.zeros(VB, np.uint8)   # a wrong cycle stores the empty stream
    np.testing.assert_array_equal(m.read_mem(MEM_E1, 7), expect)
    assert res.err_flags == 0 and res.err_position is None and res.err_cycle is None
    # MEM_E1: NOP at 0, WRITE at write_at, HALT at write_at+1; all else finishes earlier
    assert res.cycles == write_at + 2


@pytest.mark.parametrize("profile", ["tiny", "default", "wide", "large"])
def test_timing_law_across_profiles(profile):
    cfg = TspConfig.profile(profile)
    src, dst = cfg.position_index("MEM_W0"), cfg.position_index(f"MEM_E{cfg.mem_slices - 1}")
    arrive = 3 + 2 + (dst - src)                 # READ at 3, dfunc 2, one position per cycle
    m = TspModel(cfg)
    v = (np.arange(cfg.vec_bytes) % 200 + 17).astype(np.uint8)
    m.write_mem(src, 1, v)
    m.load_queue(src, [I("NOP", n=3), I("READ", addr=1, s=E(cfg.streams - 1))])
    m.load_queue(dst, [I("NOP", n=arrive), I("WRITE", addr=2, s=E(cfg.streams - 1))])
    res = m.run(trace=True)
    np.testing.assert_array_equal(m.read_mem(dst, 2), v)
    assert res.cycles == arrive + 2
    assert res.trace.east.shape == (arrive + 3, cfg.num_positions, cfg.streams, cfg.vec_bytes)


def test_producer_overwrites_passing_value():
    m = model(keep_alive=12)
    a, b = vec(4), vec(5)
    m.write_mem(MEM_W1, 0, a)
    m.write_mem(MEM_E0, 0, b)
    m.load_queue(MEM_W1, [I("READ", addr=0, s=E(1))])                 # at p at 2 + (p-4)
    m.load_queue(MEM_E0, [I("NOP", n=3), I("READ", addr=0, s=E(1))])  # at 7 at cycle 5
    east = m.run(trace=True).trace.east
    np.testing.assert_array_equal(east[4, 6, 1], a)      # VXM at cycle 4: the first value
    np.testing.assert_array_equal(east[5, 7, 1], b)      # overwritten at MEM_E0
    np.testing.assert_array_equal(east[6, 8, 1], b)
    np.testing.assert_array_equal(east[8, 10, 1], b)


# ---- cycle count, NOP, REPEAT, SYNC/NOTIFY ------------------------------------------------
def test_empty_program_takes_one_cycle():
    res = model().run(trace=True)
    assert res.cycles == 1                     # every queue issues HALT (word 0) at cycle 0
    assert res.trace.east.shape[0] == 2
    assert sorted(res.issue_log) == [(0, p, "HALT") for p in range(13)]


def test_read_data_in_flight_keeps_program_running():
    m = model()
    m.write_mem(MEM_W0, 1, vec(3))
    m.load_queue(MEM_W0, [I("ITERATIONS", n=2), I("READ", addr=0, s=E(4)), I("HALT")])
    res = m.run(trace=True)
    # accesses at 1 and 2; HALT at 2; access 2's data is in flight at 3 and on E4 at 4 = T
    assert res.cycles == 4
    np.testing.assert_array_equal(res.trace.east[4, MEM_W0, 4], vec(3))


def test_nop_occupancy_and_zero_nop():
    m = model()
    m.load_queue(VXM, [I("NOP", n=5), I("NOP", n=1), 1, I("NOP", n=2), I("HALT")])  # 1 = NOP 0
    res = m.run()
    assert log_of(res, VXM) == [(0, "NOP"), (5, "NOP"), (6, "NOP"), (7, "NOP"), (9, "HALT")]
    assert res.cycles == 10


def test_repeat_copies_issue_cycles_and_data():
    m = model()
    m.write_mem(MEM_W0, 9, vec(6))
    m.load_queue(MEM_W0, [I("READ", addr=9, s=E(0)), I("REPEAT", n=3, d=2), I("HALT")])
    res = m.run(trace=True)
    # REPEAT at 1: copies at 1 - 1 + 2k = 2, 4, 6; next at 1 + 3*2 = 7
    assert log_of(res, MEM_W0) == [(0, "READ"), (1, "REPEAT"), (2, "READ"), (4, "READ"),
                                   (6, "READ"), (7, "HALT")]
    assert res.cycles == 8                     # last read access at 6, its data in flight at 7
    east = res.trace.east
    for t in range(9):
        assert east[t, MEM_W0, 0].any() == (t in (2, 4, 6, 8)), t
    np.testing.assert_array_equal(east[8, MEM_W0, 0], vec(6))


def test_repeat_with_d1_and_without_unit_instruction():
    m = model()
    m.load_queue(MEM_W0, [I("REPEAT", n=2, d=3), I("ITERATIONS", n=1),
                          I("REPEAT", n=2, d=1), I("HALT")])
    res = m.run()
    # first REPEAT: nothing to copy, occupies 6 cycles; second REPEAT at 7: copies at 7, 8
    assert log_of(res, MEM_W0) == [(0, "REPEAT"), (6, "ITERATIONS"), (7, "REPEAT"),
                                   (7, "ITERATIONS"), (8, "ITERATIONS"), (9, "HALT")]
    assert res.cycles == 10


def test_sync_notify():
    m = model()
    m.load_queue(MXM_W, [I("SYNC"), I("NOP", n=1), I("HALT")])
    m.load_queue(VXM, [I("NOP", n=5), I("NOTIFY"), I("HALT")])
    m.load_queue(MEM_W1, [I("NOP", n=6), I("SYNC"), I("HALT")])     # SYNC at tN+1: released
    m.load_queue(MEM_E1, [I("NOP", n=5), I("SYNC"), I("HALT")])     # SYNC with the NOTIFY
    res = m.run()
    assert log_of(res, MXM_W) == [(0, "SYNC"), (7, "NOP"), (8, "HALT")]
    assert log_of(res, MEM_W1) == [(0, "NOP"), (6, "SYNC"), (7, "HALT")]
    assert log_of(res, MEM_E1) == [(0, "NOP"), (5, "SYNC"), (7, "HALT")]
    assert res.cycles == 9 and res.err_flags == 0


def test_notify_reaches_parked_queues_only_and_deadlock():
    m = model()
    m.load_queue(VXM, [I("NOTIFY"), I("HALT")])
    m.load_queue(MEM_E0, [I("NOP", n=3), I("SYNC"), I("HALT")])
    res = m.run()
    # SYNC at 3 misses the NOTIFY of cycle 0; active at 3 (its issue cycle), parked from 4
    assert log_of(res, MEM_E0) == [(0, "NOP"), (3, "SYNC")]
    assert res.cycles == 4
    assert res.err_flags == DEADLOCK and res.deadlocked
    assert (res.err_position, res.err_bit, res.err_cycle) == (0xFFFF, 2, 4)


def test_own_notify_releases_following_sync():
    m = model()
    m.load_queue(VXM, [I("NOTIFY"), I("SYNC"), I("HALT")])
    res = m.run()
    assert log_of(res, VXM) == [(0, "NOTIFY"), (1, "SYNC"), (2, "HALT")]
    assert res.cycles == 3 and res.err_flags == 0


# ---- loop registers, GATHER/SCATTER ----------------------------------------------------
def test_loop_registers_negative_step_countdown():
    m = model()
    for a in (10, 8, 6):
        m.write_mem(MEM_W1, a, vec(a))
    m.load_queue(MEM_W1, [I("ITERATIONS", n=3), I("STEP", s=-2), I("COUNTDOWN", d=3),
                          I("READ", addr=10, s=E(1)), I("HALT")])
    # reads at 3, 6, 9 of 10, 8, 6: at MEM_W1 at 5, 8, 11, at MEM_E0 (3 on) at 8, 11, 14
    m.load_queue(MEM_E0, [I("ITERATIONS", n=3), I("COUNTDOWN", d=3), I("NOP", n=6),
                          I("WRITE", addr=1023, s=E(1)), I("HALT")])
    res = m.run(trace=True)
    for t, a in ((5, 10), (8, 8), (11, 6)):
        np.testing.assert_array_equal(res.trace.east[t, MEM_W1, 1], vec(a))
    # WRITE at 8, step 1 (reset value): addresses 1023, 0 (wraps mod 1024), 1
    for addr, a in ((1023, 10), (0, 8), (1, 6)):
        np.testing.assert_array_equal(m.read_mem(MEM_E0, addr), vec(a))
    assert res.cycles == 15      # write engine's last access at 14
    assert res.err_flags == 0


def test_read_address_wraps_negative():
    m = model(keep_alive=10)
    m.write_mem(MEM_W2, 0, vec(1))
    m.write_mem(MEM_W2, 1023, vec(2))
    m.load_queue(MEM_W2, [I("ITERATIONS", n=2), I("STEP", s=-1), I("READ", addr=0, s=W(0))])
    west = m.run(trace=True).trace.west
    np.testing.assert_array_equal(west[4, MEM_W2, 0], vec(1))
    np.testing.assert_array_equal(west[5, MEM_W2, 0], vec(2))


def test_gather():
    m = model()
    amap = np.zeros(VB, np.uint8)
    amap[0], amap[1] = 0x05, 0x04                      # 0x0405 = 1029 -> 1029 mod 1024 = 5
    m.write_mem(MEM_W2, 0, amap)
    m.write_mem(MEM_W1, 5, vec(7))
    m.load_queue(MEM_W2, [I("READ", addr=0, s=E(0))])             # map at MEM_W1 at cycle 3
    m.load_queue(MEM_W1, [I("NOP", n=3), I("GATHER", s=E(1), m=E(0))])  # data at 4 at 5
    m.load_queue(MEM_E0, [I("NOP", n=8), I("WRITE", addr=3, s=E(1))])   # 3 positions on
    res = m.run()
    np.testing.assert_array_equal(m.read_mem(MEM_E0, 3), vec(7))
    assert res.err_flags == 0


def test_scatter():
    m = model()
    amap = np.zeros(VB, np.uint8)
    amap[0], amap[1] = 0x03, 0x02                      # 0x0203 = 515 (bank 1, row 3)
    m.write_mem(MEM_W3, 0, vec(8))
    m.write_mem(MEM_W2, 0, amap)
    m.load_queue(MEM_W3, [I("READ", addr=0, s=E(1))])                   # at MEM_W1 at 4
    m.load_queue(MEM_W2, [I("NOP", n=1), I("READ", addr=0, s=E(0))])    # at MEM_W1 at 4
    m.load_queue(MEM_W1, [I("NOP", n=4), I("SCATTER", s=E(1), m=E(0))])
    res = m.run()
    np.testing.assert_array_equal(m.read_mem(MEM_W1, 515), vec(8))
    assert not m.mem[MEM_W1, :515].any() and not m.mem[MEM_W1, 516:].any()
    assert res.err_flags == 0


# ---- IFETCH and prefetch -----------------------------------------------------------------
def words_vec(words: list[int]) -> np.ndarray:
    return np.array(words, dtype="<u4").view(np.uint8)


@pytest.mark.parametrize("cfg", [CFG, WIDE], ids=["full-novxm", "wide"])
def test_ifetch_loads_and_runs_code(cfg):
    k = cfg.vec_bytes // 4                  # words per IFETCH: 2 (CFG), 4 (wide)
    m = model(cfg, keep_alive=15)
    code = [I("READ", addr=20, s=E(5)), I("HALT")] + [I("NOP", n=9)] * (k - 2)
    m.write_mem(MEM_W2, 0, words_vec(code))
    m.write_mem(MEM_W1, 20, vec(9, cfg.vec_bytes))
    m.load_queue(MEM_W2, [I("READ", addr=0, s=E(0))])           # at MEM_W1 at cycle 3
    m.load_queue(MEM_W1, [I("NOP", n=3), I("IFETCH", s=E(0), addr=4),
                          I("NOP", n=1), I("NOP", n=1)])
    res = m.run(trace=True)
    # IFETCH at 3 (k words, next at 3 + k): NOP, NOP, fetched READ at 5 + k, HALT at 6 + k;
    # the READ's data is on E5 at MEM_W1 at 7 + k (wide: 7, 8, 9, 10 and 11)
    assert log_of(res, MEM_W1) == [(0, "NOP"), (3, "IFETCH"), (3 + k, "NOP"), (4 + k, "NOP"),
                                   (5 + k, "READ"), (6 + k, "HALT")]
    assert list(m.imem[MEM_W1, 4:4 + k]) == code
    np.testing.assert_array_equal(res.trace.east[7 + k, MEM_W1, 5], vec(9, cfg.vec_bytes))


def test_ifetch_prefetch_rule():
    # wide (4 words per IFETCH): IFETCH at address 1 writing addresses 2..5 during cycles 3..6.
    # Word 2 was read at the end of cycle 2 (old word runs); word 3 is read at the end of
    # cycle 6, the IFETCH's last cycle, after the write of cycle 4 took effect (new word runs).
    m = model(WIDE)
    new = [I("NOP", n=5), I("NOP", n=3), I("NOTIFY"), I("HALT")]
    m.write_mem(MEM_W2, 0, words_vec(new))
    m.load_queue(MEM_W2, [I("READ", addr=0, s=E(0))])
    m.load_queue(MEM_W1, [I("NOP", n=3), I("IFETCH", s=E(0), addr=2), I("NOP", n=1),
                          I("NOP", n=1), I("HALT")])
    res = m.run()
    assert log_of(res, MEM_W1) == [(0, "NOP"), (3, "IFETCH"), (7, "NOP"), (8, "NOP"),
                                   (11, "NOTIFY"), (12, "HALT")]
    assert list(m.imem[MEM_W1, 2:6]) == new


def test_ifetch_prefetch_rule_8_lanes():
    # CFG (2 words per IFETCH): IFETCH at address 1 writes address 2 at cycle 3 and
    # address 3 at cycle 4, its last cycle. Word 2 was read at the end of cycle 2 and word 3
    # at the end of cycle 4, before that cycle's write: both old NOP 1s run (at 5 and 6), then
    # the old HALT at 7.
    m = model()
    new = [I("NOP", n=5), I("NOP", n=3)]
    m.write_mem(MEM_W2, 0, words_vec(new))
    m.load_queue(MEM_W2, [I("READ", addr=0, s=E(0))])         # at MEM_W1 at cycle 3
    m.load_queue(MEM_W1, [I("NOP", n=3), I("IFETCH", s=E(0), addr=2), I("NOP", n=1),
                          I("NOP", n=1), I("HALT")])
    res = m.run()
    assert log_of(res, MEM_W1) == [(0, "NOP"), (3, "IFETCH"), (5, "NOP"), (6, "NOP"),
                                   (7, "HALT")]
    assert list(m.imem[MEM_W1, 2:4]) == new
    # IMEM persists: the next run executes the fetched words (NOP 5 at 5, NOP 3 at 10, HALT 13)
    res = m.run()
    assert log_of(res, MEM_W1) == [(0, "NOP"), (3, "IFETCH"), (5, "NOP"), (10, "NOP"),
                                   (13, "HALT")]


def test_prefetch_tiny_profile_last_word():
    # tiny: vec_bytes = 4, IFETCH writes one word in its issue cycle; the word after the next
    # (p + 2) is read at the end of that same cycle, before the write: the old word runs.
    cfg = TspConfig.profile("tiny")
    w0 = cfg.position_index("MEM_W0")
    w1 = cfg.position_index("MEM_W1")          # one position west of MEM_W0
    m = TspModel(cfg)
    m.write_mem(w1, 0, words_vec([I("NOTIFY")]))
    m.load_queue(w1, [I("READ", addr=0, s=E(0))])             # at MEM_W0 at cycle 3
    m.load_queue(w0, [I("NOP", n=3), I("IFETCH", s=E(0), addr=3), I("NOP", n=1),
                      I("NOP", n=2), I("HALT")])
    res = m.run()
    assert log_of(res, w0) == [(0, "NOP"), (3, "IFETCH"), (4, "NOP"), (5, "NOP"), (7, "HALT")]
    assert m.imem[w0, 3] == I("NOTIFY")
    res = m.run()              # IMEM persists: the fetched NOTIFY now runs from the start
    assert log_of(res, w0)[3] == (5, "NOTIFY")


# ---- CONFIG power-down -------------------------------------------------------------------
SL2 = TspConfig(lanes=4, superlanes=2, streams=4, mem_slices=2, bank_depth=16, queue_depth=16)
# positions: MXM_W 0, SXM_W 1, MEM_W1 2, MEM_W0 3, VXM 4, MEM_E0 5, MEM_E1 6, SXM_E 7, MXM_E 8


def test_config_power_down_read_uses_access_cycle_flags():
    m = TspModel(SL2)
    m.load_queue(8, [I("NOP", n=20), I("HALT")])
    v = np.arange(1, 9, dtype=np.uint8)
    m.write_mem(2, 0, v)
    m.load_queue(2, [I("READ", addr=0, s=E(0)), I("CONFIG", flags=2),
                     I("READ", addr=0, s=E(1)), I("CONFIG", flags=0),
                     I("READ", addr=0, s=E(2)),
                     I("ITERATIONS", n=2), I("COUNTDOWN", d=3), I("STEP", s=0),
                     I("READ", addr=0, s=E(3)), I("CONFIG", flags=1)])
    east = m.run(trace=True).trace.east
    masked_hi = np.array([1, 2, 3, 4, 0, 0, 0, 0], np.uint8)
    masked_lo = np.array([0, 0, 0, 0, 5, 6, 7, 8], np.uint8)
    np.testing.assert_array_equal(east[2, 2, 0], v)            # READ at 0: flags 0
    np.testing.assert_array_equal(east[4, 2, 1], masked_hi)    # READ at 2: flags 2 (from 2)
    np.testing.assert_array_equal(east[6, 2, 2], v)            # READ at 4: flags 0 again
    np.testing.assert_array_equal(east[10, 2, 3], v)           # access at 8: flags 0
    np.testing.assert_array_equal(east[13, 2, 3], masked_lo)   # access at 11: flags 1 (10 on)


def test_config_power_down_write_keeps_bytes():
    m = TspModel(SL2)
    m.write_mem(2, 0, np.arange(1, 9, dtype=np.uint8))
    m.write_mem(3, 4, np.full(8, 0xAA, np.uint8))
    m.load_queue(2, [I("READ", addr=0, s=E(0))])                       # at MEM_W0 at 3
    m.load_queue(3, [I("CONFIG", flags=1), I("NOP", n=2), I("WRITE", addr=4, s=E(0))])
    res = m.run()
    np.testing.assert_array_equal(m.read_mem(3, 4), [0xAA] * 4 + [5, 6, 7, 8])
    assert res.err_flags == 0


# ---- errors ------------------------------------------------------------------------------
def test_bank_conflict_suppresses_write():
    m = model(keep_alive=10)
    m.write_mem(MEM_W0, 5, vec(1))
    m.write_mem(MEM_W0, 7, vec(2))
    m.write_mem(MEM_W0, 512 + 7, vec(3))
    m.load_queue(MEM_W0, [I("ITERATIONS", n=3), I("READ", addr=3, s=E(0)),   # reads 1, 2, 3
                          I("ITERATIONS", n=1), I("WRITE", addr=7, s=E(1)),    # write at 3
                          I("WRITE", addr=512 + 7, s=E(1))])                   # write at 4
    res = m.run(trace=True)
    np.testing.assert_array_equal(m.read_mem(MEM_W0, 7), vec(2))         # suppressed
    assert not m.read_mem(MEM_W0, 512 + 7).any()                         # other bank: written
    np.testing.assert_array_equal(res.trace.east[5, MEM_W0, 0], vec(1))  # the read proceeds
    assert res.err_flags == BANK_CONFLICT
    assert (res.err_position, res.err_bit, res.err_cycle) == (MEM_W0, 0, 3)


def test_engine_busy_drops_instruction():
    m = model(keep_alive=12)
    m.write_mem(MEM_E0, 10, vec(4))
    m.load_queue(MEM_E0, [I("ITERATIONS", n=3), I("READ", addr=0, s=E(0)),  # accesses 1..3
                          I("READ", addr=10, s=E(1)),                       # at 2: dropped
                          I("NOP", n=1), I("ITERATIONS", n=1),
                          I("READ", addr=10, s=E(2))])                      # at 5: fine
    res = m.run(trace=True)
    assert not res.trace.east[:, :, 1].any()
    np.testing.assert_array_equal(res.trace.east[7, MEM_E0, 2], vec(4))
    assert res.err_flags == ENGINE_BUSY
    assert (res.err_position, res.err_bit, res.err_cycle) == (MEM_E0, 1, 2)


def test_engine_free_right_after_last_access():
    m = model()
    m.load_queue(MEM_E0, [I("ITERATIONS", n=2), I("WRITE", addr=0, s=E(0)),  # accesses 1, 2
                          I("NOP", n=1), I("WRITE", addr=600, s=E(0))])      # at 3: accepted
    res = m.run()
    assert res.err_flags == 0
    assert res.cycles == 5        # second WRITE's accesses at 3 and 4; HALT at 4


def test_illegal_opcodes():
    m = model()
    m.load_queue(VXM, [63, I("READ", addr=0, s=E(0)), I("NOP", n=2), I("HALT")])
    m.load_queue(MEM_E1, [I("NOP", n=2), 15, I("CONFIG", flags=0), I("HALT")])
    res = m.run()
    assert log_of(res, VXM) == [(0, "ILLEGAL"), (1, "ILLEGAL"), (2, "NOP"), (4, "HALT")]
    assert log_of(res, MEM_E1) == [(0, "NOP"), (2, "ILLEGAL"), (3, "CONFIG"), (4, "HALT")]
    assert res.err_flags == ILLEGAL
    assert (res.err_position, res.err_bit, res.err_cycle) == (VXM, 3, 0)
    assert res.cycles == 5


def test_stream_index_out_of_range_reads_zero_writes_nothing():
    m = model(keep_alive=12)
    m.write_mem(MEM_W1, 5, vec(1))
    m.write_mem(MEM_E1, 7, np.full(VB, 0xEE, np.uint8))
    m.write_mem(MEM_W0, 0, vec(4))
    m.load_queue(MEM_W1, [I("READ", addr=5, s=E(9)), I("READ", addr=5, s=W(31))])
    m.load_queue(MEM_E1, [I("WRITE", addr=7, s=E(12))])                 # stores zeros
    m.load_queue(MEM_W0, [I("GATHER", s=E(0), m=E(20))])                # address 0
    res = m.run(trace=True)
    assert res.err_flags == 0
    tr = res.trace
    assert not tr.west.any() and not tr.east[:, :, 1:].any()
    for t in range(tr.east.shape[0]):                    # only the GATHER's word, on E0
        for p in range(13):
            assert tr.east[t, p, 0].any() == (p >= MEM_W0 and t == 2 + p - MEM_W0)
    np.testing.assert_array_equal(tr.east[2, MEM_W0, 0], vec(4))
    assert not m.read_mem(MEM_E1, 7).any()


def test_ifetch_other_stream_is_illegal():
    # IFETCH reads E0/W0 only; any other stream index (even one >= streams) is ILLEGAL: a
    # one-cycle no-op that writes no instruction word (docs/architecture.md sections 3, 4).
    m = model()
    code = [I("NOTIFY"), I("NOTIFY")]
    m.write_mem(MEM_W2, 0, words_vec(code))
    m.write_mem(MEM_E0, 0, words_vec([I("NOP", n=2), I("HALT")]))
    # MEM_W2 (3) READ at 0: E1 at MEM_W2 at 2, at MEM_W1 (4) at 3, where the IFETCH issues
    m.load_queue(MEM_W2, [I("READ", addr=0, s=E(1))])
    m.load_queue(MEM_W1, [I("NOP", n=3), I("IFETCH", s=E(1), addr=4), I("NOP", n=1),
                          I("NOP", n=1), I("HALT")])
    # index 8 (out of range for 8 streams) at MEM_E1 (8): ILLEGAL at 5, not a fetch of zeros
    m.load_queue(MEM_E1, [I("NOP", n=5), I("IFETCH", s=W(8), addr=0), I("HALT")])
    # W0 stays legal: MEM_E0 (7) READ at 0, W0 at MEM_E0 at 2, at VXM (6) at 3; the IFETCH
    # (2 words, cycles 3 and 4, next at 5) writes words 4, 5 = NOP 2 (runs at 7), HALT (at 9)
    m.load_queue(MEM_E0, [I("READ", addr=0, s=W(0))])
    m.load_queue(VXM, [I("NOP", n=3), I("IFETCH", s=W(0), addr=4), I("NOP", n=1),
                       I("NOP", n=1)])
    res = m.run()
    # ILLEGAL at 3 occupies one cycle: the old words 2, 3, 4 run at 4, 5, 6
    assert log_of(res, MEM_W1) == [(0, "NOP"), (3, "ILLEGAL"), (4, "NOP"), (5, "NOP"),
                                   (6, "HALT")]
    assert m.imem[MEM_W1, 4] == I("HALT") and m.imem[MEM_W1, 5] == 0    # nothing fetched
    assert log_of(res, MEM_E1) == [(0, "NOP"), (5, "ILLEGAL"), (6, "HALT")]
    assert m.imem[MEM_E1, 0] == I("NOP", n=5)                            # not zeroed
    assert log_of(res, VXM) == [(0, "NOP"), (3, "IFETCH"), (5, "NOP"), (6, "NOP"),
                                (7, "NOP"), (9, "HALT")]
    assert res.err_flags == ILLEGAL
    assert (res.err_position, res.err_bit, res.err_cycle) == (MEM_W1, 3, 3)
    assert res.cycles == 10                      # VXM's HALT at 9 is the last activity


def test_first_error_same_cycle_lowest_position_then_bit():
    m = model()
    # position 5 (MEM_W0): write accesses at 2, 5; read accesses at 4, 5; READ at 5 busy
    m.load_queue(MEM_W0, [I("ITERATIONS", n=2), I("COUNTDOWN", d=3),
                          I("WRITE", addr=5, s=E(0)), I("COUNTDOWN", d=1),
                          I("READ", addr=3, s=E(1)), I("READ", addr=9, s=E(1))])
    m.load_queue(MEM_E0, [I("NOP", n=5), 62])                  # ILLEGAL at 5, position 7
    res = m.run()
    assert res.err_flags == BANK_CONFLICT | ENGINE_BUSY | ILLEGAL
    assert (res.err_position, res.err_bit, res.err_cycle) == (MEM_W0, 0, 5)
    m.load_queue(MXM_W, [I("NOP", n=5), 61])                   # ILLEGAL at 5, position 0
    res = m.run()
    assert (res.err_position, res.err_bit, res.err_cycle) == (MXM_W, 3, 5)
    m.load_queue(MXM_E, [I("NOP", n=4), 61])                   # an earlier cycle wins
    res = m.run()
    assert (res.err_position, res.err_bit, res.err_cycle) == (MXM_E, 3, 4)


# ---- START semantics, API errors, trace helpers, speed ----------------------------------
def test_run_resets_state_but_keeps_memories():
    m = model(keep_alive=10)
    m.write_mem(MEM_W0, 0, vec(1))
    m.write_mem(MEM_W0, 1, vec(2))
    m.load_queue(MEM_W0, [I("ITERATIONS", n=2), I("CONFIG", flags=1),
                          I("READ", addr=0, s=E(0))])
    first = m.run(trace=True)
    assert not first.trace.east[:, :, 0].any()                 # superlane 0 powered down
    m.load_queue(MEM_W0, [I("REPEAT", n=1, d=1), I("READ", addr=1, s=E(0)), I("HALT")])
    second = m.run(trace=True)
    assert log_of(second, MEM_W0) == [(0, "REPEAT"), (1, "READ"), (2, "HALT")]
    east = second.trace.east[:, MEM_W0, 0]
    np.testing.assert_array_equal(east[3], vec(2))           # n=1, flags 0 again
    assert not east[4].any() and not east[:3].any()
    np.testing.assert_array_equal(m.read_mem(MEM_W0, 0), vec(1))


def test_api_errors():
    m = model()
    assert issubclass(ModelError, ValueError)
    with pytest.raises(ModelError, match="not a MEM slice"):
        m.write_mem(VXM, 0, bytes(VB))
    with pytest.raises(ModelError, match="address 1024"):
        m.write_mem(MEM_W0, 1024, bytes(VB))
    with pytest.raises(ModelError, match="7 bytes"):
        m.write_mem(MEM_W0, 0, bytes(7))
    with pytest.raises(ModelError, match="16 bytes"):
        m.write_mem(MEM_W0, 0, bytes(16))
    with pytest.raises(ModelError, match="not a MEM slice"):
        m.read_mem(MXM_W, 0)
    with pytest.raises(ModelError, match="position 13"):
        m.load_queue(13, [0])
    with pytest.raises(ModelError, match="do not fit"):
        m.load_queue(VXM, [0] * 10, base=250)
    with pytest.raises(ModelError, match="32-bit"):
        m.load_queue(VXM, [1 << 32])
    m.load_queue(VXM, [I("NOP", n=100)])
    with pytest.raises(ModelError, match="max_cycles=50.*VXM"):
        m.run(max_cycles=50)
    assert m.run(max_cycles=101).cycles == 101
    m.write_mem("MEM_E2", 3, list(range(VB)))
    assert list(m.read_mem(9, 3)) == list(range(VB))


def test_trace_first_divergence_and_format():
    m = model(keep_alive=6)
    m.write_mem(MEM_W1, 0, vec(1))
    m.load_queue(MEM_W1, [I("READ", addr=0, s=E(2))])
    tr = m.run(trace=True).trace
    east, west = tr.east.copy(), tr.west.copy()
    assert tr.first_divergence(east, west) is None
    west[5, 3, 1, 7] = 9
    east[6, 0, 0, 0] = 1
    c, d, p, s, exp, act = tr.first_divergence(east, west)
    assert (c, d, p, s) == (5, "W", 3, 1) and exp[7] == 0 and act[7] == 9
    assert tr.first_divergence(tr.east[:4], tr.west[:4]) == (4, "E", None, None, None, None)
    text = tr.format()
    assert "MEM_W1(4)" in text and "MEM_E0(7)" in text and " E2 " in text
    assert len(text.splitlines()) == 1 + 6               # cycles 2..7 at positions 4..9
    assert len(tr.format(cycles=[3]).splitlines()) == 2


def test_2000_cycle_program_is_fast():
    m = model()
    for p in (MEM_W1, MEM_E1):
        m.load_queue(p, [I("ITERATIONS", n=1000)])
    m.load_queue(MEM_W1, [I("READ", addr=0, s=E(0)), I("NOP", n=1000),
                          I("READ", addr=0, s=E(0))], base=1)
    m.load_queue(MEM_E1, [I("NOP", n=6), I("WRITE", addr=0, s=E(0)), I("NOP", n=1000),
                          I("WRITE", addr=0, s=E(0))], base=1)
    t0 = time.perf_counter()
    res = m.run(trace=True)
    assert time.perf_counter() - t0 < 2.0
    # reads at 1..1000 and 1002..2001; writes (4 positions on) at 7..1006 and 1008..2007
    assert res.cycles == 2008
    assert res.err_flags == 0


# ---- compute units (MXM, SXM) in the whole-chip model -------------------------------------
# Expected values are derived by hand from docs/units.md (timing tables) and the timing law,
# for the wide profile (16 lanes: 16 x 16 weights; the same layout as CFG).
SXM_E = 11
@pytest.fixture
def units_on(monkeypatch):
    """For one test, `model()` builds the wide profile (16 lanes, MXM and SXM units)."""
    assert {"mxm", "sxm"} <= set(WIDE.units) and WIDE.positions == CFG.positions
    monkeypatch.setattr(model, "__defaults__", (WIDE, None))


def test_unit_instructions_illegal_until_built():
    m = model(CFG.replace(units=()))            # CFG's layout without compute units
    m.load_queue(MXM_W, [I("IW"), I("LW", s=E(0), row=0, count=2)])
    m.load_queue(SXM_E, [I("NOP", n=1), I("SHIFT", s=E(0), d=E(1), n=1)])
    res = m.run()
    assert log_of(res, MXM_W) == [(0, "ILLEGAL"), (1, "ILLEGAL"), (2, "HALT")]
    assert log_of(res, SXM_E) == [(0, "NOP"), (1, "ILLEGAL"), (2, "HALT")]
    assert res.err_flags == ILLEGAL and (res.err_position, res.err_cycle) == (MXM_W, 0)


def test_mxm_two_passes_accumulate_then_acc_ends_program(units_on):
    from tsp.config import join_sg4
    rng = np.random.default_rng(3)
    wts = rng.integers(-128, 128, (16, 16)).astype(np.int8)
    xs = rng.integers(-128, 128, (4, 16)).astype(np.int8)
    wts[:, 5] = -128
    xs[:, :] = np.where(np.arange(16) < 8, -128, xs)      # lanes 0..7: -128 in every vector
    m = model()
    for k in range(16):                                     # weights: MEM_W3 (2), words 0..15
        m.write_mem(MEM_W3, k, wts[k].view(np.uint8))
    for k in range(4):                                      # activations: MEM_W2 (3)
        m.write_mem(MEM_W2, k, xs[k].view(np.uint8))
    # MEM_W3 reads at 1..16 onto W0 -> at MXM_W (0) at 5..20: LW at 5; IW at 21.
    m.load_queue(MEM_W3, [I("ITERATIONS", n=16), I("READ", addr=0, s=W(0))])
    # MEM_W2 reads at 17..20 onto W1 -> at MXM_W at 22..25: ABC mode 0 at 22 (rows 3, 4,
    # written at the ends of 24, 25), ABC mode 1 at 24 (row 3 read at 25 sees the write of 24).
    m.load_queue(MEM_W2, [I("ITERATIONS", n=4), I("NOP", n=16), I("READ", addr=0, s=W(1))])
    # rows 3, 4 final at the ends of 26, 27; ACC at 28 onto E0..E3 during 30, 31.
    m.load_queue(MXM_W, [I("NOP", n=5), I("LW", s=W(0), row=0, count=16), I("NOP", n=15),
                         I("IW"), I("ABC", s=W(1), acc=3, count=2, mode=0), I("NOP", n=1),
                         I("ABC", s=W(1), acc=3, count=2, mode=1), I("NOP", n=3),
                         I("ACC", s=E(0), acc=3, count=2)])
    res = m.run(trace=True)
    assert res.err_flags == 0
    # the MXM queue halts at 29, the last ACC output is driven in 30: T = 31
    assert res.cycles == 31
    w64, x64 = wts.astype(np.int64), xs.astype(np.int64)
    expect = [x64[0] @ w64 + x64[2] @ w64, x64[1] @ w64 + x64[3] @ w64]
    for k in range(2):
        got = join_sg4(res.trace.east[30 + k, MXM_W, 0:4])
        np.testing.assert_array_equal(got, expect[k], err_msg=f"row {3 + k}")
    assert expect[0][5] == 2 * 8 * 16384 + (x64[0, 8:] + x64[2, 8:]).sum() * -128
    assert not res.trace.east[29, MXM_W].any() and not res.trace.east[31, MXM_W, 4:].any()


def test_sxm_maps_persist_across_runs_distribute_and_shift(units_on):
    m = model()
    mp = np.array([15 - i if i < 8 else 200 for i in range(16)], np.uint8)
    x = vec(4, 16)
    m.write_mem(MEM_E3, 0, mp)
    m.write_mem(MEM_E3, 1, x)
    # run 1: the map read at 0 onto E0 is at SXM_E (11) at 3: SETMAP at 3. SETMAP alone does
    # not keep the unit active: T = 5 (SXM_E halts at 4).
    m.load_queue(MEM_E3, [I("READ", addr=0, s=E(0))])
    m.load_queue(SXM_E, [I("NOP", n=3), I("SETMAP", m=E(0), slot=3)])
    assert m.run().cycles == 5
    # run 2 (no SETMAP): x read at 0 and 1 onto E1 -> at SXM_E at 3 and 4. DISTRIBUTE at 3
    # onto W5 (at SXM_E during 5, at MEM_E3 during 6); SHIFT by 2 at 4 onto E6 (during 6).
    m.load_queue(MEM_E3, [I("READ", addr=1, s=E(1)), I("READ", addr=1, s=E(1))])
    m.load_queue(SXM_E, [I("NOP", n=3), I("DISTRIBUTE", s=E(1), d=W(5), slot=3),
                         I("SHIFT", s=E(1), d=E(6), n=2), I("HALT")])
    res = m.run(trace=True)
    assert res.err_flags == 0
    assert res.cycles == 6          # SXM_E halts at 5 and drives the SHIFT result in 5
    dist = np.array([x[15 - i] if i < 8 else 0 for i in range(16)], np.uint8)
    np.testing.assert_array_equal(res.trace.west[5, SXM_E, 5], dist)
    np.testing.assert_array_equal(res.trace.west[6, MEM_E3, 5], dist)
    np.testing.assert_array_equal(res.trace.east[6, SXM_E, 6], np.r_[0, 0, x[:14]])


def test_bad_map_flag_first_error_and_distribute_accepts_any_map(units_on):
    from sim import BAD_MAP
    m = model()
    m.write_mem(MEM_E3, 0, np.zeros(16, np.uint8))          # all lanes take lane 0
    m.write_mem(MEM_E3, 1, vec(6, 16))
    m.load_queue(MEM_E3, [I("READ", addr=0, s=E(0)), I("READ", addr=1, s=E(1)),
                          I("READ", addr=1, s=E(1))])
    # SETMAP at 3; DISTRIBUTE at 4 (broadcast of lane 0, no error); PERMUTE at 5: BAD_MAP
    m.load_queue(SXM_E, [I("NOP", n=3), I("SETMAP", m=E(0), slot=0),
                         I("DISTRIBUTE", s=E(1), d=E(2), slot=0),
                         I("PERMUTE", s=E(1), d=E(3), slot=0)])
    m.load_queue(MEM_E0, [I("NOP", n=5), 63])                 # ILLEGAL at 5, position 7
    res = m.run(trace=True)
    assert res.err_flags == BAD_MAP | ILLEGAL
    assert (res.err_position, res.err_bit, res.err_cycle) == (MEM_E0, 3, 5)
    np.testing.assert_array_equal(res.trace.east[6, SXM_E, 2], np.full(16, vec(6, 16)[0]))
    assert not res.trace.east[7, SXM_E, 3].any()
    # without the ILLEGAL, the first error is BAD_MAP at SXM_E, cycle 5
    m.load_queue(MEM_E0, [I("HALT")])
    res = m.run()
    assert res.err_flags == BAD_MAP
    assert (res.err_position, res.err_bit, res.err_cycle) == (SXM_E, 4, 5)
