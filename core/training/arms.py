"""The loss arms of a run, and what the arms trained in one process share.

:func:`build_loss` turns a config's ``loss`` into its loss module (see :mod:`core.training.train`
for the arms), its GradCache form with ``mini_batch_size``; :class:`Shared` loads the data and
each guide with its cache once for all arms of a process; :class:`PlannedBatchSampler` gives
every arm the same batches.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from sentence_transformers.base.sampler import DefaultBatchSampler
from transformers import TrainerCallback

from core.corpus.data import epoch_batches, load_pairs, text_columns
from core.guides.models import load_guide
from core.method.margin import MarginSettings
from core.method.masking import BatchMask, guided_mask
from core.training.config import TrainConfig
from core.training.runs import runs_root


class Shared:
    """What the arms trained in one process load once: the pairs data, and each frozen guide with its
    :class:`core.guides.guide_cache.GuideCache` (whose fingerprint hashes every weight of the guide).

    The student is not kept: each arm reloads it from its spec, which costs what a deep copy of a
    pristine student costs (0.07 s for bundled:minilm-l3 once imported) without a second copy in memory.
    """

    def __init__(self) -> None:
        self._pairs: dict[tuple, object] = {}
        self._guides: dict[tuple[str, str], object] = {}
        self._caches: dict[tuple[str, str], object] = {}

    def pairs(self, config: TrainConfig):
        """The config's training data, loaded and checked on first use."""
        key = (config.data, config.data_split, json.dumps(config.data_columns, sort_keys=True), config.batch_size)
        if key not in self._pairs:
            self._pairs[key] = load_pairs(config.data, split=config.data_split, columns=config.data_columns,
                                          batch_size=config.batch_size)
        return self._pairs[key]

    def guide(self, config: TrainConfig):
        """The config's frozen guide (``self``: the student spec as it is before training)."""
        key = (config.guide, config.student)
        if key not in self._guides:
            self._guides[key] = load_guide(config.guide, config.student)
        return self._guides[key]

    def guide_cache(self, config: TrainConfig):
        """The guide's embedding cache, opened (and its fingerprint computed) once."""
        from core.guides.guide_cache import GuideCache

        key = (config.guide, config.student)
        if key not in self._caches:
            self._caches[key] = GuideCache(self.guide(config), config.guide)
        return self._caches[key]


def arm_out(out: str | None, loss: str, seed: int, paired: bool, stamp: str) -> Path:
    """An arm's run directory: ``out`` with ``{loss}`` filled in, else ``<workspace>/runs/<stamp>-<loss>-s<seed>``
    (``-pair-`` before the loss when several arms train)."""
    if out:
        return Path(out.replace("{loss}", loss))
    return runs_root() / f"{stamp}-{'pair-' if paired else ''}{loss}-s{seed}"


def build_loss(config: TrainConfig, student, ds, shared: Shared | None = None
               ) -> tuple[object, Callable[[], BatchMask | None]]:
    """The loss module of the config's arm (its GradCache form with ``mini_batch_size``) and a
    function giving the mask of its last step; the guide and its cache come from ``shared``.
    gist, gist-hard and self-judge are :class:`core.method.loss.GISTLoss` (self-judge with the live
    judge and :meth:`TrainConfig.arm_masking`'s settings); mnrl and mnrl-hard the library's MNRL."""
    from sentence_transformers.sentence_transformer.losses import (
        CachedGISTEmbedLoss, CachedMultipleNegativesRankingLoss, GISTEmbedLoss, MultipleNegativesRankingLoss,
    )

    mini = config.mini_batch_size

    settings = config.arm_masking() or config.masking
    if config.loss in ("mnrl", "mnrl-hard"):
        directions = ("query_to_doc",) + ("query_to_query",) * settings.contrast_anchors + (
            ("doc_to_doc",) * settings.contrast_positives)
        options = dict(scale=1.0 / config.temperature, directions=directions,
                       gather_across_devices=config.gather_across_devices)
        if config.loss == "mnrl-hard":
            options |= dict(hardness_mode=config.hardness_mode, hardness_strength=config.hardness_strength)
        loss = (CachedMultipleNegativesRankingLoss(student, mini_batch_size=mini, **options) if mini
                else MultipleNegativesRankingLoss(student, **options))
        return loss, lambda: None
    shared = shared or Shared()
    if config.loss in ("gist", "gist-hard", "self-judge"):
        from core.method.loss import GISTLoss

        cache = shared.guide_cache(config) if config.loss != "self-judge" else None  # None: the live judge
        hardness = (dict(hardness_mode=config.hardness_mode, hardness_strength=config.hardness_strength)
                    if config.loss == "gist-hard" else {})
        if mini:
            from core.method.cached_loss import CachedGISTLoss

            loss = CachedGISTLoss(student, cache, ds, temperature=config.temperature, settings=settings,
                                  mini_batch_size=mini, **hardness)
        else:
            loss = GISTLoss(student, cache, ds, temperature=config.temperature, settings=settings,
                            gather_across_devices=config.gather_across_devices, **hardness)
        return loss, lambda: loss.last_mask
    guide = shared.guide(config)  # frozen; "self" = the student before training
    options = dict(temperature=config.temperature, **settings.library_options())  # no floor: refused before
    loss = (CachedGISTEmbedLoss(student, guide, mini_batch_size=mini, **options) if mini
            else GISTEmbedLoss(student, guide, **options))
    return loss, LibraryMaskProbe(guide, len(text_columns(ds)), settings).take


class LibraryMaskProbe(TrainerCallback):
    """The mask ``GISTEmbedLoss`` applied in its last forward, rebuilt from its own guide outputs.

    A forward hook keeps the guide's sentence embeddings (column after column, however the library
    merges or splits its forwards); :meth:`take` splits them into anchor, positive and negative
    columns and applies :func:`guided_mask` without texts, which is the library's rule. As a
    trainer callback it removes its hook when training ends, so a later arm sharing the guide
    (:class:`Shared`) does not feed it.
    """

    def __init__(self, guide, n_columns: int, settings: MarginSettings) -> None:
        self.n_columns, self.settings = n_columns, settings
        self.outputs: list = []
        self.hook = guide.register_forward_hook(lambda _module, _args, output: self.outputs.append(
            output["sentence_embedding"].detach()))

    def on_train_end(self, args, state, control, **kwargs):
        self.hook.remove()
        self.outputs = []

    def take(self) -> BatchMask | None:
        if not self.outputs:
            return None
        columns = torch.cat(self.outputs).float().chunk(self.n_columns)
        self.outputs = []
        return guided_mask(columns[0], columns[1], columns[2:], self.settings)


class PlannedBatchSampler(DefaultBatchSampler):
    """Yields :func:`core.corpus.data.epoch_batches` of ``pairs`` (or a false-negative ``plan``'s
    batches): the same batches for every loss arm."""

    def __init__(self, dataset, batch_size: int, drop_last: bool, valid_label_columns=None,
                 generator=None, seed: int = 0, *, pairs, homogeneous: bool = False, plan=None) -> None:
        super().__init__(dataset, batch_size, drop_last, valid_label_columns, generator, seed)
        self.pairs, self.homogeneous, self.plan = pairs, homogeneous, plan
        self._count = len(self._batches(0))

    def _batches(self, epoch: int) -> list[list[int]]:
        if self.plan is not None:
            return self.plan.batches(epoch)
        return epoch_batches(self.pairs, self.batch_size, self.seed, epoch, self.homogeneous)

    def __iter__(self):
        yield from self._batches(self.epoch)

    def __len__(self) -> int:
        return self._count
