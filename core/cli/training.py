"""``gistlab`` commands that train and evaluate: eval, train, experiment, cache."""

from __future__ import annotations

import argparse
import sys

from core.cli.options import CONFIG_HELP, FALSE_NEGATIVES_HELP, data_options, guide_options, losses, margin_options
from core.errors import GistlabError, GistlabWarning
from core.training.config import GUIDED, HARDNESS_MODES
from core.paths import check_output_dir, check_output_file


def add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "eval", help="evaluate a model or run on mteb tasks; results kept as mteb JSON, reused unless --overwrite",
        description="Tasks that cannot be loaded (offline, data not cached) are named and skipped; the exit "
                    "status is 1 only when no task has a result.",
    )
    p.add_argument("--model", required=True,
                   help="bundled:minilm-l6, bundled:minilm-l3, a model folder, a run directory or a Hub id")
    p.add_argument("--tasks", default="bundled",
                   help="comma-separated: 'bundled', task names (STSBenchmark,SciFact), type:STS, "
                        "benchmark:<name> (default: bundled)")
    p.add_argument("--overwrite", action="store_true", help="recompute tasks that already have results")
    p.add_argument("--out", default=None,
                   help="results root (default: the run directory, else the workspace)")
    p.add_argument("--csv", default=None, help="also write the results table to this CSV file")
    p.add_argument("--batch-size", type=int, default=64, help="encoding batch size (default 64)")
    p.add_argument("--config", help=CONFIG_HELP)
    p.set_defaults(run=_run_eval)


def _run_eval(args: argparse.Namespace) -> int:
    from core.training.evaluate import evaluate
    from core.training.results import results_table

    if args.batch_size < 1:
        raise GistlabError(f"--batch-size must be at least 1, not {args.batch_size}.")
    if args.csv:
        check_output_file(args.csv, "--csv")
    out = check_output_dir(args.out, "--out") if args.out else None
    report = evaluate(args.model, args.tasks, out=out, overwrite=args.overwrite,
                      batch_size=args.batch_size, log=lambda line: print(line, file=sys.stderr))
    table = results_table(report.result_files)
    shown = ["model", "run", "task", "task_type", "split", "main_score", "overlaps_gist_training"]
    if not table.empty:
        print(table[shown].to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    if table["overlaps_gist_training"].any():
        print("overlaps_gist_training: published GIST models were trained on that task's training set.")
    print(f"{len(report.computed)} evaluated, {len(report.reused)} reused, {len(report.skipped)} skipped "
          f"in {report.seconds:.1f} s; results in {report.folder}", file=sys.stderr)
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 1 if report.skipped and not (report.computed or report.reused) else 0  # partial is success


def add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", argument_default=argparse.SUPPRESS, parents=[data_options(False), guide_options(False),
                                                              margin_options(False)],
        help="fine-tune a student (loss gist, mnrl, gist-st, self-judge, mnrl-hard or gist-hard), recording "
             "every step in a run directory",
        description="Unset options take TrainConfig's defaults (core/training/config.py): student "
                    "bundled:minilm-l3, guide bundled:minilm-l6, loss gist, batch 32, one epoch.",
    )
    p.add_argument("--student", help="student model spec (bundled:minilm-l3, a folder, a Hub id)")
    p.add_argument("--loss", type=losses,
                   help="loss arm: gist (default), mnrl, gist-st, self-judge (the student masks candidates it "
                        "scores above the row's positive + --judge-margin), mnrl-hard (the library's MNRL with "
                        "--hardness-mode/-strength) or gist-hard (gist's mask, then that weighting); several, "
                        "comma-separated (gist,mnrl), train one after another in this process on the same "
                        "batches, each in its own run directory")
    p.add_argument("--judge-margin", type=float,
                   help="self-judge: mask a candidate the student scores above its row's positive + this "
                        "(default 0.1, Qwen3-Embedding's; the guide rule with margin -judge-margin)")
    p.add_argument("--hardness-mode", choices=HARDNESS_MODES,
                   help="mnrl-hard, gist-hard: which negatives get strength x cos (detached) added to their "
                        "logit (default in_batch_negatives; sentence-transformers' MNRL option)")
    p.add_argument("--hardness-strength", type=float,
                   help="mnrl-hard, gist-hard: that strength, alpha (default 9, Lan et al. 2025)")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--steps", type=int, help="optimizer steps (or give --epochs; neither: one epoch)")
    p.add_argument("--epochs", type=float)
    p.add_argument("--lr", type=float, help="peak learning rate (default 2e-5)")
    p.add_argument("--warmup-ratio", type=float, help="linear warmup share of the steps (default 0.1)")
    p.add_argument("--temperature", type=float, help="softmax temperature (default 0.01; mnrl scale = 1/T)")
    p.add_argument("--false-negatives", type=float, help=FALSE_NEGATIVES_HELP)
    p.add_argument("--homogeneous", action=argparse.BooleanOptionalAction,
                   help="draw each batch from one task (needs a task column; default mixed)")
    p.add_argument("--gather-across-devices", action=argparse.BooleanOptionalAction,
                   help="under torchrun: gist/mnrl contrast every process's rows against the global "
                        "batch of all processes (default off; --batch-size is per process)")
    p.add_argument("--seed", type=int, help="one seed gives every loss arm the same batches (default 0)")
    p.add_argument("--max-seq-length", type=int, help="truncate the student's inputs to this many tokens")
    p.add_argument("--mini-batch-size", type=int,
                   help="GradCache: embed the batch this many texts at a time, so --batch-size can grow at "
                        "about flat memory; same loss and gradients (default off)")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction,
                   help="bfloat16 mixed precision (a GPU that has it, or a CPU; default off)")
    p.add_argument("--fp16", action=argparse.BooleanOptionalAction,
                   help="float16 mixed precision (CUDA GPUs only; default off)")
    p.add_argument("--out", help="run directory (default <workspace>/runs/<time>-<loss>-s<seed>, -pair- before "
                                 "the loss for several); {loss} in it is replaced by the arm, as several losses need")
    p.add_argument("--log", default=None,
                   help="write the output into this file in each arm's run directory from the arm's start on "
                        "(what a background job does: train.log)")
    p.add_argument("--overwrite", action="store_true", default=False,
                   help="replace a run that already trained in --out")
    p.add_argument("--config", help=CONFIG_HELP)
    p.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from core.method.distributed import is_main
    from core.training.runs import read_status, trained_model
    from core.training.status import RunState
    from core.training.train import TrainConfig, train_arms

    settings = {k: v for k, v in vars(args).items() if k not in ("command", "run", "overwrite", "log", "loss", "config")}
    configs = [TrainConfig.from_dict({**settings, "loss": loss}) for loss in getattr(args, "loss", [])] or [
        TrainConfig.from_dict(settings)]  # no --loss: TrainConfig's default arm
    losses = [config.loss for config in configs]
    if "guide" in vars(args) and not set(losses) & set(GUIDED):
        import warnings

        warnings.warn(f"--guide {args.guide} is not used: {', '.join(losses)} train{'s' * (len(losses) == 1)} without a guide (give "
                      "--loss gist,mnrl to compare with one).", GistlabWarning, stacklevel=1)
    status, trained = None, 0
    for out in train_arms(configs, overwrite=args.overwrite, log_name=args.log):
        trained += 1
        if not is_main():
            continue  # under torchrun, rank 0 reports the runs it wrote
        status, model = read_status(out), trained_model(out)
        when = (f"after {status.steps_done} of {status.total_steps} steps" if status.total_steps
                else "while loading the models, before the first step")
        saved = f"model in {model}" if model else "no model saved"
        warning = f"; warning: {status.warning}" if status.warning else ""
        arm = f"{losses[trained - 1]}: " if len(losses) > 1 else ""
        print(f"{arm}{status.state} {when}; run in {out}, {saved}{warning}", flush=True)
    if trained < len(losses) and is_main():
        print(f"not run: {', '.join(losses[trained:])} (a stop ends every arm)", flush=True)
    return 130 if status is not None and status.state == RunState.INTERRUPTED else 0


def add_experiment(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "experiment", help="the guide ladder: mnrl and gist with each guide on the same batches, several "
                           "seeds, base and runs evaluated on the mini benchmark (finished runs reused)"
    )
    from core.analysis.experiment import ExperimentConfig

    d = ExperimentConfig()  # one place for the defaults: the config dataclass
    p.add_argument("--guides", default=",".join(d.guides),
                   help="comma-separated arms: none (= MNRL, no guide), guide specs such as self, "
                        "bundled:minilm-l6, bundled:mpnet-base, the guide-free recipes self-judge and "
                        "mnrl-hard, gist-hard (GIST with bundled:minilm-l6 plus hardness weighting) and mined "
                        "(MNRL on negatives mined once by the student and filtered by bundled:minilm-l6) "
                        "(train's defaults for their options) (default %(default)s)")
    p.add_argument("--steps", type=int, default=d.steps, help="training steps per run (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="default %(default)s")
    p.add_argument("--seeds", default=",".join(map(str, d.seeds)), help="comma-separated seeds (default %(default)s)")
    p.add_argument("--lr", type=float, default=d.lr, help="default %(default)s")
    p.add_argument("--mixed", action="store_true", help="mixed-task batches (default: one task per batch)")
    p.add_argument("--false-negatives", default=",".join(f"{r:g}" for r in d.rates),
                   help="comma-separated false-negative rates, each arm trains at every one (e.g. 0,0.1,0.2; "
                        "default %(default)s). " + FALSE_NEGATIVES_HELP)
    p.add_argument("--student", default=d.student, help="default %(default)s")
    p.add_argument("--small-student", default=d.small_student,
                   help="second case, the paper's small model: this student with --small-guides "
                        "(default %(default)s; none leaves the case out)")
    p.add_argument("--small-guides", default=",".join(d.small_guides), help="default %(default)s")
    p.add_argument("--data", default=d.data, help="training data, as for gistlab train (default %(default)s)")
    p.add_argument("--tasks", default=d.tasks, help="evaluation tasks, as for gistlab eval")
    p.add_argument("--report-only", action="store_true", help="train and evaluate nothing: write the report "
                                                               "(and demo copy) from the runs already finished")
    p.add_argument("--threads", type=int, default=None, help="torch threads for every run, fixed so reruns reproduce "
                                                             "(default: all cores; 1 is faster on cores shared with other work)")
    p.add_argument("--out", default=None, help="folder for the runs and base results (default: the workspace)")
    p.add_argument("--report", default=None, help="write the report as the 'ladder' section of this Markdown "
                                                   "file, after every run (default: print it at the end)")
    p.add_argument("--demo-dir", default=None, help="copy the first seed's MNRL and strongest-guide runs here, "
                                                     "without weights, with the experiment's scores")
    p.set_defaults(run=_run_experiment)


def _arms(text: str, flag: str) -> tuple[str, ...]:
    arms = tuple(dict.fromkeys(a.strip() for a in text.split(",") if a.strip()))
    if not arms:
        raise GistlabError(f"{flag} needs at least one arm, e.g. none,bundled:minilm-l6.")
    return arms


def _rates(text: str) -> tuple[float, ...]:
    """``--false-negatives 0,0.1,0.2`` as checked rates, in the order given, without repeats."""
    from core.corpus.false_negatives import check_rate

    try:
        rates = tuple(dict.fromkeys(check_rate(float(r)) for r in str(text).split(",") if r.strip()))
    except ValueError:
        raise GistlabError(f"--false-negatives takes comma-separated rates such as 0,0.1,0.2, not {text!r}.") from None
    if not rates:
        raise GistlabError("--false-negatives needs at least one rate, e.g. 0 or 0,0.1,0.2.")
    return rates


def _run_experiment(args: argparse.Namespace) -> int:
    from pathlib import Path

    from core.analysis.experiment import ExperimentConfig, render_report, run_experiment

    try:
        seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    except ValueError:
        raise GistlabError(f"--seeds must be comma-separated integers, not {args.seeds!r}.") from None
    if not seeds or args.steps < 1:
        raise GistlabError("Give at least one seed and at least one step.")
    rates = _rates(args.false_negatives)
    small = None if str(args.small_student).lower() in ("", "none") else args.small_student
    config = ExperimentConfig(steps=args.steps, batch_size=args.batch_size, seeds=seeds, lr=args.lr,
                              homogeneous=not args.mixed, tasks=args.tasks, out=args.out, data=args.data,
                              student=args.student, guides=_arms(args.guides, "--guides"),
                              small_student=small, small_guides=_arms(args.small_guides, "--small-guides"),
                              threads=args.threads, report_only=args.report_only,
                              rates=rates)
    report = Path(args.report) if args.report else None
    demo = Path(args.demo_dir) if args.demo_dir else None
    result = run_experiment(config, report=report, demo_dir=demo,
                            log=lambda line: print(line, file=sys.stderr, flush=True))
    if report is None:
        print(render_report(config, result, config.command(None, demo)))
    for arm, reason in result.skipped.items():
        print(f"skipped {arm.guide} for {arm.student}, seed {arm.seed}: {reason}", file=sys.stderr)
    print(f"experiment done in {result.seconds / 60:.1f} min ({len(result.runs)} of {len(config.plan())} "
          "runs finished)", file=sys.stderr)
    return 0


def add_cache(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cache", parents=[guide_options(), data_options()], help="fill the guide cache with every text of a dataset, "
        "counted with an ETA; a stopped fill resumes where it was; under torchrun each process encodes a shard"
    )
    p.add_argument("--batch-size", type=int, default=64, help="the guide's encoding batch size (default 64)")
    p.add_argument("--out", default=None, help="a folder for summary.json once the fill finishes (the app's fills)")
    p.add_argument("--config", help=CONFIG_HELP)
    p.set_defaults(run=_run_cache)


def _run_cache(args: argparse.Namespace) -> int:
    """Fill the cache chunk by chunk (each kept once appended: a stop or a crash loses at most one), counting
    progress as events and, on the main process, as lines with an ETA on stderr."""
    import time
    from pathlib import Path

    from core.method import distributed
    from core.corpus.data import load_pairs, text_columns
    from core.fsio import write_json_atomic
    from core.guides.guide_cache import GuideCache
    from core.guides.models import DEFAULT_GUIDE, load_guide
    from core.training.cache_job import SUMMARY

    distributed.init_from_env()
    if args.batch_size < 1:
        raise GistlabError(f"--batch-size must be at least 1, not {args.batch_size}.")
    spec = args.guide or DEFAULT_GUIDE
    ds = load_pairs(args.data, split=args.data_split, columns=args.data_columns)
    rows = ds[:]  # one Arrow read; ds[column] would yield the texts one row at a time
    texts = [t for column in text_columns(ds) for t in rows[column]]
    main = distributed.is_main()
    cache = GuideCache(load_guide(spec), spec, batch_size=args.batch_size,
                       progress=_fill_report("verifying", main))
    started = time.perf_counter()
    encoded = distributed.fill_guide_cache(cache, texts, progress=_fill_report("encoding", main))
    seconds = time.perf_counter() - started
    distinct = len(set(texts))
    if main:
        print(f"{distinct} distinct texts: {encoded} encoded in {seconds:.1f} s by {distributed.get_world_size()} "
              f"process(es), the rest already cached; cache in {cache.path}")
        if args.out:
            write_json_atomic(Path(args.out) / SUMMARY, {
                "data": args.data, "guide": spec, "texts": distinct, "encoded": encoded,
                "seconds": round(seconds, 2), "cache": str(cache.path), "processes": distributed.get_world_size()})
    return 0


def _fill_report(stage: str, main: bool):
    """A fill's progress callback: on the main process, a ``progress`` event and a line with the ETA."""
    import sys
    import time

    from core.training.cache_job import FillProgress, eta_seconds
    from core.training.events import Kind, emit

    first: list[tuple[float, int]] = []

    def report(done: int, total: int) -> None:
        if not main:
            return
        now = time.time()
        first[:] = first or [(now, done)]
        emit(Kind.PROGRESS, task=stage, done=done, total=total)
        print(FillProgress(stage, done, total, eta_seconds(first[0], (now, done), total)).text(), file=sys.stderr,
              flush=True)

    return report


def add_runs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list the training runs, newest first (the Train page's Past runs)")
    p.add_argument("--root", default=None, help="the folder of runs (default: <workspace>/runs)")
    p.set_defaults(run=_run_runs)


def _run_runs(args: argparse.Namespace) -> int:
    from core.training.runs import runs_text

    print(runs_text(args.root))
    return 0
