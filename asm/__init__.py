# The TSP-slice assembler: text or Builder -> encoded, schedule-checked Program (see
# docs/assembly.md). The checker implements the timing rules of docs/architecture.md.
"""Assembler and static schedule checker for the TSP slice.

    from asm import assemble, Builder, Program, AsmError, check
"""
from .checker import DEFAULT_MAX_CYCLES, check
from .parser import Builder, assemble, parse
from .program import AsmError, Program, ScheduleEntry, format_instr
from .timed import TimedBuilder

__all__ = [
           "DEFAULT_MAX_CYCLES",
           "AsmError",
           "Builder",
           "Program",
           "ScheduleEntry",
           "TimedBuilder",
           "assemble",
           "check",
           "format_instr",
           "parse",
]
