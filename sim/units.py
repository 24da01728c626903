"""Shared argument check of the compute-unit model twins (docs/units.md section 1)."""
from __future__ import annotations

from tsp.config import TspConfig

__all__ = ["check_unit_args"]


def check_unit_args(cls: str, kind: str, config: TspConfig, position: int) -> None:
    """Raise a clear TypeError/ValueError unless `position` of `config` holds a `kind` unit."""
    if not isinstance(config, TspConfig):
        raise TypeError(f"{cls}: config must be a TspConfig, not {config!r}")
    if not isinstance(position, int) or not 0 <= position < config.num_positions:
        raise ValueError(f"{cls}: position {position!r} is not a position of profile "
                         f"{config.name!r} (0..{config.num_positions - 1})")
    if config.unit_kind(position) != kind:
        raise ValueError(f"{cls}: position {position} is {config.positions[position]}, "
                         f"not {'the' if kind == 'vxm' else 'an'} {kind.upper()} position")
