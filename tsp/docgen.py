"""Command line shared by the generated docs (docs/isa.md, docs/configuration.md, docs/timing.md).

`doc_main(prog, what, render, argv)` prints the Markdown that `render()` returns, or writes it
with `--write PATH`. Each generated page has a test that fails when the committed file is stale.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["doc_main"]


def doc_main(prog: str, what: str, render: Callable[[], str],
             argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=prog, description=f"Print or write {what}.")
    ap.add_argument("--write", metavar="PATH", help="write the Markdown to PATH")
    args = ap.parse_args(argv)
    text = render()
    if args.write:
        Path(args.write).write_text(text)
    else:
        sys.stdout.write(text)
    return 0
