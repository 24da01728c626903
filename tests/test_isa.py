"""The ISA table: encodings derive from the field list, decode inverts encode, the doc is current."""
from pathlib import Path

import pytest

from tsp import isa

ROOT = Path(__file__).resolve().parents[1]


def test_isa_doc_is_current():
    doc = (ROOT / "docs" / "isa.md").read_text()
    assert doc == isa.render_markdown(), \
        "docs/isa.md is stale: run python -m tsp.isa --write docs/isa.md"


def test_field_offsets_are_packed_from_bit_6_without_overlap():
    for ins in isa.INSTRUCTIONS:
        nxt = isa.OPCODE_BITS
        for f in ins.fields:
            assert f.offset == nxt, f"{ins.name}.{f.name}"
            nxt += f.width
        assert nxt <= 32


def test_read_encoding_by_hand():
    # READ: opcode 8 in [5:0], addr in [21:6], stream in [27:22] (bit 27 = west)
    word = isa.encode("READ", addr=0x10, s=isa.stream_operand(isa.WEST, 3))
    assert word == 8 | (0x10 << 6) | ((32 | 3) << 22)


@pytest.mark.parametrize("ins", isa.INSTRUCTIONS, ids=lambda i: i.name)
def test_decode_inverts_encode_at_field_extremes(ins):
    for pick in (lambda f: f.min, lambda f: f.max):
        vals = {f.name: pick(f) for f in ins.fields}
        got, fields = isa.decode(isa.encode(ins.name, **vals))
        assert got is ins and fields == vals


def test_encode_errors_name_the_field():
    with pytest.raises(isa.IsaError, match=r"NOP: field n=0 out of range \[1, 65535\]"):
        isa.encode("NOP", n=0)
    with pytest.raises(isa.IsaError, match="unknown instruction 'JUMP'"):
        isa.encode("JUMP")
    with pytest.raises(isa.IsaError, match="READ has no field 'stream'"):
        isa.encode("READ", addr=0, stream=1)
    with pytest.raises(isa.IsaError, match="READ: missing field 's'"):
        isa.encode("READ", addr=0)
    with pytest.raises(isa.IsaError, match=r"STEP: field s=40000 out of range"):
        isa.encode("STEP", s=40000)


def test_undefined_opcodes_decode_to_none_and_units_have_room():
    assert isa.decode(63) == (None, {})
    assert isa.decode(0)[0].name == "HALT"        # an empty queue halts
    ranges = isa.opcode_ranges()
    for unit in ("vxm", "mxm", "sxm", "c2c"):
        assert unit in ranges                     # reserved space for later units
    assert isa.valid_on(isa.BY_NAME["READ"], "mem")
    assert not isa.valid_on(isa.BY_NAME["READ"], "vxm")
    assert isa.valid_on(isa.BY_NAME["NOP"], "vxm")
