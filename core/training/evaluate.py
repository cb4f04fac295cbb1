"""Evaluate a model on mteb tasks and keep mteb's own result JSON, offline first.

``evaluate(model_spec, tasks)`` loads the model (any spec :func:`core.guides.models.load_model` takes, or a
run directory), runs ``mteb.evaluate`` task by task and leaves one JSON per task in mteb's
ResultCache layout, ``<root>/results/<model name>/<revision>/<Task>.json``. ``<root>`` is the run
directory when the model is a run (or its ``model/``), else the workspace.

Task specs, comma-separated, any mix of:

- ``bundled``: the six-task WordNet mini benchmark (:func:`core.corpus.mteb_tasks.bundled_tasks`);
- a bundled task name, or an official mteb task name (``STSBenchmark``, ``SciFact``), run on its
  English subsets (all subsets if it has none);
- ``type:<TaskType>`` (``type:STS``): every English mteb task of that type;
- ``benchmark:<name>`` (``benchmark:MTEB(eng, v2)``): the tasks of an mteb benchmark.

What it guarantees:

- Reuse: the revision is a fingerprint of the weights, so a task that already has a complete
  result for these exact weights is read back, not recomputed, unless ``overwrite``.
- Offline: when the Hub cannot be reached, each task's data is loaded in forced offline mode
  (seconds, not a minute of retries); a task whose data is not in the local Hugging Face cache is
  skipped with its reason and the others still run.
- Progress: each task evaluated, reused, skipped or failed is one event (:mod:`core.training.events`)
  and one line of ``log``, so a job's page counts tasks without reading the log.
- Safety: every file mteb writes lands by rename, so an interrupted run never truncates an earlier
  result; a corrupt result JSON stops the run with one line (with ``overwrite`` it is moved aside,
  never deleted); a read-only results folder is reported before any work starts.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import inspect
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from core.errors import GistlabError, first_line
from core.hub import hub_unreachable
from core.guides.models import load_model
from core.training.events import Kind, emit
from core.training.runs import CONFIG, MODEL, trained_model
from core.workspace import workspace

if TYPE_CHECKING:
    from mteb import ResultCache
    from mteb.abstasks import AbsTask
    from mteb.models import ModelMeta
    from sentence_transformers import SentenceTransformer

ENCODE_BATCH_SIZE = 64
LANGUAGES = ["eng"]


@dataclass(frozen=True)
class SkippedTask:
    """A task that produced no result, and the one-line reason."""

    task: str
    reason: str


@dataclass
class EvalReport:
    """What one :func:`evaluate` call did: where results live and which tasks ran, were reused or skipped."""

    model: str
    model_name: str
    revision: str
    folder: Path
    computed: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    skipped: list[SkippedTask] = field(default_factory=list)
    seconds: float = 0.0
    texts_encoded: int = 0

    @property
    def result_files(self) -> list[Path]:
        """The result JSON of every task that has one now."""
        return [self.folder / f"{task}.json" for task in self.computed + self.reused]


# ---------------------------------------------------------------- tasks


def _unknown_task(name: str) -> GistlabError:
    import mteb

    from core.corpus.mteb_tasks import TASK_NAMES

    known = [*TASK_NAMES, *(t.metadata.name for t in mteb.get_tasks())]
    close = difflib.get_close_matches(name, known, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    return GistlabError(
        f"Unknown task {name!r}.{hint} Use 'bundled', an mteb task name, type:<TaskType> or "
        "benchmark:<name>."
    )


def _official_task(name: str) -> AbsTask:
    import mteb

    try:
        return mteb.get_task(name, languages=LANGUAGES)
    except ValueError:  # no English subset: run every subset
        return mteb.get_task(name)
    except KeyError:
        raise _unknown_task(name) from None


def _tasks_of(item: str) -> list[AbsTask]:
    import mteb

    from core.corpus.mteb_tasks import TASK_NAMES, bundled_tasks

    if item == "bundled" or item in TASK_NAMES:

        return bundled_tasks(None if item == "bundled" else [item])
    if item.startswith("type:"):
        task_type = item.removeprefix("type:").strip()
        found = list(mteb.get_tasks(task_types=[task_type], languages=LANGUAGES))
        if not found:
            raise GistlabError(
                f"No English mteb task has type {task_type!r}: use a type such as STS, Retrieval, "
                "Reranking, Classification, Clustering or PairClassification."
            )
        return found
    if item.startswith("benchmark:"):
        name = item.removeprefix("benchmark:").strip()
        try:
            return list(mteb.get_benchmark(name).tasks)
        except KeyError as exc:
            raise GistlabError(f"Unknown mteb benchmark {name!r} ({exc.args[0]}).") from None
    return [_official_task(item)]


def resolve_tasks(spec: str | Sequence[str | AbsTask]) -> list[AbsTask]:
    """The mteb tasks a spec names (see the module docstring; task objects pass through), in order, no duplicates."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    items = [i.strip() if isinstance(i, str) else i for i in items]
    items = [i for i in items if i]
    if not items:
        raise GistlabError("No task given: use --tasks bundled or a comma-separated list of task names.")
    tasks: dict[str, AbsTask] = {}
    for item in items:
        for task in _tasks_of(item) if isinstance(item, str) else [item]:
            tasks.setdefault(task.metadata.name, task)
    return list(tasks.values())


# ---------------------------------------------------------------- model


def run_dir_of(path: Path) -> Path | None:
    """The run directory ``path`` is (or whose ``model/`` it is), or None: config.json and a saved model."""
    run = path.parent if path.name == MODEL else path
    return run if (run / CONFIG).is_file() and trained_model(run) else None


def weights_fingerprint(model: SentenceTransformer) -> str:
    """A short hash of every parameter and buffer: the revision results are filed under.

    Results are reused per (name, revision), so weights retrained in place never inherit old scores.
    """
    import torch

    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()[:12]


def model_name_for(spec: str, run_dir: Path | None) -> str:
    """The name results are filed under: the run, the bundled model, the folder or the Hub id."""
    if run_dir is not None:
        return f"gistlab-run/{run_dir.name}"
    if spec.startswith("bundled:"):
        return f"gistlab/{spec.removeprefix('bundled:')}"
    path = Path(spec).expanduser()
    if path.exists():
        return f"local/{path.resolve().name}"
    return spec


class EncodeMemo:
    """A SentenceTransformer's ``encode`` that embeds each distinct text once per evaluation.

    The six bundled tasks draw on the same held-out definitions: of the 6,732 texts mteb asks
    ``bundled:minilm-l6`` to embed, 3,453 are distinct, so remembering them halves the work.
    ``encode_query``/``encode_document`` go through ``encode`` with their prompt and a ``task``;
    the key is the text plus every setting that can change the vector (the resolved prompt, the
    task only when the model routes on it). Only plain float embeddings are memoised, and at most
    ``max_texts`` of them, so a large official corpus cannot fill memory.
    """

    def __init__(self, model: SentenceTransformer, max_texts: int = 200_000) -> None:
        self.model, self.inner, self.max_texts = model, model.encode, max_texts
        self.routes = any(type(m).__name__ == "Router" for m in model.modules())
        self.defaults = {name: p.default for name, p in inspect.signature(self.inner).parameters.items()
                         if p.default is not inspect.Parameter.empty}
        self.store: dict[tuple[str, str], object] = {}
        self.encoded = 0  # texts the model actually embedded

    def install(self) -> EncodeMemo:
        self.model.encode = self
        return self

    def _settings(self, kwargs: dict) -> str | None:
        """The cache key's settings part, or None when the call asks for something not memoised."""
        if (kwargs.get("output_value", "sentence_embedding") != "sentence_embedding"
                or kwargs.get("convert_to_tensor") or not kwargs.get("convert_to_numpy", True)
                or kwargs.get("precision", "float32") != "float32"):
            return None
        settings = {k: v for k, v in kwargs.items()  # a default given explicitly is no setting
                    if k not in ("batch_size", "show_progress_bar")
                    and (k not in self.defaults or self.defaults[k] != v)}
        name = settings.pop("prompt_name", None) or self.model.default_prompt_name
        if settings.get("prompt") is None:
            settings["prompt"] = self.model.prompts.get(name, "") if name else ""
        if not self.routes:
            settings.pop("task", None)
        return repr(sorted(settings.items()))

    def __call__(self, inputs=None, **kwargs):
        inputs = kwargs.pop("sentences", inputs)
        key = self._settings(kwargs)
        if (key is None or not isinstance(inputs, list) or not inputs
                or not all(isinstance(t, str) for t in inputs)):
            return self.inner(inputs, **kwargs)
        fresh = list(dict.fromkeys(t for t in inputs if (key, t) not in self.store))
        found = dict(zip(fresh, self.inner(fresh, **kwargs))) if fresh else {}
        self.encoded += len(fresh)
        for text, vector in found.items():
            if len(self.store) < self.max_texts:
                self.store[(key, text)] = vector
        import numpy as np

        return np.stack([found[t] if t in found else self.store[(key, t)] for t in inputs])


def _mteb_model(model: SentenceTransformer, name: str, revision: str):
    """Wrap the model for mteb with our own name and revision (mteb's would be the base model's, or none)."""
    from mteb.models.sentence_transformer_wrapper import SentenceTransformerEncoderWrapper

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wrapper = SentenceTransformerEncoderWrapper(model)
    wrapper.mteb_model_meta = wrapper.mteb_model_meta.model_copy(
        update={"name": name, "revision": revision}
    )
    return wrapper


# ---------------------------------------------------------------- results on disk


def atomic_result_cache(root: Path) -> ResultCache:
    """An mteb ResultCache at ``root`` whose writes land by rename (stage in a temp folder, then replace)."""
    from mteb import ResultCache

    class AtomicResultCache(ResultCache):
        def save_to_cache(self, task_result, model_name, model_revision=None, *, encode_kwargs=None):
            final = self.get_task_result_path(task_result.task_name, model_name, model_revision).parent
            final.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=".staging-", dir=self.cache_path / "results") as tmp:
                staging = ResultCache(tmp)
                staged = staging.get_task_result_path(task_result.task_name, model_name, model_revision).parent
                staged.mkdir(parents=True)
                if (final / "run_settings.jsonl").is_file():  # mteb merges into the existing one
                    shutil.copy2(final / "run_settings.jsonl", staged)
                staging.save_to_cache(task_result, model_name, model_revision, encode_kwargs=encode_kwargs)
                for file in staged.iterdir():
                    os.replace(file, final / file.name)

    return AtomicResultCache(root)


def _check_writable(folder: Path) -> None:
    """Fail before any work if results cannot be written into ``folder`` (probe with a real file)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-probe-"):
            pass
    except OSError as exc:
        raise GistlabError(
            f"Cannot write results into {folder} ({exc.strerror or exc}): make it writable or "
            "choose another folder with --out."
        ) from None


def _existing_result(cache: ResultCache, task: AbsTask, meta: ModelMeta, overwrite: bool,
                     log: Callable[[str], None]):
    """The stored TaskResult for this task and model, or None if there is none to build on.

    A corrupt file is an error (moved aside with ``overwrite``). A result for another revision of
    the task's data (the bundled files were rebuilt, mteb updated the dataset) is moved aside as
    ``<Task>.json.rev-<old>``, so it is neither reused nor shown as current, nor lost.
    """
    from mteb.results import TaskResult

    path = cache.get_task_result_path(task.metadata.name, meta)
    if not path.is_file():
        return None
    try:
        result = TaskResult.from_disk(path)
    except Exception as exc:
        if not overwrite:
            raise GistlabError(
                f"Result file {path} is corrupt ({first_line(exc)}): delete or repair it, or rerun "
                "with --overwrite to recompute it (the bad file is kept beside it as .corrupt)."
            ) from None
        path.rename(path.with_name(f"{path.name}.corrupt-{datetime.now():%Y%m%d%H%M%S}"))
        return None
    if result.dataset_revision != task.metadata.revision:
        path.rename(path.with_name(f"{path.name}.rev-{result.dataset_revision}"))
        log(f"{task.metadata.name}: stored result is for data revision {result.dataset_revision}, "
            f"the task is now at {task.metadata.revision}: recomputing (old result kept aside)")
        return None
    return result


# ---------------------------------------------------------------- data


@contextlib.contextmanager
def forced_offline() -> Iterator[None]:
    """Hugging Face Hub and datasets in offline mode for the duration: cache hits only, errors at once."""
    import datasets.config
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE
    constants.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE = saved


def load_task_data(task: AbsTask, offline_reason: str | None) -> str | None:
    """Load a task's data; return None on success, else the one-line reason it cannot be had."""
    if task.data_loaded:
        return None
    guard = forced_offline() if offline_reason else contextlib.nullcontext()
    try:
        with guard:
            task.load_data()
    except Exception as exc:
        if offline_reason:
            return f"its data is not in the local Hugging Face cache and the Hub is unreachable ({offline_reason})"
        return first_line(exc)
    return None


# ---------------------------------------------------------------- evaluate


def evaluate(
    model_spec: str,
    tasks: str | Sequence[str | AbsTask] = "bundled",
    *,
    out: Path | None = None,
    overwrite: bool = False,
    batch_size: int = ENCODE_BATCH_SIZE,
    log: Callable[[str], None] = lambda message: None,
    reuse_only: bool = False,
) -> EvalReport:
    """Evaluate ``model_spec`` on ``tasks``; results go to ``out`` (a ResultCache root), else the
    model's run directory, else the workspace. ``reuse_only``: compute nothing, report the stored
    results and skip the tasks that have none (a report that must not start evaluations).

    Raises GistlabError, before any result is touched, for an unknown task, a missing model, an
    unwritable results folder or a corrupt stored result.
    """
    import mteb

    start = time.perf_counter()
    task_list = resolve_tasks(tasks)
    run_dir = run_dir_of(Path(model_spec).expanduser())
    root = Path(out) if out is not None else (run_dir or workspace())  # a run keeps its own results
    _check_writable(root / "results")
    model = load_model(str(run_dir / MODEL) if run_dir else model_spec, device="cpu")
    name, revision = model_name_for(model_spec, run_dir), weights_fingerprint(model)
    memo = EncodeMemo(model).install()
    wrapper = _mteb_model(model, name, revision)
    cache = atomic_result_cache(root)
    folder = cache.get_task_result_path("_", wrapper.mteb_model_meta).parent
    report = EvalReport(model_spec, name, revision, folder)

    pending = []
    for task in task_list:
        existing = _existing_result(cache, task, wrapper.mteb_model_meta, overwrite, log)
        if existing is not None and not overwrite and not existing.get_missing_evaluations(task):
            report.reused.append(task.metadata.name)
        else:
            pending.append(task)

    emit(Kind.TASKS, total=len(task_list))  # a job's progress counts task events against it
    log(f"evaluating {len(task_list)} tasks of {name}, {len(report.reused)} already evaluated")
    for task_name in report.reused:
        log(emit(Kind.REUSED, task_name).text())
    if reuse_only:
        report.skipped += [SkippedTask(task.metadata.name, "not evaluated yet (reusing stored results only)")
                           for task in pending]
        pending = []
    offline = hub_unreachable() if pending else None
    for task in pending:
        task_name = task.metadata.name
        reason = load_task_data(task, offline)
        if reason:
            report.skipped.append(SkippedTask(task_name, reason))
            log(emit(Kind.SKIPPED, task_name, reason).text())
            continue
        tick = time.perf_counter()
        try:
            result = mteb.evaluate(
                wrapper, task, cache=cache, raise_error=False, show_progress_bar=False,
                overwrite_strategy="always" if overwrite else "only-missing",
                encode_kwargs={"batch_size": batch_size, "show_progress_bar": False},
            )
        except OSError as exc:
            raise GistlabError(
                f"Could not write the result of {task_name} under {root} ({exc.strerror or exc}): "
                "make the folder writable; earlier results are untouched."
            ) from None
        finally:
            task.unload_data()
        if result.exceptions:
            error = first_line(RuntimeError(result.exceptions[0].exception))
            report.skipped.append(SkippedTask(task_name, f"failed: {error}"))
            log(emit(Kind.FAILED, task_name, error).text())
            continue
        report.computed.append(task_name)
        emit(Kind.EVALUATED, task_name)
        log(f"evaluated {task_name} in {time.perf_counter() - tick:.1f} s")
    report.seconds = time.perf_counter() - start
    report.texts_encoded = memo.encoded
    return report
