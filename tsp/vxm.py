"""The VXM's operations and function tables, defined once (docs/vxm.md).

This is specification data, like tsp/isa.py: the ALU operation codes and where each may run,
the operand type codes, the function-stage codes, and the three fixed-point function tables
(EXP, TANH, RSQRT) generated from their mathematical definitions. The RTL (`hdl/vxm.py`) puts
the tables in ROMs; the golden model (`sim/vxm.py`) indexes the same tables; the semantics of
every operation are written out in docs/vxm.md and implemented independently by both.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "ALU_BY_CODE",
    "ALU_BY_NAME",
    "ALU_OPS",
    "EXP_TABLE",
    "FUNCS",
    "FUNC_BY_CODE",
    "FUNC_BY_NAME",
    "REG_NAMES",
    "RSQRT_TABLE",
    "SRC_NAMES",
    "STAGE_KINDS",
    "TANH_TABLE",
    "TYPES",
    "TYPE_BY_CODE",
    "TYPE_BY_NAME",
    "TYPE_NONE",
    "AluOp",
    "type_streams",
]

# Operand / result types: code -> (name, bits). Code 3 is "none" (only VRUN's `tb`).
TYPES = {0: ("i8", 8), 1: ("i16", 16), 2: ("i32", 32)}
TYPE_NONE = 3
TYPE_BY_CODE = TYPES
TYPE_BY_NAME = {name: code for code, (name, _) in TYPES.items()}

# Stage operand selectors: x in 0..2 names r0..r2; y in 0..7 names r0..r2, c0..c3, or zero.
REG_NAMES = ("r0", "r1", "r2")
SRC_NAMES = ("r0", "r1", "r2", "c0", "c1", "c2", "c3", "zero")


# Stage kinds (TspConfig.vxm_stages is a string of these letters, one per ALU stage): a general
# stage has the adder, comparator, logic and saturation; a multiplier stage the 32 x 32
# multiplier; a shifter stage the barrel shifter. Every kind can PASS.
STAGE_KINDS = {"G": "general", "M": "multiplier", "S": "shifter"}


@dataclass(frozen=True)
class AluOp:
    """One ALU operation and the stage kinds that have the hardware for it."""

    name: str
    code: int
    doc: str
    kinds: str = "G"

    def runs_on(self, kind: str) -> bool:
        """Whether a stage of kind `kind` ("G", "M" or "S") can run this operation."""
        return kind in self.kinds


ALU_OPS: tuple[AluOp, ...] = (
    AluOp("PASS", 0, "X (operand x at the stage type: a wrapping type conversion)", "GMS"),
    AluOp("ADD", 1, "wrap(X + Y)"),
    AluOp("SUB", 2, "wrap(X - Y)"),
    AluOp("MUL", 3, "wrap(X * Y) (low bits of the product)", "M"),
    AluOp("MIN", 4, "min(X, Y)"),
    AluOp("MAX", 5, "max(X, Y)"),
    AluOp("AND", 6, "X & Y"),
    AluOp("OR", 7, "X | Y"),
    AluOp("XOR", 8, "X ^ Y"),
    AluOp("NOT", 9, "~X"),
    AluOp("SHL", 10, "wrap(X << (y & 31))", "S"),
    AluOp("SHRA", 11, "X >> (y & 31) (arithmetic)", "S"),
    AluOp("SHRL", 12, "wrap((X mod 2^w) >> (y & 31)) (logical)", "S"),
    AluOp("ADDS", 13, "sat(X + Y)"),
    AluOp("SUBS", 14, "sat(X - Y)"),
    AluOp("NEG", 15, "sat(-X)"),
    AluOp("ABS", 16, "sat(|X|)"),
    AluOp("RELU", 17, "max(X, 0)"),
    AluOp("SAT", 18, "sat(x): the full 32-bit x saturated to the type (a saturating conversion)"),
    AluOp("SRDHM", 19, "gemmlowp SaturatingRoundingDoublingHighMul(x, y), int32", "M"),
    AluOp("RDIVPOT", 20, "gemmlowp RoundingDivideByPOT(x, y & 31), int32, ties away from zero",
          "S"),
)
ALU_BY_NAME = {op.name: op for op in ALU_OPS}
ALU_BY_CODE = {op.code: op for op in ALU_OPS}

# Function stage: code -> name. 0 = off (the stage passes its vector unchanged).
FUNCS = {0: "OFF", 1: "EXP", 2: "TANH", 3: "RSQRT"}
FUNC_BY_CODE = FUNCS
FUNC_BY_NAME = {name: code for code, name in FUNCS.items()}

FRAC_IN = 8        # EXP and TANH inputs are Q8 (value / 256)
FRAC_OUT = 15      # EXP and TANH outputs are Q15 (value / 32768)
RSQRT_FRAC = 30    # RSQRT output: 2^30 / sqrt(x)


def _round_half_up(v: np.ndarray) -> np.ndarray:
    return np.floor(v + 0.5).astype(np.int64)


def _exp_table() -> np.ndarray:
    """EXP_TABLE[i] = round(exp(-i / 256) * 2^15), i < 4096 (uint16; entry 0 is 32768)."""
    i = np.arange(4096, dtype=np.float64)
    return _round_half_up(np.exp(-i / 256.0) * 32768.0).astype(np.uint16)


def _tanh_table() -> np.ndarray:
    """TANH_TABLE[i] = min(round(tanh(i / 256) * 2^15), 32767), i < 2048 (uint16)."""
    i = np.arange(2048, dtype=np.float64)
    return np.minimum(_round_half_up(np.tanh(i / 256.0) * 32768.0), 32767).astype(np.uint16)


def _rsqrt_table() -> np.ndarray:
    """RSQRT_TABLE[j] = round(2^15 / sqrt(j / 256)) = round(2^19 / sqrt(j)) for 256 <= j < 1024;
    entries below 256 are never used and are 0 (uint16; entry 256 is 32768)."""
    j = np.arange(1024, dtype=np.float64)
    t = np.zeros(1024, dtype=np.int64)
    t[256:] = _round_half_up(2.0 ** 19 / np.sqrt(j[256:]))
    return t.astype(np.uint16)


EXP_TABLE = _exp_table()
TANH_TABLE = _tanh_table()
RSQRT_TABLE = _rsqrt_table()


def type_streams(code: int) -> int:
    """Streams an operand of type `code` occupies: i8 1, i16 2 (SG2), i32 4 (SG4), none 0."""
    return {0: 1, 1: 2, 2: 4, TYPE_NONE: 0}[code]


def _self_check() -> None:
    codes = [op.code for op in ALU_OPS]
    if len(set(codes)) != len(codes) or max(codes) >= 32:
        raise ValueError("tsp.vxm.ALU_OPS: duplicate or too large operation code")
    if EXP_TABLE[0] != 32768 or RSQRT_TABLE[256] != 32768 or TANH_TABLE[0] != 0:
        raise ValueError("tsp.vxm: function tables do not match their definitions")


_self_check()
