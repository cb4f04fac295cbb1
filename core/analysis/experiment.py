"""The guide ladder over false-negative rates: which arm helps a small student, by how much, how sure, on the same batches.

For each seed and each false-negative rate (``rates``: core.corpus.false_negatives rebuilds the batches
so about rate x batch of a row's in-batch candidates are right answers; 0 = the data as is) the student
is fine-tuned once per arm of ``guides``: ``none`` = MNRL, the in-batch softmax without a mask;
``self-judge`` and ``mnrl-hard``, the guide-free recipes of :data:`core.training.results.RECIPES`,
train as that loss; ``gist-hard`` is GIST with ``bundled:minilm-l6`` plus hardness weighting;
``mined`` is MNRL on negatives mined once per experiment (core.analysis.experiment_mined); any other
entry is a GIST guide spec (``self``, ``bundled:minilm-l6``, ``bundled:mpnet-base``...). All arms of a
(rate, seed) train for the same steps on the same batches (core.training.train draws them from the seed
and rate alone). A second case, the paper's "small model" one, trains another student
(``small_student``, default ``bundled:minilm-l6``) with ``small_guides`` (default none and
``bundled:mpnet-base``). Every base student (once) and every run is evaluated on the mini benchmark
(core.training.evaluate). The runs go seed by seed (every rate and arm of seed 0, then seed 1 ...), so
whatever has finished is a complete paired comparison at every rate for the seeds done.

Resumable: each run's directory is named after its settings (``exp-<student>-<arm>[-r<rate>]-s<seed>-
<steps>x<batch>-<hash>``; rate 0 keeps the names runs had before rates existed); a completed run is
reused, not retrained, and its evaluation is read back (core.training.evaluate reuses results by
weights). Each run keeps its own clock in ``experiment.json`` (training and evaluation seconds, CPU
seconds), so the report's time covers every invocation that contributed, and a masking run its mask
judged by the ground truth in ``quality.json`` (:func:`run_quality_summary`). An arm that cannot run
(e.g. the mpnet extra is not installed) is skipped with its one-line reason, which the report repeats.

After every run the report (core.analysis.experiment_report, with the curve sections of
core.analysis.experiment_curve) is rewritten as the ``ladder`` section of a Markdown file and the
experiment's ``experiment.json`` (core.analysis.experiment_summary) in its folder and ``--demo-dir``;
after every seed the demo copy (core.analysis.experiment_demo) follows. The arms and results as data
are in core.analysis.experiment_plan.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Callable

import pandas as pd

from core.analysis.experiment_demo import copy_demo
from core.analysis.experiment_mined import ensure_mined, mined_path, read_summary
from core.analysis.experiment_plan import (
    LADDER, MASKING_COLUMNS, MINED, SMALL_GUIDES, SMALL_STUDENT, Arm, ExperimentResult, short_name,
)
from core.analysis.experiment_report import render_report, run_masking
from core.errors import GistlabError, first_line
from core.guides.models import DEFAULT_STUDENT
from core.training.results import MNRL

SECTION = "ladder"
LEDGER = "experiment.json"  # a run's own clock, written once it is trained and evaluated
QUALITY = "quality.json"  # a masking run's mask against the ground truth, all steps (run_quality_summary)
MINED_RECORD = "mined.json"  # the mined arm's mining summary: what the guide filter removed
SUMMARY = "experiment.json"  # the whole experiment as data, in --out and --demo-dir (experiment_summary)


@dataclass
class ExperimentConfig:
    """What the experiment trains and evaluates; every arm of a (rate, seed) shares all of it but the arm.

    ``out=None`` puts the runs in the workspace's runs folder (so the app lists them) and the base
    models' results (and the mined arm's data) in the workspace; otherwise all go under ``out``.
    ``small_student=None`` (or empty ``small_guides``) leaves the second case out.
    """

    student: str = DEFAULT_STUDENT
    guides: tuple[str, ...] = LADDER
    small_student: str | None = SMALL_STUDENT
    small_guides: tuple[str, ...] = SMALL_GUIDES
    data: str = "bundled"
    tasks: str = "bundled"
    seeds: tuple[int, ...] = (0, 1, 2)
    steps: int = 50  # 18 runs (6 with the 6-layer student) fit in ~45 min on 2 idle cores
    batch_size: int = 16
    lr: float = 2e-5
    homogeneous: bool = True
    out: str | None = None
    threads: int | None = None  # torch threads for every run; None: all cores (never load-dependent)
    report_only: bool = False  # train nothing: report (and copy the demo of) the runs already finished
    rates: tuple[float, ...] = (0.0,)  # core.corpus.false_negatives: every arm trains at each rate (0: the data as is)

    def cases(self) -> list[tuple[str, tuple[str, ...]]]:
        """(student, guides) of each case: the ladder, then the small-model case if any."""
        cases = [(self.student, tuple(dict.fromkeys(self.guides)))]
        if self.small_student and self.small_guides and self.small_student != self.student:
            cases.append((self.small_student, tuple(dict.fromkeys(self.small_guides))))
        return cases

    def plan(self) -> list[Arm]:
        """Every run, seed-major (seed 0: every rate, each case's arms in order; then seed 1 ...), so a
        cut-off leaves whole seeds: complete paired comparisons at every rate."""
        return [Arm(student, guide, seed, rate) for seed in self.seeds for rate in dict.fromkeys(self.rates)
                for student, guides in self.cases() for guide in guides]

    def root(self) -> Path:
        """The experiment's folder: ``out``, else the workspace's experiment folder."""
        from core.workspace import subdir

        return Path(self.out) if self.out else subdir("experiment")

    def train_settings(self, arm: Arm) -> dict:
        """The core.training.train.TrainConfig fields of an arm's run (all but ``out``)."""
        guide = {"guide": arm.guide_spec} if arm.guide_spec else {}  # MNRL and the guide-free recipes load none
        data = str(mined_path(self, arm.student)) if arm.guide == MINED else self.data
        return {"data": data, "student": arm.student, **guide, "loss": arm.loss,
                "batch_size": self.batch_size, "steps": self.steps, "lr": self.lr, "seed": arm.seed,
                "homogeneous": self.homogeneous,
                **({"false_negatives": arm.rate} if arm.rate else {})}  # rate 0: the names runs had before

    def run_name(self, arm: Arm) -> str:
        """``exp-<student>-<arm>[-r<rate>]-s<seed>-<steps>x<batch>-<hash of the settings>``: same settings,
        same folder (rate 0 keeps the name it had before rates existed)."""
        digest = hashlib.sha1(json.dumps(self.train_settings(arm), sort_keys=True).encode()).hexdigest()[:6]
        arm_name = "mnrl" if arm.guide == MNRL else short_name(arm.guide)  # a recipe: its loss
        rate = f"-r{arm.rate:g}" if arm.rate else ""
        return f"exp-{short_name(arm.student)}-{arm_name}{rate}-s{arm.seed}-{self.steps}x{self.batch_size}-{digest}"

    def command(self, report: Path | None, demo_dir: Path | None) -> str:
        """The ``gistlab experiment`` command line that reruns (or resumes) exactly this."""
        from core.training.jobs import cli

        d = ExperimentConfig()
        small = (self.small_student, self.small_guides) != (d.small_student, d.small_guides)
        rates = ",".join(f"{r:g}" for r in self.rates)
        options = {"guides": ",".join(self.guides), "steps": self.steps, "batch_size": self.batch_size,
                   "seeds": ",".join(map(str, self.seeds)), "lr": f"{self.lr:g}", "mixed": not self.homogeneous or None,
                   "false_negatives": rates if tuple(self.rates) != d.rates else None,
                   "student": self.student if self.student != d.student else None,
                   "small_student": (self.small_student or "none") if small else None,
                   "small_guides": ",".join(self.small_guides) if small else None,
                   "data": self.data if self.data != d.data else None,
                   "tasks": self.tasks if self.tasks != d.tasks else None,
                   "threads": self.threads,  # the thread count changes float sums: a rerun needs the same
                   "out": self.out, "report": report, "demo_dir": demo_dir}
        return " ".join(cli("experiment", options, program=("gistlab",)))


class MiningFailed(GistlabError):
    """The mined arm's data could not be mined: its other runs are skipped with this reason, not mined again."""


def _finished(run: Path) -> bool:
    """Whether ``run`` holds a completed training with its model saved (then it is reused)."""
    from core.training.runs import trained_model
    from core.training.status import RunState, RunStatus

    try:
        state = RunStatus.read(run, live=False).state
    except GistlabError:  # no status yet, or a damaged one: train it (again)
        return False
    return state == RunState.COMPLETED and trained_model(run) is not None


def _train_seconds(run: Path) -> float:
    """Training wall time from the run's status (started to ended)."""
    from core.training.status import RunStatus

    return RunStatus.read(run, live=False).duration_seconds()


def _reusable(run: Path) -> bool:
    """Whether ``run`` is finished and evaluated (its ledger written): reused as it is."""
    return _finished(run) and (run / LEDGER).is_file()


def run_threads(config_threads: int | None) -> int:
    """Torch threads for every run: the experiment's ``threads`` if given, else all cores.

    Fixed per experiment (never chosen from the machine's load), so a rerun of a seed repeats the
    same float summation order and reproduces its numbers. On cores shared with other work, one
    thread is faster (measured here at a load average of 14: ~12 s a step with 1 thread, ~29 s with
    2): pass ``--threads 1`` then. Each run's ledger records its thread count.
    """
    return config_threads or os.cpu_count() or 1


def _run_arm(config: ExperimentConfig, arm: Arm, run: Path, log: Callable[[str], None]) -> dict:
    """Train (unless already done) and evaluate one arm; its ledger (own clock), also saved in the run."""
    from core.training.evaluate import evaluate
    from core.training.train import TrainConfig, run_training

    import torch

    ledger_file = run / LEDGER
    if _reusable(run):
        log(f"reusing {run.name}")
        return json.loads(ledger_file.read_text())
    if config.report_only:
        raise GistlabError("not finished yet (report only: nothing trained)")
    threads = run_threads(config.threads)
    torch.set_num_threads(threads)
    cpu, load = time.process_time(), os.getloadavg()[0]
    if _finished(run):
        log(f"reusing the trained {run.name}")
    else:
        if arm.guide == MINED:  # once per experiment and student; reused by every rate and seed
            try:
                ensure_mined(config, arm.student, log)
            except Exception as exc:  # noqa: BLE001 (said once, then every mined arm of the student skips)
                raise MiningFailed(f"mining failed: {first_line(exc)}") from exc
        log(f"training {run.name} ({config.steps} steps)")
        run_training(TrainConfig(**config.train_settings(arm), out=str(run)), overwrite=True)
        if not _finished(run):  # stopped or interrupted (Ctrl-C, SIGTERM): the whole experiment ends here
            raise KeyboardInterrupt(f"{run.name} did not complete: the experiment stops; rerun to resume")
    tick = time.perf_counter()
    evaluate(str(run), config.tasks, log=log)
    ledger = {"train_s": _train_seconds(run), "eval_s": time.perf_counter() - tick, "threads": threads,
              "load": [load, os.getloadavg()[0]],
              "cpu_s": time.process_time() - cpu, "finished": datetime.now().astimezone().isoformat(timespec="seconds")}
    ledger_file.write_text(json.dumps(ledger, indent=2))
    return ledger


def run_quality_summary(arm: Arm, run: Path) -> dict | None:
    """A masking run's mask against the ground truth over all its steps (core.analysis.run_quality),
    kept in the run as ``quality.json`` (computed once): masked share, false negatives present and
    caught, precision and recall (pooled over steps; None where the denominator is 0), the related and
    unrelated shares of the masked (pooled), steps. None for arms that mask nothing or data without
    ground truth. The mined arm's record of what its filter removed is in ``mined.json``."""
    from core.analysis.run_quality import run_quality
    from core.training.runs import read_metrics

    if not arm.masks:
        return None
    cached = run / QUALITY
    if cached.is_file():
        return json.loads(cached.read_text())
    table = run_quality(run)
    if table is None:
        return None
    metrics = read_metrics(run)
    masked_share = float(pd.to_numeric(metrics.get("masked_fraction"), errors="coerce").mean()) \
        if "masked_fraction" in metrics else float("nan")
    present, caught = int(table["fn_present"].sum()), int(table["fn_caught"].sum())
    masked = _masked_cells(run)
    share = lambda col: _weighted(table, col, masked)  # noqa: E731
    summary = {"masked_share": None if masked_share != masked_share else round(masked_share, 4),
               "fn_present": present, "fn_caught": caught,
               "fn_precision": round(caught / masked["total"], 4) if masked["total"] else None,
               "fn_recall": round(caught / present, 4) if present else None,
               "related_share": share("related_share"), "unrelated_share": share("unrelated_share"),
               "steps": int(len(table))}
    cached.write_text(json.dumps(summary, indent=2))
    return summary


def _masked_cells(run: Path) -> dict:
    """Masked cells per recorded step of a run (masks.parquet), and their total."""
    from core.training.runs import read_masks

    masks = read_masks(run)
    per_step = masks.groupby("step").size().to_dict() if len(masks) else {}
    return {"per_step": per_step, "total": int(sum(per_step.values()))}


def _weighted(table: pd.DataFrame, column: str, masked: dict) -> float | None:
    """A per-step share pooled over steps: weighted by each step's masked cells (None: nothing masked)."""
    weights = table["step"].map(masked["per_step"]).fillna(0)
    values = pd.to_numeric(table[column], errors="coerce")
    keep = values.notna() & (weights > 0)
    return round(float((values[keep] * weights[keep]).sum() / weights[keep].sum()), 4) if keep.any() else None


def collect(runs: dict[Arm, Path], base_files: dict[str, list[Path]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The tidy scores (student, arm, rate, seed, task, task_type, metric, split, main_score) and per-run masking."""
    from core.training.results import results_table
    from core.training.runs import read_metrics

    frames = [results_table(files).assign(student=student, arm="base", rate=0.0, seed=-1)
              for student, files in base_files.items() if files]
    frames += [results_table(run).assign(student=arm.student, arm=arm.guide, rate=arm.rate, seed=arm.seed)
               for arm, run in runs.items()]
    columns = ["student", "arm", "rate", "seed", "task", "task_type", "metric", "split", "main_score"]
    scores = pd.concat([f[columns] for f in frames], ignore_index=True) if frames else pd.DataFrame(columns=columns)
    masking = pd.DataFrame([{"student": arm.student, "arm": arm.guide, "rate": arm.rate, "seed": arm.seed,
                             **run_masking(read_metrics(run), run_quality_summary(arm, run))}
                            for arm, run in runs.items() if arm.masks], columns=MASKING_COLUMNS)
    return scores, masking


def ladder_view(result: ExperimentResult, rate: float) -> ExperimentResult:
    """``result`` at one false-negative rate (the base models kept): what the demo copy's ladder tables
    (core.analysis.experiment_demo) hold; every rate is in experiment.json."""
    scores, masking = result.scores, result.masking
    return replace(result, runs={a: r for a, r in result.runs.items() if a.rate == rate},
                   scores=scores[(scores["arm"] == "base") | (scores["rate"] == rate)] if len(scores) else scores,
                   masking=masking[masking["rate"] == rate] if len(masking) else masking)


def _record_mining(config: ExperimentConfig, arm: Arm, run: Path) -> None:
    """Copy the mining summary (what the guide filter removed) into a mined arm's run folder."""
    summary = read_summary(mined_path(config, arm.student))
    if arm.guide == MINED and summary is not None and not (run / MINED_RECORD).is_file():
        (run / MINED_RECORD).write_text(json.dumps(summary, indent=2))


def run_experiment(
    config: ExperimentConfig,
    *,
    report: Path | None = None,
    demo_dir: Path | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> ExperimentResult:
    """Train and evaluate every arm of every rate, case and seed (reusing finished runs), reporting as runs
    finish: the report section and ``experiment.json`` (core.analysis.experiment_summary) after every run."""
    from core.analysis.experiment_summary import summarise
    from core.training.evaluate import evaluate
    from core.training.results import write_section
    from core.training.runs import runs_root

    start = time.perf_counter()
    root = Path(config.out) if config.out else None
    run_root = root / "runs" if root else runs_root()
    if config.report_only and not any(_reusable(run_root / config.run_name(arm)) for arm in config.plan()):
        raise GistlabError(f"--report-only: no finished run of this experiment in {run_root} to report: run it "
                           "without --report-only first, or give the --out it used.")
    base_files = {student: evaluate(student, config.tasks, out=root, log=log, reuse_only=config.report_only
                                    ).result_files for student, _ in config.cases()}
    result = ExperimentResult({}, pd.DataFrame(), pd.DataFrame(columns=MASKING_COLUMNS), base_files)

    def refresh() -> None:
        result.scores, result.masking = collect(result.runs, base_files)
        result.seconds = time.perf_counter() - start
        try:  # a report bug must not end a long experiment: the report can be rewritten with --report-only
            summary = summarise(config, result).to_json()
            (config.root() / SUMMARY).write_text(summary)
            if demo_dir is not None and Path(demo_dir).is_dir():
                (Path(demo_dir) / SUMMARY).write_text(summary)
            if report is not None:
                write_section(report, SECTION, render_report(config, result, config.command(report, demo_dir)))
        except Exception as exc:  # noqa: BLE001
            log(f"could not write the report or experiment.json: {first_line(exc)}")

    plan = config.plan()
    mining_failed: dict[str, str] = {}  # per student: why its mined data could not be made
    for k, arm in enumerate(plan):
        run = run_root / config.run_name(arm)
        try:
            if arm.guide == MINED and arm.student in mining_failed:
                raise MiningFailed(mining_failed[arm.student])
            result.ledgers[arm] = _run_arm(config, arm, run, log)
        except Exception as exc:  # one arm's failure (a missing extra, a bug) must not end the ladder
            if isinstance(exc, MiningFailed):
                mining_failed[arm.student] = str(exc)
            result.skipped[arm] = first_line(exc) if isinstance(exc, GistlabError) else f"failed: {first_line(exc)}"
            log(f"skipped {run.name}: {result.skipped[arm]}")
        else:
            result.runs[arm] = run
            try:  # what the run masked or mined, judged by the ground truth: a report figure, never a reason to skip
                _record_mining(config, arm, run)
                result.quality[arm] = run_quality_summary(arm, run)
            except Exception as exc:  # noqa: BLE001
                log(f"no mask quality for {run.name}: {first_line(exc)}")
            refresh()
        seed_done = k + 1 == len(plan) or plan[k + 1].seed != arm.seed
        if seed_done and demo_dir is not None:  # the demo follows the experiment seed by seed
            try:
                copy_demo(ladder_view(result, min(config.rates)), config, Path(demo_dir))
            except Exception as exc:  # noqa: BLE001 (the demo copy is rewritten with --report-only)
                log(f"could not copy the demo: {first_line(exc)}")
            refresh()  # the demo copy replaced its folder: experiment.json goes back in
    refresh()
    return result
