"""The ``gistlab`` command: the engine's jobs, headless.

Each sub-command is a pair of functions here, ``_add_<name>`` (its arguments) and ``_run_<name>``
(which imports the engine lazily, so ``gistlab --help`` stays fast). A :class:`GistlabError`
becomes one line on stderr and exit code 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import sys

from core.errors import GistlabError


def _add_app(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("app", help="start the Streamlit lab (localhost only unless --address)")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default="127.0.0.1")
    p.set_defaults(run=_run_app)


def _run_app(args: argparse.Namespace) -> int:
    import subprocess
    from pathlib import Path

    main = Path(__file__).resolve().parent.parent / "app" / "main.py"
    cmd = [sys.executable, "-m", "streamlit", "run", str(main), "--server.port", str(args.port),
           "--server.address", args.address]
    return subprocess.call(cmd)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gistlab", description="Fine-tune text-embedding models with GISTEmbed."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_app,):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except GistlabError as exc:
        print(f"gistlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gistlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
