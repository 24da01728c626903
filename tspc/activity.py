# Visibility for compiled programs: per-unit activity of golden-model runs (issue 4).
#
# `TspModel.run(activity=True)` records, per cycle and position, a bitmask of what the unit did
# (sim/model.py ACTIVITY_BITS) and the mnemonic its queue issued. From one run or a list of runs
# (the consecutive "segments" of a compiled program) this module derives:
#   stats(config, result)      per unit and engine: busy cycles, utilisation, instruction counts,
#                              MXM MACs and MAC utilisation (a dict);
#   summarize(config, result)  the same as a text table;
#   plot(config, result, path) a PNG: one row per unit engine, x = cycle, a coloured cell where
#                              busy (an image, so 10k+ cycle runs stay readable: long ranges are
#                              binned and shaded by the busy fraction of each bin).
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim.model import ACTIVITY_BITS, ACTIVITY_MNEMONICS, RunResult
from tsp.config import TspConfig

__all__ = ["CATEGORIES", "Row", "plot", "rows", "stats", "summarize"]

# Plot categories: name -> RGB colour (0..1). Row rules map activity bits to these.
CATEGORIES: dict[str, tuple[float, float, float]] = {
    "READ": (0.12, 0.47, 0.71),
    "GATHER": (0.40, 0.76, 0.93),
    "WRITE": (1.00, 0.50, 0.05),
    "SCATTER": (0.65, 0.34, 0.16),
    "bank conflict": (0.84, 0.15, 0.16),
    "LW": (0.17, 0.63, 0.17),
    "IW": (0.10, 0.10, 0.10),
    "ABC": (0.58, 0.40, 0.74),
    "ACC": (0.74, 0.74, 0.13),
    "SETMAP": (0.50, 0.50, 0.50),
    "SHIFT": (0.09, 0.75, 0.81),
    "PERMUTE": (0.89, 0.47, 0.76),
    "DISTRIBUTE": (0.55, 0.34, 0.29),
    "ROTATE": (0.74, 0.74, 0.13),
    "TRANSPOSE": (0.17, 0.63, 0.17),
    "VRUN": (0.00, 0.50, 0.50),
    "VLOADC": (0.40, 0.60, 0.20),
    "VXM config": (0.60, 0.60, 0.60),
    "VXM pipeline": (0.60, 0.85, 0.85),
}
_CAT_INDEX = {name: i + 1 for i, name in enumerate(CATEGORIES)}     # 0 = idle


@dataclass(frozen=True)
class Row:
    """One plot row: `label`, its `position`, the engine it shows (for stats) and its rules
    [(activity bit name, category), ...]; later rules win when several bits are set."""

    label: str
    position: int
    engine: str
    rules: tuple[tuple[str, str], ...]


_KIND_ROWS: dict[str, tuple[tuple[str, tuple[tuple[str, str], ...]], ...]] = {
    "mem": (("rd", (("RD", "READ"), ("GATHER", "GATHER"))),
            ("wr", (("WR", "WRITE"), ("SCATTER", "SCATTER"), ("CONFLICT", "bank conflict")))),
    "mxm": (("LW", (("LW", "LW"),)), ("IW", (("IW", "IW"),)), ("ABC", (("ABC", "ABC"),)),
            ("ACC", (("ACC", "ACC"),))),
    "sxm": (("op", tuple((n, n) for n in ACTIVITY_BITS["sxm"][1:])),),
    "vxm": (("in", (("VLOADC", "VLOADC"), ("VRUN", "VRUN"))),
            ("pipe", (("PIPE", "VXM pipeline"),)),
            ("cfg", (("CFG", "VXM config"),))),
}


def rows(config: TspConfig) -> list[Row]:
    """The plot rows of `config`, west to east: two per MEM slice (rd, wr), four per MXM (LW,
    IW, ABC, ACC), one per SXM (op), three for the VXM (in, pipe, cfg); only built units."""
    out = []
    for p, name in enumerate(config.positions):
        kind = config.unit_kind(p)
        if kind != "mem" and kind not in config.units:
            continue
        for engine, rules in _KIND_ROWS.get(kind, ()):
            out.append(Row(f"{name} {engine}", p, engine, rules))
    return out


# ---- collecting the segments -------------------------------------------------------------------
def _collect(config: TspConfig, result: RunResult | Sequence[RunResult], where: str
             ) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(bits (T, P), issued (T, P), segment lengths) of one result or a list of results."""
    if not isinstance(config, TspConfig):
        raise TypeError(f"{where}: config must be a TspConfig, not {config!r}")
    results = [result] if isinstance(result, RunResult) else list(result)
    if not results:
        raise ValueError(f"{where}: no results given (an empty list)")
    bits, issued, lengths = [], [], []
    for i, r in enumerate(results):
        if not isinstance(r, RunResult):
            raise TypeError(f"{where}: segment {i} is {type(r).__name__}, not a RunResult")
        a = r.activity
        if a is None:
            raise ValueError(f"{where}: segment {i} has no activity record; run it with "
                             f"TspModel.run(activity=True)")
        if a.config != config:
            raise ValueError(f"{where}: segment {i} ran on profile {a.config.name!r}, not on "
                             f"the given config {config.name!r}")
        bits.append(a.bits)
        issued.append(a.issued)
        lengths.append(a.cycles)
    return np.concatenate(bits), np.concatenate(issued), lengths


def _categories(row: Row, config: TspConfig, bits: np.ndarray) -> np.ndarray:
    """Category index (0 = idle) of `row` in every cycle of `bits` (T, P)."""
    col = bits[:, row.position]
    names = ACTIVITY_BITS[config.unit_kind(row.position)]
    cat = np.zeros(len(col), dtype=np.uint8)
    for bit, category in row.rules:
        cat[(col >> names.index(bit)) & 1 != 0] = _CAT_INDEX[category]
    return cat


# ---- statistics --------------------------------------------------------------------------------
def stats(config: TspConfig, result: RunResult | Sequence[RunResult]) -> dict:
    """Per-unit statistics of one run or of consecutive segments (a list of RunResults):

    {"cycles": T, "segments": [T_0, ...], "units": {position name: {"engines": {engine: busy
    cycles}, "instructions": {mnemonic: count}, and for an MXM "macs", "mac_utilisation"}}}.
    Engines are those of `rows(config)`; a cycle counts as busy for an engine when its row is
    not idle (IW: the install pulses). MACs = ABC vectors x n x n (n = vec_bytes) and MAC
    utilisation = MACs / (n x n x T).
    """
    bits, issued, lengths = _collect(config, result, "stats")
    T = int(bits.shape[0])
    n = config.vec_bytes
    units: dict[str, dict] = {}
    for row in rows(config):
        name = config.positions[row.position]
        u = units.setdefault(name, {"engines": {}, "instructions": {}})
        u["engines"][row.engine] = int(np.count_nonzero(_categories(row, config, bits)))
    for name, u in units.items():
        p = config.position_index(name)
        counts = np.bincount(issued[:, p], minlength=len(ACTIVITY_MNEMONICS))
        u["instructions"] = {ACTIVITY_MNEMONICS[i]: int(c) for i, c in enumerate(counts)
                             if i and c}
        if config.unit_kind(p) == "mxm":
            macs = u["engines"]["ABC"] * n * n
            u["macs"] = macs
            u["mac_utilisation"] = macs / (n * n * T) if T else 0.0
    return {"cycles": T, "segments": lengths, "units": units}


def summarize(config: TspConfig, result: RunResult | Sequence[RunResult]) -> str:
    """A text table of `stats`: per unit and engine the busy cycles and the utilisation (% of
    the run's cycles), the unit's instruction counts, and for each MXM its MACs and MAC
    utilisation."""
    st = stats(config, result)
    T, segs = st["cycles"], st["segments"]
    n = config.vec_bytes
    head = f"activity of {T} cycles, profile {config.name!r}"
    if len(segs) > 1:
        shown = " + ".join(map(str, segs[:8])) + (" + ..." if len(segs) > 8 else "")
        head += f", {len(segs)} segments ({shown})"
    lines = [head, f"{'unit':<8} {'engine':<6} {'busy':>8} {'util':>7}  instructions"]

    def pct(x: float) -> str:
        return f"{100 * x:6.1f}%"

    for name, u in st["units"].items():
        instr = ", ".join(f"{m} {c}" for m, c in u["instructions"].items()) or "-"
        for i, (eng, busy) in enumerate(u["engines"].items()):
            lines.append(f"{name if i == 0 else '':<8} {eng:<6} {busy:>8} "
                         f"{pct(busy / T if T else 0.0)}  {instr if i == 0 else ''}".rstrip())
        if "macs" in u:
            abc = u["engines"]["ABC"]
            lines.append(f"{'':<8} MACs {u['macs']} = {abc} ABC vectors x {n} x {n}; "
                         f"MAC utilisation {u['macs']} / ({n} x {n} x {T}) = "
                         f"{pct(u['mac_utilisation']).strip()}")
    return "\n".join(lines)


# ---- plot --------------------------------------------------------------------------------------
def _image(cats: np.ndarray, start: int, stop: int, max_columns: int
           ) -> tuple[np.ndarray, int]:
    """RGB image (rows, columns, 3) of the category array `cats` (rows, T) over cycles
    start..stop-1, binned by `b` cycles per column when the range is longer than `max_columns`
    (each category's colour weighted by its share of the bin, the rest white; a bin with
    any activity shows at least 35 % colour). Returns (image,
    b)."""
    span = stop - start
    b = max(1, math.ceil(span / max_columns))
    cols = math.ceil(span / b)
    part = np.zeros((cats.shape[0], cols * b), dtype=np.uint8)
    part[:, :span] = cats[:, start:stop]
    palette = np.array([(1.0, 1.0, 1.0)] + list(CATEGORIES.values()))
    if b == 1:
        return palette[part], 1
    img = np.zeros((cats.shape[0], cols, 3))
    busy = np.zeros((cats.shape[0], cols))
    for c in np.unique(part):
        if c == 0:
            continue
        share = (part == c).reshape(cats.shape[0], cols, b).mean(axis=2)
        img += share[:, :, None] * palette[c]
        busy += share
    # a bin with any activity shows at least 35 % colour, so single pulses stay visible
    scale = np.divide(0.35 + 0.65 * busy, busy, out=np.zeros_like(busy), where=busy > 0)
    img *= scale[:, :, None]
    busy *= scale
    img += (1.0 - busy)[:, :, None] * palette[0]
    return img, b


def plot(config: TspConfig, result: RunResult | Sequence[RunResult], path: str | Path,
         title: str = "", cycle_range: tuple[int, int] | None = None,
         max_columns: int = 1200) -> Path:
    """Write a PNG activity plot of one run or of consecutive segments to `path`.

    Rows are the unit engines of `rows(config)` (west to east, top to bottom), x is the cycle
    (segments concatenated, a dashed vertical line at each segment boundary), a coloured cell
    where the engine is busy (colours: `CATEGORIES`, legend below the plot). `cycle_range`
    (start, stop) restricts the x axis to cycles start..stop-1 of the concatenated run. Ranges
    longer than `max_columns` cycles are binned (the cell shade is the busy fraction).
    Returns the path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    bits, _, lengths = _collect(config, result, "plot")
    T = int(bits.shape[0])
    if cycle_range is None:
        start, stop = 0, T
    else:
        try:
            start, stop = (int(x) for x in cycle_range)
        except (TypeError, ValueError):
            raise ValueError(f"plot: cycle_range must be (start, stop), not "
                             f"{cycle_range!r}") from None
        if not 0 <= start < stop <= T:
            raise ValueError(f"plot: cycle_range {cycle_range!r} is not inside the run's "
                             f"cycles 0..{T} with start < stop")
    if isinstance(max_columns, bool) or not isinstance(max_columns, int) or max_columns < 1:
        raise ValueError(f"plot: max_columns must be a positive integer, not {max_columns!r}")
    rs = rows(config)
    if not rs:
        raise ValueError(f"plot: profile {config.name!r} has no unit rows")
    cats = np.stack([_categories(r, config, bits) for r in rs])
    img, b = _image(cats, start, stop, max_columns)

    fig = Figure(figsize=(14, max(3.0, 0.26 * len(rs) + 2.2)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    x0 = start - 0.5
    ax.imshow(img, aspect="auto", interpolation="nearest", rasterized=True,
              extent=(x0, x0 + img.shape[1] * b, len(rs) - 0.5, -0.5))
    ax.set_yticks(range(len(rs)), [r.label for r in rs], fontsize=7)
    ax.set_xlim(x0, stop - 0.5)
    ax.set_xlabel("cycle" + (f" ({b} cycles per column, shade = busy fraction)" if b > 1
                             else ""))
    for i in range(1, len(rs)):                         # thin lines between units
        if rs[i].position != rs[i - 1].position:
            ax.axhline(i - 0.5, color="0.8", linewidth=0.5)
    edge = 0
    for seg in lengths[:-1]:
        edge += seg
        if start < edge < stop:
            ax.axvline(edge - 0.5, color="red", linestyle="--", linewidth=0.8)
    head = title or "unit activity"
    ax.set_title(f"{head} ({config.name}, {T} cycles"
                 + (f", {len(lengths)} segments" if len(lengths) > 1 else "") + ")")
    used = sorted({int(c) for c in np.unique(cats[:, start:stop]) if c})
    names = list(CATEGORIES)
    handles: list = [Patch(color=CATEGORIES[names[c - 1]], label=names[c - 1]) for c in used]
    if len(lengths) > 1:
        handles.append(Line2D([], [], color="red", linestyle="--", label="segment boundary"))
    if handles:
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.12),
                  ncol=min(len(handles), 10), fontsize=7, frameon=False)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png")
    return out
