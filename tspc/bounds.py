# Lower bounds on the cycles of a matmul on a profile (docs/compiler.md, "Bounds"), for the
# benchmark and the examples: compute (MACs over the MXMs' peak), streams (bytes that must leave
# MEM over the read ports' bytes per cycle) and the MXMs' weight-load path (LWG: up to
# mxm_load_width vectors per cycle per MXM).
"""`bounds(config, m, k, n)`: lower bounds on the cycles of an int8 (m x k) @ (k x n) matmul."""
from __future__ import annotations

from tsp.config import TspConfig

__all__ = ["bounds"]


def bounds(config: TspConfig, m: int, k: int, n: int) -> dict[str, int]:
    """compute = ceil(m k n / (2 lanes^2)) with both MXMs; streams = ceil((k n + m k) /
    (2 mem_slices lanes)): weights and activations must be read from MEM, one vector per slice
    per cycle; weight_path = ceil(k n / (2 L lanes)): LWG moves up to L = mxm_load_width
    n-byte rows per cycle into each MXM. Shapes count as stored (rows and columns padded to
    whole vectors)."""
    v = config.vec_bytes
    kp, np_ = -(-k // v) * v, -(-n // v) * v
    macs = m * kp * np_
    return {
        "compute": -(-macs // (2 * v * v)),
        "streams": -(-(kp * np_ + m * kp) // (2 * config.mem_slices * v)),
        "weight_path": -(-(kp * np_) // (2 * v * config.mxm_load_width)),
    }
