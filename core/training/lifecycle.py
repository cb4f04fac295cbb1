"""A run's life around the training loop: claimed, checked, stopped by a signal, saved whole.

Claiming the run directory (check, clear, write config and a ``running`` status) holds a lock, so
two starts with one ``--out`` cannot both train there. Cheap setting checks run before any model
loads. SIGINT/SIGTERM end training after the current step (:class:`SignalStop`); the model is saved
into a temporary folder renamed when complete (:func:`save_model`).
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
from pathlib import Path

import torch
from transformers import TrainerCallback

from core.corpus.data import epoch_batches, negative_columns
from core.errors import GistlabError
from core.fsio import locked
from core.method import distributed
from core.training.config import TrainConfig
from core.training.jobs import process_start
from core.training.runs import CONFIG, RUN_FILES, STATUS, read_status
from core.training.status import RunState, RunStatus, now


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


def check_settings(config: TrainConfig, ds) -> None:
    """Cheap checks that would otherwise fail minutes later, after the models are loaded."""
    if config.loss == "gist-st" and len(negative_columns(ds)) > 1:
        raise GistlabError(
            f"gist-st (the library's GISTEmbedLoss) takes at most one negative column, the data has "
            f"{len(negative_columns(ds))}: use --loss gist, or keep one negative column."
        )
    if config.masking.positive_floor is not None and config.loss == "gist-st":
        raise GistlabError(
            "--positive-floor changes gistlab's own mask, and gist-st (the library's GISTEmbedLoss) "
            "has no such setting: use --loss gist, or leave the floor out."
        )
    if config.mini_batch_size and config.gather_across_devices and config.loss not in ("mnrl", "mnrl-hard"):
        raise GistlabError(
            f"--mini-batch-size with --gather-across-devices works for mnrl only: for {config.loss} drop one of them."
        )
    precision_options(config.bf16, config.fp16)  # refuses on a machine that cannot
    if config.gather_across_devices and config.loss == "gist-st":
        raise GistlabError(
            "--gather-across-devices works with every loss but gist-st: gist-st's recorded masks "
            "would not match the library's own gathering: use --loss gist."
        )
    if config.homogeneous and not epoch_batches(ds, config.batch_size, config.seed, 0, homogeneous=True):
        raise GistlabError(
            f"No task has {config.batch_size} rows, so no task-homogeneous batch can be drawn: "
            "lower --batch-size or use mixed batches."
        )


def claim(out: Path, overwrite: bool, config: TrainConfig) -> None:
    """Make ``out`` ready for a new run and claim it; never replace a run that trained unless
    ``overwrite``. Check, clear and claim (config.json plus a ``running`` status with this
    process's pid) happen under an exclusive lock on ``out/.lock``, so of two starts with one
    ``--out`` the second sees the first's live run and is refused.

    Only the run's own files are removed: other files (e.g. the job's ``train.log``) stay.
    """
    out.mkdir(parents=True, exist_ok=True)
    with locked(out / ".lock"):
        _clear(out, overwrite)
        config.save(out / CONFIG)
        new_status().write(out)


def new_status() -> RunStatus:
    """The status of a run that has just started in this process."""
    return RunStatus(RunState.RUNNING, started=now(), pid=os.getpid(), pid_start=process_start(os.getpid()),
                     processes=distributed.get_world_size())


def _clear(out: Path, overwrite: bool) -> None:
    """Remove a previous run's files from ``out``, unless that run is alive or trained (see claim)."""
    if check_free(out, overwrite):
        for name in RUN_FILES:
            path = out / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def check_free(out: Path, overwrite: bool) -> bool:
    """Whether ``out`` holds a previous run that may be replaced; a GistlabError if it is alive or
    trained (and not ``overwrite``)."""
    if (out / STATUS).is_file() or (out / CONFIG).is_file():
        try:
            status = read_status(out)
            state, steps_done = str(status.state), status.steps_done
        except GistlabError:
            status, state, steps_done = None, "damaged", 1
        if state == RunState.RUNNING:
            raise GistlabError(
                f"{out} holds a run that is still training (pid {status.pid}): stop it first "
                "or choose another --out."
            )
        if not overwrite and (state != RunState.FAILED or steps_done):
            raise GistlabError(
                f"{out} already holds a {state} run: choose another --out, or pass --overwrite to replace it."
            )
        return True
    return False
