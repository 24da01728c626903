"""Instruction decoding helpers for the RTL, derived from `tsp.isa` (no hand-written offsets)."""
from amaranth import Value

from tsp import isa

__all__ = ["OP", "fld", "is_op", "opcode"]

OP = {i.name: i.opcode for i in isa.INSTRUCTIONS}


def opcode(word: Value) -> Value:
    return word[:isa.OPCODE_BITS]


def fld(word: Value, mnemonic: str, name: str) -> Value:
    """Field `name` of instruction `mnemonic` in `word` (signed fields sign-extended)."""
    f = isa.BY_NAME[mnemonic].field(name)
    v = word[f.offset:f.offset + f.width]
    return v.as_signed() if f.kind == "sint" else v


def is_op(word: Value, *mnemonics: str) -> Value:
    """1 when `word`'s opcode is one of `mnemonics`."""
    op = opcode(word)
    result = op == OP[mnemonics[0]]
    for mn in mnemonics[1:]:
        result = result | (op == OP[mn])
    return result
