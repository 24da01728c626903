"""Golden model of the TSP slice: a cycle-exact numpy model written from docs/architecture.md.

`TspModel(config)` holds the instruction memories, the MEM slices and the built compute units
(the MXM and SXM twins of sim/mxm.py and sim/sxm.py); `run()` executes the binary program of
every queue and returns a `RunResult` (cycle count, error flags, optional `Trace` of every
stream register, issue log).
"""
from .model import (
    BAD_MAP,
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
    "BAD_MAP",
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
