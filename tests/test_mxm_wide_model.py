# Golden-model tests of the MXM wide loads and activation buffer (LWG, LXG, ABX) in sim/mxm.py,
# against expectations derived by hand from docs/units.md section 2 ("Wide loads and the
# activation buffer"): which shadow / buffer rows an element writes, when an LWG with iw installs,
# which weights and buffer row an ABX element uses, ENGINE_BUSY on the shared engines, ILLEGAL,
# and zero fields acting as 1. Expected results are computed with numpy from the chosen weights
# and activations (y = W^T x), never taken from the model.
from __future__ import annotations

import numpy as np
import pytest
from mxm_harness import ABC, ABX, ACC, LW, LWG, LXG, E, W
from mxm_harness import IW as IW_

from sim.model import TspModel
from sim.mxm import MxmModel
from tsp.config import TspConfig
from tsp.isa import EAST, WEST, decode, encode

FULL = TspConfig.profile("full")          # n = 8, 8 streams, R = 32, L = 4, B = 8
DEFAULT = TspConfig.profile("default")    # n = 4, L = 1, B = 0
BUSY = 1 << 1                             # ENGINE_BUSY (docs/architecture.md section 4)
ILL = 1 << 3                              # ILLEGAL


IW = IW_()


class Run:
    """Instructions and stream-register values at one MXM per cycle, run on MxmModel."""

    def __init__(self, cfg: TspConfig, cycles: int):
        self.cfg = cfg
        self.cycles = cycles
        self.prog: dict[int, int] = {}
        self.east = np.zeros((cycles, cfg.streams, cfg.vec_bytes), dtype=np.uint8)
        self.west = np.zeros_like(self.east)
        self.model = MxmModel(cfg, cfg.position_index("MXM_W"))
        self.t = 0
        self.errs: dict[int, int] = {}
        self.act: list[bool] = []
        self.loads: dict[int, list] = {}

    def at(self, t: int, w: int) -> Run:
        assert t not in self.prog
        self.prog[t] = w
        return self

    def vec(self, t: int, operand: int, values) -> Run:
        regs = self.west if operand >> 5 else self.east
        regs[t, operand & 31] = np.asarray(values, dtype=np.int64) & 0xFF
        return self

    def go(self, until: int | None = None) -> Run:
        """Run cycles self.t .. until-1 (default: all)."""
        end = self.cycles if until is None else until
        for t in range(self.t, end):
            err = 0
            if t in self.prog:
                instr, fields = decode(self.prog[t])
                err = self.model.issue(t, instr, fields, 0)
            self.act.append(self.model.active(t))
            loads, e2 = self.model.cycle(t, self.east[t], self.west[t])
            err |= e2
            if err:
                self.errs[t] = err
            if loads:
                self.loads[t] = loads
        self.t = end
        return self

    def acc_out(self, t: int, direction: int, first: int) -> list[int]:
        """The int32 row an ACC loaded onto SG4 group `first` at the end of cycle t."""
        got = {(d, s): bytes(np.asarray(v, dtype=np.uint8)) for d, s, v in self.loads[t]}
        return [int.from_bytes(bytes(got[(direction, first + b)][j] for b in range(4)),
                               "little", signed=True) for j in range(self.cfg.vec_bytes)]


def rand8(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.integers(-128, 128, size=shape, dtype=np.int64)


def wtx(w: np.ndarray, x: np.ndarray) -> list[int]:
    """y[j] = sum_i W[i][j] x[i] (exact; these sums fit int32)."""
    return [int(sum(int(w[i][j]) * int(x[i]) for i in range(len(x)))) for j in range(len(x))]


# ---- LWG w = 4 (a tile in 2 cycles) + iw, LXG, ABX d = 2 ------------------------------------

def test_lwg_tile_in_two_cycles_installs_and_abx_d2_over_rows():
    rng = np.random.default_rng(1)
    w1, w2 = rand8(rng, (8, 8)), rand8(rng, (8, 8))
    x = rand8(rng, (8, 8))                       # buffer rows 0..7
    r = Run(FULL, 24)
    # t=0,1: tile W1 on E0..E3, rows 0..3 then 4..7; the element at 1 writes row 7: installs
    r.at(0, LWG(E(0), 0, 2, 4, iw=1))
    for k in range(2):
        for j in range(4):
            r.vec(k, E(j), w1[4 * k + j])
    # t=2,3: buffer rows 0..7 from W0..W3 (LXG uses the LW engine: free from 2 on)
    r.at(2, LXG(W(0), 0, 2, 4))
    for k in range(2):
        for j in range(4):
            r.vec(2 + k, W(j), x[4 * k + j])
    # t=4: ABX b=1 -> elements at 4, 6, 8, 10 into rows 5..8
    r.at(4, ABX(1, 5, 4, mode=0, d=2))
    r.at(5, LWG(E(4), 0, 2, 4, iw=1))            # W2 on E4..E7 at 5, 6: installs end of 6
    for k in range(2):
        for j in range(4):
            r.vec(5 + k, E(4 + j), w2[4 * k + j])
    # rows 5..8 written at the ends of 6, 8, 10, 12; ACC them at 13..16 onto W4..W7
    r.at(13, ACC(W(4), 5, 4))
    r.go()
    assert r.errs == {}
    # element at 4 and 6 use W1 (W2 installed at the end of 6), 8 and 10 use W2
    want = {5: wtx(w1, x[1]), 6: wtx(w1, x[1]), 7: wtx(w2, x[1]), 8: wtx(w2, x[1])}
    for row, y in want.items():
        assert r.model.accum[row].tolist() == y, row
        assert r.acc_out(14 + row - 5, WEST, 4) == y     # read at 13+k, loaded end of 14+k
    assert not r.model.accum[9].any() and not r.model.accum[4].any()
    assert (r.model.xbuf == x).all()
    assert (r.model.weights == w2).all()


def test_abx_mode1_accumulates_and_reads_buffer_as_during_u():
    rng = np.random.default_rng(2)
    wt = rand8(rng, (8, 8))
    x0, x1 = rand8(rng, (2, 8))
    r = Run(FULL, 30)
    r.at(0, LWG(E(0), 0, 2, 4, iw=1))
    for k in range(2):
        for j in range(4):
            r.vec(k, E(j), wt[4 * k + j])
    r.at(2, LXG(E(4), 3, 1, 1)).vec(2, E(4), x0)      # buffer row 3 = x0 at the end of 2
    r.at(3, ABX(3, 0, 2, mode=0, d=3))                # u = 3, 6: rows 0, 1 = W^T x0
    # an LXG element at 6 rewrites row 3 with x1: the ABX element at 6 still sees x0
    r.at(6, LXG(E(4), 11, 1, 1)).vec(6, E(4), x1)     # row 11 mod 8 = 3
    # mode 1 on row 0 (written at the end of 5) and row 1 (end of 8): u = 9, 10 read at 10, 11
    r.at(9, ABX(11, 0, 2, mode=1, d=0))               # b 11 mod 8 = 3 (x1); d 0 acts as 1
    r.go()
    assert r.errs == {}
    y0, y1 = np.array(wtx(wt, x0)), np.array(wtx(wt, x1))
    assert r.model.accum[0].tolist() == (y0 + y1).tolist()
    assert r.model.accum[1].tolist() == (y0 + y1).tolist()
    assert not r.model.accum[2].any()


# ---- IW vs iw install in the same cycle ---------------------------------------------------

def test_lwg_install_overrides_iw_in_the_same_cycle():
    rng = np.random.default_rng(3)
    a = rand8(rng, (8, 8))
    x = rand8(rng, 8)
    r = Run(FULL, 20)
    r.at(0, LWG(E(0), 0, 1, 4))                       # rows 0..3, no install (iw = 0)
    for j in range(4):
        r.vec(0, E(j), a[j])
    r.at(1, LWG(E(4), 4, 2, 2, iw=1))                 # rows 4,5 at 1; rows 6,7 at 2: installs
    for j in range(2):
        r.vec(1, E(4 + j), a[4 + j])
        r.vec(2, E(4 + j), a[6 + j])
    r.at(2, IW)                                       # shadow during 2 lacks rows 6, 7
    r.go(2)
    assert not r.model.weights.any()                  # element at 1 has no row 7: no install
    r.go(3)
    assert (r.model.weights == a).all()               # LWG's install (with rows 6, 7) wins
    r.at(3, LXG(E(0), 0, 1, 1)).vec(3, E(0), x)
    r.at(4, ABX(0, 2, 1))
    r.at(8, ACC(E(4), 2, 1))
    r.go()
    assert r.errs == {}
    assert r.model.accum[2].tolist() == wtx(a, x)
    assert r.acc_out(9, EAST, 4) == wtx(a, x)


def test_iw_with_an_lwg_element_without_iw_takes_the_shadow_as_during_t():
    """LWG (iw = 0) element at 3 writes rows 6, 7 while an IW issues at 3: the IW installs the
    shadow as during 3, without those rows."""
    rng = np.random.default_rng(4)
    a, b = rand8(rng, (8, 8)), rand8(rng, (4, 8))
    r = Run(FULL, 6)
    r.at(0, LWG(E(0), 0, 2, 4))                       # tile A, no install
    for k in range(2):
        for j in range(4):
            r.vec(k, E(j), a[4 * k + j])
    r.at(2, LWG(E(0), 4, 2, 2))                       # rows 4, 5 at 2; rows 6, 7 at 3
    for k in range(2):
        for j in range(2):
            r.vec(2 + k, E(j), b[2 * k + j])
    r.at(3, IW)
    r.go()
    want = a.copy()
    want[4:6] = b[:2]
    assert (r.model.weights == want).all()
    want[6:8] = b[2:]
    assert (r.model.shadow == want).all()


def test_iw_install_on_wrapped_rows():
    """row = 6, w = 4: rows 6, 7, 0, 1 (mod n): the element writes row n-1 and installs."""
    rng = np.random.default_rng(5)
    v = rand8(rng, (4, 8))
    r = Run(FULL, 3)
    r.at(0, LWG(E(2), 6, 1, 4, iw=1))
    for j in range(4):
        r.vec(0, E(2 + j), v[j])
    r.go()
    want = np.zeros((8, 8), dtype=np.int64)
    want[[6, 7, 0, 1]] = v
    assert (r.model.shadow == want).all() and (r.model.weights == want).all()


# ---- engines: ENGINE_BUSY, active ---------------------------------------------------------

def test_shared_engines_busy():
    r = Run(FULL, 30)
    r.at(0, LWG(E(0), 0, 3, 2))                       # LW engine 0..2
    r.at(1, LXG(E(4), 0, 1, 1)).vec(1, E(4), [7] * 8)  # busy: dropped (buffer stays 0)
    r.at(2, LW(E(0), 0, 1))                           # busy
    r.at(3, LXG(E(4), 5, 1, 1)).vec(3, E(4), [1] * 8)  # free again: row 5 = 1
    r.at(5, ABX(5, 0, 3, d=4))                        # ABC engine 5..13 (elements 5, 9, 13)
    r.at(7, ABC(E(0), 10, 1))                         # a gap cycle: busy
    r.at(12, ABX(5, 10, 1))                           # busy
    r.at(13, ABC(E(0), 10, 1))                        # the last element: busy
    r.at(14, ABX(5, 20, 1))                           # free
    r.at(15, LXG(E(4), 1, 1, 4))                      # LW engine free: rows 1..4 (zeros)
    r.go()
    assert r.errs == {1: BUSY, 2: BUSY, 7: BUSY, 12: BUSY, 13: BUSY}
    assert r.model.xbuf[0].tolist() == [0] * 8        # the LXG at 1 was dropped
    assert r.model.xbuf[5].tolist() == [1] * 8
    assert not r.model.accum[10].any()                # the dropped ABC/ABX wrote nothing


def test_abc_busy_drops_abx_and_engines_at():
    r = Run(FULL, 12)
    r.at(0, ABC(E(0), 0, 3))
    r.at(2, ABX(0, 4, 1))
    r.at(3, ABX(0, 4, 2, d=3))                        # elements 3, 6
    r.at(4, LWG(E(0), 0, 2, 2, iw=1))                 # elements 4 (rows 0,1), 5 (rows 2,3)
    r.go(1)
    assert r.model.engines_at(1) == ("ABC",)
    r.go()
    assert r.errs == {2: BUSY}
    m = r.model
    assert m.engines_at(6) == ("ABC",) and m.engines_at(4) == ("LW",)
    assert m.engines_at(5) == ("LW",)                 # rows 2, 3: no row 7, no install
    assert m.engines_at(7) == ()


def test_lwg_install_is_an_iw_pulse_for_activity():
    r = Run(FULL, 4)
    r.at(0, LWG(E(0), 4, 1, 4, iw=1))                 # rows 4..7: installs at the end of 0
    r.go(1)
    assert set(r.model.engines_at(0)) == {"LW", "IW"}


def test_active_covers_abx_gaps_and_write_back():
    r = Run(FULL, 12)
    r.at(0, ABX(0, 0, 2, d=5))                        # u = 0, 5: row 1 written at the end of 7
    r.go()
    assert r.act == [True] * 8 + [False] * 4


def test_lwg_lxg_active_and_zeros_past_last_stream():
    r = Run(FULL, 5)
    r.at(0, LWG(E(6), 0, 1, 4)).vec(0, E(6), [5] * 8).vec(0, E(7), [6] * 8)
    r.go()
    assert r.act == [True, False, False, False, False]
    want = np.zeros((8, 8), dtype=np.int64)
    want[0], want[1] = 5, 6                           # E8, E9 do not exist: rows 2, 3 zeros
    assert (r.model.shadow == want).all()


# ---- ILLEGAL ------------------------------------------------------------------------------

def test_illegal_wider_than_load_width_changes_nothing():
    r = Run(FULL, 6)
    r.at(0, LWG(E(0), 0, 1, 5, iw=1)).vec(0, E(0), [3] * 8)
    r.at(1, LXG(E(0), 0, 1, 5)).vec(1, E(0), [3] * 8)
    r.at(2, LW(E(0), 0, 1)).vec(2, E(0), [4] * 8)     # the LW engine is free: accepted
    r.go()
    assert r.errs == {0: ILL, 1: ILL}
    assert r.model.shadow[0].tolist() == [4] * 8 and not r.model.shadow[1:].any()
    assert not r.model.weights.any() and not r.model.xbuf.any()


def test_illegal_while_engine_busy_is_illegal_not_busy():
    r = Run(FULL, 6)
    r.at(0, LWG(E(0), 0, 3, 1))
    r.at(1, LWG(E(0), 0, 1, 6))
    r.go()
    assert r.errs == {1: ILL}


def test_illegal_without_buffer_default_profile():
    r = Run(DEFAULT, 12)
    r.at(0, LXG(E(0), 0, 1, 1)).vec(0, E(0), [1] * 4)
    r.at(1, ABX(0, 0, 1))
    r.at(2, LWG(E(0), 0, 1, 2))
    r.at(3, LWG(E(0), 1, 0, 0, iw=1)).vec(3, E(0), [2, 3, 4, 5])   # legal: w 0 acts as 1
    r.go()
    assert r.errs == {0: ILL, 1: ILL, 2: ILL}
    assert r.model.shadow.tolist() == [[0] * 4, [2, 3, 4, 5], [0] * 4, [0] * 4]
    assert not r.model.weights.any()                  # row 1 is not row n-1: no install
    assert not r.model.accum.any()
    assert r.act == [False] * 3 + [True] + [False] * 8


def test_illegal_reaches_chip_error_flags():
    m = TspModel(DEFAULT)
    x = DEFAULT.position_index("MXM_E")
    m.load_queue(x, [encode("NOP", n=2), ABX(0, 0, 1), encode("HALT")])
    r = m.run()
    assert r.err_flags == ILL
    assert (r.err_position, r.err_bit, r.err_cycle) == (x, 3, 2)


# ---- zero fields, persistence ---------------------------------------------------------------

def test_zero_count_and_w_act_as_one():
    r = Run(FULL, 10)
    r.at(0, LWG(E(1), 7, 0, 0, iw=1)).vec(0, E(1), list(range(8))).vec(0, E(2), [9] * 8)
    r.at(1, LXG(E(3), 2, 0, 0)).vec(1, E(3), [1] * 8).vec(1, E(4), [9] * 8)
    r.at(2, ABX(2, 6, 0, mode=0, d=0))                # one element at 2: row 6 = W^T x
    r.go()
    want = np.zeros((8, 8), dtype=np.int64)
    want[7] = range(8)                                # one row from E1 only; installs (row 7)
    assert (r.model.shadow == want).all() and (r.model.weights == want).all()
    assert r.model.xbuf[2].tolist() == [1] * 8 and r.model.xbuf[3].tolist() == [0] * 8
    assert r.model.accum[6].tolist() == list(range(8))   # y[j] = W[7][j] * 1
    assert not r.model.accum[7].any()
    assert r.act == [True] * 5 + [False] * 5


def test_buffer_persists_across_start():
    r = Run(FULL, 8)
    r.at(0, LXG(E(0), 4, 1, 2)).vec(0, E(0), [3] * 8).vec(0, E(1), [-2] * 8)
    r.go()
    r.model.reset()
    assert r.model.xbuf[4].tolist() == [3] * 8 and r.model.xbuf[5].tolist() == [-2] * 8


@pytest.mark.parametrize("name", ["LWG", "LXG", "ABX"])
def test_model_rejects_nothing_legal_in_full(name):
    """Sanity: each new instruction with its largest legal w is accepted in `full`."""
    r = Run(FULL, 4)
    fields = {"LWG": LWG(E(0), 0, 1, 4), "LXG": LXG(E(4), 0, 1, 4), "ABX": ABX(7, 0, 1)}
    r.at(0, fields[name])
    r.go()
    assert r.errs == {}
