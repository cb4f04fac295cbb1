"""The GIST loss for ``SentenceTransformerTrainer``: guide embeddings from the cache, one mask rule.

Per batch: look up the raw texts of the batch's dataset rows, get their guide embeddings from the
:class:`~core.guides.guide_cache.GuideCache` (encoding only texts never seen), ask
:func:`core.method.masking.guided_mask` which in-batch candidates the guide removes, and score the
student with :func:`gist_loss`. The guide never sees the student's token ids and is never trained.

Two later recipes are options of the same loss, so they share the rule and the recording: a *live
judge* (no guide cache: the student's own detached embeddings of the same forward decide, which
with a negative margin is Qwen3-Embedding's self-judge) and *hardness weighting* (the library's
``MultipleNegativesRankingLoss`` ``hardness_mode`` / ``hardness_strength``, applied to what the
mask leaves: sentence-transformers issue #3845's GIST + hardness).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.losses.merged_forward import embed_columns
from torch import Tensor, nn

from core.corpus.data import text_columns
from core.method.distributed import gather_batch
from core.errors import GistlabError
from core.guides.guide_cache import GuideCache
from core.method.masking import BLOCKS, BatchMask, MarginSettings, cosine_matrix, guided_mask


HARDNESS_CELLS = {  # which a-p / a-n cells of row i each mode weights: (other rows' cells, row i's own negatives)
    "in_batch_negatives": (True, False),
    "hard_negatives": (False, True),
    "all_negatives": (True, True),
}


def hardness_penalty(block: str, cosines: Tensor, own: Tensor, mode: str | None, strength: float) -> Tensor | None:
    """``strength * stop_grad(cos)`` on the cells of ``block`` that ``mode`` weights, else 0; None when
    nothing is weighted. As sentence-transformers' MNRL: only the anchor-vs-documents blocks (a-p,
    a-n), never the target; ``own`` marks row i's own columns (its positive, its hard negatives).
    Added to the logits after the temperature, like the library (the penalty is not rescaled)."""
    if mode is None or strength == 0 or block not in ("a-p", "a-n"):
        return None
    others, own_negatives = HARDNESS_CELLS[mode]
    if block == "a-p":
        own_negatives = False  # the own a-p cell is the target
    weighted = (~own if others else torch.zeros_like(own)) | (own if own_negatives else torch.zeros_like(own))
    return strength * cosines.detach() * weighted


def gist_loss(
    anchor: Tensor,
    positive: Tensor,
    negatives: list[Tensor] | tuple[Tensor, ...],
    mask: BatchMask,
    temperature: float,
    rows: slice = slice(None),
    hardness_mode: str | None = None,
    hardness_strength: float = 0.0,
) -> Tensor:
    """Masked in-batch contrastive loss over the student's embeddings.

    Logits are student cosines / ``temperature`` for the blocks present in ``mask`` (a-p, a-a,
    p-p, a-n, concatenated in that order), masked cells set to -inf, one softmax per row, target
    column i of the a-p block, mean over rows. The target is never masked, so a row whose
    candidates are all masked contributes exactly 0 (its target holds all the probability).

    Args:
        anchor, positive: student embeddings [B, D].
        negatives: student embeddings [B, D] of each negative column, in the mask's order.
        mask: the guide's verdict for this batch (its blocks decide which logits exist).
        temperature: softmax temperature (0.01 in the paper).
        rows: the rows whose losses are averaged (default all). Under gathering across processes
            the batch is the global one and ``rows`` this process's own; each row's target stays
            its own column of the a-p block.
        hardness_mode, hardness_strength: weight the unmasked negatives of the a-p / a-n blocks
            as sentence-transformers' MNRL does (:func:`hardness_penalty`); None: no weighting.
    """
    negatives = list(negatives)
    if bool(negatives) != ("a-n" in mask.masked):
        raise ValueError("negatives and mask disagree: pass negatives exactly when the mask has 'a-n'")
    row_embeddings = {"p-p": positive}  # every other block's rows are the anchors
    columns = {"a-p": positive, "a-a": anchor, "p-p": positive}
    if negatives:
        columns["a-n"] = torch.cat(negatives, dim=0)
    own = torch.eye(anchor.shape[0], dtype=torch.bool, device=anchor.device)[rows]
    blocks = []
    for b in (b for b in BLOCKS if b in mask.masked):
        cosines = cosine_matrix(row_embeddings.get(b, anchor)[rows], columns[b])
        logits = cosines / temperature
        own_cells = own.repeat(1, len(negatives)) if b == "a-n" else own  # a-n: B x (B x negative columns)
        penalty = hardness_penalty(b, cosines, own_cells, hardness_mode, hardness_strength)
        if penalty is not None:
            logits = logits + penalty
        blocks.append(logits.masked_fill(mask.masked[b][rows], float("-inf")))
    target = torch.arange(anchor.shape[0], device=anchor.device)[rows]
    return F.cross_entropy(torch.cat(blocks, dim=1), target)


def _labels_are_row_ids(texts: Dataset, probes: int = 64) -> bool:
    """Whether ``label`` holds the row index, checked at evenly spaced rows (first and last
    included): a shuffle, select or filter after the labels were set breaks it almost everywhere,
    and reading the whole column would cost seconds on a large set."""
    rows = np.unique(np.linspace(0, len(texts) - 1, num=min(len(texts), probes)).astype(int))
    return np.array_equal(texts[rows.tolist()]["label"], rows)


class GISTLoss(nn.Module):
    def __init__(
        self,
        model: SentenceTransformer,
        guide_cache: GuideCache | None,
        texts: Dataset,
        temperature: float = 0.01,
        settings: MarginSettings = MarginSettings(),
        gather_across_devices: bool = False,
        hardness_mode: str | None = None,
        hardness_strength: float = 0.0,
    ) -> None:
        """GISTEmbed's guided in-batch contrastive loss, with the guide's embeddings cached.

        A frozen guide decides which in-batch candidates are too close to be negatives: candidate
        c of row i is dropped when cos_guide(row, c) > g_i - margin (absolute) or
        g_i - |g_i| * margin (relative), g_i = cos_guide(a_i, p_i). The student is then trained
        with a softmax over its cosines / temperature across the a-p, a-a, p-p and a-n blocks.

        Args:
            model: the student SentenceTransformer (trained).
            guide_cache: the guide's embeddings (:class:`~core.guides.guide_cache.GuideCache`); filled
                lazily with exactly the texts the run uses. None: a *live judge*, the student's own
                embeddings of this forward, detached, decide (no guide, no extra encode, no
                gradient through the decision); with ``MarginSettings(margin=-0.1)`` that is
                Qwen3-Embedding's rule, mask s_ij > s(i, positive_i) + 0.1
                (:func:`core.method.margin.judge_settings`).
            texts: the training dataset: ``anchor``, ``positive``, 0..k negative columns.
            temperature: softmax temperature; the inverse of MNRL's ``scale``.
            settings: margin strategy, margin, contrast_anchors, contrast_positives.
            gather_across_devices: under several processes (torchrun), mask and contrast each
                process's rows against the global batch of all processes
                (:func:`core.method.distributed.gather_batch`); a no-op in one process.
            hardness_mode, hardness_strength: after the mask, weight the remaining negatives as
                sentence-transformers' ``MultipleNegativesRankingLoss`` options of those names do
                (:func:`hardness_penalty`; sentence-transformers issue #3845); None / 0: off.

        Requirements:
            1. (anchor, positive) pairs or (anchor, positive, negative_1..k) tuples.
            2. A ``label`` column holding each row's index in ``texts``: the trainer passes it as
               ``labels``, and the loss reads the raw texts of those rows for the guide.

        Inputs:
            +-------------------------------------------------+-------------------------+
            | Texts                                           | Labels                  |
            +=================================================+=========================+
            | (anchor, positive) pairs                        | row index in ``texts``  |
            +-------------------------------------------------+-------------------------+
            | (anchor, positive, negative_1..k) tuples        | row index in ``texts``  |
            +-------------------------------------------------+-------------------------+

        Relations:
            - Same value and student gradients as sentence-transformers' ``GISTEmbedLoss`` for the
              same batch and a guide that shares the student's tokenizer, with these deliberate
              differences: (1) the guide embeds the raw texts with its own tokenizer (no decode/
              re-tokenise round trip), from a cache, always in eval mode; (2) self-similarities
              and candidates whose *text* equals row i's anchor or positive are always masked. The
              plain rule keeps them whenever the threshold reaches their guide score (a negative
              margin, or ties from duplicated texts), and then the softmax asks the student to
              score a text below its own copy, which no model can learn and which only adds a
              large constant push to the loss; (3) any number of negative
              columns; (4) ``self.last_mask`` / ``self.last_rows`` keep each step's verdict for
              logging (of the global batch when gathering); (5) with ``gather_across_devices``
              the anchors are gathered too, so the a-a block spans the global batch and each
              process's loss is exactly the single-process loss of the global batch restricted
              to its rows (the library contrasts local anchors with local anchors only).
            - ``settings.positive_floor`` (default None: off, and the parity above is exact) raises
              each row's threshold to at least the floor, t_i = max(t_i, floor). A *weak positive*
              (the guide scores the row's own pair low, so g_i - margin is low) would otherwise mask
              nearly every candidate and drop out of the loss; with the floor it masks only
              candidates the guide finds genuinely close (cosine > floor) and keeps contrasting
              the rest. The library has no such setting.
            - ``MultipleNegativesRankingLoss`` is the same softmax with no guide, no a-a/p-p blocks
              (scale 20 = temperature 0.05).

        Example:
            ::

                from datasets import Dataset
                from sentence_transformers import SentenceTransformerTrainer
                from core.guides.guide_cache import GuideCache
                from core.method.loss import GISTLoss
                from core.method.masking import MarginSettings
                from core.guides.models import load_model

                student = load_model("bundled:minilm-l3")
                guide = load_model("bundled:minilm-l6")
                data = Dataset.from_dict({
                    "anchor": ["It's nice weather outside today.", "He drove to work."],
                    "positive": ["It's so sunny.", "He took the car to the office."],
                })
                data = data.add_column("label", list(range(len(data))))
                loss = GISTLoss(student, GuideCache(guide, "bundled:minilm-l6"), data,
                                settings=MarginSettings(margin=0.05))
                SentenceTransformerTrainer(model=student, train_dataset=data, loss=loss).train()
        """
        super().__init__()
        if guide_cache is not None and guide_cache.guide is model:
            raise GistlabError(
                "The guide is the student itself: load the guide as a separate, frozen model."
            )
        self.model = model
        self.guide_cache = guide_cache
        self.temperature = temperature
        self.settings = settings
        self.gather_across_devices = gather_across_devices
        self.hardness_mode, self.hardness_strength = hardness_mode, hardness_strength
        self.columns = text_columns(texts)
        absent = [c for c in self.columns[:2] if c not in texts.column_names]
        if absent:
            raise GistlabError(
                f"The training data has no {' or '.join(absent)} column: give it 'anchor' and "
                "'positive' columns (and optional negatives)."
            )
        if "label" in texts.column_names and not _labels_are_row_ids(texts):
            raise ValueError(
                "texts['label'] must be each row's index 0..N-1 (set it after any select, filter or "
                "shuffle), since the loss reads the texts of the rows the labels name"
            )
        self.texts = texts.select_columns(self.columns)
        self.last_mask: BatchMask | None = None
        self.last_rows: Tensor | None = None

    def forward(self, sentence_features: list[dict[str, Tensor]], labels: Tensor) -> Tensor:
        """Loss of one batch; ``labels`` are the batch rows' indices in ``texts``."""
        embeddings = embed_columns(self.model, self._checked(sentence_features, labels))
        embeddings, mask, own = self.guided_batch(embeddings, labels)
        return gist_loss(embeddings[0], embeddings[1], embeddings[2:], mask, self.temperature, rows=own,
                         hardness_mode=self.hardness_mode, hardness_strength=self.hardness_strength)

    def _checked(self, sentence_features, labels: Tensor) -> list[dict[str, Tensor]]:
        """The batch's text columns, after checking they match ``texts`` and labels are given."""
        sentence_features = list(sentence_features)
        if labels is None:
            raise ValueError("GISTLoss needs a 'label' column holding each row's index in `texts`")
        if len(sentence_features) != len(self.columns):
            raise ValueError(
                f"got {len(sentence_features)} text columns, expected {len(self.columns)} "
                f"({', '.join(self.columns)}): the trainer's dataset must match `texts`"
            )
        return sentence_features

    def guided_batch(
        self, embeddings: list[Tensor], labels: Tensor
    ) -> tuple[list[Tensor], BatchMask, slice]:
        """The guide's verdict on the batch whose student embeddings (one [B, D] per column) are
        ``embeddings``: returns the embeddings (global ones when gathering), the mask and this
        process's rows. The guide's float32 embeddings come from the cache, moved once to the
        student's device (in the student's dtype, never below float32: the mask's strict ``>``
        must not depend on bf16 rounding). Keeps the verdict in ``last_mask`` / ``last_rows``."""
        rows = labels.detach().cpu().long()
        columns = self._column_texts(rows)
        dtype = torch.promote_types(embeddings[0].dtype, torch.float32)
        if self.guide_cache is None:  # the live judge: this forward's student embeddings, no gradient
            guide = torch.stack([e.detach() for e in embeddings]).to(dtype)
        else:
            guide = self.guide_cache.embed(
                [t for col in columns for t in col], device=embeddings[0].device, dtype=dtype,
            ).view(len(columns), len(rows), -1)
        own = slice(None)
        if self.gather_across_devices:
            embeddings, guide, rows, own = gather_batch(embeddings, guide, rows)
            columns = self._column_texts(rows)
        mask = guided_mask(
            guide[0], guide[1], list(guide[2:]), self.settings,
            anchor_texts=columns[0], positive_texts=columns[1], negative_texts=columns[2:],
        )
        self.last_mask, self.last_rows = mask, rows
        return embeddings, mask, own

    def _column_texts(self, rows: Tensor) -> list[list[str]]:
        """The raw texts of dataset rows ``rows``, one list per text column."""
        batch = self.texts[rows.tolist()]
        return [batch[c] for c in self.columns]

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "guide": self.guide_cache.guide_spec if self.guide_cache is not None else "live student (self-judge)",
            "temperature": self.temperature,
            **self.settings.to_dict(),
            **({"hardness_mode": self.hardness_mode, "hardness_strength": self.hardness_strength}
               if self.hardness_mode else {}),
        }

    @property
    def citation(self) -> str:
        return """
@misc{solatorio2024gistembed,
    title={GISTEmbed: Guided In-sample Selection of Training Negatives for Text Embedding Fine-tuning},
    author={Aivin V. Solatorio},
    year={2024},
    eprint={2402.16829},
    archivePrefix={arXiv},
    primaryClass={cs.LG}
}
"""
