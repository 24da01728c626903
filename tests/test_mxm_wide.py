"""MXM wide loads and activation buffer (LWG, LXG, ABX) in the RTL (hdl/mxm.py), standalone.

Each test drives `Mxm` in the Amaranth simulator cycle by cycle and checks the stream writes,
`active`, `err` and the accumulator rows against expectations derived by hand from
docs/units.md section 2 ("Wide loads and the activation buffer"): which weights / buffer rows
an element uses is reasoned out from the timing table in each test's comments, and the values
are then W^T x of those (never taken from the RTL's own output).
"""
from __future__ import annotations

import numpy as np
from mxm_harness import ABC, ABX, ACC, IW, LW, LWG, LXG, E, Stim, W, simulate

from tsp.config import TspConfig

FULL = TspConfig.profile("full")          # n = 8, 8 streams, R = 32, L = 4, B = 8
DEFAULT = TspConfig.profile("default")    # n = 4, 8 streams, R = 16, L = 1, B = 0
BUSY = 1 << 1                             # ENGINE_BUSY (docs/architecture.md section 4)
ILLEGAL = 1 << 3                          # ILLEGAL (docs/architecture.md section 4)


class Run:
    """The RTL's per-cycle trace and the accumulator rows at the end."""

    def __init__(self, stim: Stim, pause: tuple[int, int] | None = None):
        """`pause=(t, gap)`: before cycle t, drop `run` for `gap` cycles with one `clear` pulse
        (a host START in between)."""
        self.cfg = stim.cfg
        trace, self.accum = simulate(stim, pause)
        self.writes = [c[2] for c in trace]
        self.active = [c[3] for c in trace]
        self.err = [c[4] for c in trace]

    def errs(self) -> dict[int, int]:
        return {t: e for t, e in enumerate(self.err) if e}

    def acc_out(self, t: int, direction: int = 0, first: int = 0) -> list[int]:
        """The int32 vector an ACC drove on SG4 group `first` in cycle t."""
        rows = [self.writes[t][(direction, first + b)] for b in range(4)]
        return [int.from_bytes(bytes(rows[b][j] for b in range(4)), "little", signed=True)
                for j in range(self.cfg.vec_bytes)]


def wt_x(wmat: np.ndarray, x) -> list[int]:
    """y[j] = sum_i W[i][j] x[i], int32 wrapping (docs/units.md section 2)."""
    y = np.asarray(wmat, dtype=np.int64).T @ np.asarray(x, dtype=np.int64)
    return [int(v) for v in ((y + 2**31) % 2**32 - 2**31)]


def i8(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.integers(-128, 128, size=shape, dtype=np.int64)


# ---- LWG -----------------------------------------------------------------------------------

def test_lwg_w4_two_tiles_install_themselves_abc_without_bubble():
    """One LWG E0,0,4,4,iw on `full` loads tile A in cycles 0-1 (rows 0-3 on E0..E3 at 0, rows
    4-7 at 1: element 1 writes row 7, so A is installed at the end of 1) and tile B in 2-3
    (installed at the end of 3). ABC E4,0,4 at 1 has elements u = 1..4: u = 1 uses the
    power-on weights (0), u = 2 and 3 use A (3 is B's install cycle, B is used from 4 on),
    u = 4 uses B. Then LXG W0,5,1,1 at 4 puts x5 into buffer row 5 and ABX 5,4,1 at 5 (sees
    it: written by the end of 4) multiplies it by B into row 4. ACC E0,0,5 at 7 reads rows 0-4
    at 7..11 (last write: row 4 at the end of 7) and drives them in 8..12."""
    rng = np.random.default_rng(1)
    a, b = i8(rng, 8, 8), i8(rng, 8, 8)
    xs = i8(rng, 6, 8)
    st = Stim(FULL, 16)
    st.at(0, LWG(E(0), 0, 4, 4, iw=1))
    st.tile(0, E(0), list(a) + list(b), 4)
    st.at(1, ABC(E(4), 0, 4))
    for k in range(4):
        st.vec(1 + k, E(4), xs[k])
    st.at(4, LXG(W(0), 5, 1, 1)).vec(4, W(0), xs[5])
    st.at(5, ABX(5, 4, 1))
    st.at(7, ACC(E(0), 0, 5))
    run = Run(st)
    zero = np.zeros((8, 8), dtype=np.int64)
    want = [wt_x(zero, xs[0]), wt_x(a, xs[1]), wt_x(a, xs[2]), wt_x(b, xs[3]), wt_x(b, xs[5])]
    assert [run.acc_out(8 + r) for r in range(5)] == want
    assert [t for t, w in enumerate(run.writes) if w] == [8, 9, 10, 11, 12]
    assert run.errs() == {}
    # active: LW engine 0..3, ABC 1..4 (+ write-back to 6), LXG 4, ABX 5 (+ 7), ACC 7..12
    assert run.active == [1] * 13 + [0] * 3


def test_lwg_install_then_abx_right_after_and_row_wrap():
    """LXG E0,3,1,1 at 0 fills buffer row 3 with x. LWG E0,2,2,4,iw at 1: element 0 (cycle 1)
    writes rows 2-5 from E0..E3, element 1 (cycle 2) rows 6,7,0,1: it writes row 7, so the tile
    is installed at the end of 2. ABX 3,10,2,0,1 at 2: u = 2 still uses the power-on weights
    (zero), u = 3 uses the new tile."""
    rng = np.random.default_rng(2)
    tile = i8(rng, 8, 8)
    x = i8(rng, 8)
    st = Stim(FULL, 10)
    st.at(0, LXG(E(0), 3, 1, 1)).vec(0, E(0), x)
    st.at(1, LWG(E(0), 2, 2, 4, iw=1))
    for j in range(4):
        st.vec(1, E(j), tile[2 + j])
        st.vec(2, E(j), tile[(6 + j) % 8])
    st.at(2, ABX(3, 10, 2, 0, 1))
    run = Run(st)
    assert run.accum[10].tolist() == [0] * 8
    assert run.accum[11].tolist() == wt_x(tile, x)
    assert run.errs() == {}
    # ABX elements at 2 and 3, written at the ends of 4 and 5
    assert run.active == [1] * 6 + [0] * 4


def test_iw_in_the_install_cycle_is_overridden():
    """Tile A installed by LWG E0,0,2,4,iw at 0 (end of 1); tile C loaded into the shadow by
    LWG E0,0,2,4 (no iw) at 2-3, so active = A, shadow = C. ABC E4,0,4 at 7: u = 7..10.
    LWG E0,0,2,4,iw at 8 loads B (rows 0-3 at 8, 4-7 at 9) and installs at the end of 9; an
    IW at 9 would install the shadow as during 9 = B rows 0-3 + C rows 4-7, but the install
    wins: u = 7, 8, 9 use A, u = 10 uses all of B."""
    rng = np.random.default_rng(3)
    a, c, b = i8(rng, 8, 8), i8(rng, 8, 8), i8(rng, 8, 8)
    xs = i8(rng, 4, 8)
    st = Stim(FULL, 16)
    st.at(0, LWG(E(0), 0, 2, 4, iw=1))
    st.tile(0, E(0), a, 4)
    st.at(2, LWG(E(0), 0, 2, 4, iw=0))
    st.tile(2, E(0), c, 4)
    st.at(7, ABC(E(4), 0, 4))
    for k in range(4):
        st.vec(7 + k, E(4), xs[k])
    st.at(8, LWG(E(0), 0, 2, 4, iw=1))
    st.tile(8, E(0), b, 4)
    st.at(9, IW())
    run = Run(st)
    for k in range(3):
        assert run.accum[k].tolist() == wt_x(a, xs[k]), f"element {k}"
    mixed = np.vstack([b[:4], c[4:]])
    assert run.accum[3].tolist() == wt_x(b, xs[3])
    assert run.accum[3].tolist() != wt_x(mixed, xs[3])      # the case really distinguishes
    assert run.errs() == {}


def test_iw_without_install_takes_partial_shadow():
    """An LWG without iw leaves the active weights alone; an IW issued at cycle 3 after
    elements 2 (rows 0-3, written at the end of 2) takes shadow as during 3: rows 0-3 of B and
    rows 4-7 of the earlier tile C; ABC at 4 uses that mix. Element 3 (rows 4-7 of B, cycle 3)
    is not in it."""
    rng = np.random.default_rng(4)
    c, b = i8(rng, 8, 8), i8(rng, 8, 8)
    x = i8(rng, 8)
    st = Stim(FULL, 10)
    st.at(0, LWG(E(0), 0, 4, 4))
    st.tile(0, E(0), list(c) + list(b), 4)
    st.at(3, IW())
    st.at(4, ABC(W(2), 6, 1)).vec(4, W(2), x)
    run = Run(st)
    assert run.accum[6].tolist() == wt_x(np.vstack([b[:4], c[4:]]), x)
    assert run.errs() == {}


# ---- LXG / ABX -----------------------------------------------------------------------------

def test_lxg_abx_gaps_modes_and_buffer_timing():
    """`full`, B = 8, R = 32. LXG W0,7,2,2 at 0: element 0 writes buffer rows 7, 0 (8 mod 8)
    from W0, W1 (cycle 0), element 1 rows 1, 2 from W0, W1 (cycle 1). LWG installs tile T at the
    end of 3. ABX 9,5,1 at 4 (b = 9 -> row 1) and ABX 0,6,0 at 5 (count 0 acts as 1).
    ABX 7,30,3,0,2 at 10: elements at u = 10, 12, 14 with x = buffer row 7 as during u, rows 30,
    31, 0 (mod 32). LXG W2,7,1,1 at 11 (seen at 12) and LXG W3,7,1,1 at 12 (ends at the end of
    12: not seen by u = 12, seen by u = 14). ABX 7,30,3,1,0 at 16 (d = 0 acts as 1): u = 16, 17,
    18 add W^T (x of the 2nd LXG) to rows 30, 31, 0. ACC E0,30,9 at 21: rows 30, 31, 0..6 read at
    21..29 and driven in 22..30."""
    rng = np.random.default_rng(5)
    t = i8(rng, 8, 8)
    w0_0, w1_0, w0_1, w1_1, x2, x3 = i8(rng, 6, 8)
    st = Stim(FULL, 34)
    st.at(0, LXG(W(0), 7, 2, 2))
    st.vec(0, W(0), w0_0).vec(0, W(1), w1_0).vec(1, W(0), w0_1).vec(1, W(1), w1_1)
    st.at(2, LWG(E(0), 0, 2, 4, iw=1))
    st.tile(2, E(0), t, 4)
    st.at(4, ABX(9, 5, 1))
    st.at(5, ABX(0, 6, 0))
    st.at(10, ABX(7, 30, 3, 0, 2))
    st.at(11, LXG(W(2), 7, 1, 1)).vec(11, W(2), x2)
    st.at(12, LXG(W(3), 7, 1, 1)).vec(12, W(3), x3)
    st.at(16, ABX(7, 30, 3, 1, 0))
    st.at(21, ACC(E(0), 30, 9))
    run = Run(st)
    y = {k: np.array(wt_x(t, v), dtype=np.int64) for k, v in
         {"w1_0": w1_0, "w0_0": w0_0, "w0_1": w0_1, "x2": x2, "x3": x3}.items()}

    def wrap(v):
        return [int(e) for e in ((v + 2**31) % 2**32 - 2**31)]

    want = {30: wrap(y["w0_0"] + y["x3"]), 31: wrap(y["x2"] + y["x3"]), 0: wrap(2 * y["x3"]),
            1: [0] * 8, 2: [0] * 8, 3: [0] * 8, 4: [0] * 8, 5: wrap(y["w0_1"]),
            6: wrap(y["w1_0"])}
    for k, row in enumerate([30, 31, 0, 1, 2, 3, 4, 5, 6]):
        assert run.acc_out(22 + k) == want[row], f"row {row}"
        assert run.accum[row].tolist() == want[row], f"row {row} in memory"
    assert run.errs() == {}
    # the ABX at 10 keeps the unit active in its gap cycles 11 and 13 (and 15: write-back of 14
    # ends at 16, where the next ABX starts)
    assert run.active[10:31] == [1] * 21
    assert run.active[31:] == [0] * 3


def test_lxg_w4_and_abx_streams_past_the_last_read_as_zero():
    """LXG E6,0,1,4 at 0 takes streams E6, E7, E8, E9: with 8 streams the last two do not
    exist, so buffer rows 2 and 3 become zero (the fabric rule) while rows 0, 1 get E6, E7.
    Identity weights (LWG iw) make ABX return the buffer row itself."""
    st = Stim(FULL, 16)
    eye = np.eye(8, dtype=np.int64)
    rng = np.random.default_rng(6)
    v6, v7 = i8(rng, 2, 8)
    st.at(0, LXG(E(6), 0, 1, 4)).vec(0, E(6), v6).vec(0, E(7), v7)
    st.at(1, LWG(E(0), 0, 2, 4, iw=1))
    st.tile(1, E(0), eye, 4)
    st.at(3, ABX(0, 0, 1))
    st.at(4, ABX(1, 1, 1))
    st.at(5, ABX(2, 2, 1))
    st.at(6, ABX(3, 3, 1))
    run = Run(st)
    assert run.accum[0].tolist() == v6.tolist()
    assert run.accum[1].tolist() == v7.tolist()
    assert run.accum[2].tolist() == [0] * 8
    assert run.accum[3].tolist() == [0] * 8
    assert run.errs() == {}


# ---- engines, ILLEGAL, zero fields -----------------------------------------------------------

def test_engine_busy_lxg_during_lw_and_abc_in_abx_gap():
    """LW E0,0,4 at 0 keeps the LW engine busy 0..3: LXG at 2 is dropped with ENGINE_BUSY (the
    buffer row it names stays 0, the LW goes on). ABX 0,0,2,0,3 at 5: elements at 5 and 8, ABC
    engine busy 5..8: ABC at 6 (gap) and at 8 (element) are dropped with ENGINE_BUSY; an LXG at
    7 uses the other engine and is accepted; ABC at 9 runs."""
    rng = np.random.default_rng(7)
    rows = i8(rng, 4, 8)
    junk, xa, xb = i8(rng, 3, 8)
    st = Stim(FULL, 16)
    st.at(0, LW(E(0), 0, 4))
    for k in range(4):
        st.vec(k, E(0), rows[k])
    st.at(2, LXG(E(1), 0, 1, 1)).vec(2, E(1), junk)
    st.at(4, IW())
    st.at(5, ABX(0, 0, 2, 0, 3))
    st.at(6, ABC(E(2), 10, 1)).vec(6, E(2), xa)
    st.at(7, LXG(E(1), 0, 1, 1)).vec(7, E(1), xb)
    st.at(8, ABC(E(2), 11, 1)).vec(8, E(2), xa)
    st.at(9, ABC(E(2), 12, 1)).vec(9, E(2), xa)
    run = Run(st)
    assert run.errs() == {2: BUSY, 6: BUSY, 8: BUSY}
    wmat = np.vstack([rows, np.zeros((4, 8), dtype=np.int64)])
    assert run.accum[0].tolist() == [0] * 8              # buffer row 0 still 0 at u = 5
    assert run.accum[1].tolist() == wt_x(wmat, xb)       # written by the LXG at 7, u = 8
    assert run.accum[10].tolist() == [0] * 8
    assert run.accum[11].tolist() == [0] * 8
    assert run.accum[12].tolist() == wt_x(wmat, xa)
    # LW 0..3, ABX 5..8 (+ write-back to 10), ABC at 9 (+ to 11)
    assert run.active == [1, 1, 1, 1, 0] + [1] * 7 + [0] * 4


def test_illegal_on_full_w_greater_than_l():
    """`full` has L = 4: LWG and LXG with w = 5 are ILLEGAL, dropped in the issue cycle (not
    ENGINE_BUSY even while the LW engine is busy), nothing changes: the running LW goes on, the
    shadow and buffer are untouched."""
    rng = np.random.default_rng(8)
    rows = i8(rng, 8, 8)
    junk = i8(rng, 8, 8)
    x = i8(rng, 8)
    st = Stim(FULL, 20)
    st.at(0, LWG(E(0), 0, 1, 5, iw=1))          # alone: would have loaded rows 0-4 and...
    st.at(1, LXG(E(0), 0, 1, 5))
    for j in range(5):
        st.vec(0, E(j), junk[j]).vec(1, E(j), junk[j + 3])
    st.at(2, LW(E(0), 0, 8))                    # busy 2..9
    for k in range(8):
        st.vec(2 + k, E(0), rows[k])
    st.at(4, LWG(E(1), 0, 2, 5, iw=1))          # ILLEGAL while busy: not ENGINE_BUSY
    st.at(5, LXG(E(1), 0, 2, 6))
    for j in range(1, 6):
        st.vec(4, E(j), junk[j]).vec(5, E(j), junk[j])
    st.at(10, IW())
    st.at(11, ABC(E(3), 0, 1)).vec(11, E(3), x)
    st.at(12, ABX(0, 1, 1))                     # buffer row 0 still 0
    run = Run(st)
    assert run.errs() == {0: ILLEGAL, 1: ILLEGAL, 4: ILLEGAL, 5: ILLEGAL}
    assert run.active[:2] == [0, 0]
    assert run.accum[0].tolist() == wt_x(rows, x)
    assert run.accum[1].tolist() == [0] * 8


def test_illegal_on_default_lxg_abx_and_wide_lwg():
    """`default` has L = 1, B = 0: LXG and ABX are ILLEGAL, LWG with w = 2 too (even while the
    ABC engine is busy: ILLEGAL, not ENGINE_BUSY); nothing changes (a preloaded accumulator row
    named by the ABX keeps its value, ACC shows it). LWG with w = 1 and w = 0 is legal."""
    rng = np.random.default_rng(9)
    x = i8(rng, 4)
    st = Stim(DEFAULT, 16)
    st.preload[3] = [11, -22, 33, -44]
    st.at(0, LXG(E(0), 0, 1, 1)).vec(0, E(0), x)
    st.at(1, ABX(0, 3, 1))
    st.at(2, ABC(E(0), 5, 4))                   # ABC engine busy 2..5
    st.at(3, ABX(0, 3, 2))
    st.at(4, LWG(E(0), 0, 1, 2))
    st.at(5, LWG(E(0), 0, 1, 1))                # legal
    st.at(6, LWG(E(0), 1, 1, 0))                # legal (w = 0 acts as 1)
    st.at(10, ACC(E(0), 3, 1))
    run = Run(st)
    assert run.errs() == {0: ILLEGAL, 1: ILLEGAL, 3: ILLEGAL, 4: ILLEGAL}
    assert run.active[:2] == [0, 0]
    assert run.acc_out(11) == [11, -22, 33, -44]
    assert run.accum[3].tolist() == [11, -22, 33, -44]


def test_default_lwg_w1_iw_installs_without_iw_instruction():
    """On `default` (n = 4) LWG E0,0,4,1,iw at 0 is LW with an install: element 3 writes row 3
    = n - 1 and installs at the end of 3, so ABC E1 at 3 (u = 3) uses the old (zero) weights and
    ABC E1 at 4 the tile."""
    rng = np.random.default_rng(10)
    tile = i8(rng, 4, 4)
    xs = i8(rng, 2, 4)
    st = Stim(DEFAULT, 10)
    st.at(0, LWG(E(0), 0, 4, 1, iw=1))
    for k in range(4):
        st.vec(k, E(0), tile[k])
    st.at(3, ABC(E(1), 0, 2))
    st.vec(3, E(1), xs[0]).vec(4, E(1), xs[1])
    run = Run(st)
    assert run.accum[0].tolist() == [0] * 4
    assert run.accum[1].tolist() == wt_x(tile, xs[1])
    assert run.errs() == {}


def test_zero_count_w_d_act_as_one():
    """LXG E1,2,0,0 at 0: one element, one vector (E1 -> buffer row 2; E2 is not taken).
    LWG E0,7,0,0,iw at 1: one element writing row 7 only (= n - 1, so it installs at the end
    of 1); junk on E1 at 1 and on E0 at 2 must not be loaded. ABX 2,3,0,0,0 at 2: one element
    (u = 2) with W = only row 7: y[j] = W[7][j] * x[7]. ABC at 3 is accepted (ABC engine
    free), and everything is idle from 6 on."""
    rng = np.random.default_rng(11)
    r7, x, junk, xa = i8(rng, 4, 8)
    st = Stim(FULL, 10)
    st.at(0, LXG(E(1), 2, 0, 0)).vec(0, E(1), x).vec(0, E(2), junk)
    st.at(1, LWG(E(0), 7, 0, 0, iw=1)).vec(1, E(0), r7).vec(1, E(1), junk).vec(2, E(0), junk)
    st.at(2, ABX(2, 3, 0, 0, 0))
    st.at(3, ABC(E(4), 4, 0)).vec(3, E(4), xa)
    run = Run(st)
    wmat = np.zeros((8, 8), dtype=np.int64)
    wmat[7] = r7
    assert run.accum[3].tolist() == [int(r7[j] * x[7]) for j in range(8)]
    assert run.accum[4].tolist() == wt_x(wmat, xa)
    assert run.errs() == {}
    assert run.active == [1] * 6 + [0] * 4


def test_non_power_of_two_lanes_and_buffer():
    """A custom slice with n = 12 (R = 48), L = 3, B = 6. LXG E0,5,2,3 at 0: element 0 writes
    buffer rows 5, 0, 1 (mod 6) from E0..E2, element 1 rows 2, 3, 4. LWG E3,10,4,3,iw at 2:
    element k (cycle 2+k) writes shadow rows (10 + 3k + j) mod 12 from E3+j: element 0 rows 10,
    11, 0 -- it writes row 11 = n - 1, so it installs at the end of 2 (with only those three rows
    loaded, the others still 0); elements 1-3 (rows 1..9) do not install. IW at 6 installs the
    whole tile (last element ended at 5). ABX 7,46,3,0,4 at 3 (b = 7 -> row 1): u = 3 uses the
    partial tile, u = 7 and 11 the whole one; rows 46, 47, 0 (mod 48)."""
    cfg = TspConfig(lanes=12, streams=8, mxm_load_width=3, mxm_xbuf=6, name="odd")
    rng = np.random.default_rng(12)
    tile = i8(rng, 12, 12)
    bvals = i8(rng, 6, 12)                      # LXG vectors in stream order
    st = Stim(cfg, 16)
    st.at(0, LXG(E(0), 5, 2, 3))
    for k in range(2):
        for j in range(3):
            st.vec(k, E(j), bvals[3 * k + j])
    buf1 = bvals[2]                             # element 0, j = 2: row (5 + 2) mod 6 = 1
    st.at(2, LWG(E(3), 10, 4, 3, iw=1))
    for k in range(4):
        for j in range(3):
            st.vec(2 + k, E(3 + j), tile[(10 + 3 * k + j) % 12])
    st.at(3, ABX(7, 46, 3, 0, 4))
    st.at(6, IW())
    run = Run(st)
    partial = np.zeros((12, 12), dtype=np.int64)
    partial[[10, 11, 0]] = tile[[10, 11, 0]]
    assert run.accum[46].tolist() == wt_x(partial, buf1)
    assert run.accum[47].tolist() == wt_x(tile, buf1)
    assert run.accum[0].tolist() == wt_x(tile, buf1)
    assert run.errs() == {}
    assert run.active == [1] * 14 + [0] * 2


def test_timing_diagram_lwg_abx_of_docs():
    """The schedule of the LWG/ABX timing diagram in docs/mxm.md (`full`): LXG W0,0,1,4 at 0
    (buffer rows 0..3 = W0..W3), LWG E0,0,2,4,iw at 1 (installs at the end of 2), ABX
    1,0,3,0,2 at 3: elements at 3, 5, 7, all with x = buffer row 1 and the new tile, rows 0, 1, 2
    written at the ends of 5, 7, 9; active 0..9."""
    rng = np.random.default_rng(13)
    tile = i8(rng, 8, 8)
    xs = i8(rng, 4, 8)
    st = Stim(FULL, 12)
    st.at(0, LXG(W(0), 0, 1, 4))
    for j in range(4):
        st.vec(0, W(j), xs[j])
    st.at(1, LWG(E(0), 0, 2, 4, iw=1))
    st.tile(1, E(0), tile, 4)
    st.at(3, ABX(1, 0, 3, 0, 2))
    run = Run(st)
    for r in range(3):
        assert run.accum[r].tolist() == wt_x(tile, xs[1]), f"row {r}"
    assert run.errs() == {}
    assert run.active == [1] * 10 + [0] * 2


def test_start_ends_abx_and_keeps_the_buffer():
    """LXG E0,2,1,1 at 0 (buffer row 2 = x), LWG E0,0,2,4,iw at 1 (installed at the end of 2),
    ABX 2,0,3,0,3 at 3 (elements due at 3, 6, 9). A START (run low 3 cycles, clear pulse)
    before cycle 5 ends the ABX: rows 1 and 2 keep their preloaded values, an ABC at 5 is not
    ENGINE_BUSY, and the buffer and weights survive: ABX 2,8,1 at 7 gives W^T x."""
    rng = np.random.default_rng(14)
    tile = i8(rng, 8, 8)
    x, xa = i8(rng, 2, 8)
    st = Stim(FULL, 14)
    st.preload[1] = [5] * 8
    st.preload[2] = [-7] * 8
    st.at(0, LXG(E(0), 2, 1, 1)).vec(0, E(0), x)
    st.at(1, LWG(E(0), 0, 2, 4, iw=1))
    st.tile(1, E(0), tile, 4)
    st.at(3, ABX(2, 0, 3, 0, 3))
    st.at(5, ABC(E(5), 12, 1)).vec(5, E(5), xa)
    st.at(7, ABX(2, 8, 1))
    run = Run(st, pause=(5, 3))
    assert run.accum[1].tolist() == [5] * 8
    assert run.accum[2].tolist() == [-7] * 8
    assert run.accum[12].tolist() == wt_x(tile, xa)
    assert run.accum[8].tolist() == wt_x(tile, x)
    assert run.errs() == {}
    # after START: ABC at 5 (written at the end of 7), ABX at 7 (end of 9)
    assert run.active[5:] == [1] * 5 + [0] * 4
