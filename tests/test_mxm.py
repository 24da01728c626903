"""MXM unit (hdl/mxm.py) and its golden-model twin (sim/mxm.py), standalone.

Every test drives the RTL (Amaranth simulator) and the model with the same instruction and
stream sequences, compares each cycle's stream writes (wen/wdata), `active` and `err`, and checks
expectations derived by hand from docs/units.md section 2 (never from either implementation).
"""
from __future__ import annotations

import numpy as np
import pytest
from mxm_harness import ABC, ACC, IW, LW, E, Stim, W, simulate

from asm import AsmError, assemble
from sim.mxm import MxmModel
from tsp.config import TspConfig
from tsp.isa import WEST, decode, encode, stream_operand

TINY = TspConfig.profile("tiny")          # n = 4, 4 streams, R = 16
FULL = TspConfig.profile("full")          # n = 8, 8 streams, R = 32
BUSY = 1 << 1                             # ENGINE_BUSY (docs/architecture.md section 4)
WIDE = TspConfig.profile("wide")          # n = 16, 8 streams, R = 64


def run_rtl(stim: Stim, pause: tuple[int, int] | None = None) -> list:
    """Per cycle: (wen_e, wen_w, {(dir, stream): bytes}, active, err) (tests/mxm_harness.py)."""
    return simulate(stim, pause)[0]


def run_model(stim: Stim, pause: tuple[int, int] | None = None) -> tuple[list, MxmModel]:
    """The same trace from the golden model (active(t) is asked after issue(t); err is the
    issue's error bits or'ed with the cycle's)."""
    cfg = stim.cfg
    model = MxmModel(cfg, cfg.position_index("MXM_W"))
    for row, vals in stim.preload.items():
        model.accum[row] = np.array(vals, dtype=np.int64).astype(np.int32)
    trace = []
    for t in range(stim.cycles):
        if pause is not None and t == pause[0]:
            model.reset()
        word = stim.prog.get(t)
        err = 0
        if word is not None:
            instr, fields = decode(word)
            err = model.issue(t, instr, fields, 0)
        act = model.active(t)
        loads, cycle_err = model.cycle(t, stim.east[t], stim.west[t])
        err |= cycle_err
        wen = [0, 0]
        writes = {}
        for d, s, vec in loads:
            wen[d] |= 1 << s
            writes[(d, s)] = bytes(np.asarray(vec, dtype=np.uint8))
        trace.append((wen[0], wen[1], writes, int(act), err))
    return trace, model


def run_both(stim: Stim, pause: tuple[int, int] | None = None,
             errs: dict[int, int] | None = None, any_errs: bool = False) -> list:
    """Run RTL and model, require identical traces every cycle, return the trace. `err` must
    be `errs[t]` in cycle t and 0 elsewhere (no `errs`: never raised), unless `any_errs`."""
    rtl = run_rtl(stim, pause)
    mod, _ = run_model(stim, pause)
    for t, (a, b) in enumerate(zip(rtl, mod, strict=True)):
        assert a == b, f"cycle {t}: RTL {a} != model {b}"
    if not any_errs:
        want = errs or {}
        got = {t: e[4] for t, e in enumerate(rtl) if e[4]}
        assert got == want, f"err by cycle: {got}, expected {want}"
    return rtl


def acc_out(trace: list, t: int, cfg: TspConfig, direction: int = 0, first: int = 0) -> list:
    """The int32 vector an ACC drove on SG4 group `first` in cycle t (all 4 streams)."""
    rows = [trace[t][2][(direction, first + b)] for b in range(4)]
    return [int.from_bytes(bytes(rows[b][j] for b in range(4)), "little", signed=True)
            for j in range(cfg.vec_bytes)]


def writes_at(trace: list) -> list[int]:
    """Cycles with any stream write."""
    return [t for t, e in enumerate(trace) if e[0] or e[1]]


def load_weights(stim: Stim, t: int, s: int, rows) -> int:
    """LW all rows of `rows` (W[i][j] = rows[i][j]) from stream s starting at t; IW after.
    Returns the IW cycle."""
    n = stim.cfg.vec_bytes
    stim.at(t, LW(s, 0, n))
    for i in range(n):
        stim.vec(t + i, s, rows[i])
    stim.at(t + n, IW())
    return t + n


# ---- hand-computed cases (tiny) -----------------------------------------------------------

def test_all_minus128_products_and_sg4_bytes():
    st = Stim(TINY, 16)
    tiw = load_weights(st, 0, E(0), [[-128] * 4] * 4)          # IW at 4
    st.at(5, ABC(E(1), 3, 1)).vec(5, E(1), [-128] * 4)
    st.at(8, ACC(E(0), 3, 1))           # written at the end of 7, read at 8, driven at 9
    tr = run_both(st)
    assert tiw == 4
    # y[j] = 4 * (-128 * -128) = 65536 = 0x00010000: only byte 2 is non-zero
    assert writes_at(tr) == [9]
    assert tr[9][0] == 0b1111 and tr[9][1] == 0
    assert [tr[9][2][(0, b)] for b in range(4)] == [bytes(4), bytes(4), bytes([1] * 4), bytes(4)]
    assert acc_out(tr, 9, TINY) == [65536] * 4


def test_identity_weights_sign_extend():
    st = Stim(TINY, 20)
    eye = np.eye(4, dtype=int)
    load_weights(st, 0, W(3), eye)                  # west stream, IW at 4
    xs = [[5, -1, 127, -128], [0, 1, -2, 3]]
    st.at(5, ABC(E(2), 0, 2))
    st.vec(5, E(2), xs[0]).vec(6, E(2), xs[1])
    st.at(9, ACC(W(0), 0, 2))                       # onto the west SG4 group 0
    tr = run_both(st)
    assert writes_at(tr) == [10, 11]
    assert tr[10][0] == 0 and tr[10][1] == 0b1111
    assert acc_out(tr, 10, TINY, WEST) == xs[0]
    assert acc_out(tr, 11, TINY, WEST) == xs[1]
    # -1 as int32 is ff ff ff ff: the sign reaches byte 3
    assert tr[10][2][(1, 3)] == bytes([0, 0xFF, 0, 0xFF])


def test_one_hot_activations_pick_weight_rows():
    rng = np.random.default_rng(5)
    wt = rng.integers(-128, 128, size=(4, 4))
    st = Stim(TINY, 24)
    load_weights(st, 0, E(1), wt)
    st.at(5, ABC(E(0), 8, 4))
    for k in range(4):
        st.vec(5 + k, E(0), [3 if i == k else 0 for i in range(4)])   # x = 3 e_k
    st.at(11, ACC(E(0), 8, 4))
    tr = run_both(st)
    for k in range(4):
        # y[j] = sum_i W[i][j] x[i] = 3 W[k][j]: input lane k selects weight row k
        assert acc_out(tr, 12 + k, TINY) == [3 * int(v) for v in wt[k]]


def test_mode0_overwrites_mode1_accumulates_and_zero_count_is_one():
    st = Stim(TINY, 30)
    load_weights(st, 0, E(0), np.eye(4, dtype=int) * 2)      # y = 2x
    x = [1, -2, 3, -4]
    st.at(5, ABC(E(1), 2, 1, 0)).vec(5, E(1), x)              # row 2 = 2x
    st.at(8, ABC(E(1), 2, 1, 0)).vec(8, E(1), x)              # again mode 0: still 2x
    st.at(11, ACC(E(0), 2, 0))                                # count 0 = 1 row
    st.at(12, ABC(E(1), 2, 0, 1)).vec(12, E(1), x)            # mode 1, count 0: row 2 = 4x
    st.at(13, ABC(E(1), 2, 1, 1)).vec(13, E(1), x)            # reads at 14 before the
    st.at(17, ACC(E(0), 2, 1))                                # write at the end of 14 ...
    tr = run_both(st)
    assert writes_at(tr) == [12, 18]
    assert acc_out(tr, 12, TINY) == [2, -4, 6, -8]
    # ... so the second mode-1 ABC saw 2x and wrote 2x + 2x (the checker forbids this race;
    # the hardware does what the table says)
    assert acc_out(tr, 18, TINY) == [4, -8, 12, -16]


def test_mode1_after_write_ended_accumulates():
    st = Stim(TINY, 20)
    load_weights(st, 0, E(0), np.eye(4, dtype=int))
    x = [7, 0, -7, 1]
    st.at(5, ABC(E(1), 0, 1, 0)).vec(5, E(1), x)       # written at the end of 7
    st.at(7, ABC(E(1), 0, 1, 1)).vec(7, E(1), x)       # reads at 8: sees it
    st.at(11, ACC(E(0), 0, 1))
    tr = run_both(st)
    assert acc_out(tr, 12, TINY) == [14, 0, -14, 2]


def test_int32_wraps_in_mode1():
    st = Stim(TINY, 16)
    st.preload[5] = [0x7FFFFFF0, -0x80000000, -1, 0]
    load_weights(st, 0, E(0), [[-128] * 4] * 4)        # y = 65536 for x = -128
    st.at(5, ABC(E(1), 5, 1, 1)).vec(5, E(1), [-128] * 4)
    st.at(8, ACC(E(0), 5, 1))
    tr = run_both(st)
    assert acc_out(tr, 9, TINY) == [0x7FFFFFF0 + 65536 - 2**32, -0x80000000 + 65536, 65535,
                                    65536]


def test_iw_timing_and_lw_during_abc_then_iw_no_bubble():
    # tile A = identity installed by IW at 4; ABC of 6 vectors from 5 (elements 5..10) on E0
    # while LW of tile B = -identity runs on W1 (elements 6..9); IW at 10 (the last element of
    # the first ABC, which still uses A); the next ABC issues at 11: no bubble, uses B.
    st = Stim(TINY, 30)
    load_weights(st, 0, E(1), np.eye(4, dtype=int))
    st.at(5, ABC(E(0), 0, 6))
    st.at(6, LW(W(1), 0, 4))
    for i in range(4):
        st.vec(6 + i, W(1), [-1 if j == i else 0 for j in range(4)])
    st.at(10, IW())
    st.at(11, ABC(E(0), 6, 2))
    for u in range(5, 13):
        st.vec(u, E(0), [u, 1, 2, 3])
    st.at(15, ACC(E(0), 0, 8))
    tr = run_both(st)
    assert writes_at(tr) == list(range(16, 24))
    for k in range(6):       # elements u = 5..10: identity
        assert acc_out(tr, 16 + k, TINY) == [5 + k, 1, 2, 3]
    for k in range(2):       # elements u = 11, 12: -identity
        assert acc_out(tr, 22 + k, TINY) == [-(11 + k), -1, -2, -3]
    # IW alone is no work; the array is busy 5..12, write-backs end at 14, ACC from 15
    assert tr[4][3] == 0 and [tr[t][3] for t in range(5, 16)] == [1] * 11


def test_iw_sees_shadow_during_t_not_the_lw_row_written_at_t():
    st = Stim(TINY, 24)
    load_weights(st, 0, E(0), np.eye(4, dtype=int))           # IW at 4: identity
    st.at(5, LW(E(0), 3, 2))        # row 3 <- 5*e3 at the end of 5; row 0 <- 5*e0 at end of 6
    st.vec(5, E(0), [0, 0, 0, 5]).vec(6, E(0), [5, 0, 0, 0])
    st.at(6, IW())                  # shadow during 6: row 3 new, row 0 still e0
    st.at(7, ABC(E(1), 0, 1)).vec(7, E(1), [1, 1, 1, 1])
    st.at(8, IW())                  # now row 0 = 5 e0 too
    st.at(9, ABC(E(1), 1, 1)).vec(9, E(1), [1, 1, 1, 1])
    st.at(12, ACC(E(0), 0, 2))
    tr = run_both(st)
    assert acc_out(tr, 13, TINY) == [1, 1, 1, 5]
    assert acc_out(tr, 14, TINY) == [5, 1, 1, 5]


def test_abc_uses_weights_active_during_u():
    # ABC element at u = 6 with IW at 6: the IW takes effect at the end of 6, element 6 uses
    # the old weights, element 7 the new ones
    st = Stim(TINY, 20)
    load_weights(st, 0, E(0), np.eye(4, dtype=int))          # IW at 4
    st.at(5, LW(E(0), 0, 1)).vec(5, E(0), [9, 0, 0, 0])       # shadow row 0 = 9 e0
    st.at(6, IW())
    st.at(7, ABC(E(1), 1, 1)).vec(7, E(1), [1, 1, 1, 1])
    st.at(10, ACC(E(0), 1, 1))
    tr = run_both(st)
    assert acc_out(tr, 11, TINY) == [9, 1, 1, 1]
    st2 = Stim(TINY, 20)
    load_weights(st2, 0, E(0), np.eye(4, dtype=int))
    st2.at(5, LW(E(0), 0, 1)).vec(5, E(0), [9, 0, 0, 0])
    st2.at(6, ABC(E(1), 1, 3))                               # elements 6, 7, 8
    st2.at(7, IW())                                          # after element 7
    for u in (6, 7, 8):
        st2.vec(u, E(1), [1, 1, 1, 1])
    st2.at(11, ACC(E(0), 1, 3))
    tr2 = run_both(st2)
    assert [acc_out(tr2, 12 + k, TINY) for k in range(3)] == [[1, 1, 1, 1]] * 2 + [[9, 1, 1, 1]]


def test_acc_reads_see_writes_ended_before():
    st = Stim(TINY, 16)
    load_weights(st, 0, E(0), np.eye(4, dtype=int))
    st.at(5, ABC(E(1), 4, 1)).vec(5, E(1), [1, 2, 3, 4])      # row 4 written at the end of 7
    st.at(7, ACC(E(0), 4, 1))                                # reads at 7: the old row (0)
    st.at(8, ACC(E(0), 4, 1))                                # reads at 8: the new one
    tr = run_both(st)
    assert writes_at(tr) == [8, 9]
    assert acc_out(tr, 8, TINY) == [0, 0, 0, 0]
    assert acc_out(tr, 9, TINY) == [1, 2, 3, 4]


def test_row_wrap_mod_r_and_mod_n():
    st = Stim(TINY, 40)
    # LW row 6, count 4: rows 6 mod 4 = 2, 3, 0, 1 get 10, 20, 30, 40 times e_row
    st.at(0, LW(E(0), 6, 4))
    for k, r in enumerate((2, 3, 0, 1)):
        st.vec(k, E(0), [10 * (k + 1) if j == r else 0 for j in range(4)])
    st.at(4, IW())                    # W = diag(30, 40, 10, 20)
    # acc 254 mod 16 = 14, count 4: rows 14, 15, 0, 1
    st.at(5, ABC(E(1), 254, 4))
    for k in range(4):
        st.vec(5 + k, E(1), [k + 1] * 4)
    st.at(12, ACC(E(0), 14, 4))       # rows 14, 15, 0, 1
    st.at(16, ACC(E(0), 30, 1))       # 30 mod 16 = 14
    tr = run_both(st)
    for k in range(4):
        assert acc_out(tr, 13 + k, TINY) == [30 * (k + 1), 40 * (k + 1), 10 * (k + 1),
                                             20 * (k + 1)]
    assert acc_out(tr, 17, TINY) == [30, 40, 10, 20]


def test_busy_engine_drops_new_instruction_back_to_back_accepted():
    st = Stim(TINY, 30)
    load_weights(st, 0, E(0), np.eye(4, dtype=int))
    st.at(5, ABC(E(1), 0, 3))            # elements 5, 6, 7
    st.at(7, ABC(E(1), 8, 2))            # element 7 still busy: dropped
    st.at(8, ABC(E(1), 3, 2))            # back to back: elements 8, 9
    for u in range(5, 10):
        st.vec(u, E(1), [u] * 4)
    st.at(12, ACC(E(0), 0, 5))           # rows 0..4 at 12..16
    st.at(13, ACC(E(0), 8, 2))           # dropped (ACC engine busy)
    st.at(17, ACC(E(0), 8, 1))           # row 8 was never written
    tr = run_both(st, errs={7: BUSY, 13: BUSY})      # ENGINE_BUSY in the dropped issue cycles
    assert writes_at(tr) == list(range(13, 19))
    assert [acc_out(tr, 13 + k, TINY) for k in range(5)] == [[u] * 4 for u in range(5, 10)]
    assert acc_out(tr, 18, TINY) == [0] * 4


def test_busy_engine_raises_engine_busy_in_issue_cycle_only():
    # W = I (LW at 0..3, IW at 4). ABC count 4 at 5: elements 5..8 write rows 0..3 with the
    # vector on E1 at 5..8 ([5]*4 .. [8]*4). An LW at 2 (LW engine has elements 0..3) and an ABC
    # at 7 (ABC engine busy until 8) are dropped: ENGINE_BUSY (bit 1 = 2) at 2 and at 7, nothing
    # else. Had the LW at 2 run, shadow row 0 would be [9]*4 (W != I); had the ABC at 7 run,
    # rows 8, 9 (preloaded 11..14, 21..24) would be overwritten. ACC at 12 reads rows 0..3
    # (driven at 13..16), ACC at 17 rows 8, 9 (driven at 18, 19).
    st = Stim(TINY, 24)
    load_weights(st, 0, E(0), np.eye(4, dtype=int))
    st.at(2, LW(E(2), 0, 1)).vec(2, E(2), [9] * 4)
    st.at(5, ABC(E(1), 0, 4))
    st.at(7, ABC(E(3), 8, 2)).vec(7, E(3), [-1] * 4).vec(8, E(3), [-2] * 4)
    for u in range(5, 9):
        st.vec(u, E(1), [u] * 4)
    st.preload = {8: [11, 12, 13, 14], 9: [21, 22, 23, 24]}
    st.at(12, ACC(E(0), 0, 4))
    st.at(17, ACC(E(0), 8, 2))
    tr = run_both(st, errs={2: BUSY, 7: BUSY})
    assert writes_at(tr) == [13, 14, 15, 16, 18, 19]
    assert [acc_out(tr, 13 + k, TINY) for k in range(4)] == [[5 + k] * 4 for k in range(4)]
    assert acc_out(tr, 18, TINY) == [11, 12, 13, 14]
    assert acc_out(tr, 19, TINY) == [21, 22, 23, 24]
    # the running ABC keeps the unit active through its last write (end of 8 + 2 = 10)
    assert [e[3] for e in tr[5:12]] == [1, 1, 1, 1, 1, 1, 0]


def test_engine_busy_reaches_error_flags_at_mxm_position():
    """Whole chip (tiny with MXM and SXM), RTL against the model, and both against the hand
    values: MXM_W (position 0) issues ABC count 4 at 5 and another ABC at 7 -> ENGINE_BUSY
    (bit 1), first error at position 0, cycle 7; no other flag."""
    from test_hdl_top import compare  # the RTL-vs-model whole-chip harness

    cfg = TINY.replace(units=("mxm", "sxm"))
    mxm_w = cfg.position_index("MXM_W")
    q = {mxm_w: [encode("NOP", n=5), encode("ABC", s=E(1), acc=0, count=4, mode=0),
                 encode("NOP", n=1), encode("ABC", s=E(1), acc=8, count=2, mode=0)]}
    res = compare(cfg, q, label="mxm engine busy")
    assert res.err_flags == BUSY
    assert (res.err_position, res.err_bit, res.err_cycle) == (mxm_w, 1, 7)


def test_checker_rejects_mxm_engine_busy():
    # full profile: MXM_W has an ABC at 5 (elements 5..8) and another ABC at 7 (line 4)
    text = (".queue MXM_W\n NOP 5\n ABC E1, 0, 4, 0\n NOP 1\n ABC E1, 8, 2, 0\n")
    with pytest.raises(AsmError) as exc:
        assemble(text, FULL, "busy.s")
    e = exc.value
    assert (e.line, e.cycle, e.position) == (5, 7, FULL.position_index("MXM_W"))
    msg = str(e)
    for part in ("ENGINE_BUSY", "ABC (line 5)", "cycle 7", "MXM_W", "ABC engine",
                 "from cycle 5 until cycle 8", "line 3", "drop"):
        assert part in msg, (part, msg)


def test_active_cycles():
    st = Stim(TINY, 12)
    st.at(0, LW(E(0), 0, 3))             # elements 0..2
    tr = run_both(st)
    assert [e[3] for e in tr] == [1, 1, 1] + [0] * 9
    st = Stim(TINY, 12)
    st.at(1, ABC(E(0), 0, 2))            # elements 1, 2; last write at the end of 4
    tr = run_both(st)
    assert [e[3] for e in tr] == [0, 1, 1, 1, 1] + [0] * 7
    st = Stim(TINY, 12)
    st.at(0, ACC(E(0), 0, 2))            # reads 0, 1; driven 1, 2
    st.at(1, IW())                       # no work of its own
    tr = run_both(st)
    assert [e[3] for e in tr] == [1, 1, 1] + [0] * 9
    assert writes_at(tr) == [1, 2]


def test_stream_operands_out_of_range_and_partial_group():
    st = Stim(TINY, 20)
    load_weights(st, 0, E(0), np.eye(4, dtype=int))
    st.at(5, ABC(E(7), 0, 1)).vec(5, E(3), [1, 1, 1, 1])     # index 7 >= 4 streams: zeros
    st.at(6, ABC(W(3), 1, 1)).vec(6, W(3), [1, 2, 3, 4])
    st.at(10, ACC(W(2), 1, 1))           # group at 2: streams 2, 3 get bytes 0, 1 only
    st.at(11, ACC(E(5), 1, 1))           # nothing written
    st.at(12, ACC(E(0), 0, 1))
    tr = run_both(st)
    assert writes_at(tr) == [11, 13]
    assert tr[11][0] == 0 and tr[11][1] == 0b1100
    assert tr[11][2] == {(1, 2): bytes([1, 2, 3, 4]), (1, 3): bytes(4)}
    assert acc_out(tr, 13, TINY) == [0] * 4


def test_start_keeps_weights_and_accumulators_drops_running_work():
    st = Stim(TINY, 24)
    load_weights(st, 0, E(0), np.eye(4, dtype=int) * 3)
    st.at(5, ABC(E(1), 2, 1)).vec(5, E(1), [1, 2, 3, 4])     # row 2 = 3, 6, 9, 12 (end of 7)
    st.at(8, LW(E(0), 0, 4))             # interrupted by START before cycle 10
    st.vec(8, E(0), [0, 0, 0, 0]).vec(9, E(0), [0, 0, 0, 0])
    st.at(9, ACC(E(0), 2, 8))            # ACC interrupted too
    # after the START (pause before cycle 10): shadow rows 0, 1 were zeroed, not 2, 3
    st.at(10, IW())
    st.at(11, ABC(E(1), 3, 1)).vec(11, E(1), [1, 1, 1, 1])
    st.at(14, ACC(E(0), 2, 2))
    tr = run_both(st, pause=(10, 3))
    # the ACC output due at 10 is lost with the START; rows persist; W = diag(0, 0, 3, 3)
    assert writes_at(tr) == [15, 16]
    assert acc_out(tr, 15, TINY) == [3, 6, 9, 12]
    assert acc_out(tr, 16, TINY) == [0, 0, 3, 3]


# ---- random differential (tiny) and the full and wide profiles ----------------------------

@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_programs_rtl_matches_model(seed):
    """Random instruction mixes (counts incl. 0, any stream operand, both modes, overlapping
    instructions that get dropped) and random streams: RTL and model agree every cycle."""
    rng = np.random.default_rng(seed)
    cycles = 160
    st = Stim(TINY, cycles)
    st.east[:] = rng.integers(0, 256, size=st.east.shape)
    st.west[:] = rng.integers(0, 256, size=st.west.shape)
    for t in range(cycles - 12):
        if rng.random() < 0.45:
            op = rng.choice(["LW", "IW", "ABC", "ABC", "ACC"])
            s = int(rng.integers(0, 64)) if rng.random() < 0.2 else \
                stream_operand(int(rng.integers(0, 2)), int(rng.integers(0, 4)))
            count = int(rng.integers(0, 7))
            if op == "LW":
                st.at(t, LW(s, int(rng.integers(0, 64)), count))
            elif op == "IW":
                st.at(t, IW())
            elif op == "ABC":
                st.at(t, ABC(s, int(rng.integers(0, 256)), count, int(rng.integers(0, 2))))
            else:
                st.at(t, ACC(s, int(rng.integers(0, 256)), count))
    tr = run_both(st, any_errs=True)
    assert len(writes_at(tr)) > 10          # the mix really produced output
    assert any(e[4] for e in tr)            # and dropped (ENGINE_BUSY) instructions


@pytest.mark.parametrize("cfg", [FULL, WIDE], ids=["full", "wide"])
def test_profile_matmul_and_accumulate(cfg):
    # times relative to the IW at n (full 8, wide 16); R = 4n (32, 64) divides 64, so the
    # accumulator fields 62, 63 are the last two rows and a count of 3 wraps to row 0
    n = cfg.vec_bytes
    rng = np.random.default_rng(7)
    wt = rng.integers(-128, 128, size=(n, n))
    xs = rng.integers(-128, 128, size=(3, n))
    st = Stim(cfg, n + 29)
    t = load_weights(st, 0, E(5), wt)                 # IW at n
    st.at(t + 1, ABC(E(2), 62, 3, 0))                 # rows, 0
    for k in range(3):
        st.vec(t + 1 + k, E(2), xs[k])
    st.at(t + 6, ABC(W(7), 63, 1, 1)).vec(t + 6, W(7), [-128] * n)  # row R-1 += W^T (-128 ..)
    st.at(t + 10, ACC(W(4), 62, 3))                   # west streams 4..7, driven at t+11..t+13
    tr = run_both(st)

    def y(x):                                         # y[j] = sum_i W[i][j] x[i]
        return [sum(int(wt[i][j]) * int(x[i]) for i in range(n)) for j in range(n)]

    assert writes_at(tr) == [t + 11, t + 12, t + 13]
    assert tr[t + 11][1] == 0xF0 and tr[t + 11][0] == 0
    assert acc_out(tr, t + 11, cfg, WEST, 4) == y(xs[0])
    assert acc_out(tr, t + 12, cfg, WEST, 4) == [a + b for a, b in
                                                 zip(y(xs[1]), y([-128] * n))]
    assert acc_out(tr, t + 13, cfg, WEST, 4) == y(xs[2])


@pytest.mark.parametrize("cfg, byte2", [(FULL, 2), (WIDE, 4)], ids=["full", "wide"])
def test_profile_largest_product_sum(cfg, byte2):
    n = cfg.vec_bytes
    st = Stim(cfg, n + 10)
    t = load_weights(st, 0, E(0), [[-128] * n] * n)   # IW at n
    st.at(t + 1, ABC(E(1), 0, 1)).vec(t + 1, E(1), [-128] * n)
    st.at(t + 4, ACC(E(4), 0, 1))                     # driven at t + 5
    tr = run_both(st)
    # n * 2^14: full 8 * 2^14 = 2^17 = 0x00020000, wide 16 * 2^14 = 2^18 = 0x00040000:
    # byte 2 is 2 (full) or 4 (wide) in every lane, the other bytes 0
    assert [tr[t + 5][2][(0, 4 + b)] for b in range(4)] == [bytes(n), bytes(n),
                                                            bytes([byte2] * n), bytes(n)]


def test_model_rejects_bad_use():
    with pytest.raises(ValueError, match="not an MXM position"):
        MxmModel(TINY, TINY.position_index("VXM"))
    with pytest.raises(ValueError, match="position 99"):
        MxmModel(TINY, 99)
    model = MxmModel(TINY, TINY.position_index("MXM_E"))
    instr, fields = decode(encode("READ", addr=0, s=0))
    with pytest.raises(ValueError, match="READ at cycle 3 is not an MXM instruction"):
        model.issue(3, instr, fields, 0)


def test_timing_diagram_of_docs():
    """The schedule drawn in docs/mxm.md, cycle by cycle."""
    st = Stim(TINY, 12)
    load_weights(st, 0, E(0), np.eye(4, dtype=int) * -1)      # LW at 0, IW at 4
    st.at(5, ABC(E(1), 0, 2, 0)).vec(5, E(1), [1, 2, 3, 4]).vec(6, E(1), [5, 6, 7, 8])
    st.at(8, ACC(E(0), 0, 2))
    tr = run_both(st)
    assert [e[3] for e in tr] == [1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 0]
    assert writes_at(tr) == [9, 10]
    assert acc_out(tr, 9, TINY) == [-1, -2, -3, -4]
    assert acc_out(tr, 10, TINY) == [-5, -6, -7, -8]


def test_non_power_of_two_vector_wraps_rows():
    """n = 12 (3 superlanes of 4): rows wrap mod 12 (LW) and mod 48 (ABC/ACC)."""
    cfg = TspConfig(lanes=4, superlanes=3, streams=4, mem_slices=1, bank_depth=8,
                    queue_depth=16, name="n12")
    n = cfg.vec_bytes
    st = Stim(cfg, 40)
    st.at(0, LW(E(0), 22, n))                 # rows 22 mod 12 = 10, 11, 0, ..., 9
    for k in range(n):
        r = (10 + k) % n
        st.vec(k, E(0), [r + 1 if j == r else 0 for j in range(n)])
    st.at(n, IW())                            # W = diag(1..12)
    st.at(n + 1, ABC(E(1), 250, 3))           # 250 mod 48 = 10: rows 10, 11, 12
    for k in range(3):
        st.vec(n + 1 + k, E(1), [k + 1] * n)
    st.at(n + 6, ACC(E(0), 10, 3))
    tr = run_both(st)
    diag = list(range(1, n + 1))
    for k in range(3):
        assert acc_out(tr, n + 7 + k, cfg) == [(k + 1) * d for d in diag]
