"""Golden model of the TSP slice: a cycle-exact numpy model written from docs/architecture.md.

`TspModel(config)` holds the instruction memories and MEM slices; `run()` executes the binary
program of every queue and returns a `RunResult` (cycle count, error flags, optional `Trace` of
every stream register, issue log).
"""
from .model import (
    BANK_CONFLICT,
    DEADLOCK,
    DEADLOCK_POSITION,
    ENGINE_BUSY,
    ILLEGAL,
    ModelError,
    RunResult,
    Trace,
    TspModel,
)

__all__ = [
    "BANK_CONFLICT",
    "DEADLOCK",
    "DEADLOCK_POSITION",
    "ENGINE_BUSY",
    "ILLEGAL",
    "ModelError",
    "RunResult",
    "Trace",
    "TspModel",
]
