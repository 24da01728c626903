"""The compute-unit contract (docs/units.md section 1), defined once.

Every compute unit (MXM, SXM, and the VXM to come) is a `wiring.Component` whose ports are
`unit_members(config)`: the issuing instruction from its position's queue, the stream registers
at its position, the streams it writes (visible next cycle), `active` for the Done rule and the
error flags it raises this cycle.
"""
from amaranth.lib.wiring import In, Out

from tsp.config import TspConfig

from .streams import stream_layout

__all__ = ["unit_members"]


def unit_members(config: TspConfig) -> dict:
    """Signature members of a compute unit at one position."""
    return {
        "run": In(1), "clear": In(1),
        "issue": In(1), "instr": In(32), "flags": In(16),
        "cur_e": In(stream_layout(config)), "cur_w": In(stream_layout(config)),
        "wen_e": Out(config.streams), "wen_w": Out(config.streams),
        "wdata_e": Out(stream_layout(config)), "wdata_w": Out(stream_layout(config)),
        "active": Out(1), "err": Out(8),
    }
