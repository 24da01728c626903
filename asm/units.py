# Stream-use table of every instruction that touches streams (ICU IFETCH, MEM, MXM, SXM), kept next
# to the ISA data: which fields name consumed / produced streams, how wide each operand is (one
# stream, an SG4 group, ROTATE's k copies, LWG/LXG's w streams, TRANSPOSE's m streams) and how an
# instruction's elements are timed. The checker derives every stream event from it
# (docs/assembly.md, section 4).
"""`STREAM_USE` and `operand_streams`: the stream events of an instruction, as data."""
from __future__ import annotations

from dataclasses import dataclass

from tsp import isa
from tsp.config import TspConfig
from tsp.vxm import type_streams

__all__ = ["STREAM_USE", "Operand", "StreamUse", "operand_streams", "transpose_size"]


@dataclass(frozen=True)
class Operand:
    """One stream operand.

    field: the instruction field naming the (first) stream.
    width: "1" (one stream), "sg4" (an aligned SG4 group: 4 streams), "field:NAME" (as many
           streams as field NAME says, 0 as 1: ROTATE's k, LWG/LXG's w), "m" (m = min(streams,
           vec_bytes) streams: TRANSPOSE) or "type:NAME" (a VXM operand of the type in field
           NAME: i8 one stream, i16 an aligned SG2 group, i32 an aligned SG4 group, type 3 no
           operand at all).
    role:  word added to the instruction's name in messages ("" for none), e.g. "map".
    """

    field: str
    width: str = "1"
    role: str = ""


@dataclass(frozen=True)
class StreamUse:
    """Stream operands of one instruction and how its elements are timed.

    elements: "one" (a single element at issue), "loop" (a MEM access per loop iteration:
              t + k*countdown, k < iterations), "count" (field `count`: t + k, k < count) or
              "count_d" (fields `count` and `d`: t + k*d, k < count; ABX).
    Element k at cycle u consumes every stream of `consumes` at u + dskew and produces every
    stream of `produces` at u + dfunc (dskew / dfunc from tsp/isa.py).
    """

    consumes: tuple[Operand, ...] = ()
    produces: tuple[Operand, ...] = ()
    elements: str = "one"


_ONE_TO_ONE = StreamUse((Operand("s"),), (Operand("d"),))

STREAM_USE: dict[str, StreamUse] = {
    "IFETCH": StreamUse((Operand("s"),)),
    # MEM: one element per loop access
    "READ": StreamUse((), (Operand("s"),), "loop"),
    "WRITE": StreamUse((Operand("s"),), (), "loop"),
    "GATHER": StreamUse((Operand("m", role="map"),), (Operand("s"),), "loop"),
    "SCATTER": StreamUse((Operand("s", role="data"), Operand("m", role="map")), (), "loop"),
    "ITERATIONS": StreamUse(),
    "STEP": StreamUse(),
    "COUNTDOWN": StreamUse(),
    # MXM: one element per cycle
    "LW": StreamUse((Operand("s"),), (), "count"),
    "IW": StreamUse(),
    "ABC": StreamUse((Operand("s"),), (), "count"),
    "ACC": StreamUse((), (Operand("s", "sg4"),), "count"),
    # wide loads (w streams s..s+w-1 per element) and the activation buffer (no stream)
    "LWG": StreamUse((Operand("s", "field:w"),), (), "count"),
    "LXG": StreamUse((Operand("s", "field:w"),), (), "count"),
    "ABX": StreamUse((), (), "count_d"),
    # SXM: one element at issue
    "SHIFT": _ONE_TO_ONE,
    "SETMAP": StreamUse((Operand("m", role="map"),)),
    "PERMUTE": _ONE_TO_ONE,
    "DISTRIBUTE": _ONE_TO_ONE,
    "ROTATE": StreamUse((Operand("s"),), (Operand("d", "field:k"),)),
    "TRANSPOSE": StreamUse((Operand("s", "m"),), (Operand("d", "m"),)),
    # VXM: one element at issue
    "VCFG": StreamUse(),
    "VFUNC": StreamUse(),
    "VCONST": StreamUse(),
    "VCONSTH": StreamUse(),
    "VLOADC": StreamUse((Operand("s", "type:t"),)),
    "VRUN": StreamUse((Operand("a", "type:ta"), Operand("b", "type:tb")),
                      (Operand("d", "type:td"),)),
}


def transpose_size(config: TspConfig) -> int:
    """TRANSPOSE's block size m = min(streams, vec_bytes) (docs/units.md section 3)."""
    return min(config.streams, config.vec_bytes)


def operand_streams(config: TspConfig, instr: isa.Instr, op: Operand, values: dict[str, int],
                    produced: bool) -> tuple[int, list[int], str | None]:
    """(direction, stream indices, problem) of operand `op` of `instr` with field `values`.

    `produced` tells a destination operand from a source operand (for the message).
    `problem` is None when every stream exists (index < streams) and an SG4 group is aligned;
    otherwise it says why the operand is rejected (the hardware would read zeros or drop
    writes there).
    """
    v = values[op.field]
    dirn, first = v >> 5, v & 31
    group = 4 if op.width == "sg4" else 1      # alignment of a stream group
    if op.width == "1":
        n = 1
    elif op.width == "sg4":
        n = 4
    elif op.width.startswith("type:"):
        n = group = type_streams(values[op.width[5:]])
        if n == 0:
            return dirn, [], None
    elif op.width == "m":
        n = transpose_size(config)
    elif op.width.startswith("field:"):
        n = max(1, values[op.width[6:]])
    else:  # pragma: no cover - the table is checked at import
        raise ValueError(f"bad operand width {op.width!r}")
    idx = list(range(first, first + n))
    last = config.streams - 1
    st = isa.format_stream
    if group > 1 and (first % group or first + group - 1 > last):
        reason = (f"is not aligned (the first index must be a multiple of {group})"
                  if first % group else f"runs past the last stream {st((dirn << 5) | last)}")
        groups = ", ".join(st((dirn << 5) | g) for g in range(0, last - group + 2, group))
        return dirn, idx, (f"the SG{group} group {st(v)}..{st((dirn << 5) | (first + group - 1))}"
                           f" (operand {op.field}) {reason}; the SG{group} groups of profile "
                           f"{config.name} start at {groups}")
    if idx[-1] > last:
        kind = "destination" if produced else "source"
        effect = ("would not be written (dropped)" if kind == "destination" else
                  "would read as zeros")
        return dirn, idx, (f"{kind} streams {st(v)}..{st((dirn << 5) | idx[-1])} (operand "
                           f"{op.field}, {n} streams) run past the last stream "
                           f"{st((dirn << 5) | last)}: streams from "
                           f"{st((dirn << 5) | (last + 1))} on {effect}")
    return dirn, idx, None


def _self_check() -> None:
    for instr in isa.INSTRUCTIONS:
        if instr.unit == "icu" and instr.name != "IFETCH":
            continue
        use = STREAM_USE.get(instr.name)
        if use is None:
            raise ValueError(f"asm.units.STREAM_USE has no entry for {instr.name}")
        names = {f.name for f in instr.fields}
        for op in use.consumes + use.produces:
            if op.field not in names or instr.field(op.field).kind != "stream":
                raise ValueError(f"STREAM_USE[{instr.name}]: {op.field} is not a stream field")
        if bool(use.consumes) != (instr.dskew is not None):
            raise ValueError(f"STREAM_USE[{instr.name}] consumes disagrees with dskew")
        if bool(use.produces) != (instr.dfunc is not None):
            raise ValueError(f"STREAM_USE[{instr.name}] produces disagrees with dfunc")
        if use.elements in ("count", "count_d") and "count" not in names:
            raise ValueError(f"STREAM_USE[{instr.name}]: no count field")
        if use.elements == "count_d" and "d" not in names:
            raise ValueError(f"STREAM_USE[{instr.name}]: no d field")


_self_check()
