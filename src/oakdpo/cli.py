"""`oakdpo` command line. Each subcommand is a thin wrapper over a library function.

Errors in user input raise `UserError`; main() prints them as one line `error: ...` and exits with code 2.
"""

from __future__ import annotations

import argparse
import sys

from .io import UserError


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oakdpo", description="Train LMs to reason with solver-verified proofs.")
    sub = p.add_subparsers(dest="command", required=True)
    # Each module registers its own subcommands: add_cli(sub) attaches parsers with set_defaults(func=...).
    for module_name in ("data", "verify", "tiny", "training", "generation", "evaluation", "loop", "report"):
        try:
            module = __import__(f"oakdpo.{module_name}", fromlist=["add_cli"])
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith("oakdpo"):
                continue  # stage not built yet
            raise
        if hasattr(module, "add_cli"):
            module.add_cli(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
