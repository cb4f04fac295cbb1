"""The ``gistlab`` command: the engine's jobs, headless.

Each sub-command is a pair of functions, ``add_<name>`` (its arguments) and ``_run_<name>`` (which
imports the engine lazily, so ``gistlab --help`` stays fast), grouped by what they do:
:mod:`core.cli.training` (eval, train, experiment, cache), :mod:`core.cli.analysis` (inspect,
audit, mine); options several commands share are declared once in :mod:`core.cli.options`. A
:class:`GistlabError` becomes one line on stderr, an ``error`` event for the job that runs the
command (:mod:`core.training.events`) and exit code 2; Ctrl-C exits 130. ``--config FILE`` (train,
eval, audit, cache) reads a command's settings from a JSON file, as background jobs hand them over.
"""

from __future__ import annotations

import argparse
import sys

from core.cli import analysis, training
from core.errors import GistlabError, GistlabWarning
from core.training.events import Kind, emit


def add_app(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("app", help="start the Streamlit lab (localhost only unless --address)")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default=None,
                   help="listen here (default 127.0.0.1, from app/.streamlit/config.toml); 0.0.0.0 shares "
                        "the lab on a network, and then refuses server paths outside the workspace and home")
    p.set_defaults(run=_run_app)


def _run_app(args: argparse.Namespace) -> int:
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-m", "streamlit", "run", str(root / "app" / "main.py"), "--server.port", str(args.port)]
    cmd += ["--server.address", args.address] if args.address else []  # else the script's config: 127.0.0.1
    return _wait_forwarding_signals(subprocess.Popen(cmd, cwd=root))


def _wait_forwarding_signals(child) -> int:
    """Wait for ``child``, passing it SIGTERM, SIGHUP and SIGINT (a ``kill`` of this process would
    otherwise leave the Streamlit server listening as an orphan); its exit code is ours."""
    import signal

    def forward(number, _frame) -> None:
        if child.poll() is None:
            child.send_signal(number)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    try:
        return child.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def build_parser(config: dict | None = None) -> argparse.ArgumentParser:
    """The ``gistlab`` parser; ``config`` (from ``--config``, see :func:`read_config`) sets its
    command's defaults, so the settings are checked exactly as if typed."""
    parser = argparse.ArgumentParser(
        prog="gistlab", description="Fine-tune text-embedding models with GISTEmbed."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (add_app, training.add_eval, training.add_train, training.add_experiment, analysis.add_inspect,
                analysis.add_audit, analysis.add_mine, training.add_cache, training.add_runs):
        add(sub)
    if config:
        command, settings = config["command"], config["settings"]
        actions = {a.dest: a for a in sub.choices[command]._actions if a.dest not in ("help", "config")}
        unknown = sorted(set(settings) - set(actions))
        if unknown:
            raise GistlabError(f"Unknown {command} settings in {config['path']}: {', '.join(unknown)}; remove them.")
        for dest in settings:
            actions[dest].required = False  # given by the file
        sub.choices[command].set_defaults(**settings)
    return parser


def read_config(argv: list[str] | None) -> dict | None:
    """The command and the settings of ``--config FILE`` in ``argv``, or None without one."""
    import json
    from pathlib import Path

    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("command", nargs="?")
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    if not known.config:
        return None
    try:
        settings = json.loads(Path(known.config).read_text())
    except OSError as exc:
        raise GistlabError(f"Cannot read --config {known.config}: {exc.strerror or exc}.") from None
    except ValueError as exc:
        raise GistlabError(f"--config {known.config} is not valid JSON ({exc}): fix or rewrite it.") from None
    if not isinstance(settings, dict):
        raise GistlabError(f"--config {known.config} must hold one JSON object of settings by option name.")
    return {"command": known.command, "settings": settings, "path": known.config}


def _one_line_warnings() -> None:
    """Print gistlab's own warnings as ``gistlab: warning: ...`` (one line, no source echo)."""
    import warnings

    default = warnings.formatwarning

    def format_warning(message, category, *rest, **kwargs):
        if issubclass(category, GistlabWarning):
            return f"gistlab: warning: {message}\n"
        return default(message, category, *rest, **kwargs)

    warnings.formatwarning = format_warning


def main(argv: list[str] | None = None) -> int:
    _one_line_warnings()
    try:
        args = build_parser(read_config(argv)).parse_args(argv)
        emit(Kind.STARTED, message=args.command)
        return int(args.run(args) or 0)
    except GistlabError as exc:
        print(f"gistlab: error: {exc}", file=sys.stderr)
        emit(Kind.ERROR, message=str(exc))
        return 2
    except KeyboardInterrupt:
        print("gistlab: interrupted", file=sys.stderr)
        return 130

