# Assembled-program container (`Program`), the assembler's error type (`AsmError`), the schedule
# entry type, the symbolic operand names of the VXM instructions (shared by the parser and the
# disassembler) and the one-instruction disassembler used by listings and round-trip tests.
"""`Program`, `AsmError`, `ScheduleEntry`, `SYMBOLS` and `format_instr`."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from tsp import isa, vxm
from tsp.config import TspConfig

__all__ = ["SYMBOLS", "AsmError", "Program", "ScheduleEntry", "format_instr", "symbol_value"]

# Symbolic operand values (docs/vxm.md, tsp/vxm.py): (mnemonic, field) -> {name: code}. Names are
# matched case-insensitively; numbers stay accepted for every field. Type code 3 ("none") is a
# name only for VRUN's `tb`, the one field where the ISA allows it.
_TYPES = {name: code for code, (name, _) in sorted(vxm.TYPES.items())}
_REGS = {name: i for i, name in enumerate(vxm.REG_NAMES)}
_SRCS = {name: i for i, name in enumerate(vxm.SRC_NAMES)}
_CONSTS = {f"c{i}": i for i in range(4)}
SYMBOLS: dict[tuple[str, str], dict[str, int]] = {
    ("VCFG", "op"): {op.name: op.code for op in vxm.ALU_OPS},
    ("VCFG", "type"): _TYPES,
    ("VCFG", "dst"): _REGS,
    ("VCFG", "x"): _REGS,
    ("VCFG", "y"): _SRCS,
    ("VFUNC", "fn"): dict(vxm.FUNC_BY_NAME),
    ("VFUNC", "dst"): _REGS,
    ("VFUNC", "x"): _REGS,
    ("VCONST", "c"): _CONSTS,
    ("VCONSTH", "c"): _CONSTS,
    ("VLOADC", "c"): _CONSTS,
    ("VLOADC", "t"): _TYPES,
    ("VRUN", "ta"): _TYPES,
    ("VRUN", "tb"): {**_TYPES, "none": vxm.TYPE_NONE},
    ("VRUN", "td"): _TYPES,
    ("VRUN", "sat"): {"wrap": 0, "sat": 1},
}
_NAME_OF = {key: {code: name for name, code in table.items()} for key, table in SYMBOLS.items()}


def symbol_value(mnemonic: str, field_name: str, token: str) -> int | None:
    """The code of symbolic operand `token` of field `field_name` of `mnemonic`.

    None when the field has no symbolic names (the caller parses a number); ValueError naming
    the field and the allowed names when it has names and `token` is none of them.
    """
    table = SYMBOLS.get((mnemonic, field_name))
    if table is None:
        return None
    t = token.strip().lower()
    for name, code in table.items():
        if name.lower() == t:
            return code
    raise ValueError(f"unknown value {token.strip()!r} for field {field_name}; allowed: "
                     f"{', '.join(table)} (or a number)")


class AsmError(ValueError):
    """An assembly, encoding or schedule error.

    Attributes: `filename`, `line` (1-based, or None), `cycle` (or None), `position` (index, or
    None) and `message`. ``str(err)`` is ``"file:line: message"`` (``"file: message"`` without a
    line); the message names the cycle, position and stream when they are relevant.
    """

    def __init__(self, message: str, filename: str = "<string>", line: int | None = None,
                 cycle: int | None = None, position: int | None = None) -> None:
        self.message = message
        self.filename = filename
        self.line = line
        self.cycle = cycle
        self.position = position
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = self.filename if self.line is None else f"{self.filename}:{self.line}"
        return f"{where}: {self.message}"


class ScheduleEntry(NamedTuple):
    """One instruction issue: (cycle, position, mnemonic, line). REPEAT copies carry the line of
    the REPEAT that issued them and the mnemonic of the repeated instruction."""

    cycle: int
    position: int
    mnemonic: str
    line: int | None


def format_instr(word: int) -> str:
    """Disassemble one instruction word to assembly text (``"READ 16, E2"``).

    VXM fields are printed by name (``"VCFG 0, SRDHM, i32, r2, r0, c0"``; codes without a
    name, such as an undefined operation, as numbers). Undefined opcodes give
    ``".word 0x........"`` (not accepted by the assembler).
    """
    instr, vals = isa.decode(word)
    if instr is None:
        return f".word {word:#010x}"
    ops = []
    for f in instr.fields:
        v = vals[f.name]
        names = _NAME_OF.get((instr.name, f.name))
        if f.kind == "stream":
            ops.append(isa.format_stream(v))
        elif names is not None and v in names:
            ops.append(names[v])
        elif instr.name in ("CONFIG", "VCONSTH"):
            ops.append(f"{v:#x}")
        else:
            ops.append(str(v))
    return instr.name + (" " + ", ".join(ops) if ops else "")


@dataclass
class Program:
    """An assembled and checked program.

    queues:           position index -> instruction words (every position present, each list
                      ends with HALT).
    data:             initial MEM contents: (position, slice word address, vec_bytes bytes).
    predicted_cycles: the cycle count T of the Done rule, or None when an IFETCH loads words the
                      queue then executes (not statically known).
    schedule:         every instruction issue (including REPEAT copies), sorted by cycle, then
                      position.
    lines, sources:   per position, the source line number / text of each word (None if unknown).
    """

    config: TspConfig
    queues: dict[int, list[int]]
    data: list[tuple[int, int, bytes]] = field(default_factory=list)
    predicted_cycles: int | None = None
    schedule: list[ScheduleEntry] = field(default_factory=list)
    filename: str = "<string>"
    lines: dict[int, list[int | None]] = field(default_factory=dict)
    sources: dict[int, list[str | None]] = field(default_factory=dict)
    data_lines: list[int | None] = field(default_factory=list)
    schedule_words: list[int] = field(default_factory=list, repr=False)
    schedule_notes: list[str] = field(default_factory=list, repr=False)

    def line_of(self, position: int, addr: int) -> int | None:
        """Source line of word `addr` of `position`'s queue, or None."""
        ls = self.lines.get(position)
        return ls[addr] if ls is not None and addr < len(ls) else None

    def listing(self) -> str:
        """Human-readable listing: one row per instruction issue, then the cycle count."""
        cfg = self.config
        width = max(len(n) for n in cfg.positions)
        out = [f"; {self.filename}: profile {cfg.name}, {cfg.num_positions} positions",
               f"; {'cycle':>8}  {'queue':<{width}}  {'line':>5}  instruction"]
        for i, e in enumerate(self.schedule):
            text = (format_instr(self.schedule_words[i]) if i < len(self.schedule_words)
                    else e.mnemonic)
            note = self.schedule_notes[i] if i < len(self.schedule_notes) else ""
            line = "" if e.line is None else str(e.line)
            row = f"  {e.cycle:>8}  {cfg.positions[e.position]:<{width}}  {line:>5}  {text}"
            out.append(row + (f"    ; {note}" if note else ""))
        for pos, addr, value in self.data:
            out.append(f"; .data {cfg.positions[pos]} {addr:#x} {value.hex()}")
        if self.predicted_cycles is None:
            out.append("; predicted cycles: unknown (an IFETCH loads instructions this program "
                       "executes)")
        else:
            out.append(f"; predicted cycles: {self.predicted_cycles}")
        return "\n".join(out) + "\n"

    def to_dict(self) -> dict:
        """JSON-ready form: profile, ISA version, predicted cycles, words per queue, data."""
        cfg = self.config
        return {
            "profile": cfg.name,
            "isa_version": isa.ISA_VERSION,
            "config": {**{k: getattr(cfg, k) for k in ("lanes", "superlanes", "streams",
                                                        "mem_slices", "bank_depth",
                                                        "queue_depth", "vxm_stages")},
                       "units": list(cfg.units)},
            "predicted_cycles": self.predicted_cycles,
            "queues": {cfg.positions[p]: list(self.queues[p]) for p in sorted(self.queues)},
            "data": [{"position": cfg.positions[p], "addr": a, "bytes": v.hex()}
                     for p, a, v in self.data],
        }

    @classmethod
    def from_dict(cls, d: dict, config: TspConfig, filename: str = "<json>") -> Program:
        """Rebuild a Program from `to_dict` output (unchecked: call `asm.check` on it)."""
        try:
            queues = {config.position_index(name): [int(w) for w in words]
                      for name, words in d["queues"].items()}
            data = [(config.position_index(e["position"]), int(e["addr"]),
                     bytes.fromhex(e["bytes"])) for e in d.get("data", [])]
        except (KeyError, TypeError, ValueError) as e:
            raise AsmError(f"malformed program dictionary: {e}", filename) from None
        for p in range(config.num_positions):
            queues.setdefault(p, [0])
        return cls(config, queues, data, filename=filename)
