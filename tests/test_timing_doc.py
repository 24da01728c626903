"""docs/timing.md is generated from golden-model traces; it must match the current model."""
from pathlib import Path

from sim.timing import render_markdown

ROOT = Path(__file__).resolve().parents[1]


def test_timing_doc_is_current():
    assert (ROOT / "docs" / "timing.md").read_text() == render_markdown(), \
        "docs/timing.md is stale: run python -m sim.timing --write docs/timing.md"


def test_diagram_shows_the_timing_law():
    # READ at MEM_W1 (4) issued at 10 with dfunc 2: the value is at position p at 12 + (p - 4)
    text = render_markdown()
    row = next(line for line in text.splitlines() if line.startswith("E2 @ MEM_E1 (8)"))
    cells = row.split()[4:]            # cycles 9..18
    assert cells[16 - 9] == "a5" and cells.count("a5") == 1
