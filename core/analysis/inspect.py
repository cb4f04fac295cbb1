"""One batch's masks as tables: what the guide removes, why, and what the student thinks of it.

The inspector pages and ``gistlab inspect`` go through here (the whole-data-set audit is
:mod:`core.analysis.audit`). A batch's texts
are embedded once (guide through its cache, student by a plain encode); :func:`remask` then applies
other margin settings to those same embeddings with :func:`core.method.masking.guided_mask`, the function
training uses, so a margin slider costs a few milliseconds and never an encode.

Example::

    batch = Batch.draw(ds, 32, seed=0)
    report = inspect_batch(batch, GuideCache(guide, "bundled:minilm-l6").embed, MarginSettings())
    report.pairs            # one line per masked (row, candidate): texts, guide and student scores
    remask(report, MarginSettings(margin=0.1)).counts    # per-row counts at another margin
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch

from core.errors import GistlabError
from core.method.groundtruth import RELATIONS, GroundTruth, ground_truth, mask_quality, relations
from core.method.masking import BatchMask, MarginSettings, guided_mask

Embed = Callable[[list[str]], torch.Tensor]
"""Texts -> embeddings [N, D]: ``GuideCache.embed`` for a guide, :func:`encoder` for a student."""

PAIR_COLUMNS = (  # what a reader compares first: the row, its own positive, the candidate, the scores
    "row", "text", "positive", "candidate", "beats_positive_by", "guide_score", "positive_score",
    "student_score", "student_positive_score", "student_prefers", "block", "candidate_role",
    "dataset_row", "candidate_row", "threshold", "margin", "identical_text", "relation",
)


@dataclass(frozen=True)
class Batch:
    """The texts of one batch and the dataset rows they came from, laid out as the loss sees them;
    each row's task and the batch's ground truth (:mod:`core.method.groundtruth`) when the data has them."""

    rows: list[int]
    anchors: list[str]
    positives: list[str]
    negatives: list[list[str]]
    negative_names: list[str]
    tasks: list[str] | None = field(default=None, compare=False)
    truth: GroundTruth | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_dataset(cls, ds, rows: list[int]) -> Batch:
        """Pick ``rows`` (dataset row ids, batch order) out of a pairs dataset."""
        from core.corpus.data import negative_columns

        names = list(negative_columns(ds))
        if any(not 0 <= r < len(ds) for r in rows):
            raise GistlabError(
                f"Row ids {min(rows)}..{max(rows)} do not fit a dataset of {len(ds)} rows: "
                "the data changed since these rows were chosen; reload it or pick other rows."
            )
        picked = ds[list(rows)]  # one Arrow take: a dict of column lists, in ``rows`` order
        return cls(
            rows=[int(r) for r in rows],
            anchors=picked["anchor"],
            positives=picked["positive"],
            negatives=[picked[n] for n in names],
            negative_names=names,
            tasks=picked.get("task"),
            truth=ground_truth(picked, names),
        )

    @classmethod
    def draw(cls, ds, batch_size: int, seed: int, task: str | None = None, false_negatives: float = 0.0) -> Batch:
        """A seeded batch of ``ds`` (core.corpus.data.sample_batch), of ``task``'s rows if given; with
        ``false_negatives`` > 0, rebuilt at that false-negative rate (core.corpus.false_negatives:
        added rows get ids after the data's)."""
        from core.corpus.data import sample_batch
        from core.corpus.false_negatives import with_false_negatives

        rows = sample_batch(ds, batch_size, seed, task)
        if false_negatives:
            ds, rows = with_false_negatives(ds, rows, false_negatives, seed)
        return cls.from_dataset(ds, rows)

    def __len__(self) -> int:
        return len(self.rows)

    def relations(self, blocks) -> dict[str, torch.Tensor] | None:
        """The ground-truth relation code of every cell of ``blocks`` (int8 [B, C] each, laid out
        like :class:`BatchMask`; names in :data:`core.method.groundtruth.RELATIONS`), None without ground truth."""
        return None if self.truth is None else relations(self.truth, blocks)

    def quality(self, mask: BatchMask) -> pd.DataFrame | None:
        """Precision and recall of ``mask`` against the ground truth, per task and block
        (:func:`core.method.groundtruth.mask_quality`), None without ground truth."""
        rel = self.relations(mask.blocks)
        return None if rel is None else mask_quality(mask, rel, self.tasks)

    def texts(self) -> list[str]:
        """Every text of the batch: anchors, positives, then each negative column."""
        return [*self.anchors, *self.positives, *(t for col in self.negatives for t in col)]

    def row_texts(self, block: str) -> list[str]:
        """The texts on a block's row side: positives for p-p, anchors for the rest."""
        return self.positives if block == "p-p" else self.anchors

    def candidates(self, block: str) -> tuple[list[str], list[str], list[int]]:
        """A block's columns as (texts, roles, dataset rows), in guided_mask's column order."""
        n = len(self)
        if block == "a-n":
            texts = [t for col in self.negatives for t in col]
            roles = [name for name in self.negative_names for _ in range(n)]
            return texts, roles, self.rows * len(self.negatives)
        if block == "a-a":
            return self.anchors, ["anchor"] * n, self.rows
        return self.positives, ["positive"] * n, self.rows


@dataclass(frozen=True)
class Embedded:
    """One encoder's embeddings of a batch: anchors [B, D], positives [B, D], each negative column."""

    anchor: torch.Tensor
    positive: torch.Tensor
    negatives: list[torch.Tensor]

    def all(self) -> torch.Tensor:
        """All embeddings stacked in :meth:`Batch.texts` order."""
        return torch.cat([self.anchor, self.positive, *self.negatives])


def encoder(model) -> Embed:
    """A student's plain encode as an :data:`Embed` (no cache: the student changes as it trains)."""
    return lambda texts: model.encode(texts, convert_to_tensor=True, show_progress_bar=False).cpu()


def embed_batch(batch: Batch, embed: Embed) -> Embedded:
    """Embed every text of the batch in one call and split it back into roles."""
    vectors = embed(batch.texts()).float().cpu()
    parts = vectors.split(len(batch))
    return Embedded(parts[0], parts[1], list(parts[2:]))


def mask_batch(batch: Batch, guide: Embedded, settings: MarginSettings) -> BatchMask:
    """The training rule on a batch: :func:`guided_mask` with the batch's texts for the identity check."""
    return guided_mask(
        guide.anchor, guide.positive, guide.negatives, settings,
        anchor_texts=batch.anchors, positive_texts=batch.positives, negative_texts=batch.negatives,
    )


def student_scores(student: Embedded) -> dict[str, torch.Tensor]:
    """The student's cosines in every block, laid out exactly like the guide's (all blocks on)."""
    return guided_mask(student.anchor, student.positive, student.negatives).guide_scores


@dataclass(frozen=True)
class InspectReport:
    """A batch, its guide (and student) embeddings, the mask at ``settings``, and its tables."""

    batch: Batch
    settings: MarginSettings
    guide: Embedded
    mask: BatchMask
    student: Embedded | None
    student_scores: dict[str, torch.Tensor] | None
    pairs: pd.DataFrame
    counts: pd.DataFrame
    quality: pd.DataFrame | None = None  # core.method.groundtruth.mask_quality; None = no ground truth


def inspect_batch(
    batch: Batch, guide: Embed, settings: MarginSettings, student: Embed | None = None
) -> InspectReport:
    """Embed the batch with the guide (and the student if given) and mask it at ``settings``."""
    guide_emb = embed_batch(batch, guide)
    student_emb = embed_batch(batch, student) if student is not None else None
    scores = student_scores(student_emb) if student_emb is not None else None
    mask = mask_batch(batch, guide_emb, settings)
    return InspectReport(
        batch, settings, guide_emb, mask, student_emb, scores,
        masked_pairs(batch, mask, settings, scores), row_counts(batch, mask), batch.quality(mask),
    )


def remask(report: InspectReport, settings: MarginSettings) -> InspectReport:
    """The same batch at other margin settings, from the embeddings already in ``report`` (no encode).

    Runs under :func:`one_thread`, so that the margin slider stays fast on a busy machine.
    """
    with one_thread():
        mask = mask_batch(report.batch, report.guide, settings)
        return replace(
            report, settings=settings, mask=mask,
            pairs=masked_pairs(report.batch, mask, settings, report.student_scores),
            counts=row_counts(report.batch, mask), quality=report.batch.quality(mask),
        )


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block (process-wide; restored on exit).

    Masking works on small tensors ([B, C] blocks, ~100 ops). On a busy 2-core machine, waking
    torch's thread pool for each op cost 10x more than the work: remask at batch 128 took ~900 ms
    on 2 threads against ~80 ms on one, the what-if sweep ~1.9 s against ~0.1 s
    (python -m benchmarks inspector, docs/PERFORMANCE.md). Encoding is left to torch's default.
    Blocks may overlap (one script thread per browser session): the first to enter saves the
    thread count and the last to leave restores it.
    """
    global _one_thread_users, _saved_threads
    with _one_thread_lock:
        if _one_thread_users == 0:
            _saved_threads = torch.get_num_threads()
            torch.set_num_threads(1)
        _one_thread_users += 1
    try:
        yield
    finally:
        with _one_thread_lock:
            _one_thread_users -= 1
            if _one_thread_users == 0:
                torch.set_num_threads(_saved_threads)


_one_thread_lock = threading.Lock()
_one_thread_users = 0
_saved_threads = 1


def masked_pairs(
    batch: Batch,
    mask: BatchMask,
    settings: MarginSettings,
    student: dict[str, torch.Tensor] | None = None,
) -> pd.DataFrame:
    """One line per masked (row, candidate) cell, over every active block.

    ``text`` is the row's text in the block (its positive in p-p), ``positive`` the row's own
    positive. ``beats_positive_by`` is the guide's candidate score minus its positive score (> 0: the guide
    finds the candidate closer than the positive). ``identical_text`` marks candidates masked
    because their text equals the row's anchor or positive. The ``student_*`` columns are NaN/None
    without a student; ``student_prefers`` is True where the student scores the candidate above
    the row's own positive, the false negatives the loss would otherwise push hardest.
    ``relation`` is the candidate's ground-truth relation to the row (core.method.groundtruth), None
    without ground truth.
    """
    frames = []
    truth = batch.relations(mask.blocks)
    relation_names = np.array(RELATIONS, dtype=object)
    anchors = np.array(batch.anchors, dtype=object)
    positives = np.array(batch.positives, dtype=object)
    rows = np.array(batch.rows)
    for block in mask.blocks:
        i, c = mask.masked_candidates(block).nonzero(as_tuple=True)
        i_np, c_np = i.numpy(), c.numpy()
        cand_texts, cand_roles, cand_rows = (np.array(x, dtype=object) for x in batch.candidates(block))
        guide = mask.guide_scores[block][i, c].numpy()
        positive = mask.positive_scores[i].numpy()
        candidate = cand_texts[c_np]
        frame = {
            "row": i_np,
            "dataset_row": rows[i_np],
            "block": block,
            "text": np.array(batch.row_texts(block), dtype=object)[i_np],
            "positive": positives[i_np],
            "candidate": candidate,
            "candidate_role": cand_roles[c_np],
            "candidate_row": cand_rows[c_np].astype(int),
            "guide_score": guide,
            "positive_score": positive,
            "threshold": mask.thresholds[i].numpy(),
            "margin": settings.margin,
            "beats_positive_by": guide - positive,
            "identical_text": (candidate == anchors[i_np]) | (candidate == positives[i_np]),
            "relation": None if truth is None else relation_names[truth[block][i, c].long().numpy()],
        }
        if student is not None:
            s_pos = student["a-p"].diagonal()[i].numpy()
            s_cand = student[block][i, c].numpy()
            frame |= {"student_score": s_cand, "student_positive_score": s_pos,
                      "student_prefers": s_cand > s_pos}
        frames.append(pd.DataFrame(frame))
    pairs = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return pairs.reindex(columns=list(PAIR_COLUMNS))


def cell_labels(batch: Batch, block: str, width: int = 60) -> tuple[list[str], list[str]]:
    """A block's row and candidate labels, "index · text" truncated to ``width``, for heatmap hovers.

    Unique per row and per column, so a heatmap can use them as categorical axes: the hover then
    names both texts while the figure carries each text once, not once per cell (16,384 cells at
    batch 128).
    """
    def label(k: int, text: str) -> str:
        return f"{k} · {text if len(text) <= width else text[:width - 1] + '…'}"

    texts, _, _ = batch.candidates(block)
    return ([label(i, t) for i, t in enumerate(batch.row_texts(block))],
            [label(c, t) for c, t in enumerate(texts)])


def filter_pairs(pairs: pd.DataFrame, blocks=None, student_prefers: bool = False, text: str = "") -> pd.DataFrame:
    """The masked pairs of ``blocks`` (all when None), optionally only those the student ranks above
    the positive, and only those whose row text or candidate contains ``text`` (any case)."""
    if blocks is not None:
        pairs = pairs[pairs["block"].isin(blocks)]
    if student_prefers:
        pairs = pairs[pairs["student_prefers"].fillna(False).astype(bool)]
    if text:
        pairs = pairs[pairs["text"].str.contains(text, case=False, regex=False)
                      | pairs["candidate"].str.contains(text, case=False, regex=False)]
    return pairs


def row_counts(batch: Batch, mask: BatchMask) -> pd.DataFrame:
    """Per batch row: its anchor, positive score, threshold, masked candidates per block and in all,
    the masked share of its candidates (``fraction``) and whether it is a weak positive (``weak``:
    :meth:`BatchMask.weak_rows` at the default share)."""
    counts = {b: n.numpy() for b, n in mask.row_counts().items()}
    frame = pd.DataFrame({
        "row": np.arange(len(batch)),
        "dataset_row": batch.rows,
        "anchor": batch.anchors,
        "positive_score": mask.positive_scores.numpy(),
        "threshold": mask.thresholds.numpy(),
        **counts,
    })
    frame["total"] = sum(counts.values())
    frame["fraction"] = mask.row_fractions().numpy()
    frame["weak"] = mask.weak_rows().numpy()
    return frame


def sample_batches(ds, n_batches: int, batch_size: int, seed: int, task: str | None = None,
                   false_negatives: float = 0.0) -> list[Batch]:
    """``n_batches`` seeded batches (seeds ``seed``, ``seed + 1``, ...) drawn as training draws them,
    at the false-negative rate ``false_negatives`` (:meth:`Batch.draw`)."""
    return [Batch.draw(ds, batch_size, seed + k, task, false_negatives) for k in range(n_batches)]


RUN_STAGES = ("reading its config", "loading its data", "finding the batch's rows")  # open_run_batches, in order


def open_run_batches(run, steps, progress: Callable[[int, int], None] | None = None):
    """The batches a training run used at ``steps`` (1-based), and the run's config (guide, settings).

    The data is loaded once, as the run loaded it, so its row ids point at the same texts.
    ``progress(done, total)`` hears the stages done (:data:`RUN_STAGES`) as each starts and at the end.
    """
    from core.corpus.data import load_pairs
    from core.training.runs import read_batch, read_config
    from core.training.train import TrainConfig

    report = (lambda done: progress(done, len(RUN_STAGES))) if progress else (lambda done: None)
    report(0)
    config = TrainConfig.from_dict(read_config(run))
    report(1)
    ds = load_pairs(config.data, split=config.data_split, columns=config.data_columns)
    if getattr(config, "false_negatives", 0.0):  # the run trained on rows added at its rate: rebuild them
        from core.corpus.false_negatives import false_negative_plan

        ds = false_negative_plan(ds, config.batch_size, config.seed, config.false_negatives,
                                 homogeneous=config.homogeneous, steps=config.steps, epochs=config.epochs).pairs
    report(2)
    batches = [Batch.from_dataset(ds, read_batch(run, step)) for step in steps]
    report(3)
    return batches, config


def open_run_batch(run, step: int, progress: Callable[[int, int], None] | None = None):
    """The batch a training run used at ``step`` (1-based), and the run's config; ``progress`` as in
    :func:`open_run_batches` (the app counts its stages: loading a large data set takes seconds)."""
    [batch], config = open_run_batches(run, [step], progress)
    return batch, config


def run_student(run) -> str:
    """The student to inspect a run's batch with: its trained model if saved, else its base student."""
    from core.training.runs import read_config, resolve, trained_model

    model = trained_model(resolve(run))
    return str(model) if model else read_config(run)["student"]
