# Integer requantisation as the VXM computes it (docs/vxm.md section 3), in numpy int64:
# gemmlowp's SaturatingRoundingDoublingHighMul (SRDHM) and RoundingDivideByPOT (RDIVPOT), the
# int32 -> int8 requantisation pass, and TFLite's QuantizeMultiplier (real -> Q31 m, shift s).
# Written from the document, independently of the golden model (sim/vxm.py).
from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
INT8_MIN = -128
INT8_MAX = 127

ArrayLike = int | np.ndarray


def _as_int32_values(name: str, v: ArrayLike) -> np.ndarray:
    """`v` as an int64 array, checking that every element is an int32 value."""
    a = np.asarray(v)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integers, got dtype {a.dtype}")
    a = a.astype(np.int64)
    if a.size and (a.min() < INT32_MIN or a.max() > INT32_MAX):
        bad = a[(a < INT32_MIN) | (a > INT32_MAX)].flat[0]
        raise ValueError(f"{name}: value {int(bad)} is outside the int32 range")
    return a


def wrap32(v: np.ndarray) -> np.ndarray:
    """Wrapping conversion to int32: the low 32 bits, sign-extended (int64 in, int64 out)."""
    v = np.asarray(v, dtype=np.int64)
    return ((v + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def sat(v: np.ndarray, bits: int) -> np.ndarray:
    """Saturating conversion to a `bits`-bit signed integer (int64 out)."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return np.clip(np.asarray(v, dtype=np.int64), lo, hi)


def srdhm(x: ArrayLike, y: ArrayLike) -> np.ndarray:
    """SaturatingRoundingDoublingHighMul of int32 values: x*y/2^31 rounded to nearest, ties
    toward +infinity; SRDHM(-2^31, -2^31) = 2^31 - 1. Broadcasts; returns int64."""
    a = _as_int32_values("srdhm x", x)
    b = _as_int32_values("srdhm y", y)
    p = a * b                                  # exact: |p| <= 2^62
    v = p + np.where(p >= 0, 1 << 30, 1 - (1 << 30))
    q = np.where(v >= 0, v >> 31, -((-v) >> 31))  # C division: truncate toward zero
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, q).astype(np.int64)


def rdivpot(x: ArrayLike, y: ArrayLike) -> np.ndarray:
    """RoundingDivideByPOT: x / 2^e, e = y & 31, rounded to nearest with ties away from
    zero (int32 values). Broadcasts; returns int64."""
    a = _as_int32_values("rdivpot x", x)
    e = _as_int32_values("rdivpot y", y) & 31
    mask = np.left_shift(np.int64(1), e) - 1
    rem = a & mask
    threshold = (mask >> 1) + (a < 0)
    return ((a >> e) + (rem > threshold)).astype(np.int64)


def requantize(acc: ArrayLike, bias: ArrayLike, m: ArrayLike, s: ArrayLike, z: ArrayLike,
               relu: bool) -> np.ndarray:
    """The VXM requantisation pass, int32 accumulators -> int8:
    r = wrap32(acc + bias); r = SRDHM(r, m); r = RDIVPOT(r, s); r = sat32(r + z);
    r = max(r, z) if relu (ReLU clamps at the zero point, the code of real 0, as TFLite's
    fused activation does); result sat8(r). `bias` broadcasts along the last axis of `acc`
    (one per output channel); `m` (Q31, normally in [2^30, 2^31)), `s` (0..31) and `z` are
    per tensor (or broadcastable arrays)."""
    a = _as_int32_values("acc", acc)
    b = _as_int32_values("bias", bias)
    mm = _as_int32_values("m", m)
    ss = _as_int32_values("s", s)
    if ss.size and (ss.min() < 0 or ss.max() > 31):
        raise ValueError(f"s: right shift {int(ss[(ss < 0) | (ss > 31)].flat[0])} "
                         f"is outside 0..31")
    zz = _as_int32_values("z", z)
    r = wrap32(a + b)
    r = srdhm(r, mm)
    r = rdivpot(r, ss)
    r = sat(r + zz, 32)
    if relu:
        r = np.maximum(r, zz)
    return sat(r, 8).astype(np.int8)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier for a real multiplier in (0, 1): returns (m, s) with
    real ~= m * 2^-31 * 2^-s, m = round(M0 * 2^31) (half away from zero), M0 in [0.5, 1).
    Raises ValueError if `real` is not in (0, 1), if it would need a left shift (rounds up to
    1.0) or a right shift above 31."""
    r = float(real)
    if not math.isfinite(r) or not 0.0 < r < 1.0:
        raise ValueError(f"quantize_multiplier: real multiplier {real!r} is not in (0, 1)")
    frac, exp = math.frexp(r)               # r = frac * 2^exp, frac in [0.5, 1)
    m = math.floor(frac * (1 << 31) + 0.5)  # exact: frac * 2^31 < 2^31 has ulp >= 2^-22
    if m == 1 << 31:
        m //= 2
        exp += 1
    s = -exp
    if s < 0:
        raise ValueError(f"quantize_multiplier: real multiplier {real!r} rounds to 1.0 "
                         f"and would need a left shift")
    if s > 31:
        raise ValueError(f"quantize_multiplier: real multiplier {real!r} needs a right "
                         f"shift of {s} (> 31)")
    return m, s


# ---- RSQRT (docs/vxm.md section 4) and Graph.rsqrt (docs/compiler.md section 1) -------------
def rsqrt_table() -> np.ndarray:
    """RSQRT_TABLE as docs/vxm.md defines it: entry j = round(2^19 / sqrt(j)) (half up) for
    256 <= j < 1024; entries below 256 are never used (0). int64."""
    j = np.arange(1024, dtype=np.float64)
    t = np.zeros(1024, dtype=np.int64)
    t[256:] = np.floor(2.0 ** 19 / np.sqrt(j[256:]) + 0.5).astype(np.int64)
    return t


def vxm_rsqrt(x: ArrayLike) -> np.ndarray:
    """The VXM's RSQRT function of int32 values: x <= 0 gives 2^31 - 1; else with e the index
    of the highest set bit of x and e2 = e rounded down to even, j = x << (8 - e2) (e2 <= 8) or
    x >> (e2 - 8), y = RSQRT_TABLE[j] << (15 - e2/2) (~ 2^30 / sqrt(x)). int64 out."""
    a = _as_int32_values("rsqrt x", x)
    pos = a > 0
    v = np.where(pos, a, 1)
    e = np.zeros_like(v)
    for k in range(1, 32):
        e += (v >> k) > 0
    e2 = e & ~1
    j = np.where(e2 <= 8, v << np.maximum(8 - e2, 0), v >> np.maximum(e2 - 8, 0))
    y = rsqrt_table()[j] << (15 - e2 // 2)
    return np.where(pos, y, INT32_MAX).astype(np.int64)


def rsqrt_preshift(frac_bits: int, out_frac_bits: int) -> int:
    """The left shift p = 12 - 2*out_frac_bits - frac_bits applied to the int8 input before
    RSQRT so that the result's top byte (y >> 24) is 2^out_frac_bits / sqrt(x / 2^frac_bits)."""
    return 12 - 2 * out_frac_bits - frac_bits


def rsqrt_int8(x: ArrayLike, frac_bits: int, out_frac_bits: int) -> np.ndarray:
    """Graph.rsqrt's exact integer result for int8 `x` (value x / 2^frac_bits): int8 (value
    y / 2^out_frac_bits) = RSQRT(x << p) >> 24 with p = rsqrt_preshift(...) in 0..12, i.e.
    floor(2^out_frac_bits / sqrt(x / 2^frac_bits)) up to the table's rounding (at most 64);
    x <= 0 gives 127 (the top byte of 2^31 - 1)."""
    p = rsqrt_preshift(frac_bits, out_frac_bits)
    if not 0 <= p <= 24:
        raise ValueError(f"rsqrt_int8: pre-shift 12 - 2*{out_frac_bits} - {frac_bits} = {p} "
                         f"is outside 0..24")
    a = np.asarray(x).astype(np.int64)
    if a.size and (a.min() < INT8_MIN or a.max() > INT8_MAX):
        raise ValueError("rsqrt_int8: x must be int8 values")
    return (vxm_rsqrt(a << p) >> 24).astype(np.int8)
