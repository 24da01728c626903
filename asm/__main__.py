# Command line: `python -m asm FILE [--profile P] [--units U,..] [-o out.json]` assembles and
# checks FILE, prints the listing and the predicted cycle count, and writes the JSON program.
"""`python -m asm`: assemble a file, print its listing, optionally write JSON."""
from __future__ import annotations

import argparse
import json
import sys

from tsp.config import PROFILES, ConfigError, TspConfig

from .checker import DEFAULT_MAX_CYCLES
from .parser import assemble
from .program import AsmError


def main(argv: list[str] | None = None) -> int:
    """Run the assembler CLI; return the exit status (0 ok, 1 error)."""
    ap = argparse.ArgumentParser(prog="python -m asm",
                                 description="Assemble and schedule-check a TSP program.")
    ap.add_argument("file", help="assembly source file")
    ap.add_argument("--profile", default="default", choices=sorted(PROFILES),
                    help="configuration profile (default: default)")
    ap.add_argument("--units", metavar="U,..",
                    help="compute units instead of the profile's (comma-separated, e.g. "
                         "mxm,sxm,vxm; an empty string for none)")
    ap.add_argument("-o", "--output", metavar="OUT.json",
                    help="write the program (words per queue, data) as JSON")
    ap.add_argument("--max-cycles", type=int, default=DEFAULT_MAX_CYCLES,
                    help=f"reject programs running longer (default {DEFAULT_MAX_CYCLES})")
    ap.add_argument("-q", "--quiet", action="store_true", help="do not print the listing")
    args = ap.parse_args(argv)
    config = TspConfig.profile(args.profile)
    if args.units is not None:
        units = tuple(u.strip().lower() for u in args.units.split(",") if u.strip())
        try:
            config = config.replace(units=units)
        except ConfigError as e:
            print(f"asm: --units: {e}", file=sys.stderr)
            return 1
    try:
        with open(args.file, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as e:
        print(f"asm: cannot read {args.file}: {e}", file=sys.stderr)
        return 1
    try:
        prog = assemble(text, config, args.file, max_cycles=args.max_cycles)
    except AsmError as e:
        print(str(e), file=sys.stderr)
        return 1
    if not args.quiet:
        sys.stdout.write(prog.listing())
    else:
        print(f"predicted cycles: {prog.predicted_cycles}")
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                json.dump(prog.to_dict(), fh, indent=1)
                fh.write("\n")
        except OSError as e:
            print(f"asm: cannot write {args.output}: {e}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
