"""Checks a training launch passes before its background job starts: models and data that exist.

A bad model id or data file used to be accepted by the Train page and fail ~18 s later in the
background, after the job had loaded torch and the other model. These checks answer in about a
second, without loading any model: a bundled name must be known, a folder must hold a saved model,
a Hub id must be in the local Hugging Face cache or exist on a reachable Hub (one metadata request),
and local or bundled data is read and checked as training will read it (columns, rows, batch size,
one-task batches). Hub data sets are only checked for existence: downloading is the run's job.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from core.errors import GistlabError, first_line
from core.hub import hub_unreachable, looks_like_hub_id
from core.guides.model_archive import MPNET_BASE, find_parts
from core.guides.models import BUNDLED, MPNET
from core.training.config import GUIDED

CHECKS = ("models", "data")  # what check_launch reports progress on, in order


def hub_cached(repo_id: str, repo_type: str) -> bool:
    """Whether a snapshot of the Hub repo is in the local cache (``<HF cache>/<type>s--org--name``)."""
    from huggingface_hub import constants

    snapshots = Path(constants.HF_HUB_CACHE) / f"{repo_type}s--{repo_id.replace('/', '--')}" / "snapshots"
    return snapshots.is_dir() and any(snapshots.iterdir())


def check_hub_repo(repo_id: str, repo_type: str, what: str) -> None:
    """A Hub model or dataset id that is cached, or exists on a reachable Hub; else one line saying why not."""
    if hub_cached(repo_id, repo_type):
        return
    offline = hub_unreachable()
    if offline:
        raise GistlabError(
            f"{what} {repo_id!r} is not in the local Hugging Face cache and the Hub cannot be reached "
            f"({offline}): use a bundled {repo_type} or a local one, or go online."
        )
    from huggingface_hub import HfApi

    try:
        exists = HfApi().repo_exists(repo_id, repo_type=repo_type)
    except Exception as exc:  # a timeout, a proxy error: the run would fail the same way
        raise GistlabError(f"Could not check {what.lower()} {repo_id!r} on the Hugging Face Hub "
                           f"({first_line(exc)}): try again, or use a local {repo_type}.") from None
    if not exists:
        raise GistlabError(f"{what} {repo_id!r} is not on the Hugging Face Hub (or is private or gated): "
                           "check the id.")


def check_model(spec: str, role: str) -> None:
    """A model spec that will load: a known bundled name, a folder with a saved model, or a Hub id."""
    spec = spec.strip()
    if spec.startswith("bundled:"):
        if spec not in BUNDLED:
            raise GistlabError(f"Unknown bundled {role} {spec!r}: choose one of {', '.join(BUNDLED)}.")
        if spec == MPNET:
            find_parts(MPNET_BASE, spec)  # its packages not installed, or a part missing: that one line now
        return
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise GistlabError(f"The {role} folder {spec!r} holds no saved model (no modules.json or "
                               "config.json): point at a folder written by SentenceTransformer.save().")
        return
    if not looks_like_hub_id(spec):
        raise GistlabError(f"The {role} {spec!r} is neither a bundled model, an existing folder nor a Hub id: "
                           f"use {' or '.join(BUNDLED)}, a model folder, or an id like 'org/name'.")
    check_hub_repo(spec, "model", f"The {role}")


def check_data(spec: str, *, split: str = "train", columns: dict[str, str] | None = None,
               batch_size: int | None = None, homogeneous: bool = False, false_negatives: float = 0.0) -> None:
    """Data training can read: local and bundled data are read and checked, a Hub id must exist; a
    false-negative rate needs ground truth (core.corpus.false_negatives)."""
    from core.corpus.data import FILE_TYPES, epoch_batches, load_pairs
    from core.corpus.false_negatives import meaning_keys

    spec = spec.strip()
    path = Path(spec).expanduser()
    if spec != "bundled" and not path.exists() and path.suffix.lower() not in FILE_TYPES and looks_like_hub_id(spec):
        return check_hub_repo(spec, "dataset", "The dataset")
    ds = load_pairs(spec, split=split, columns=columns, batch_size=batch_size)
    if homogeneous and not epoch_batches(ds, batch_size or 1, 0, 0, homogeneous=True):
        raise GistlabError(f"No task of the data has {batch_size} rows, so no one-task batch can be drawn: "
                           "lower the batch size or untick 'One task per batch'.")
    if false_negatives:
        meaning_keys(ds)  # one clear error where the data cannot say which texts mean the same


def check_launch(configs: list, report: Callable[[int, str], None] = lambda k, what: None) -> None:
    """Check the models and data of the runs a job will train (``core.training.config.TrainConfig`` objects).

    ``report(k, what)`` is called before check k of :data:`CHECKS` (1-based), for a progress line.
    """
    report(1, CHECKS[0])
    for config in configs:
        check_model(config.student, "student")
    for guide in {c.guide for c in configs if c.loss in GUIDED}:
        if guide.strip() != "self":  # the student's own pre-training copy: checked as the student
            check_model(guide, "guide")
    report(2, CHECKS[1])
    first = configs[0]
    check_data(first.data, split=first.data_split, columns=first.data_columns, batch_size=first.batch_size,
               homogeneous=first.homogeneous, false_negatives=getattr(first, "false_negatives", 0.0))
