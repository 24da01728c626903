"""The one configuration object of the TSP slice.

`TspConfig` is frozen and validates itself: every consumer (RTL elaboration, golden model,
assembler, testbenches, docs) takes one of these and derives everything else from it. Named
profiles live in `PROFILES`; `TspConfig.profile(name)` returns one.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from .docgen import doc_main

__all__ = ["PROFILES", "AddressMap", "ConfigError", "TspConfig", "join_sg4", "split_sg4"]

INSTR_BITS = 32
# Compute units that exist in the RTL, the model and the checker; a profile picks some of them.
COMPUTE_UNITS = ("mxm", "sxm", "vxm")
IMEM_BASE = 0x1_0000
MEM_BASE = 0x10_0000
CSR_SPAN = 0x1000


class ConfigError(ValueError):
    """A configuration parameter has a bad value."""


def _is_pow2(x: int) -> bool:
    return x > 0 and (x & (x - 1)) == 0


def _next_pow2(x: int) -> int:
    return 1 << max(0, (x - 1).bit_length())


@dataclass(frozen=True)
class AddressMap:
    """Host (AXI4-Lite) address map of one configuration. All values are byte addresses."""

    imem_base: int
    imem_span: int
    mem_base: int
    mem_span: int
    word_stride: int
    end: int

    def imem(self, position: int) -> int:
        """Base address of the instruction-memory window of `position`."""
        return self.imem_base + position * self.imem_span

    def mem(self, position: int) -> int:
        """Base address of the MEM window of `position` (a MEM slice)."""
        return self.mem_base + position * self.mem_span


# (name, minimum, maximum) of every integer parameter; extra rules are in __post_init__.
_LIMITS = {
    "lanes": (4, 64),
    "superlanes": (1, 20),
    "streams": (1, 32),
    "mem_slices": (1, 16),
    "bank_depth": (8, 32768),
    "queue_depth": (16, 4096),
    "mxm_load_width": (1, 32),
    "mxm_xbuf": (0, 64),
}


@dataclass(frozen=True)
class TspConfig:
    """Parameters of one TSP slice.

    lanes:       bytes per superlane (a vector is ``lanes * superlanes`` bytes); multiple of 4.
    superlanes:  superlanes stacked in every slice (all share one address; no wavefront stagger yet).
    streams:     streams per direction (east and west each have this many).
    mem_slices:  MEM slices per hemisphere.
    bank_depth:  words per MEM bank (power of two); a slice has two banks.
    queue_depth: 32-bit instruction words per instruction queue (power of two).
    mxm_load_width: the most rows an MXM LWG/LXG element takes in one cycle (from streams
                 s..s+w-1); at most min(vec_bytes, streams) (docs/mxm.md).
    mxm_xbuf:    vectors in each MXM's activation buffer (LXG/ABX); 0 = none (they are ILLEGAL).
    vxm_stages:  the VXM's ALU stages in pipeline order, one letter each (docs/vxm.md):
                 G general, M multiplier, S shifter; 1..8 stages. `vxm_alus` is their number
                 and VRUN's dfunc is vxm_alus + 4.
    units:       compute units instantiated at their positions, a subset of COMPUTE_UNITS
                 ("mxm", "sxm", "vxm"); instructions of units left out are ILLEGAL.
    name:        the profile name, for reports.
    fpga:        the board family the profile is meant for, or "" for simulation only.
    """

    lanes: int = 16
    superlanes: int = 1
    streams: int = 8
    mem_slices: int = 4
    bank_depth: int = 512
    queue_depth: int = 256
    mxm_load_width: int = 1
    mxm_xbuf: int = 0
    vxm_stages: str = "GMSG"
    units: tuple[str, ...] = ()
    name: str = "custom"
    fpga: str = ""
    positions: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for pname, (lo, hi) in _LIMITS.items():
            value = getattr(self, pname)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"TspConfig.{pname} must be an integer, not {value!r}")
            if not lo <= value <= hi:
                raise ConfigError(
                    f"TspConfig.{pname} must be between {lo} and {hi}, not {value!r}")
        if self.lanes % 4:
            raise ConfigError(
                f"TspConfig.lanes must be a multiple of 4 (host words are 32 bits), "
                f"not {self.lanes!r}")
        if self.mxm_load_width > min(self.vec_bytes, self.streams):
            raise ConfigError(
                f"TspConfig.mxm_load_width must be at most min(vector bytes, streams) = "
                f"{min(self.vec_bytes, self.streams)} (an LWG element takes one row per "
                f"stream), not {self.mxm_load_width!r}")
        if 0 < self.mxm_xbuf < self.mxm_load_width:
            raise ConfigError(
                f"TspConfig.mxm_xbuf must be 0 or at least mxm_load_width "
                f"({self.mxm_load_width}, the vectors one LXG element writes), "
                f"not {self.mxm_xbuf!r}")
        for pname in ("bank_depth", "queue_depth"):
            if not _is_pow2(getattr(self, pname)):
                raise ConfigError(
                    f"TspConfig.{pname} must be a power of two, not {getattr(self, pname)!r}")
        if not isinstance(self.vxm_stages, str):
            raise TypeError(f"TspConfig.vxm_stages must be a string of stage kinds, "
                            f"not {self.vxm_stages!r}")
        bad = sorted(set(self.vxm_stages) - {"G", "M", "S"})
        if not 1 <= len(self.vxm_stages) <= 8 or bad:
            raise ConfigError(
                f"TspConfig.vxm_stages must be 1 to 8 letters G (general), M (multiplier) or "
                f"S (shifter), not {self.vxm_stages!r}")
        if not isinstance(self.units, tuple) or not all(isinstance(u, str) for u in self.units):
            raise TypeError(f"TspConfig.units must be a tuple of unit names, not {self.units!r}")
        for u in self.units:
            if u not in COMPUTE_UNITS:
                raise ConfigError(
                    f"TspConfig.units: unknown or not yet implemented unit {u!r}; "
                    f"available: {', '.join(COMPUTE_UNITS)}")
        if len(set(self.units)) != len(self.units):
            raise ConfigError(f"TspConfig.units lists a unit twice: {self.units!r}")
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"TspConfig.name must be a non-empty string, not {self.name!r}")
        if self.fpga not in ("", "ice40", "ecp5"):
            raise ConfigError(f"TspConfig.fpga must be '', 'ice40' or 'ecp5', not {self.fpga!r}")
        n = self.mem_slices
        names = (["MXM_W", "SXM_W"] + [f"MEM_W{i}" for i in reversed(range(n))] + ["VXM"]
                 + [f"MEM_E{i}" for i in range(n)] + ["SXM_E", "MXM_E"])
        object.__setattr__(self, "positions", tuple(names))
        end = self.address_map().end
        if end > 1 << 32:
            raise ConfigError(
                f"the MEM windows end at {end:#x}, beyond the 32-bit host address space: "
                f"reduce bank_depth ({self.bank_depth}), mem_slices ({self.mem_slices}) or the "
                f"vector size (lanes x superlanes = {self.vec_bytes})")

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def profile(cls, name: str) -> TspConfig:
        """Return the named profile (see `PROFILES`)."""
        if name not in PROFILES:
            raise ConfigError(
                f"unknown profile {name!r}; known profiles: {', '.join(sorted(PROFILES))}")
        return PROFILES[name]

    def replace(self, **changes) -> TspConfig:
        """A copy with some parameters changed (validated again)."""
        bad = set(changes) - {f.name for f in dataclasses.fields(self) if f.init}
        if bad:
            raise TypeError(f"TspConfig has no parameter {min(bad)!r}")
        return dataclasses.replace(self, **changes)

    # ---- derived quantities -----------------------------------------------------------
    @property
    def vec_bytes(self) -> int:
        """Bytes in one vector (one stream register, one MEM word)."""
        return self.lanes * self.superlanes

    @property
    def vec_bits(self) -> int:
        return 8 * self.vec_bytes

    @property
    def vxm_alus(self) -> int:
        """Number of ALU stages in the VXM pipeline (len(vxm_stages))."""
        return len(self.vxm_stages)

    @property
    def num_positions(self) -> int:
        return len(self.positions)

    @property
    def vxm_position(self) -> int:
        return self.positions.index("VXM")

    @property
    def mem_positions(self) -> tuple[int, ...]:
        """Indices of the MEM-slice positions, west to east."""
        return tuple(i for i, n in enumerate(self.positions) if n.startswith("MEM_"))

    @property
    def slice_words(self) -> int:
        """Words addressable in one MEM slice (both banks)."""
        return 2 * self.bank_depth

    @property
    def mem_addr_bits(self) -> int:
        return (self.slice_words - 1).bit_length()

    @property
    def imem_addr_bits(self) -> int:
        return (self.queue_depth - 1).bit_length()

    @property
    def ifetch_words(self) -> int:
        """Instruction words carried by one vector (written by one IFETCH)."""
        return self.vec_bytes // 4

    def position_index(self, name: str) -> int:
        """Index of the position called `name` (e.g. "MEM_E2")."""
        try:
            return self.positions.index(name)
        except ValueError:
            raise ConfigError(
                f"no position {name!r} in profile {self.name!r}; positions are "
                f"{', '.join(self.positions)}") from None

    def unit_kind(self, position: int) -> str:
        """The functional-unit kind at `position`: "mem", "vxm", "sxm" or "mxm"."""
        return self.positions[position].split("_")[0].lower()

    def address_map(self) -> AddressMap:
        imem_span = self.queue_depth * 4
        word_stride = _next_pow2(self.vec_bytes)
        mem_span = self.slice_words * word_stride
        end = MEM_BASE + self.num_positions * mem_span
        if IMEM_BASE + self.num_positions * imem_span > MEM_BASE:
            raise ConfigError(
                f"instruction memories ({self.num_positions} x {imem_span} bytes) do not fit "
                f"below the MEM windows at {MEM_BASE:#x}: reduce queue_depth")
        return AddressMap(IMEM_BASE, imem_span, MEM_BASE, mem_span, word_stride, end)

    def summary(self) -> dict:
        """Parameters and derived sizes as a plain dict (for reports and docs)."""
        am = self.address_map()
        return {
            "profile": self.name,
            "fpga": self.fpga or "simulation only",
            "lanes": self.lanes,
            "superlanes": self.superlanes,
            "vector_bytes": self.vec_bytes,
            "streams_per_direction": self.streams,
            "mem_slices_per_hemisphere": self.mem_slices,
            "bank_depth_words": self.bank_depth,
            "queue_depth_words": self.queue_depth,
            "mxm_load_width": self.mxm_load_width,
            "mxm_xbuf_vectors": self.mxm_xbuf,
            "vxm_stages": self.vxm_stages,
            "compute_units": list(self.units),
            "positions": list(self.positions),
            "mem_bytes_total": 2 * self.mem_slices * self.slice_words * self.vec_bytes,
            "stream_register_bits": 2 * self.num_positions * self.streams * self.vec_bits,
            "address_map": dataclasses.asdict(am),
        }


PROFILES: dict[str, TspConfig] = {
    "tiny": TspConfig(lanes=4, superlanes=1, streams=4, mem_slices=2, bank_depth=64,
                      queue_depth=64, name="tiny", fpga="ice40"),
    # The ECP5-85F target, with every compute unit: 4 lanes. The VXM costs about 4.7k LUT4 per
    # lane (~38k of the 8-lane slice's ~98k LUT4, 117% of the LFE5U-85F); at 4 lanes Yosys
    # synth_ecp5 measures ~52.5k LUT4-equivalent (62.7%), 17.8k FF, 59 DP16KD and 48 MULT18X18D
    # (2 MXMs x 4 x 4 MACs + 4 per VXM lane x 4 lanes) of the 156 (docs/fpga.md). bank_depth 1024
    # keeps the MEM capacity of the 8-lane slice (16 banks of 1024 x 32 bits: 2 DP16KD each).
    "default": TspConfig(lanes=4, superlanes=1, streams=8, mem_slices=4, bank_depth=1024,
                         queue_depth=256, units=COMPUTE_UNITS, name="default", fpga="ecp5"),
    # The 8-lane slice with every unit: simulation only (the compiler's examples and benchmarks
    # use it). It does not fit the ECP5-85F: ~98k LUT4 with the VXM (117% of the device).
    "full": TspConfig(lanes=8, superlanes=1, streams=8, mem_slices=4, bank_depth=512,
                      queue_depth=256, mxm_load_width=4, mxm_xbuf=8, units=COMPUTE_UNITS,
                      name="full", fpga=""),
    # The brief's 16-lane slice (16 x 16 MXMs), simulation only.
    "wide": TspConfig(lanes=16, superlanes=1, streams=8, mem_slices=4, bank_depth=512,
                      queue_depth=256, mxm_load_width=4, mxm_xbuf=16, vxm_stages="GMSGG", units=COMPUTE_UNITS, name="wide",
                      fpga=""),
    "large": TspConfig(lanes=16, superlanes=2, streams=16, mem_slices=8, bank_depth=1024,
                       queue_depth=512, mxm_load_width=8, mxm_xbuf=16, vxm_stages="GMSGG", units=COMPUTE_UNITS, name="large",
                       fpga=""),
}


def split_sg4(values: np.ndarray) -> np.ndarray:
    """int32 vector (lanes,) -> (4, lanes) uint8: row b is byte b, the SG4 stream 4g+b."""
    v = np.asarray(values, dtype=np.int32).view(np.uint32)
    return np.stack([((v >> (8 * b)) & 0xFF).astype(np.uint8) for b in range(4)])


def join_sg4(rows: np.ndarray) -> np.ndarray:
    """(4, lanes) uint8 SG4 byte vectors -> int32 vector (inverse of `split_sg4`)."""
    r = np.asarray(rows, dtype=np.uint32)
    return (r[0] | (r[1] << 8) | (r[2] << 16) | (r[3] << 24)).astype(np.uint32).view(np.int32)


_PARAM_DOCS = {
    "lanes": "bytes per superlane; a vector is lanes x superlanes bytes (multiple of 4)",
    "superlanes": "superlanes per slice; all share one address (no wavefront stagger yet)",
    "streams": "streams per direction (east and west each)",
    "mem_slices": "MEM slices per hemisphere",
    "bank_depth": "words per MEM bank, power of two; each slice has two banks",
    "queue_depth": "32-bit words per instruction queue, power of two",
    "mxm_load_width": ("rows an MXM LWG/LXG element loads per cycle, one per stream; at most "
                       "min(vector bytes, streams)"),
    "mxm_xbuf": "vectors in each MXM's activation buffer (LXG, ABX); 0 = none",
}


def render_markdown() -> str:
    """docs/configuration.md, generated from `TspConfig` and `PROFILES`."""
    out = ["# Configuration", "",
           ("<!-- Generated by `python -m tsp.config --write docs/configuration.md` from "
           "tsp/config.py. Do not edit: tests/test_config.py fails when this file is stale. -->"),
           "", ("One frozen, validated object, `tsp.config.TspConfig`, drives the RTL, the golden "
           "model, the assembler, the testbenches and these docs. Bad values raise `TypeError` "
           "(wrong type) or `ConfigError` (a `ValueError`) naming the parameter and the value."),
           "", "```python", "from tsp.config import TspConfig",
           'cfg = TspConfig.profile("default")          # a named profile',
           "small = cfg.replace(bank_depth=128)          # a validated variant",
           "```", "", "## Parameters", "",
           "| parameter | range | meaning |", "|---|---|---|"]
    for pname, (lo, hi) in _LIMITS.items():
        out.append(f"| `{pname}` | {lo}..{hi} | {_PARAM_DOCS[pname]} |")
    out += ["| `units` | subset of " + ", ".join(f"`{u}`" for u in COMPUTE_UNITS)
            + " | compute units instantiated (instructions of the others are ILLEGAL) |",
            ("| `vxm_stages` | 1..8 of `G` `M` `S` | the VXM's ALU stages in order: G general, M "
             "multiplier, S shifter (docs/vxm.md); `vxm_alus` = their number, VRUN's dfunc is "
             "`vxm_alus + 4` |"),
            "| `name` | non-empty string | profile name, for reports |",
            "| `fpga` | `''`, `ice40`, `ecp5` | the board family a profile is meant for |",
            "", "## Profiles", "",
            ("| profile | target | lanes x superlanes | streams/dir | MEM slices | bank depth "
            "| queue depth | MXM load width / act. buffer | units | positions | MEM bytes "
            "| stream-register flip-flops |"),
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for p in PROFILES.values():
        s = p.summary()
        out.append(f"| `{p.name}` | {s['fpga']} | {p.lanes} x {p.superlanes} | {p.streams} | "
                   f"2 x {p.mem_slices} | {p.bank_depth} | {p.queue_depth} | "
                   f"{p.mxm_load_width} / {p.mxm_xbuf} | {', '.join(p.units) or '-'} | "
                   f"{p.num_positions} | {s['mem_bytes_total']} | "
                   f"{s['stream_register_bits']} |")
    out += ["", ("Stream registers cost positions x streams x 2 directions x vector bits of "
            "flip-flops; they are the largest flip-flop cost on an FPGA."), "",
            "## Floor plans", ""]
    for p in PROFILES.values():
        out.append(f"- `{p.name}`: {' | '.join(p.positions)}")
    out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    return doc_main("python -m tsp.config", "the generated configuration doc (docs/configuration.md)", render_markdown, argv)


if __name__ == "__main__":
    raise SystemExit(main())
