"""One training run: a config, a run directory, and ``SentenceTransformerTrainer`` doing the work.

``run_training(TrainConfig(...))`` loads and checks the data, writes ``config.json``, trains the
student with one of three loss arms and records every step into the run directory (layout in
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
folder renamed when complete, so ``model/`` is never half-written) and the masks are flushed.
Claiming the run directory (check, clear, write config and status) holds a lock, so two starts with
one ``--out`` cannot both train there. A run whose masked fraction stays >= 99% or whose loss is
exactly 0 for several steps learns nothing: it says so in its log and ``status.json`` (``warning``).

Several processes (``torchrun -m core.cli train``): DDP through the trainer, ``batch_size`` per
process; only rank 0 writes the run directory, and a stop ends every process after the same step.
With ``gather_across_devices`` the recorded batch and masks are the global batch's
(:mod:`core.method.distributed`).
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import shutil
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from sentence_transformers.base.sampler import DefaultBatchSampler
from transformers import TrainerCallback

from core.method import distributed
from core.corpus.data import TASK_COLUMN, epoch_batches, load_pairs, negative_columns, text_columns, truth_columns
from core.corpus.false_negatives import MAX_RATE, false_negative_plan
from core.errors import GistlabError, GistlabWarning, first_line
from core.method.groundtruth import ground_truth, relations, step_quality
from core.training.jobs import process_start
from core.method.masking import BatchMask, MarginSettings, guided_mask, margin_problem
from core.guides.models import DEFAULT_GUIDE, DEFAULT_STUDENT, load_guide, load_model
from core.paths import check_output_dir
from core.training.runs import (
    BATCHES, CONFIG, MASK_SCHEMA, MASKS, METRICS, MODEL, RUN_FILES, STATUS, STOP, read_status,
    runs_root, write_json,
)

LOSSES = ("gist", "mnrl", "gist-st")
LEARNS_NOTHING_STEPS = 5  # steps in a row fully masked (or with loss exactly 0) before the run warns
FLUSH_SECONDS = 5.0  # how often masks.parquet is rewritten while a run trains


@dataclass
class TrainConfig:
    """Everything that defines a run; saved as ``<out>/config.json`` and read back by the app.

    Give ``steps`` or ``epochs`` (neither: one epoch). ``out=None`` picks
    ``<workspace>/runs/<time>-<loss>-s<seed>``. ``homogeneous`` draws each batch from one task
    (needs a ``task`` column), as the GIST paper does; otherwise batches mix tasks.
    ``data_columns`` maps pairs columns to the data's names, e.g. ``{"anchor": "question"}``.
    Under several processes (torchrun) ``batch_size`` is per process, and
    ``gather_across_devices`` makes gist and mnrl contrast against the global batch
    (:mod:`core.method.distributed`). ``mini_batch_size`` switches every arm to its GradCache form
    (:class:`core.method.cached_loss.CachedGISTLoss`, the library's ``CachedMultipleNegativesRankingLoss``
    and ``CachedGISTEmbedLoss``): same loss, memory of one mini-batch. ``bf16`` / ``fp16`` go to
    the trainer (:func:`precision_options`).
    """

    data: str = "bundled"
    out: str | None = None
    student: str = DEFAULT_STUDENT
    guide: str = DEFAULT_GUIDE
    loss: str = "gist"
    batch_size: int = 32
    steps: int | None = None
    epochs: float | None = None
    lr: float = 2e-5
    warmup_ratio: float = 0.1
    temperature: float = 0.01
    margin_strategy: str = "absolute"
    margin: float = 0.0
    contrast_anchors: bool = True
    contrast_positives: bool = True
    positive_floor: float | None = None  # MarginSettings.positive_floor: None = off (library rule)
    seed: int = 0
    max_seq_length: int | None = None
    homogeneous: bool = False
    gather_across_devices: bool = False
    mini_batch_size: int | None = None
    bf16: bool = False
    fp16: bool = False
    data_columns: dict[str, str] | None = None
    data_split: str = "train"
    false_negatives: float = 0.0  # core.corpus.false_negatives: ~rate x batch false-negative candidates per row

    def __post_init__(self) -> None:
        if self.steps is None and self.epochs is None:
            self.epochs = 1.0
        problems = [
            (self.loss not in LOSSES, f"loss must be one of {', '.join(LOSSES)}, not {self.loss!r}"),
            (self.steps is not None and self.epochs is not None, "give steps or epochs, not both"),
            (self.steps is not None and self.steps < 1, "steps must be at least 1"),
            (self.epochs is not None and self.epochs <= 0, "epochs must be positive"),
            (self.batch_size < 2, "batch size must be at least 2 (in-batch negatives need company)"),
            (self.lr <= 0, "learning rate must be positive"),
            (not 0 <= self.warmup_ratio < 1, "warmup ratio must be in [0, 1)"),
            (self.temperature <= 0, "temperature must be positive"),
            (self.max_seq_length is not None and self.max_seq_length < 1, "max_seq_length must be positive"),
            (self.mini_batch_size is not None and self.mini_batch_size < 1, "mini-batch size must be at least 1"),
            (self.bf16 and self.fp16, "choose bf16 or fp16, not both"),
            (not 0 <= self.false_negatives <= MAX_RATE, f"false_negatives must be a rate in [0, {MAX_RATE}]"),
        ]
        for bad, message in problems:
            if bad:
                raise GistlabError(f"Bad training setting: {message}.")
        try:
            self.margin_settings()
        except ValueError as exc:
            raise GistlabError(f"Bad training setting: {exc}.") from None
        problem = margin_problem(self.margin_strategy, self.margin) if self.loss != "mnrl" else None
        if problem:
            raise GistlabError(f"Bad training setting: {problem}.")

    def margin_settings(self) -> MarginSettings:
        return MarginSettings(self.margin_strategy, self.margin, self.contrast_anchors, self.contrast_positives,
                              self.positive_floor)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise GistlabError(f"Unknown training settings {', '.join(sorted(unknown))}: remove them.")
        return cls(**data)

    def save(self, path: Path) -> None:
        write_json(Path(path), self.to_dict())

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        return cls.from_dict(json.loads(Path(path).read_text()))


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


def train_arms(configs: list[TrainConfig], *, overwrite: bool = False, log_name: str | None = None) -> Iterator[Path]:
    """Train the configs (arms that differ in their loss) one after another in this process; yield each
    run directory when its arm has ended.

    Each arm's ``out`` is :func:`arm_out` of the config's (``{loss}`` filled in; several arms need
    it). Every arm's run directory and settings are checked against the data before the first
    trains, so a bad later arm fails in seconds, not after the first arm's training. A later arm
    starts only if the one before ``completed``: a stop (STOP, Ctrl-C, SIGTERM) ends them all and a
    failure raises. With ``log_name`` this process's output (stdout and stderr, the descriptors, so
    library progress bars too) goes to that file in each arm's run directory from the arm's start
    on: a failing arm's error line ends up in its own log.
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
        distributed.on_main(lambda: _check_free(check_output_dir(config.out), overwrite))
        _preflight(config, shared.pairs(config))
    for k, config in enumerate(configs):
        if log_name:
            Path(config.out).mkdir(parents=True, exist_ok=True)  # a job sees the arm start by its folder
            _output_to(Path(config.out) / log_name)
        out = run_training(config, overwrite=overwrite, shared=shared)
        yield out
        if k + 1 < len(configs) and not distributed.on_main(lambda: _completed(out)):
            return


def _completed(out: Path) -> bool:
    """Whether the arm in ``out`` trained to its end with no stop asked since (STOP back in its folder)."""
    return read_status(out).get("state") == "completed" and not (out / STOP).exists()


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
    _preflight(config, ds)
    plan = (false_negative_plan(ds, config.batch_size, config.seed, config.false_negatives,
                                homogeneous=config.homogeneous, steps=config.steps, epochs=config.epochs)
            if config.false_negatives else None)
    ds = plan.pairs if plan else ds  # every arm rebuilds the same rows and batches from the seed
    distributed.on_main(lambda: _claim(out, overwrite, config))  # only rank 0 writes the run directory
    recorder = RunRecorder(out, negative_columns(ds), ds) if distributed.is_main() else distributed.SilentRecorder()
    trainer, state, error, signals = None, "failed", None, SignalStop()
    with signals:
        try:
            trainer = build_trainer(config, ds, recorder, signals, shared, plan)
            trainer.train()
            state = ("interrupted" if signals.received else
                     "stopped" if recorder.stop_requested else "completed")
        except KeyboardInterrupt:
            state = "interrupted"
        except Exception as exc:
            error = first_line(exc, limit=1000)
            raise
        finally:
            try:
                if trainer is not None and state != "failed" and distributed.is_main():
                    save_model(trainer.model, out / MODEL)
            except KeyboardInterrupt:
                state, error = "interrupted", "interrupted while saving the model: no model saved"
                raise
            finally:
                recorder.finish(state, error)
    return out


def save_model(model, folder: Path) -> None:
    """Save into a temporary sibling folder, then rename it to ``folder``: an interrupted save
    leaves no half-written model (the temporary folder is removed)."""
    tmp = folder.with_name(f".{folder.name}.saving-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save(str(tmp))
        if folder.exists():
            shutil.rmtree(folder)
        os.rename(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class SignalStop(TrainerCallback):
    """SIGINT (Ctrl-C) and SIGTERM (``kill``, systemd, container runtimes) end training after the
    current step, like a STOP file, so the model is saved; a second signal, or one before the first
    step (models loading), raises KeyboardInterrupt at once. A context manager: the previous
    handlers come back on exit. Installed only in the main thread (signals go nowhere else)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: str | None = None
        self.in_loop = False
        self._previous: dict = {}

    def __enter__(self) -> SignalStop:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)

    def _handle(self, number, frame) -> None:
        if self.in_loop and self.received is None:
            self.received = signal.Signals(number).name
            return
        raise KeyboardInterrupt

    def on_train_begin(self, args, state, control, **kwargs):
        self.in_loop = True

    def on_step_end(self, args, state, control, **kwargs):
        if self.received:
            control.should_training_stop = True

    def on_train_end(self, args, state, control, **kwargs):
        self.in_loop = False


def _preflight(config: TrainConfig, ds) -> None:
    """Cheap checks that would otherwise fail minutes later, after the models are loaded."""
    if config.loss == "gist-st" and len(negative_columns(ds)) > 1:
        raise GistlabError(
            f"gist-st (the library's GISTEmbedLoss) takes at most one negative column, the data has "
            f"{len(negative_columns(ds))}: use --loss gist, or keep one negative column."
        )
    if config.positive_floor is not None and config.loss == "gist-st":
        raise GistlabError(
            "--positive-floor changes gistlab's own mask, and gist-st (the library's GISTEmbedLoss) "
            "has no such setting: use --loss gist, or leave the floor out."
        )
    if config.mini_batch_size and config.gather_across_devices and config.loss == "gist":
        raise GistlabError(
            "--mini-batch-size with --gather-across-devices works for mnrl only: for gist drop one of them."
        )
    precision_options(config.bf16, config.fp16)  # refuses on a machine that cannot
    if config.gather_across_devices and config.loss == "gist-st":
        raise GistlabError(
            "--gather-across-devices works with --loss gist or mnrl; gist-st's recorded masks "
            "would not match the library's own gathering: use --loss gist."
        )
    if config.homogeneous and not epoch_batches(ds, config.batch_size, config.seed, 0, homogeneous=True):
        raise GistlabError(
            f"No task has {config.batch_size} rows, so no task-homogeneous batch can be drawn: "
            "lower --batch-size or use mixed batches."
        )


def _claim(out: Path, overwrite: bool, config: TrainConfig) -> None:
    """Make ``out`` ready for a new run and claim it; never replace a run that trained unless
    ``overwrite``. Check, clear and claim (config.json plus a ``running`` status with this
    process's pid) happen under an exclusive lock on ``out/.lock``, so of two starts with one
    ``--out`` the second sees the first's live run and is refused.

    Only the run's own files are removed: other files (e.g. the job's ``train.log``) stay.
    """
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _clear(out, overwrite)
        config.save(out / CONFIG)
        write_json(out / STATUS, new_status())


def new_status() -> dict:
    """The status of a run that has just started in this process."""
    return {"state": "running", "error": None, "warning": None, "started": _now(), "ended": None,
            "steps_done": 0, "total_steps": None, "pid": os.getpid(), "pid_start": process_start(os.getpid()),
            "processes": distributed.get_world_size()}


def _clear(out: Path, overwrite: bool) -> None:
    """Remove a previous run's files from ``out``, unless that run is alive or trained (see _claim)."""
    if _check_free(out, overwrite):
        for name in RUN_FILES:
            path = out / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def _check_free(out: Path, overwrite: bool) -> bool:
    """Whether ``out`` holds a previous run that may be replaced; a GistlabError if it is alive or
    trained (and not ``overwrite``)."""
    if (out / STATUS).is_file() or (out / CONFIG).is_file():
        try:
            status = read_status(out)
        except GistlabError:
            status = {"state": "damaged", "steps_done": 1}
        state = status.get("state")
        if state == "running":
            raise GistlabError(
                f"{out} holds a run that is still training (pid {status.get('pid')}): stop it first "
                "or choose another --out."
            )
        if not overwrite and (state != "failed" or status.get("steps_done")):
            raise GistlabError(
                f"{out} already holds a {state} run: choose another --out, or pass --overwrite to replace it."
            )
        return True
    return False


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


class RecordingTrainer(SentenceTransformerTrainer):
    """The library's trainer, keeping the dataset row ids of the batch it last trained on (the
    global batch of all processes when ``gather_rows``)."""

    last_rows: list[int] = []
    gather_rows = False

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if model.training:
            labels = inputs["label"]
            self.last_rows = distributed.gather_rows(labels) if self.gather_rows else labels.tolist()
        return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)


def precision_options(bf16: bool, fp16: bool) -> dict:
    """The trainer's mixed-precision arguments, or a one-line :class:`GistlabError` where this
    machine cannot: fp16 needs CUDA; bf16 runs on a CPU (the trainer then needs ``use_cpu``) and
    on GPUs that support it."""
    cuda = torch.cuda.is_available()
    if fp16 and not cuda:
        raise GistlabError("--fp16 needs a CUDA GPU and this machine has none: drop --fp16 (--bf16 runs on a CPU).")
    if bf16 and cuda and not torch.cuda.is_bf16_supported():
        raise GistlabError("This GPU does not support bfloat16: use --fp16 instead of --bf16.")
    return {"bf16": bf16, "fp16": fp16} | ({"use_cpu": True} if bf16 and not cuda else {})


def build_loss(config: TrainConfig, student, ds, shared: Shared | None = None
               ) -> tuple[object, Callable[[], BatchMask | None]]:
    """The loss module of the config's arm (its GradCache form with ``mini_batch_size``) and a
    function giving the mask of its last step; the guide and its cache come from ``shared``."""
    from sentence_transformers.sentence_transformer.losses import (
        CachedGISTEmbedLoss, CachedMultipleNegativesRankingLoss, GISTEmbedLoss, MultipleNegativesRankingLoss,
    )

    mini = config.mini_batch_size

    if config.loss == "mnrl":
        directions = ("query_to_doc",) + ("query_to_query",) * config.contrast_anchors + (
            ("doc_to_doc",) * config.contrast_positives)
        options = dict(scale=1.0 / config.temperature, directions=directions,
                       gather_across_devices=config.gather_across_devices)
        loss = (CachedMultipleNegativesRankingLoss(student, mini_batch_size=mini, **options) if mini
                else MultipleNegativesRankingLoss(student, **options))
        return loss, lambda: None
    shared = shared or Shared()
    guide = shared.guide(config)  # frozen; "self" = the student before training
    settings = config.margin_settings()
    if config.loss == "gist":
        from core.method.loss import GISTLoss

        cache = shared.guide_cache(config)
        if mini:
            from core.method.cached_loss import CachedGISTLoss

            loss = CachedGISTLoss(student, cache, ds, temperature=config.temperature, settings=settings,
                                  mini_batch_size=mini)
        else:
            loss = GISTLoss(student, cache, ds, temperature=config.temperature, settings=settings,
                            gather_across_devices=config.gather_across_devices)
        return loss, lambda: loss.last_mask
    options = dict(temperature=config.temperature, margin_strategy=config.margin_strategy, margin=config.margin,
                   contrast_anchors=config.contrast_anchors, contrast_positives=config.contrast_positives)
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


def mask_table(step: int, mask: BatchMask, rows: list[int], negative_names: list[str]) -> pa.Table:
    """The masked cells of one step as rows of :data:`core.training.runs.MASK_SCHEMA`."""
    rows_np, batch = np.asarray(rows, dtype=np.int64), len(rows)
    parts = []
    for block in mask.blocks:
        i, c = (t.cpu().numpy() for t in mask.masked_candidates(block).nonzero(as_tuple=True))
        if block == "a-n":
            candidate_rows, columns = rows_np[c % batch], np.asarray(negative_names, dtype=object)[c // batch]
        else:
            candidate_rows = rows_np[c]
            columns = np.full(len(c), "anchor" if block == "a-a" else "positive", dtype=object)
        parts.append({
            "step": np.full(len(i), step), "row": i, "candidate": c, "block": np.full(len(i), block, dtype=object),
            "guide_score": mask.guide_scores[block].cpu().numpy()[i, c],
            "threshold": mask.thresholds.cpu().numpy()[i],
            "anchor_row": rows_np[i], "candidate_row": candidate_rows, "candidate_column": columns,
        })
    if not parts:
        return MASK_SCHEMA.empty_table()
    return pa.Table.from_pydict({k: np.concatenate([p[k] for p in parts]) for k in MASK_SCHEMA.names},
                                schema=MASK_SCHEMA)


class RunRecorder(TrainerCallback):
    """Writes the run directory as training goes: status, one metrics and batch line per step, masks.

    Also the stop switch: after every step it looks for ``STOP`` in the run directory and, if
    there, asks the trainer to end (the model is then saved as for a finished run). And the
    "learns nothing" alarm: :data:`LEARNS_NOTHING_STEPS` steps in a row (or the whole run, if
    shorter) with >= 99% of candidates masked or a loss of exactly 0 set ``status["warning"]``
    and print one warning line.
    """

    def __init__(self, out: Path, negative_names: list[str], pairs=None) -> None:
        self.out, self.negative_names = out, negative_names
        truth = truth_columns(pairs) if pairs is not None else []
        truth += [TASK_COLUMN] if truth and TASK_COLUMN in pairs.column_names else []  # the task picks the relation
        self.truth = pairs.select_columns(truth) if truth else None  # ground truth of the data, if any
        self.stop_requested = False
        self.trainer = None
        self.step_mask: Callable[[], BatchMask | None] = lambda: None
        self.masks: list[pa.Table] = []  # steps not yet flushed
        self._parts = 0
        self.status = new_status()
        self._idle_steps = 0  # steps in a row that taught the student nothing
        for name in (METRICS, BATCHES):
            (out / name).write_text("")
        write_json(out / STATUS, self.status)
        self._step_seconds = 0.0
        self._flushed = time.monotonic()

    def attach(self, trainer, step_mask: Callable[[], BatchMask | None]) -> None:
        self.trainer, self.step_mask = trainer, step_mask

    def on_train_begin(self, args, state, control, **kwargs):
        self._started = time.perf_counter()
        self.status["total_steps"] = state.max_steps
        write_json(self.out / STATUS, self.status)

    def on_step_begin(self, args, state, control, **kwargs):
        self._step_started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self._step_seconds = time.perf_counter() - self._step_started
        if (self.out / STOP).exists():
            self.stop_requested = control.should_training_stop = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.record_step(state.global_step, state.epoch, logs)

    def record_step(self, step: int, epoch: float, logs: dict) -> None:
        """Append this step's metrics and batch, keep its masks, flush them every few seconds."""
        rows = list(self.trainer.last_rows)
        mask = self.step_mask()
        metrics = {"step": step, "epoch": epoch, "loss": logs["loss"], "lr": logs.get("learning_rate"),
                   "grad_norm": logs.get("grad_norm"),
                   "masked_fraction": mask.masked_fraction() if mask is not None else 0.0}
        if mask is not None:
            metrics |= {f"masked_{block}": value for block, value in mask.block_fractions().items()}
            metrics |= {"weak_rows": mask.weak_row_count()} | self.mask_quality(mask, rows)
            self.masks.append(mask_table(step, mask, rows, self.negative_names))
        metrics |= {"step_seconds": self._step_seconds, "elapsed": time.perf_counter() - self._started}
        _append_line(self.out / METRICS, metrics)
        _append_line(self.out / BATCHES, {"step": step, "rows": rows})
        self.status["steps_done"] = step
        self.watch_learning(step, metrics)
        write_json(self.out / STATUS, self.status)
        if time.monotonic() - self._flushed > FLUSH_SECONDS:
            self.flush()

    def watch_learning(self, step: int, metrics: dict) -> None:
        """Warn once when the run stops learning: every candidate masked, or a loss of exactly 0."""
        idle = metrics["masked_fraction"] >= 0.99 or metrics["loss"] == 0.0
        self._idle_steps = self._idle_steps + 1 if idle else 0
        needed = min(LEARNS_NOTHING_STEPS, self.status.get("total_steps") or LEARNS_NOTHING_STEPS)
        if self._idle_steps < needed or self.status.get("warning"):
            return
        self.status["warning"] = (
            f"learns nothing: steps {step - self._idle_steps + 1}-{step} masked "
            f"{metrics['masked_fraction']:.0%} of in-batch candidates with loss {metrics['loss']:g}; "
            "lower --margin, or check the data for duplicated texts")
        warnings.warn(self.status["warning"], GistlabWarning, stacklevel=2)

    def mask_quality(self, mask: BatchMask, rows: list[int]) -> dict:
        """Precision and recall of the step's mask against the data's ground truth
        (core.method.groundtruth.step_quality); nothing when the data has none (~2 ms a step)."""
        if self.truth is None:
            return {}
        truth = ground_truth(self.truth[rows], self.negative_names)
        return step_quality(mask, relations(truth, mask.blocks)) if truth is not None else {}

    def flush(self) -> None:
        """Write the steps kept since the last flush as one more part of ``masks.parquet`` (a folder
        of Parquet files, each renamed into place whole). A flush costs its own rows only, and memory
        holds one flush's steps: a batch of 1024 masks ~0.5 M cells a step."""
        if self.masks:
            folder = self.out / MASKS
            folder.mkdir(exist_ok=True)
            name = f"part-{self._parts:05d}.parquet"
            pq.write_table(pa.concat_tables(self.masks), folder / f".{name}.tmp")  # hidden from readers
            os.replace(folder / f".{name}.tmp", folder / name)
            self._parts, self.masks = self._parts + 1, []
        self._flushed = time.monotonic()

    def finish(self, state: str, error: str | None = None) -> None:
        """Flush the masks and say how the run ended; a consumed STOP request is removed."""
        self.flush()
        (self.out / STOP).unlink(missing_ok=True)
        self.status |= {"state": state, "error": error, "ended": _now()}
        write_json(self.out / STATUS, self.status)


def _append_line(path: Path, record: dict) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")
