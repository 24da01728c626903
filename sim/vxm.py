# Golden model of the VXM (vector ALU pipeline), written from docs/vxm.md and the data in
# tsp/vxm.py (operation codes, type codes, function tables): per lane, three int32 working
# registers flow through `vxm_alus` configurable ALU stages and a function stage (EXP, TANH,
# RSQRT); the result is on the streams `vxm_alus + 4` cycles after the VRUN. `VxmModel` follows
# the model-twin API of docs/units.md section 1; it raises ILLEGAL at issue and RANGE (a shift
# operand outside 0..31) in the cycle the shifting stage acts (docs/vxm.md section 3). The pure helpers (`alu`, `srdhm`, `rdivpot`,
# `func`, their numpy twins `alu_vec`, `func_vec`, and `requantize`) compute with exact Python
# integers (or int64 arrays whose every intermediate is bounded well below 2^63) so the
# compiler and the tests can use them on their own.
from __future__ import annotations

import math

import numpy as np

from sim.units import check_unit_args
from tsp.config import TspConfig
from tsp.hostmap import ERR_BITS
from tsp.isa import Instr
from tsp.vxm import (
    ALU_BY_CODE,
    ALU_BY_NAME,
    EXP_TABLE,
    FUNC_BY_NAME,
    RSQRT_TABLE,
    STAGE_KINDS,
    TANH_TABLE,
    TYPE_NONE,
    TYPES,
)

__all__ = [
    "ILLEGAL",
    "INT32_MAX",
    "INT32_MIN",
    "RANGE",
    "SHIFT_OPS",
    "VxmModel",
    "alu",
    "alu_vec",
    "func",
    "func_vec",
    "quantize_multiplier",
    "rdivpot",
    "requantize",
    "sat",
    "shift_out_of_range",
    "srdhm",
    "stage_problem",
    "wrap",
]

ILLEGAL = 1 << ERR_BITS["ILLEGAL"]
RANGE = 1 << ERR_BITS["RANGE"]
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
EAST, WEST = 0, 1
ZERO_SRC = 7                       # y = 7 selects the constant zero
_I32 = 2                           # type code of i32
_OP = {name: op.code for name, op in ALU_BY_NAME.items()}
_ONE_OPERAND = {_OP[n] for n in ("PASS", "NOT", "NEG", "ABS", "RELU", "SAT")}
# operations whose y is a shift amount (RANGE when y is outside 0..31, docs/vxm.md section 3)
SHIFT_OPS = frozenset(_OP[n] for n in ("SHL", "SHRA", "SHRL", "RDIVPOT"))
_EXP, _TANH, _RSQRT = FUNC_BY_NAME["EXP"], FUNC_BY_NAME["TANH"], FUNC_BY_NAME["RSQRT"]


# ---- scalar helpers (exact Python ints) ------------------------------------------------------
def _bits(type_code: int, where: str) -> int:
    if type_code not in TYPES:
        raise ValueError(f"{where}: type code {type_code!r} is not one of "
                         f"{', '.join(f'{c} ({n})' for c, (n, _) in TYPES.items())}")
    return TYPES[type_code][1]


def _int32(v: int, name: str, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{where}: {name} must be an integer, not {v!r}")
    v = int(v)
    if not INT32_MIN <= v <= INT32_MAX:
        raise ValueError(f"{where}: {name} = {v} is outside int32 "
                         f"({INT32_MIN}..{INT32_MAX})")
    return v


def wrap(v: int, w: int) -> int:
    """wrap_w(v): the low w bits of v, sign-extended (docs/vxm.md section 3)."""
    h = 1 << (w - 1)
    return ((int(v) + h) % (1 << w)) - h


def sat(v: int, w: int) -> int:
    """sat_w(v): v clamped to the signed w-bit range."""
    h = 1 << (w - 1)
    return min(max(int(v), -h), h - 1)


def srdhm(x: int, y: int) -> int:
    """SaturatingRoundingDoublingHighMul(x, y) of two int32 values (gemmlowp): x*y/2^31 rounded
    to nearest with ties toward +infinity, and 2^31 - 1 for x = y = -2^31."""
    x = _int32(x, "x", "srdhm")
    y = _int32(y, "y", "srdhm")
    if x == y == INT32_MIN:
        return INT32_MAX
    p = x * y
    v = p + ((1 << 30) if p >= 0 else 1 - (1 << 30))
    q = abs(v) >> 31                  # C division truncates toward zero
    return q if v >= 0 else -q


def rdivpot(x: int, y: int) -> int:
    """RoundingDivideByPOT(x, y & 31) of an int32 x (gemmlowp): x / 2^e rounded to nearest,
    ties away from zero."""
    x = _int32(x, "x", "rdivpot")
    e = int(y) & 31
    mask = (1 << e) - 1
    rem = x & mask
    threshold = (mask >> 1) + (1 if x < 0 else 0)
    return (x >> e) + (1 if rem > threshold else 0)


def shift_out_of_range(op: int | str, y) -> bool:
    """Whether operation `op` (code or name) with the int32 operand value(s) `y` (an integer or
    an array of lanes) raises RANGE: a shift operation whose y, in some lane, is outside 0..31
    (docs/vxm.md section 3)."""
    code = _OP.get(op, op) if isinstance(op, str) else op
    if code not in SHIFT_OPS:
        return False
    y = np.asarray(y, dtype=np.int64)
    return bool(((y < 0) | (y > 31)).any())


def alu(op: int | str, type_code: int | str, x: int, y: int = 0) -> int:
    """One ALU stage: `op(x, y)` at type `type_code` (code or name "i8"/"i16"/"i32") of the
    int32 operand values x and y; returns the int32 value written to r[dst]."""
    code = _OP.get(op, op) if isinstance(op, str) else op
    if code not in ALU_BY_CODE:
        raise ValueError(f"alu: unknown ALU operation {op!r} (tsp/vxm.py ALU_OPS)")
    if isinstance(type_code, str):
        if type_code not in ("i8", "i16", "i32"):
            raise ValueError(f"alu: unknown type {type_code!r} (i8, i16, i32)")
        type_code = ("i8", "i16", "i32").index(type_code)
    w = _bits(type_code, "alu")
    x = _int32(x, "x", "alu")
    y = _int32(y, "y", "alu")
    X, Y, sh = wrap(x, w), wrap(y, w), y & 31
    name = ALU_BY_CODE[code].name
    if name == "PASS":
        return X
    if name == "ADD":
        return wrap(X + Y, w)
    if name == "SUB":
        return wrap(X - Y, w)
    if name == "MUL":
        return wrap(X * Y, w)
    if name == "MIN":
        return min(X, Y)
    if name == "MAX":
        return max(X, Y)
    if name == "AND":
        return X & Y
    if name == "OR":
        return X | Y
    if name == "XOR":
        return X ^ Y
    if name == "NOT":
        return ~X
    if name == "SHL":
        return wrap(X << sh, w)
    if name == "SHRA":
        return X >> sh
    if name == "SHRL":
        return wrap((X % (1 << w)) >> sh, w)
    if name == "ADDS":
        return sat(X + Y, w)
    if name == "SUBS":
        return sat(X - Y, w)
    if name == "NEG":
        return sat(-X, w)
    if name == "ABS":
        return sat(abs(X), w)
    if name == "RELU":
        return max(X, 0)
    if name == "SAT":
        return sat(x, w)
    if name == "SRDHM":
        return srdhm(x, y)
    if name == "RDIVPOT":
        return rdivpot(x, y)
    raise ValueError(f"alu: operation {name} has no definition")   # pragma: no cover


def func(fn: int | str, x: int) -> int:
    """The function stage: fn (0 OFF, 1 EXP, 2 TANH, 3 RSQRT, or the name) of the int32 x."""
    code = FUNC_BY_NAME.get(fn, fn) if isinstance(fn, str) else fn
    if code not in (0, _EXP, _TANH, _RSQRT):
        raise ValueError(f"func: unknown function {fn!r} (OFF, EXP, TANH, RSQRT)")
    x = _int32(x, "x", "func")
    if code == 0:
        return x
    if code == _EXP:
        if x > 0:
            return 32768
        return int(EXP_TABLE[-x]) if x > -4096 else 0
    if code == _TANH:
        v = int(TANH_TABLE[min(abs(x), 2047)])
        return -v if x < 0 else v
    if x <= 0:
        return INT32_MAX
    e2 = (x.bit_length() - 1) & ~1
    j = x << (8 - e2) if e2 <= 8 else x >> (e2 - 8)
    return int(RSQRT_TABLE[j]) << (15 - e2 // 2)


def requantize(x: int, m: int, s: int, z: int) -> int:
    """The section 3 requantisation chain on one int32: SAT_i8(ADDS_i32(RDIVPOT(SRDHM(x, m),
    s), z))."""
    return sat(sat(rdivpot(srdhm(x, m), s) + _int32(z, "z", "requantize"), 32), 8)


def quantize_multiplier(M: float) -> tuple[int, int]:
    """A real multiplier 0 < M < 1 as (m, s): M ~ m * 2^-(31 + s), m = round(M0 * 2^31) with
    M0 = M * 2^s in [0.5, 1) (m = 2^31 after rounding is folded to 2^30 with s - 1)."""
    if not isinstance(M, (int, float)) or not 0.0 < M < 1.0 or not math.isfinite(M):
        raise ValueError(f"quantize_multiplier: M must be a real number in (0, 1), not {M!r}")
    M0, exp = math.frexp(M)            # M = M0 * 2^exp, M0 in [0.5, 1), exp <= 0
    s = -exp
    m = math.floor(M0 * (1 << 31) + 0.5)
    if m == 1 << 31:
        m, s = 1 << 30, s - 1
    if s > 31:
        raise ValueError(f"quantize_multiplier: M = {M!r} needs a right shift of {s} > 31")
    return m, s


# ---- vectorised helpers (numpy int64; every intermediate stays below 2^63) -------------------
def _wrap_v(v: np.ndarray, w: int) -> np.ndarray:
    h = np.int64(1 << (w - 1))
    return ((v + h) & np.int64((1 << w) - 1)) - h


def _sat_v(v: np.ndarray, w: int) -> np.ndarray:
    return np.clip(v, -(1 << (w - 1)), (1 << (w - 1)) - 1)


def _as_i32_array(v, name: str, where: str) -> np.ndarray:
    a = np.asarray(v)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{where}: {name} must be an integer array, not {a.dtype}")
    a = a.astype(np.int64)
    if a.size and (a.min() < INT32_MIN or a.max() > INT32_MAX):
        raise ValueError(f"{where}: {name} has values outside int32")
    return a


def alu_vec(op: int | str, type_code: int, x, y) -> np.ndarray:
    """`alu` on arrays of int32 values (broadcast); returns int64 values in int32 range."""
    code = _OP.get(op, op) if isinstance(op, str) else op
    if code not in ALU_BY_CODE:
        raise ValueError(f"alu_vec: unknown ALU operation {op!r} (tsp/vxm.py ALU_OPS)")
    w = _bits(type_code, "alu_vec")
    x = _as_i32_array(x, "x", "alu_vec")
    y = _as_i32_array(y, "y", "alu_vec")
    x, y = np.broadcast_arrays(x, y)
    X, Y, sh = _wrap_v(x, w), _wrap_v(y, w), y & 31
    name = ALU_BY_CODE[code].name
    if name == "PASS":
        r = X
    elif name == "ADD":
        r = _wrap_v(X + Y, w)
    elif name == "SUB":
        r = _wrap_v(X - Y, w)
    elif name == "MUL":
        r = _wrap_v(X * Y, w)                     # |X * Y| <= 2^62
    elif name == "MIN":
        r = np.minimum(X, Y)
    elif name == "MAX":
        r = np.maximum(X, Y)
    elif name == "AND":
        r = X & Y
    elif name == "OR":
        r = X | Y
    elif name == "XOR":
        r = X ^ Y
    elif name == "NOT":
        r = ~X
    elif name == "SHL":
        r = _wrap_v(X << sh, w)                   # |X << 31| <= 2^62
    elif name == "SHRA":
        r = X >> sh
    elif name == "SHRL":
        r = _wrap_v((X & np.int64((1 << w) - 1)) >> sh, w)
    elif name == "ADDS":
        r = _sat_v(X + Y, w)
    elif name == "SUBS":
        r = _sat_v(X - Y, w)
    elif name == "NEG":
        r = _sat_v(-X, w)
    elif name == "ABS":
        r = _sat_v(np.abs(X), w)
    elif name == "RELU":
        r = np.maximum(X, 0)
    elif name == "SAT":
        r = _sat_v(x, w)
    elif name == "SRDHM":
        both_min = (x == INT32_MIN) & (y == INT32_MIN)
        p = x * y                                 # |p| <= 2^62
        v = p + np.where(p >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
        q = np.abs(v) >> 31
        r = np.where(both_min, np.int64(INT32_MAX), np.where(v >= 0, q, -q))
    elif name == "RDIVPOT":
        mask = (np.int64(1) << sh) - 1
        threshold = (mask >> 1) + (x < 0)
        r = (x >> sh) + ((x & mask) > threshold)
    else:                                         # pragma: no cover
        raise ValueError(f"alu_vec: operation {name} has no definition")
    return np.asarray(r, dtype=np.int64)


def func_vec(fn: int, x) -> np.ndarray:
    """`func` on an array of int32 values; returns int64 values."""
    if fn not in (0, _EXP, _TANH, _RSQRT):
        raise ValueError(f"func_vec: unknown function {fn!r} (0 OFF, 1 EXP, 2 TANH, 3 RSQRT)")
    x = _as_i32_array(x, "x", "func_vec")
    if fn == 0:
        return x.copy()
    if fn == _EXP:
        idx = np.clip(-x, 0, 4095)
        y = EXP_TABLE.astype(np.int64)[idx]
        return np.where(x > 0, 32768, np.where(x > -4096, y, 0))
    if fn == _TANH:
        v = TANH_TABLE.astype(np.int64)[np.minimum(np.abs(x), 2047)]
        return np.where(x < 0, -v, v)
    pos = np.maximum(x, 1)
    e = np.zeros_like(pos)
    for k in range(1, 31):                        # e = index of the highest set bit
        e += pos >= (1 << k)
    e2 = e & ~1
    j = np.where(e2 <= 8, pos << np.maximum(8 - e2, 0), pos >> np.maximum(e2 - 8, 0))
    y = RSQRT_TABLE.astype(np.int64)[j] << (15 - e2 // 2)
    return np.where(x <= 0, np.int64(INT32_MAX), y)


def stage_problem(config: TspConfig, k: int, op: int, type_code: int, dst: int, x: int
                  ) -> str | None:
    """Why `VCFG k, op, type, dst, x, y` is illegal in `config` (docs/vxm.md section 3), or
    None when it is legal (every y 0..7 is legal)."""
    A = config.vxm_alus
    if not 0 <= k < A:
        return f"stage k = {k} does not exist (vxm_alus = {A}: 0..{A - 1})"
    if op not in ALU_BY_CODE:
        return f"operation code {op} is not an ALU operation (tsp/vxm.py ALU_OPS)"
    kind = config.vxm_stages[k]
    if not ALU_BY_CODE[op].runs_on(kind):
        o = ALU_BY_CODE[op]
        return (f"{o.name} runs on {'/'.join(o.kinds)} stages, but stage k = {k} is "
                f"{kind} ({STAGE_KINDS[kind]}; vxm_stages = {config.vxm_stages!r})")
    if type_code not in TYPES:
        return f"type {type_code} is not i8/i16/i32"
    if dst not in (0, 1, 2):
        return f"dst = {dst} is not a register (r0..r2)"
    if x not in (0, 1, 2):
        return f"x = {x} is not a register (r0..r2)"
    return None


# ---- the unit ----------------------------------------------------------------------------
class _Vector:
    """One VRUN in flight: read at t0, registers regs[3][lanes] (int64), result to (d, td),
    saturated to td if `sat`."""

    __slots__ = ("d", "regs", "sat", "t0", "td")

    def __init__(self, t0: int, regs: np.ndarray, d: int, td: int, sat: int = 0):
        self.t0, self.regs, self.d, self.td, self.sat = t0, regs, d, td, sat


class VxmModel:
    """Cycle-exact model of the VXM at `position` (docs/vxm.md; model-twin API of
    docs/units.md section 1)."""

    def __init__(self, config: TspConfig, position: int) -> None:
        check_unit_args("VxmModel", "vxm", config, position)
        self.config = config
        self.position = position
        self.n = config.vec_bytes
        self.alus = config.vxm_alus
        self.reset()

    # ---- contract API ------------------------------------------------------------------------
    def reset(self) -> None:
        """START (`clear`): every stage passes, the function stage is OFF, the constants are 0,
        and nothing is in flight (docs/vxm.md section 1)."""
        # cfg[k] = (op, type, dst, x, y)
        self.cfg: list[tuple[int, int, int, int, int]] = \
            [(_OP["PASS"], _I32, 2, 2, ZERO_SRC) for _ in range(self.alus)]
        self.fcfg: tuple[int, int, int] = (0, 2, 2)                 # (fn, dst, x)
        self.consts = np.zeros((4, self.n), dtype=np.int64)
        self._pending: list[tuple[int, str, tuple]] = []             # (issue t, what, args)
        self._reads: dict[int, tuple[str, dict]] = {}                # read cycle -> job
        self._flight: list[_Vector] = []
        self._writes: dict[int, list] = {}                           # drive cycle -> writes
        self._spans: list[tuple[int, int]] = []                      # (issue, drive) of VRUNs

    def issue(self, t: int, instr: Instr, fields: dict, flags: int) -> int:
        """A VXM instruction issues at t (called before `cycle(t)`); returns its error bits:
        ILLEGAL for an illegal configuration (which then changes nothing), else 0."""
        if instr.unit != "vxm":
            raise ValueError(f"VxmModel.issue at cycle {t}: {instr.name} is not a VXM "
                             f"instruction (position {self.position})")
        name = instr.name
        if name == "VCFG":
            args = (fields["k"], fields["op"], fields["type"], fields["dst"], fields["x"])
            if stage_problem(self.config, *args) is not None:
                return ILLEGAL
            self._pending.append((t, "cfg", args + (fields["y"],)))
        elif name == "VFUNC":
            if fields["dst"] == 3 or fields["x"] == 3:
                return ILLEGAL
            self._pending.append((t, "func", (fields["fn"], fields["dst"], fields["x"])))
        elif name == "VCONST":
            imm = fields["imm"] & 0xFFFFF
            if imm & 0x80000:
                imm -= 1 << 20
            self._pending.append((t, "const", (fields["c"], imm)))
        elif name == "VCONSTH":
            self._pending.append((t, "consth", (fields["c"], fields["imm"] & 0xFFFF)))
        elif name in ("VLOADC", "VRUN"):
            bad = fields["t"] == TYPE_NONE if name == "VLOADC" else \
                TYPE_NONE in (fields["ta"], fields["td"])
            if bad:
                return ILLEGAL
            read_t = t + (instr.dskew or 0)
            if read_t in self._reads:
                raise ValueError(f"VxmModel.issue at cycle {t}: a second instruction reads "
                                 f"in cycle {read_t} (position {self.position})")
            self._reads[read_t] = (name, dict(fields))
            if name == "VRUN":
                self._spans.append((t, t + self.alus + 3))
        else:
            raise ValueError(f"VxmModel.issue at cycle {t}: unknown VXM instruction {name}")
        return 0

    def active(self, t: int) -> bool:
        """A VRUN issued before t still drives its result in t or later (its result is in
        flight through cycle t0 + vxm_alus + 3)."""
        return any(t0 < t <= t1 for t0, t1 in self._spans)

    def reading(self, t: int) -> str | None:
        """Read-only: "VRUN" or "VLOADC" if that instruction reads its operands in cycle t, else
        None; call after `issue` and before `cycle` of cycle t (for activity records)."""
        job = self._reads.get(t)
        return None if job is None else job[0]

    def configuring(self, t: int) -> bool:
        """Read-only: whether a configuration instruction (VCFG, VFUNC, VCONST, VCONSTH) was
        accepted in cycle t; call after `issue` and before `cycle` of cycle t."""
        return any(t0 == t and what != "load" for t0, what, _ in self._pending)

    def in_pipeline(self, t: int) -> int:
        """Read-only: the VRUN vectors in an ALU stage or the function stage in cycle t (a VRUN
        issued at t0 is there in t0 + 1 .. t0 + vxm_alus + 2); call before `cycle` of t."""
        return sum(t0 < t < t1 for t0, t1 in self._spans)

    def cycle(self, t: int, east: np.ndarray, west: np.ndarray) -> tuple[list, int]:
        """Cycle t with the stream registers `east`/`west` ((streams, vec_bytes) uint8) at this
        position. Call it for every cycle in order, after `issue` of that cycle.

        Returns the stream loads at the end of t [(direction, stream, uint8[vec_bytes]), ...]
        and the error bits of t: RANGE if an ALU stage acting in t shifts by a y outside 0..31
        in some lane (ILLEGAL is returned by `issue`)."""
        self._spans = [sp for sp in self._spans if sp[1] >= t]
        self._apply_pending(t)                   # what was issued at <= t - 1 is in effect
        A = self.alus
        done = []
        err = 0
        for v in self._flight:
            k = t - v.t0 - 1
            if 0 <= k < A:
                if self._alu_stage(k, v.regs):
                    err |= RANGE
            elif k == A:
                fn, dst, x = self.fcfg
                if fn:
                    v.regs[dst] = func_vec(fn, v.regs[x])
                self._writes.setdefault(v.t0 + A + 3, []).extend(self._result(v))
                done.append(v)
        for v in done:
            self._flight.remove(v)
        job = self._reads.pop(t, None)
        if job is not None:
            name, f = job
            if name == "VRUN":
                a = self._group(east, west, f["a"], f["ta"])
                b = self._group(east, west, f["b"], f["tb"]) if f["tb"] != TYPE_NONE \
                    else np.zeros(self.n, dtype=np.int64)
                self._flight.append(_Vector(t, np.stack([a, b, a.copy()]), f["d"], f["td"],
                                             f.get("sat", 0)))
            else:                                # VLOADC: in effect from t + 1
                self._pending.append((t, "load", (f["c"], self._group(east, west, f["s"],
                                                                      f["t"]))))
        return self._writes.pop(t, []), err

    # ---- internals ---------------------------------------------------------------------------
    def _apply_pending(self, t: int) -> None:
        keep = []
        for item in sorted(self._pending, key=lambda p: p[0]):
            t0, what, args = item
            if t0 >= t:
                keep.append(item)
            elif what == "cfg":
                self.cfg[args[0]] = args[1:]
            elif what == "func":
                self.fcfg = args
            elif what == "const":
                self.consts[args[0]] = args[1]
            elif what == "consth":
                c, hi = args
                low = self.consts[c] & 0xFFFF
                self.consts[c] = _wrap_v((np.int64(hi) << 16) | low, 32)
            else:                                # "load"
                self.consts[args[0]] = args[1]
        self._pending = keep

    def _alu_stage(self, k: int, regs: np.ndarray) -> bool:
        """Stage k acts on `regs` (in place); returns whether it raises RANGE."""
        op, type_code, dst, x, y = self.cfg[k]
        if y < 3:
            yv = regs[y]
        elif y < ZERO_SRC:
            yv = self.consts[y - 3]
        else:
            yv = np.zeros(self.n, dtype=np.int64)
        bad = shift_out_of_range(op, yv)
        regs[dst] = alu_vec(op, type_code, regs[x], yv)
        return bad

    def _group(self, east: np.ndarray, west: np.ndarray, operand: int, type_code: int
               ) -> np.ndarray:
        """The group of type `type_code` at stream operand `operand`, sign-extended per lane;
        bytes past the last stream read as zero."""
        nbytes = TYPES[type_code][1] // 8
        regs = west if operand >> 5 & 1 else east
        first = operand & 31
        v = np.zeros(self.n, dtype=np.int64)
        for b in range(nbytes):
            if first + b < self.config.streams:
                v |= np.asarray(regs[first + b], dtype=np.int64) << (8 * b)
        return _wrap_v(v, 8 * nbytes)

    def _result(self, v: _Vector) -> list:
        """r2 converted to type td (low bytes, saturated first if v.sat) as stream loads;
        streams past the last are skipped."""
        nbytes = TYPES[v.td][1] // 8
        r2 = v.regs[2]
        if v.sat:
            lim = 1 << (8 * nbytes - 1)
            r2 = np.clip(r2, -lim, lim - 1)
        r2 = r2 & 0xFFFFFFFF
        first, direction = v.d & 31, v.d >> 5 & 1
        return [(direction, first + b, ((r2 >> (8 * b)) & 0xFF).astype(np.uint8))
                for b in range(nbytes) if first + b < self.config.streams]
