# Text assembler and programmatic builder: `assemble(text, config)` parses the assembly format of
# docs/assembly.md into a `Builder`, whose `build()` encodes (tsp/isa.py), appends HALTs and runs
# the schedule checker. VXM fields also take symbolic names (asm/program.py SYMBOLS).
"""`Builder` and `assemble`: assembly text or Python calls -> checked `Program`."""
from __future__ import annotations

import re

from tsp import isa
from tsp.config import ConfigError, TspConfig

from .checker import DEFAULT_MAX_CYCLES, check, data_problem, field_problem
from .program import SYMBOLS, AsmError, Program, symbol_value

__all__ = ["Builder", "assemble", "parse"]

_NUM = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F]+|[0-9]+)")
_STREAM = re.compile(r"([EeWw])([0-9]+)")
_HEX = re.compile(r"[0-9a-fA-F_\s]+")


def parse_int(token: str) -> int:
    """Parse a decimal, 0x-hexadecimal or negative integer; ValueError if malformed."""
    t = token.strip()
    if not _NUM.fullmatch(t):
        raise ValueError(f"malformed number {token!r} (decimal or 0x-hex expected)")
    return int(t, 0) if not re.fullmatch(r"[+-]?0[0-9]+", t) else int(t, 10)


class Builder:
    """Collects instructions and data per position, then `build()`s a checked `Program`.

    ``add(position, mnemonic, *operands, line=None, source=None, **fields)``: position is a name
    (case-insensitive) or an index; operands follow the field order of tsp/isa.py (or are given
    by field name); numbers are ints or number strings, streams are ``"E2"``/``"W0"`` (or the raw
    6-bit field value as an int), VXM fields also take their names (``"SRDHM"``, ``"i32"``,
    ``"r2"``, ``"c0"``, ``"zero"``, ``"EXP"``, VRUN ``tb`` ``"none"``: asm/program.py SYMBOLS).
    `line` is the source line used in messages (default: the 1-based count of add/data calls);
    `source` is the statement text shown in the listing.
    """

    def __init__(self, config: TspConfig, filename: str = "<builder>") -> None:
        if not isinstance(config, TspConfig):
            raise TypeError(f"Builder needs a TspConfig, not {type(config).__name__}")
        self.config = config
        self.filename = filename
        self._words: dict[int, list[int]] = {p: [] for p in range(config.num_positions)}
        self._lines: dict[int, list[int | None]] = {p: [] for p in range(config.num_positions)}
        self._sources: dict[int, list[str | None]] = {p: [] for p in range(config.num_positions)}
        self._data: list[tuple[int, int, bytes]] = []
        self._data_lines: list[int | None] = []
        self._count = 0

    def _error(self, msg: str, line: int | None, position: int | None = None) -> AsmError:
        return AsmError(msg, self.filename, line, None, position)

    def position(self, position: int | str, line: int | None = None) -> int:
        """Resolve a position name (case-insensitive) or index to an index."""
        cfg = self.config
        if isinstance(position, bool):
            raise self._error(f"bad position {position!r}", line)
        if isinstance(position, int):
            if 0 <= position < cfg.num_positions:
                return position
            raise self._error(f"no position {position} in profile {cfg.name!r} (positions are "
                              f"0..{cfg.num_positions - 1})", line)
        if isinstance(position, str):
            try:
                return cfg.position_index(position.strip().upper())
            except ConfigError as e:
                raise self._error(str(e), line) from None
        raise self._error(f"bad position {position!r} (a name or an index)", line)

    def add(self, position: int | str, mnemonic: str, *operands: int | str,
            line: int | None = None, source: str | None = None, **fields: int | str) -> int:
        """Append one instruction to `position`'s queue; return its encoded word."""
        self._count += 1
        if line is None:
            line = self._count
        p = self.position(position, line)
        if not isinstance(mnemonic, str):
            raise self._error(f"mnemonic must be a string, not {mnemonic!r}", line, p)
        instr = isa.BY_NAME.get(mnemonic.strip().upper())
        if instr is None:
            raise self._error(f"unknown instruction {mnemonic!r}; known: "
                              f"{', '.join(isa.BY_NAME)}", line, p)
        names = [f.name for f in instr.fields]
        if len(operands) > len(names):
            raise self._error(f"{instr.name} takes {len(names)} operand(s) "
                              f"({instr.syntax}), got {len(operands)}", line, p)
        given: dict[str, int | str] = dict(zip(names, operands))
        for k, v in fields.items():
            if k not in names:
                raise self._error(f"{instr.name} has no field {k!r}; fields: "
                                  f"{', '.join(names) or 'none'}", line, p)
            if k in given:
                raise self._error(f"{instr.name}: field {k!r} given twice", line, p)
            given[k] = v
        missing = [n for n in names if n not in given]
        if missing:
            raise self._error(f"{instr.name} takes {len(names)} operand(s) ({instr.syntax}), "
                              f"got {len(given)} (missing {', '.join(missing)})", line, p)
        values = {}
        for f in instr.fields:
            values[f.name] = self._operand(instr, f, given[f.name], line, p)
        why = field_problem(self.config, p, instr, values)
        if why:
            raise self._error(why, line, p)
        word = isa.encode(instr.name, **values)
        self._words[p].append(word)
        self._lines[p].append(line)
        self._sources[p].append(source)
        return word

    def _operand(self, instr: isa.Instr, f: isa.Field, v: int | str, line: int | None,
                 p: int) -> int:
        if isinstance(v, bool):
            raise self._error(f"{instr.name}: operand {f.name} must be a number or stream, "
                              f"not {v!r}", line, p)
        if f.kind == "stream":
            if isinstance(v, int):
                return v
            if isinstance(v, str):
                m = _STREAM.fullmatch(v.strip())
                if m:
                    idx = int(m.group(2))
                    if idx > 31:
                        raise self._error(f"{instr.name}: stream {v.strip()} out of range: "
                                          f"profile {self.config.name} has "
                                          f"{self.config.streams} streams per direction", line,
                                          p)
                    return isa.stream_operand(isa.EAST if m.group(1) in "Ee" else isa.WEST, idx)
            raise self._error(f"{instr.name}: operand {f.name} must be a stream such as E2 or "
                              f"W0, not {v!r}", line, p)
        if isinstance(v, int):
            return v
        if isinstance(v, str):
            try:
                return parse_int(v)
            except ValueError as e:
                if (instr.name, f.name) not in SYMBOLS:
                    raise self._error(f"{instr.name}: operand {f.name}: {e}", line, p) from None
            try:
                return symbol_value(instr.name, f.name, v)
            except ValueError as e:
                raise self._error(f"{instr.name}: {e}", line, p) from None
        raise self._error(f"{instr.name}: operand {f.name} must be an integer, not {v!r}",
                          line, p)

    def data(self, position: int | str, addr: int, value: bytes, *,
             line: int | None = None) -> None:
        """Initial contents of one MEM word: `value` is vec_bytes bytes (byte i = lane i)."""
        self._count += 1
        if line is None:
            line = self._count
        p = self.position(position, line)
        problem = data_problem(self.config, p, addr, value)
        if problem:
            raise self._error(problem, line, p)
        if any(q == p and a == addr for q, a, _ in self._data):
            raise self._error(f".data: word {addr} of {self.config.positions[p]} is given twice",
                              line, p)
        self._data.append((p, addr, bytes(value)))
        self._data_lines.append(line)

    def build(self, max_cycles: int = DEFAULT_MAX_CYCLES) -> Program:
        """Append HALTs, run the checker and return the `Program` (raises `AsmError`)."""
        queues, lines, sources = {}, {}, {}
        for p in range(self.config.num_positions):
            words = list(self._words[p])
            ls, ss = list(self._lines[p]), list(self._sources[p])
            if not words or isa.decode(words[-1])[0].name != "HALT":
                words.append(0)
                ls.append(None)
                ss.append("HALT (appended)")
            queues[p], lines[p], sources[p] = words, ls, ss
        prog = Program(self.config, queues, list(self._data), filename=self.filename,
                       lines=lines, sources=sources, data_lines=list(self._data_lines))
        check(prog, max_cycles)
        return prog


def _split_operands(rest: str) -> list[str]:
    rest = rest.strip()
    if not rest:
        return []
    return [op.strip() for op in rest.split(",")]


def parse(text: str, config: TspConfig, filename: str = "<string>") -> Builder:
    """Parse assembly text into a `Builder` (syntax and field errors raise `AsmError`)."""
    if not isinstance(text, str):
        raise TypeError(f"assembly text must be a str, not {type(text).__name__}")
    b = Builder(config, filename)
    current: int | None = None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        code = re.split(r"[;#]", raw, maxsplit=1)[0].strip()
        if not code:
            continue
        parts = code.split(None, 1)
        head, rest = parts[0], (parts[1] if len(parts) > 1 else "")
        if head.startswith("."):
            directive = head.lower()
            args = rest.split()
            if directive == ".queue":
                if len(args) != 1:
                    raise AsmError(".queue takes one position (a name such as MEM_W1, or an "
                                   "index)", filename, lineno)
                current = b.position(_position_token(args[0]), lineno)
            elif directive == ".data":
                if len(args) < 3:
                    raise AsmError(".data takes a position, a word address and the word's "
                                   f"{config.vec_bytes} bytes in hex", filename, lineno)
                pos = b.position(_position_token(args[0]), lineno)
                try:
                    addr = parse_int(args[1])
                except ValueError as e:
                    raise AsmError(f".data address: {e}", filename, lineno) from None
                hexpart = "".join(args[2:]).replace("_", "")
                if not _HEX.fullmatch(hexpart) or len(hexpart) % 2:
                    raise AsmError(f".data: malformed hex bytes {' '.join(args[2:])!r} (an even "
                                   "number of hex digits expected)", filename, lineno, None, pos)
                b.data(pos, addr, bytes.fromhex(hexpart), line=lineno)
            else:
                raise AsmError(f"unknown directive {head!r} (known: .queue, .data)", filename,
                               lineno)
            continue
        if current is None:
            raise AsmError(f"instruction {code!r} outside a .queue section (put '.queue NAME' "
                           "before it)", filename, lineno)
        ops = _split_operands(rest)
        if any(op == "" for op in ops):
            raise AsmError(f"empty operand in {code!r}", filename, lineno, None, current)
        b.add(current, head, *ops, line=lineno, source=code)
    return b


def _position_token(tok: str) -> int | str:
    try:
        return parse_int(tok)
    except ValueError:
        return tok


def assemble(text: str, config: TspConfig, filename: str = "<string>",
             max_cycles: int = DEFAULT_MAX_CYCLES) -> Program:
    """Assemble and check `text`; return the `Program` (raises `AsmError` with file:line)."""
    return parse(text, config, filename).build(max_cycles)
