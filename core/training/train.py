"""One training run: a config, a run directory, and ``SentenceTransformerTrainer`` doing the work.

``run_training(TrainConfig(...))`` loads and checks the data, writes ``config.json``, trains the
student with one of its loss arms and records every step into the run directory (layout in
:mod:`core.training.runs`), so the app and the CLI can follow a run while it trains and open it later.

Loss arms (``TrainConfig.loss``):

- ``gist``: :class:`core.method.loss.GISTLoss` with a :class:`core.guides.guide_cache.GuideCache` that fills
  lazily with the texts of the batches actually trained on.
- ``mnrl``: ``MultipleNegativesRankingLoss`` with ``scale = 1 / temperature`` and the blocks the
  GIST settings name (``query_to_query`` for ``contrast_anchors``, ``doc_to_doc`` for
  ``contrast_positives``), so with pairs it is exactly the ``gist`` softmax without the mask: a
  paired comparison differs only in the masking. With negative columns ``doc_to_doc`` also
  contrasts positives with the other rows' negatives, which GIST's p-p block does not.
- ``gist-st``: sentence-transformers' ``GISTEmbedLoss`` as it is (guide re-run every step). Its
  masked fraction is recomputed with :func:`core.method.masking.guided_mask` from the guide embeddings
  the loss itself computed (a forward hook, no extra guide pass) without the identical-text rule,
  i.e. the library's own rule.
- ``self-judge``: :class:`core.method.loss.GISTLoss` with no guide: the student's own detached cosines
  of the same forward decide (Qwen3-Embedding's rule, s_ij > s(i, positive_i) + ``judge_margin``,
  through the same :func:`core.method.masking.guided_mask`); its masks are recorded like gist's
  (``guide_score`` holds the student's cosine).
- ``mnrl-hard``: the library's ``MultipleNegativesRankingLoss`` with ``hardness_mode`` /
  ``hardness_strength``, as ``mnrl`` otherwise. ``gist-hard``: ``gist``'s mask, then the same
  weighting of the negatives left (sentence-transformers issue #3845).

Paired runs: every arm draws its batches from :func:`core.corpus.data.epoch_batches` with the config's
seed, so with one seed all arms train on the same batches in the same order. Each row carries
``label`` = its dataset row id, which the GIST loss uses to find the raw texts and which the
trainer subclass records into ``batches.jsonl`` for every arm. :func:`train_arms` trains several
arms one after another in one process (``gistlab train --loss gist,mnrl``): imports, the data and
each guide with its GuideCache are loaded once (:class:`Shared`), while the student is reloaded
from its spec for every arm, so each starts from the same untrained weights and writes the run
folder it would write alone. A later arm starts only if the one before completed.

A run ends ``completed``, ``stopped`` (a ``STOP`` file in the run directory, checked after every
step), ``interrupted`` (Ctrl-C / SIGINT or SIGTERM: the run ends after its current step; a second
signal, or one while models load, ends it at once) or ``failed`` (one-line error in
``status.json``); in the first three cases the model is saved to ``model/`` (into a temporary
folder renamed when complete, so ``model/`` is never half-written) and the masks are flushed; a
save that fails (disk full) makes the run ``failed``, since a run is completed only with its model.
Claiming the run directory (check, clear, write config and status) holds a lock, so two starts with
one ``--out`` cannot both train there. A run whose masked fraction stays >= 99% or whose loss is
exactly 0 for several steps learns nothing: it says so in its log and ``status.json`` (``warning``).

The pieces live beside this module, one job each: :mod:`core.training.config` (``TrainConfig``),
:mod:`core.training.arms` (the loss arms, what arms share, the planned batches),
:mod:`core.training.lifecycle` (claim, checks, signals, the model's save) and
:mod:`core.training.recorder` (the run directory written step by step).

Several processes (``torchrun -m core.cli train``): DDP through the trainer, ``batch_size`` per
process; only rank 0 writes the run directory, and a stop ends every process after the same step.
With ``gather_across_devices`` the recorded batch and masks are the global batch's
(:mod:`core.method.distributed`).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import torch
from sentence_transformers import SentenceTransformerTrainingArguments

from core.corpus.data import negative_columns, text_columns
from core.corpus.false_negatives import false_negative_plan
from core.errors import GistlabError, first_line
from core.guides.models import load_model
from core.method import distributed
from core.paths import check_output_dir
from core.training.arms import LibraryMaskProbe, PlannedBatchSampler, Shared, arm_out, build_loss
from core.training.config import TrainConfig
from core.training.events import follow_log
from core.training.lifecycle import SignalStop, check_free, check_settings, claim, precision_options, save_model
from core.training.recorder import RecordingTrainer, RunRecorder
from core.training.runs import MODEL, STOP, read_status
from core.training.status import RunState


def train_arms(configs: list[TrainConfig], *, overwrite: bool = False, log_name: str | None = None) -> Iterator[Path]:
    """Train the configs (arms that differ in their loss) one after another in this process; yield each
    run directory when its arm has ended.

    Each arm's ``out`` is :func:`arm_out` of the config's (``{loss}`` filled in; several arms need
    it). Every arm's run directory and settings are checked against the data before the first
    trains, so a bad later arm fails in seconds, not after the first arm's training. A later arm
    starts only if the one before ``completed``: a stop (STOP, Ctrl-C, SIGTERM) ends them all and a
    failure raises. With ``log_name`` this process's output (stdout and stderr, the descriptors, so
    library progress bars too) goes to that file in each arm's run directory from the arm's start
    on: a failing arm's error line ends up in its own log, and its error event beside it.
    """
    if len({c.loss for c in configs}) < len(configs):
        raise GistlabError("Each loss can train once per command: remove the repeated loss.")
    if len(configs) > 1 and any("{loss}" not in (c.out or "{loss}") for c in configs):
        raise GistlabError("With several losses each arm needs its own run directory: put {loss} in --out, "
                           "e.g. --out runs/try-{loss}.")
    distributed.init_from_env()
    stamp = f"{datetime.now():%Y%m%d-%H%M%S}"
    configs = [replace(c, out=str(distributed.on_main(lambda: arm_out(c.out, c.loss, c.seed, len(configs) > 1,
                                                                      stamp)))) for c in configs]
    shared = Shared()
    for config in configs:
        distributed.on_main(lambda: check_free(check_output_dir(config.out), overwrite))
        check_settings(config, shared.pairs(config))
    for k, config in enumerate(configs):
        if log_name:
            Path(config.out).mkdir(parents=True, exist_ok=True)  # a job sees the arm start by its folder
            _output_to(Path(config.out) / log_name)
            follow_log(Path(config.out) / log_name)  # its events (an error) beside its log
        out = run_training(config, overwrite=overwrite, shared=shared)
        yield out
        if k + 1 < len(configs) and not distributed.on_main(lambda: _completed(out)):
            return


def _completed(out: Path) -> bool:
    """Whether the arm in ``out`` trained to its end with no stop asked since (STOP back in its folder)."""
    return read_status(out).state == RunState.COMPLETED and not (out / STOP).exists()


def _output_to(log: Path) -> None:
    """Send this process's stdout and stderr (the descriptors, so child writers too) to ``log``, appended."""
    sys.stdout.flush()
    sys.stderr.flush()
    with open(log, "ab") as handle:
        os.dup2(handle.fileno(), 1)
        os.dup2(handle.fileno(), 2)


def run_training(config: TrainConfig, *, overwrite: bool = False, shared: Shared | None = None) -> Path:
    """Train one run as ``config`` says and return its directory (see the module docstring); ``shared``
    holds the data and guides loaded by earlier arms of this process."""
    distributed.init_from_env()
    shared = shared or Shared()
    out = distributed.on_main(lambda: arm_out(config.out, config.loss, config.seed, False,
                                              f"{datetime.now():%Y%m%d-%H%M%S}"))
    config = replace(config, out=str(out))
    distributed.on_main(lambda: check_output_dir(out))  # before the data and models load
    ds = shared.pairs(config)
    check_settings(config, ds)
    plan = (false_negative_plan(ds, config.batch_size, config.seed, config.false_negatives,
                                homogeneous=config.homogeneous, steps=config.steps, epochs=config.epochs)
            if config.false_negatives else None)
    ds = plan.pairs if plan else ds  # every arm rebuilds the same rows and batches from the seed
    distributed.on_main(lambda: claim(out, overwrite, config))  # only rank 0 writes the run directory
    recorder = RunRecorder(out, negative_columns(ds), ds) if distributed.is_main() else distributed.SilentRecorder()
    trainer, state, error, signals = None, RunState.FAILED, None, SignalStop()
    with signals:
        try:
            trainer = build_trainer(config, ds, recorder, signals, shared, plan)
            trainer.train()
            state = (RunState.INTERRUPTED if signals.received else
                     RunState.STOPPED if recorder.stop_requested else RunState.COMPLETED)
        except KeyboardInterrupt:
            state = RunState.INTERRUPTED
        except Exception as exc:
            error = first_line(exc, limit=1000)
            raise
        finally:
            try:
                if trainer is not None and state != RunState.FAILED and distributed.is_main():
                    save_model(trainer.model, out / MODEL)
            except KeyboardInterrupt:
                state, error = RunState.INTERRUPTED, "interrupted while saving the model: no model saved"
                raise
            except Exception as exc:  # disk full, read-only: the run is completed only with its model on disk
                state, error = RunState.FAILED, f"could not save the model ({first_line(exc, limit=300)}): no model saved"
                raise GistlabError(f"{out}: {error}; free space (or make it writable) and train again.") from None
            finally:
                recorder.finish(state, error)
    return out


def build_trainer(config: TrainConfig, ds, recorder: RunRecorder, signals: SignalStop | None = None,
                  shared: Shared | None = None, plan=None):
    """The student (fresh from its spec), the loss arm (its guide from ``shared``) and a
    ``SentenceTransformerTrainer`` that feeds it planned batches (``plan``: a
    :class:`core.corpus.false_negatives.FalseNegativePlan` whose data is ``ds``)."""
    student = load_model(config.student)
    if config.max_seq_length:
        limit = position_limit(student)
        if limit and config.max_seq_length > limit:
            raise GistlabError(
                f"--max-seq-length {config.max_seq_length} is more than {config.student} can read: its "
                f"position embeddings end at {limit} tokens; use at most {limit}.")
        student.max_seq_length = config.max_seq_length
    loss, step_mask = build_loss(config, student, ds, shared)
    train_ds = ds.select_columns(text_columns(ds))  # the trainer would tokenise task/ground truth
    train_ds = train_ds.add_column("label", list(range(len(ds))))
    args = SentenceTransformerTrainingArguments(
        output_dir=config.out,  # with save_strategy "no" the trainer writes nothing there
        per_device_train_batch_size=config.batch_size,
        max_steps=config.steps or -1,
        num_train_epochs=config.epochs or 1.0,
        learning_rate=config.lr,
        warmup_steps=config.warmup_ratio,  # a value below 1 is a ratio of the total steps
        seed=config.seed,
        data_seed=config.seed,
        batch_sampler=functools.partial(PlannedBatchSampler, pairs=ds, homogeneous=config.homogeneous, plan=plan),
        dataloader_drop_last=True,
        dataloader_pin_memory=torch.cuda.is_available(),
        logging_strategy="steps",
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        **(precision_options(config.bf16, config.fp16) | distributed.trainer_options()),
    )
    probe = getattr(step_mask, "__self__", None)  # gist-st's probe unhooks from the shared guide at the end
    trainer = RecordingTrainer(model=student, args=args, train_dataset=train_ds, loss=loss,
                               callbacks=[recorder, signals or SignalStop(), distributed.StopSync()]
                               + ([probe] if isinstance(probe, LibraryMaskProbe) else []))
    trainer.gather_rows = config.gather_across_devices
    recorder.attach(trainer, step_mask)
    return trainer


def position_limit(model) -> int | None:
    """The most tokens ``model``'s transformer can embed (its position embeddings), or None if unknown.
    RoBERTa-style models (positions offset past the padding index) lose pad_token_id + 1 of them."""
    config = getattr(getattr(model[0], "auto_model", None), "config", None)
    positions = getattr(config, "max_position_embeddings", None)
    if not isinstance(positions, int):
        return None
    offset = (config.pad_token_id or 0) + 1 if config.model_type in ("roberta", "xlm-roberta", "mpnet", "camembert") else 0
    return positions - offset
