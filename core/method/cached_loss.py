"""GIST with gradient caching (GradCache): big batches at the memory of a mini-batch.

:class:`CachedGISTLoss` is :class:`core.method.loss.GISTLoss` run through sentence-transformers' own
GradCache machinery (``CachedLossMixin``): the student embeds the batch in mini-batches without
keeping their graphs, the guide's verdict and the loss are computed on the whole batch, and the
gradients wrt. the embeddings flow back one re-embedded mini-batch at a time (dropout replayed).
The guide side is unchanged: cached embeddings of the raw texts, :func:`core.method.masking.guided_mask`.
"""

from __future__ import annotations

from typing import Any

import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.losses.gradcache import CachedLossMixin, has_static_embedding_input
from torch import Tensor

from core.errors import GistlabError
from core.method.heap import bound_heap_growth
from core.guides.guide_cache import GuideCache
from core.method.loss import GISTLoss, gist_loss
from core.method.masking import MarginSettings

class CachedGISTLoss(CachedLossMixin, GISTLoss):
    def __init__(
        self,
        model: SentenceTransformer,
        guide_cache: GuideCache | None,
        texts: Dataset,
        temperature: float = 0.01,
        settings: MarginSettings = MarginSettings(),
        mini_batch_size: int = 32,
        show_progress_bar: bool = False,
        hardness_mode: str | None = None,
        hardness_strength: float = 0.0,
    ) -> None:
        """:class:`~core.method.loss.GISTLoss` with the student's forward and backward done in mini-batches.

        Three steps per batch (``CachedLossMixin.forward_cached``): (1) embed every text column in
        mini-batches of ``mini_batch_size`` without gradients; (2) mask the whole batch with the
        guide (:meth:`GISTLoss.guided_batch`: cache lookup, no guide forward when warm) and compute
        :func:`~core.method.loss.gist_loss` over the whole batch, ``mini_batch_size`` rows of the softmax
        at a time, back-propagating each chunk to the embeddings; (3) in the backward pass, re-embed
        each mini-batch with gradients (same dropout) and push the cached gradients through it.
        Peak memory is then one mini-batch's activations plus the batch's embeddings and mask;
        :func:`bound_heap_growth` keeps the C heap from growing with the number of mini-batches.

        Args:
            model, guide_cache, texts, temperature, settings, hardness_mode, hardness_strength: as for
                :class:`~core.method.loss.GISTLoss` (no guide cache: the live judge, on the
                embeddings of step 1).
            mini_batch_size: texts embedded per forward, and softmax rows per loss chunk; it
                changes memory and speed, never the loss or the gradients (up to float rounding).
            show_progress_bar: show a bar over the mini-batches.

        Requirements, inputs:
            As :class:`~core.method.loss.GISTLoss` (a ``label`` column of row indices into ``texts``), and
            a student whose inputs can be sliced along the batch (not a StaticEmbedding).

        Relations:
            - Same value and gradients as :class:`~core.method.loss.GISTLoss` on the same batch, and as
              sentence-transformers' ``CachedGISTEmbedLoss`` with a guide sharing the student's
              tokenizer (tests/test_cached_loss.py), with GISTLoss's deliberate differences (raw
              texts and a cache for the guide, identical texts always masked, any number of
              negative columns). Gathering across processes is not offered: use GISTLoss for it.
            - ``CachedMultipleNegativesRankingLoss`` is the same machinery for MNRL.

        Example:
            ::

                loss = CachedGISTLoss(student, GuideCache(guide, "bundled:minilm-l6"), data,
                                      mini_batch_size=32)
                args = SentenceTransformerTrainingArguments(per_device_train_batch_size=1024, ...)
                SentenceTransformerTrainer(model=student, args=args, train_dataset=data, loss=loss).train()
        """
        super().__init__(model, guide_cache, texts, temperature=temperature, settings=settings,
                         hardness_mode=hardness_mode, hardness_strength=hardness_strength)
        if mini_batch_size < 1:
            raise GistlabError(f"The mini-batch size must be at least 1, not {mini_batch_size}.")
        if has_static_embedding_input(model):
            raise GistlabError(
                "A StaticEmbedding student cannot be embedded in mini-batches: drop --mini-batch-size."
            )
        self.mini_batch_size = mini_batch_size
        self.show_progress_bar = show_progress_bar
        bound_heap_growth()

    def forward(self, sentence_features: list[dict[str, Tensor]], labels: Tensor) -> Tensor:
        """Loss of one batch (``labels``: the rows' indices in ``texts``); the student's gradients
        arrive when the returned loss is back-propagated."""
        return self.forward_cached(self._checked(sentence_features, labels), labels)

    def calculate_loss(
        self, reps: list[list[Tensor]], labels: Tensor | None = None, *, with_backward: bool = False
    ) -> Tensor:
        """The loss of the whole batch from its per-mini-batch embeddings (``CachedLossMixin``'s
        step 2): one mask, then the softmax rows in chunks, each back-propagated when asked."""
        embeddings, mask, _ = self.guided_batch([torch.cat(column) for column in reps], labels)
        batch = embeddings[0].shape[0]
        total = 0.0
        for begin in range(0, batch, self.mini_batch_size):
            rows = slice(begin, min(begin + self.mini_batch_size, batch))
            chunk = gist_loss(embeddings[0], embeddings[1], embeddings[2:], mask, self.temperature, rows=rows,
                              hardness_mode=self.hardness_mode, hardness_strength=self.hardness_strength)
            chunk = chunk * (rows.stop - rows.start) / batch
            if with_backward:
                chunk.backward()
                chunk = chunk.detach()
            total = total + chunk
        return total

    def get_config_dict(self) -> dict[str, Any]:
        return {**super().get_config_dict(), "mini_batch_size": self.mini_batch_size}

