"""The ``gistlab`` options several commands share, declared once: parent parsers for the pairs data,
the guide and the margin settings (with a command's defaults, or none for ``gistlab train``, whose
unset options take TrainConfig's), the argparse types, and the settings built from them."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from core.errors import GistlabError
from core.guides.models import GUIDE_SPECS
from core.method.margin import STRATEGIES, MarginSettings
from core.training.config import LOSSES, MARGIN_KEYS

CONFIG_HELP = ("a JSON object of this command's settings by option name (batch_size for --batch-size), as a "
               "background job writes it; options given as well override it")
FALSE_NEGATIVES_HELP = ("raise the false-negative rate: rebuild each batch so that about RATE x batch-size of "
                        "a row's in-batch candidates are right answers (rows of its meaning added from the "
                        "data; needs ground truth: bundled or a 'group' column; seeded; default 0: the data as is)")
FLOOR_HELP = ("raise every row's mask threshold to at least this guide cosine, so a weak positive "
              "masks only candidates the guide finds genuinely close (default off: the library's rule)")


def column_mapping(text: str) -> dict[str, str]:
    """``anchor=question,positive=answer`` -> ``{"anchor": "question", "positive": "answer"}``."""
    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    if not pairs or any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give target=source pairs, e.g. anchor=question,positive=answer")
    return {target.strip(): source.strip() for target, source in pairs}


def cosine(text: str) -> float:
    """An argparse type: a float in [-1, 1]."""
    value = float(text)
    if not -1.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a cosine: give a value in [-1, 1]")
    return value


def losses(text: str) -> list[str]:
    """``gist,mnrl`` -> ``["gist", "mnrl"]``: known arms (:data:`core.training.config.LOSSES`), each once."""
    names = [part.strip() for part in text.split(",")]
    unknown = [name for name in names if name not in LOSSES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown loss {unknown[0]!r}: use {', '.join(LOSSES)}, comma-separated")
    if len(set(names)) < len(names):
        raise argparse.ArgumentTypeError(f"{text} repeats a loss: name each arm once")
    return names


def _parent(defaults: bool) -> tuple[argparse.ArgumentParser, Callable[[object], dict]]:
    """An option group to inherit (``parents=[...]``) and ``default(value)``: the keyword giving an
    option its default, or nothing when the command leaves unset options out (``defaults=False``)."""
    parser = argparse.ArgumentParser(add_help=False, argument_default=None if defaults else argparse.SUPPRESS)
    return parser, (lambda value: {"default": value}) if defaults else (lambda value: {})


def data_options(defaults: bool = True) -> argparse.ArgumentParser:
    """``--data``, ``--data-columns``, ``--hf-split`` (``data_split``): the pairs data."""
    p, default = _parent(defaults)
    p.add_argument("--data", **default("bundled"), help="bundled (default), a .csv/.tsv/.jsonl/.parquet file, "
                                                        "a dataset folder or a Hugging Face dataset id")
    p.add_argument("--data-columns", type=column_mapping, **default(None),
                   help="map the data's columns, e.g. anchor=question,positive=answer")
    p.add_argument("--hf-split", dest="data_split", **default("train"),
                   help="split of a Hub dataset or folder (default train)")
    return p


def guide_options(defaults: bool = True) -> argparse.ArgumentParser:
    """``--guide``: the frozen guide model."""
    p, default = _parent(defaults)
    p.add_argument("--guide", **default(None), help=GUIDE_SPECS)
    return p


def margin_options(defaults: bool = True) -> argparse.ArgumentParser:
    """``--margin-strategy``, ``--margin``, ``--contrast-anchors/-positives``, ``--positive-floor``:
    a :class:`MarginSettings` (:func:`settings_from_args`)."""
    p, default = _parent(defaults)
    d = MarginSettings()
    p.add_argument("--margin-strategy", choices=STRATEGIES, **default(d.margin_strategy),
                   help=f"threshold rule: {' or '.join(STRATEGIES)} (default {d.margin_strategy})")
    p.add_argument("--margin", type=float, **default(d.margin), help=f"mask margin (default {d.margin:g})")
    p.add_argument("--contrast-anchors", action=argparse.BooleanOptionalAction, **default(d.contrast_anchors),
                   help="include the a-a block (default on)")
    p.add_argument("--contrast-positives", action=argparse.BooleanOptionalAction, **default(d.contrast_positives),
                   help="include the p-p block (default on)")
    p.add_argument("--positive-floor", type=cosine, **default(d.positive_floor), help=FLOOR_HELP)
    return p


def add_search_option(p: argparse.ArgumentParser) -> None:
    """``--search``, ``--recall``: how ``audit`` and ``mine`` find neighbours (core/analysis/neighbours.py)."""
    p.add_argument("--search", choices=["auto", "exact", "index"], default="auto",
                   help="neighbour search: exact, a FAISS index (approximate, its recall reported), or auto: "
                        "exact below 50,000 rows (default auto; core/analysis/neighbours.py)")
    p.add_argument("--recall", type=float, default=0.95,
                   help="the index's target recall@k against exact search: its nprobe is raised until a seeded "
                        "sample of queries reaches it (default 0.95)")


def batch_options(batch_help: str = "rows in the batch (default 32)", batch_default: int = 32) -> argparse.ArgumentParser:
    """The data, models, batch and margin settings that ``inspect`` and ``audit`` share."""
    p = argparse.ArgumentParser(add_help=False, parents=[data_options(), guide_options(), margin_options()])
    p.add_argument("--student", default=None, help="also score the pairs with this student (default: none)")
    p.add_argument("--batch-size", type=int, default=batch_default, help=batch_help)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--task", default=None, help="draw batches from this task only (needs a task column)")
    return p


def settings_from_args(args: argparse.Namespace) -> MarginSettings:
    """The margin settings the options (:func:`margin_options`) name; a one-line error if they clash."""
    try:
        return MarginSettings(**{key: getattr(args, key) for key in MARGIN_KEYS})
    except ValueError as exc:
        raise GistlabError(f"Bad margin settings: {exc}.") from None
