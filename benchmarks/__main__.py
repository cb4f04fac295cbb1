"""``python -m benchmarks NAME [options]``: build every benchmark's parser, run the one named."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from benchmarks import NAMES
from benchmarks.harness import OFFLINE, THREADS, apply_threads


def parser() -> argparse.ArgumentParser:
    """One subcommand per benchmark module, its help from the module's docstring."""
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__import__("benchmarks").__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="name", required=True, metavar="NAME")
    for name in NAMES:
        module = importlib.import_module(f"benchmarks.{name}")
        s = sub.add_parser(name, help=" ".join(module.__doc__.split("\n\n")[0].split()), description=module.__doc__,
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           parents=[THREADS] if getattr(module, "THREADED", False) else [])
        module.arguments(s)
        s.set_defaults(run=module.run)
    return p


def main(argv: list[str] | None = None) -> int:
    for key, value in OFFLINE.items():
        os.environ.setdefault(key, value)
    args = parser().parse_args(argv)
    apply_threads(getattr(args, "threads", None))
    args.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
