"""The ``gistlab`` command: the engine's jobs, headless.

Each sub-command is a pair of functions here, ``_add_<name>`` (its arguments) and ``_run_<name>``
(which imports the engine lazily, so ``gistlab --help`` stays fast). A :class:`GistlabError`
becomes one line on stderr and exit code 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import sys

from core.errors import GistlabError, GistlabWarning
from core.training.jobs import ERROR_PREFIX, SKIPPED_PREFIX
from core.paths import check_output_dir, check_output_file
from core.guides.models import GUIDE_SPECS


def _add_app(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("app", help="start the Streamlit lab (localhost only unless --address)")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--address", default=None,
                   help="listen here (default 127.0.0.1, from app/.streamlit/config.toml); 0.0.0.0 shares "
                        "the lab on a network, and then refuses server paths outside the workspace and home")
    p.set_defaults(run=_run_app)


def _run_app(args: argparse.Namespace) -> int:
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    cmd = [sys.executable, "-m", "streamlit", "run", str(root / "app" / "main.py"), "--server.port", str(args.port)]
    cmd += ["--server.address", args.address] if args.address else []  # else the script's config: 127.0.0.1
    return _wait_forwarding_signals(subprocess.Popen(cmd, cwd=root))


def _wait_forwarding_signals(child) -> int:
    """Wait for ``child``, passing it SIGTERM, SIGHUP and SIGINT (a ``kill`` of this process would
    otherwise leave the Streamlit server listening as an orphan); its exit code is ours."""
    import signal

    def forward(number, _frame) -> None:
        if child.poll() is None:
            child.send_signal(number)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    try:
        return child.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _add_eval(sub: argparse._SubParsersAction) -> None:
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
    for skipped in report.skipped:
        print(f"{SKIPPED_PREFIX}{skipped.task}: {skipped.reason}", file=sys.stderr)
    if args.csv:
        table.to_csv(args.csv, index=False)
    return 1 if report.skipped and not (report.computed or report.reused) else 0  # partial is success


def _column_mapping(text: str) -> dict[str, str]:
    """``anchor=question,positive=answer`` -> ``{"anchor": "question", "positive": "answer"}``."""
    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    if not pairs or any(len(p) != 2 or not p[0].strip() or not p[1].strip() for p in pairs):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give target=source pairs, e.g. anchor=question,positive=answer")
    return {target.strip(): source.strip() for target, source in pairs}


FLOOR_HELP = ("raise every row's mask threshold to at least this guide cosine, so a weak positive "
              "masks only candidates the guide finds genuinely close (default off: the library's rule)")


def _cosine(text: str) -> float:
    """An argparse type: a float in [-1, 1]."""
    value = float(text)
    if not -1.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a cosine: give a value in [-1, 1]")
    return value


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", argument_default=argparse.SUPPRESS,
        help="fine-tune a student (loss gist, mnrl or gist-st), recording every step in a run directory",
        description="Unset options take TrainConfig's defaults (core/training/train.py): student "
                    "bundled:minilm-l3, guide bundled:minilm-l6, loss gist, batch 32, one epoch.",
    )
    p.add_argument("--data", help="bundled (default), a .csv/.tsv/.jsonl/.parquet file, a dataset "
                                  "folder or a Hugging Face dataset id")
    p.add_argument("--data-columns", type=_column_mapping,
                   help="map the data's columns, e.g. anchor=question,positive=answer")
    p.add_argument("--hf-split", dest="data_split", help="split of a Hub dataset or folder (default train)")
    p.add_argument("--student", help="student model spec (bundled:minilm-l3, a folder, a Hub id)")
    p.add_argument("--guide", help=f"guide for gist and gist-st: {GUIDE_SPECS}")
    p.add_argument("--loss", dest="losses", type=_losses,
                   help="loss arm: gist (default), mnrl or gist-st; several, comma-separated (gist,mnrl), train "
                        "one after another in this process on the same batches, each in its own run directory")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--steps", type=int, help="optimizer steps (or give --epochs; neither: one epoch)")
    p.add_argument("--epochs", type=float)
    p.add_argument("--lr", type=float, help="peak learning rate (default 2e-5)")
    p.add_argument("--warmup-ratio", type=float, help="linear warmup share of the steps (default 0.1)")
    p.add_argument("--temperature", type=float, help="softmax temperature (default 0.01; mnrl scale = 1/T)")
    p.add_argument("--margin-strategy", choices=("absolute", "relative"))
    p.add_argument("--margin", type=float, help="mask margin (default 0)")
    p.add_argument("--contrast-anchors", action=argparse.BooleanOptionalAction,
                   help="include the a-a block (default on)")
    p.add_argument("--contrast-positives", action=argparse.BooleanOptionalAction,
                   help="include the p-p block (default on)")
    p.add_argument("--positive-floor", type=_cosine, help=FLOOR_HELP)
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
    p.set_defaults(run=_run_train)


def _losses(text: str) -> list[str]:
    """``gist,mnrl`` -> ``["gist", "mnrl"]``: known arms, each once."""
    losses = [part.strip() for part in text.split(",")]
    unknown = [loss for loss in losses if loss not in ("gist", "mnrl", "gist-st")]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown loss {unknown[0]!r}: use gist, mnrl or gist-st, comma-separated")
    if len(set(losses)) < len(losses):
        raise argparse.ArgumentTypeError(f"{text} repeats a loss: name each arm once")
    return losses


def _run_train(args: argparse.Namespace) -> int:
    from core.method.distributed import is_main
    from core.training.runs import read_status, trained_model
    from core.training.train import TrainConfig, train_arms

    settings = {k: v for k, v in vars(args).items() if k not in ("command", "run", "overwrite", "log", "losses")}
    configs = [TrainConfig.from_dict({**settings, "loss": loss}) for loss in getattr(args, "losses", [])] or [
        TrainConfig.from_dict(settings)]  # no --loss: TrainConfig's default arm
    losses = [config.loss for config in configs]
    if "guide" in vars(args) and set(losses) == {"mnrl"}:
        import warnings

        warnings.warn(f"--guide {args.guide} is not used: mnrl trains without a guide (give --loss gist,mnrl "
                      "to compare with one).", GistlabWarning, stacklevel=1)
    status, trained = {}, 0
    for out in train_arms(configs, overwrite=args.overwrite, log_name=args.log):
        trained += 1
        if not is_main():
            continue  # under torchrun, rank 0 reports the runs it wrote
        status, model = read_status(out), trained_model(out)
        when = (f"after {status['steps_done']} of {status['total_steps']} steps" if status.get("total_steps")
                else "while loading the models, before the first step")
        saved = f"model in {model}" if model else "no model saved"
        warning = f"; warning: {status['warning']}" if status.get("warning") else ""
        arm = f"{losses[trained - 1]}: " if len(losses) > 1 else ""
        print(f"{arm}{status['state']} {when}; run in {out}, {saved}{warning}", flush=True)
    if trained < len(losses) and is_main():
        print(f"not run: {', '.join(losses[trained:])} (a stop ends every arm)", flush=True)
    return 130 if status.get("state") == "interrupted" else 0


def _add_experiment(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "experiment", help="the guide ladder: mnrl and gist with each guide on the same batches, several "
                           "seeds, base and runs evaluated on the mini benchmark (finished runs reused)"
    )
    from core.analysis.experiment import ExperimentConfig

    d = ExperimentConfig()  # one place for the defaults: the config dataclass
    p.add_argument("--guides", default=",".join(d.guides),
                   help="comma-separated arms: none (= MNRL, no guide) and guide specs such as self, "
                        "bundled:minilm-l6, bundled:mpnet-base (default %(default)s)")
    p.add_argument("--steps", type=int, default=d.steps, help="training steps per run (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="default %(default)s")
    p.add_argument("--seeds", default=",".join(map(str, d.seeds)), help="comma-separated seeds (default %(default)s)")
    p.add_argument("--lr", type=float, default=d.lr, help="default %(default)s")
    p.add_argument("--mixed", action="store_true", help="mixed-task batches (default: one task per batch)")
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


def _run_experiment(args: argparse.Namespace) -> int:
    from pathlib import Path

    from core.analysis.experiment import ExperimentConfig, render_report, run_experiment

    try:
        seeds = tuple(int(s) for s in args.seeds.split(",") if s.strip())
    except ValueError:
        raise GistlabError(f"--seeds must be comma-separated integers, not {args.seeds!r}.") from None
    if not seeds or args.steps < 1:
        raise GistlabError("Give at least one seed and at least one step.")
    small = None if str(args.small_student).lower() in ("", "none") else args.small_student
    config = ExperimentConfig(steps=args.steps, batch_size=args.batch_size, seeds=seeds, lr=args.lr,
                              homogeneous=not args.mixed, tasks=args.tasks, out=args.out, data=args.data,
                              student=args.student, guides=_arms(args.guides, "--guides"),
                              small_student=small, small_guides=_arms(args.small_guides, "--small-guides"),
                              threads=args.threads, report_only=args.report_only)
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


def _add_batch_options(p: argparse.ArgumentParser, batch_help: str = "rows in the batch (default 32)",
                       batch_default: int = 32) -> None:
    """The data, models and margin settings that ``inspect`` and ``audit`` share."""
    p.add_argument("--data", default="bundled", help="bundled (default), a .csv/.tsv/.jsonl/.parquet file, "
                                                     "a dataset folder or a Hugging Face dataset id")
    p.add_argument("--data-columns", type=_column_mapping, default=None,
                   help="map the data's columns, e.g. anchor=question,positive=answer")
    p.add_argument("--hf-split", default="train", help="split of a Hub dataset or folder (default train)")
    p.add_argument("--guide", default=None, help=GUIDE_SPECS)
    p.add_argument("--student", default=None, help="also score the pairs with this student (default: none)")
    p.add_argument("--batch-size", type=int, default=batch_default, help=batch_help)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--task", default=None, help="draw batches from this task only (needs a task column)")
    p.add_argument("--margin-strategy", choices=("absolute", "relative"), default="absolute")
    p.add_argument("--margin", type=float, default=0.0, help="mask margin (default 0)")
    p.add_argument("--contrast-anchors", action=argparse.BooleanOptionalAction, default=True,
                   help="include the a-a block (default on)")
    p.add_argument("--contrast-positives", action=argparse.BooleanOptionalAction, default=True,
                   help="include the p-p block (default on)")
    p.add_argument("--positive-floor", type=_cosine, default=None, help=FLOOR_HELP)


def _add_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="mask one seeded batch (or a run's batch at a step) and list "
                                       "the masked pairs with their scores")
    _add_batch_options(p)
    p.add_argument("--run", dest="run_dir", default=None, help="open the batch this run trained on at --step (its data, "
                                               "guide, settings and trained student)")
    p.add_argument("--step", type=int, default=1, help="with --run: the step (from 1)")
    p.add_argument("--csv", default=None, help="write all masked pairs (with --compare-guide: the pairs one "
                                               "guide masks and the other keeps) to this CSV file")
    p.add_argument("--show", type=int, default=20, help="masked pairs printed (default 20)")
    p.add_argument("--compare-guide", default=None,
                   help="a second guide spec: mask the same batch with both and print each mask's precision, "
                        "their agreement and the pairs where they differ")
    p.set_defaults(run=_run_inspect)


def _run_inspect(args: argparse.Namespace) -> int:
    from core.corpus.data import load_pairs
    from core.guides.guide_cache import GuideCache
    from core.analysis.inspect import Batch, encoder, inspect_batch, open_run_batch, run_student
    from core.method.masking import MarginSettings
    from core.guides.models import DEFAULT_GUIDE, load_guide, load_model

    if args.csv:
        check_output_file(args.csv, "--csv")
    if args.run_dir:
        batch, config = open_run_batch(args.run_dir, args.step)
        guide, student, settings = config.guide, args.student or run_student(args.run_dir), config.margin_settings()
        before_training = config.student  # what guide "self" means for this run
        where = f"run {args.run_dir} step {args.step}"
    else:
        ds = load_pairs(args.data, split=args.hf_split, columns=args.data_columns, batch_size=args.batch_size)
        batch = Batch.draw(ds, args.batch_size, args.seed, args.task)
        guide, student = args.guide or DEFAULT_GUIDE, args.student
        before_training = student
        settings = MarginSettings(args.margin_strategy, args.margin, args.contrast_anchors,
                                  args.contrast_positives, args.positive_floor)
        where = f"{args.data} seed {args.seed}"
    if args.compare_guide:
        return _print_comparison(batch, (guide, args.compare_guide), before_training, settings, where, args)
    report = inspect_batch(batch, GuideCache(load_guide(guide, before_training), guide).embed, settings,
                           encoder(load_model(student)) if student else None)
    blocks = ", ".join(f"{b} {f:.1%}" for b, f in report.mask.block_fractions().items())
    floor = "" if settings.positive_floor is None else f", positive floor {settings.positive_floor:g}"
    print(f"batch of {len(batch)} from {where}; guide {guide}; {settings.margin_strategy} margin "
          f"{settings.margin:g}{floor}: {len(report.pairs)} masked pairs, {report.mask.masked_fraction():.1%} "
          f"of candidates ({blocks})")
    _print_quality(report)
    shown = report.pairs.sort_values("beats_positive_by", ascending=False).head(args.show)
    columns = ["block", "row", "text", "candidate", "guide_score", "positive_score", "threshold"]
    columns += ["relation"] if report.quality is not None else []
    columns += ["student_prefers"] if student else []
    if len(shown):
        print(shown[columns].to_string(index=False, max_colwidth=40, float_format=lambda x: f"{x:.3f}"))
    if args.csv:
        report.pairs.to_csv(args.csv, index=False)
        print(f"all {len(report.pairs)} masked pairs written to {args.csv}", file=sys.stderr)
    return 0


def _print_quality(report) -> None:
    """The mask against the ground truth (precision, relation shares, recall per block; per task
    when the batch mixes tasks) and the weak-positive rows, listed."""
    from core.method.masking import WEAK_SHARE

    quality = report.quality
    if quality is None:
        print("no ground truth in this data: precision and recall are not defined "
              "(add a 'group' column, or use --data bundled)")
    else:
        table = quality[(quality.task == "all") | (quality.block == "all")].copy()
        table["meaning_masked"] = (table["masked_same-meaning"].astype(str) + "/"
                                   + table["same_meaning_candidates"].astype(str))
        columns = ["task", "block", "masked", "precision", *(f"share_{r}" for r in
                   ("same-meaning", "same-word", "same-category", "unrelated")), "meaning_masked", "recall"]
        print("mask against the ground truth (precision: share of masked candidates that are same-meaning, "
              "same-word or same-category; recall: share of same-meaning candidates masked):")
        print(table[columns].rename(columns=lambda c: c.replace("share_", ""))
              .to_string(index=False, na_rep="n/a", float_format=lambda x: f"{x:.3f}"))
    weak = report.counts[report.counts["weak"]]
    print(f"{len(weak)} weak-positive rows (>= {WEAK_SHARE:.0%} of their candidates masked: they drop out of "
          "the loss; the guide disbelieves their pair)")
    if len(weak):
        listed = weak.assign(positive=[report.batch.positives[r] for r in weak["row"]])
        print(listed[["row", "dataset_row", "positive_score", "total", "fraction", "anchor", "positive"]]
              .to_string(index=False, max_colwidth=40, float_format=lambda x: f"{x:.3f}"))


def _print_comparison(batch, guides: tuple[str, str], student: str | None, settings, where: str,
                      args: argparse.Namespace) -> int:
    """``gistlab inspect --compare-guide``: both guides' masks of one batch, side by side."""
    from core.guides.guide_cache import GuideCache
    from core.analysis.guide_compare import compare_guides
    from core.guides.models import load_guide

    embeds = [GuideCache(load_guide(spec, student), spec).embed for spec in guides]
    result = compare_guides(batch, *embeds, settings, guides)
    print(f"batch of {len(batch)} from {where}; {settings.margin_strategy} margin {settings.margin:g}; "
          f"guide A {result.names[0]} vs guide B {result.names[1]}")
    if not result.has_ground_truth:
        print("no ground truth in this data: precision and recall are not defined")
    print(result.summary.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    blocks = ", ".join(f"{b} {j:.3f}" for b, j in result.agreement.items() if b != "all")
    print(f"agreement (Jaccard of the masked pairs): {result.agreement['all']:.3f} ({blocks}); "
          f"{len(result.disagreements)} pairs masked by one guide only")
    table = result.disagreements
    shown = table.assign(gap=(table["score_a"] - table["threshold_a"]).abs()
                         + (table["score_b"] - table["threshold_b"]).abs())
    shown = shown.sort_values("gap", ascending=False).head(args.show)
    if len(shown):
        columns = ["masked_by", "block", "row", "text", "candidate", "relation", "score_a", "threshold_a",
                   "score_b", "threshold_b"]
        print(shown[columns].to_string(index=False, max_colwidth=30, float_format=lambda x: f"{x:.3f}"))
    if args.csv:
        table.to_csv(args.csv, index=False)
        print(f"all {len(table)} pairs where the guides disagree written to {args.csv}", file=sys.stderr)
    return 0


def _add_audit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit", help="audit a whole data set with the guide: suspected false negatives, duplicate groups "
                      "and suspect positives, with their precision where the data has ground truth",
        description="Every text is embedded once (guide cache) and every row compared with every other "
                    "(core/analysis/audit.py). With --apply and --export, decisions are applied and a cleaned data "
                    "set written (core/analysis/cleaning.py).")
    _add_batch_options(p, "the guide's encoding batch size (default 64)", 64)
    p.add_argument("--out", required=True, help="folder for the report: one Parquet table per kind, summary.json")
    p.add_argument("--limit", type=int, default=None, help="audit a seeded sample of this many rows (default all)")
    p.add_argument("--duplicate-threshold", type=float, default=0.95,
                   help="guide cosine of two positives at or above which their rows are near-duplicates (default 0.95)")
    p.add_argument("--max-above", type=int, default=3, help="false negatives come from rows whose positive at "
                   "most this many other positives beat (default 3)")
    p.add_argument("--weak-share", type=float, default=0.5, help="a row whose positive this share of all other "
                   "positives beat is a suspect positive (default 0.5)")
    p.add_argument("--show", type=int, default=5, help="findings of each kind printed (default 5)")
    p.add_argument("--apply", default=None, help="a decisions JSON (the Audit page's, or hand-written) to apply")
    _add_search_option(p)
    p.add_argument("--export", default=None, help="with --apply: write the cleaned data here (.parquet, .csv, "
                   ".jsonl, or a folder for datasets' save_to_disk) and a .report.json beside it")
    p.set_defaults(run=_run_audit)


def _run_audit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from core.analysis.audit import KINDS, AuditSettings, audit, dataset_relations, progress_writer
    from core.analysis.neighbours import NeighbourSettings, search_line
    from core.analysis.cleaning import check_output, decisions_to_apply, export
    from core.corpus.data import load_pairs
    from core.guides.guide_cache import GuideCache
    from core.method.masking import MarginSettings
    from core.guides.models import DEFAULT_GUIDE, load_guide

    if bool(args.apply) != bool(args.export):
        raise GistlabError("Give --apply and --export together: the decisions to apply and where the cleaned data goes.")
    if args.batch_size < 1:
        raise GistlabError(f"--batch-size must be at least 1, not {args.batch_size}.")
    out = check_output_dir(args.out)  # before the work: a file there would fail only after the scoring
    if args.export:
        check_output(Path(args.export), args.data, "--export")
    ds = load_pairs(args.data, split=args.hf_split, columns=args.data_columns)
    decisions = decisions_to_apply(Path(args.apply), len(ds)) if args.apply else None
    guide = args.guide or DEFAULT_GUIDE
    margin = MarginSettings(args.margin_strategy, args.margin, args.contrast_anchors, args.contrast_positives,
                            args.positive_floor)
    settings = AuditSettings(margin, args.duplicate_threshold, args.max_above, args.weak_share, args.limit,
                             args.seed, args.task, NeighbourSettings(args.search, seed=args.seed))
    report = audit(ds, GuideCache(load_guide(guide, args.student), guide, batch_size=args.batch_size).embed, settings,
                   dataset_relations(ds), progress_writer(out),
                   about={"data": args.data, "guide": guide, "split": args.hf_split})
    report.save(out)
    summary, precision = report.summary, report.summary["precision"]
    print(f"audited {summary['audited_rows']} of {summary['rows']} rows with guide {guide} "
          f"({margin.margin_strategy} margin {margin.margin:g}) in {summary['seconds']:.1f} s")
    print(search_line(summary["search"]))
    if not summary["ground_truth"]:
        print("no ground truth in this data: precision is not defined")
    for kind, name in KINDS.items():
        table = report.table(kind)
        line = f"{name}: {report.counts()[kind]}" + (f" ({len(table)} rows)" if kind == "dup" else "")
        if precision.get(kind) is not None:
            line += f", precision {precision[kind]:.3f}"
        if "relation" in table and len(table):
            line += " (" + ", ".join(f"{n} {r}" for r, n in table["relation"].value_counts().items()) + ")"
        print(line)
        columns = {"fn": ["row", "anchor", "positive", "other_positive", "above_by"],
                   "dup": ["finding", "row", "kind", "anchor", "positive"],
                   "pos": ["row", "anchor", "positive", "positive_score", "candidates_above"]}[kind]
        columns += ["relation"] if "relation" in table else []
        if args.show and len(table):
            print(table[columns].head(args.show).to_string(index=False, max_colwidth=36,
                                                            float_format=lambda x: f"{x:.3f}"))
    print(f"report in {out}")
    if args.apply:
        written = export(ds, report, decisions, Path(args.export))
        print(f"cleaned data: {written.summary['rows_out']} of {written.summary['rows_in']} rows, "
              f"{written.summary['groups']} groups, written to {written.path} (report {written.report_path})")
    return 0


def _add_mine(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mine", help="add hard negatives (negative_1..k): a retriever proposes, the guide removes likely false "
                     "negatives (TopK-PercPos with the guide's scores)")
    p.add_argument("--data", default="bundled", help="pairs data, as for gistlab train (default bundled)")
    p.add_argument("--data-columns", type=_column_mapping, default=None,
                   help="map the data's columns, e.g. anchor=question,positive=answer")
    p.add_argument("--hf-split", default="train", help="split of a Hub dataset or folder (default train)")
    p.add_argument("--task", default=None, help="mine only this task's rows (needs a task column)")
    p.add_argument("--limit", type=int, default=None, help="mine the first this many rows (of --task)")
    p.add_argument("--retriever", default=None, help="the model that retrieves candidates (default: the student, "
                                                     "bundled:minilm-l3)")
    p.add_argument("--guide", default=None, help="the guide that filters them (default bundled:minilm-l6)")
    p.add_argument("--num-negatives", type=int, default=3, help="negatives per row (default 3)")
    p.add_argument("--candidates", type=int, default=30, help="retrieved candidates per row (default 30)")
    p.add_argument("--guide-share", type=float, default=0.95,
                   help="keep a candidate only if the guide scores it below this share of the positive (default 0.95)")
    p.add_argument("--out", required=True, help="the mined data: .parquet, .csv, .jsonl or a folder; a "
                                                ".summary.json lands beside it")
    _add_search_option(p)
    p.set_defaults(run=_run_mine)


def _add_search_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--search", choices=["auto", "exact", "index"], default="auto",
                   help="neighbour search: exact, a FAISS index (approximate, its recall reported), or auto: "
                        "exact below 50,000 rows (default auto; core/analysis/neighbours.py)")


def _run_mine(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from core.analysis.cleaning import check_output, write_dataset
    from core.corpus.data import load_pairs
    from core.guides.guide_cache import GuideCache
    from core.analysis.mining import MiningSettings, mine, select_rows
    from core.analysis.neighbours import NeighbourSettings, search_line
    from core.guides.models import DEFAULT_GUIDE, DEFAULT_STUDENT, load_guide, load_model

    out = Path(args.out)
    check_output(out, args.data)
    settings = MiningSettings(args.num_negatives, args.candidates, args.guide_share, NeighbourSettings(args.search))
    ds = select_rows(load_pairs(args.data, split=args.hf_split, columns=args.data_columns), args.task, args.limit)
    retriever, guide = args.retriever or DEFAULT_STUDENT, args.guide or DEFAULT_GUIDE
    result = mine(ds, load_model(retriever), GuideCache(load_guide(guide, retriever), guide).embed, settings,
                  about={"data": args.data, "task": args.task, "retriever": retriever, "guide": guide})
    write_dataset(result.dataset, out)
    summary = result.summary
    out.with_name(out.name + ".summary.json").write_text(json.dumps(summary, indent=2))
    print(f"{summary['rows_out']} of {summary['rows_in']} rows with {settings.num_negatives} negatives written to "
          f"{out}; the guide removed {summary['removed_by_guide']} of {summary['candidates_considered']} retrieved "
          f"candidates ({summary['removed_share']:.1%}); {summary['rows_without_enough_negatives']} rows left "
          "without enough negatives (dropped)")
    print(search_line(summary["search"]))
    shares = summary.get("same_meaning_share")
    if shares:
        removed = "n/a" if shares["removed"] is None else f"{shares['removed']:.1%}"
        kept = "n/a" if shares["kept"] is None else f"{shares['kept']:.1%}"
        print(f"ground truth: same-meaning among removed candidates {removed}, among kept {kept}")
    return 0


def _add_cache(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cache", help="fill the guide cache with every text of a dataset; under torchrun each "
                      "process encodes a shard"
    )
    p.add_argument("--guide", default=None, help=GUIDE_SPECS)
    p.add_argument("--data", default="bundled", help="pairs data, as for gistlab train (default bundled)")
    p.add_argument("--data-columns", type=_column_mapping, default=None,
                   help="map the data's columns, e.g. anchor=question,positive=answer")
    p.add_argument("--hf-split", dest="data_split", default="train",
                   help="split of a Hub dataset or folder (default train)")
    p.add_argument("--batch-size", type=int, default=64, help="the guide's encoding batch size (default 64)")
    p.set_defaults(run=_run_cache)


def _run_cache(args: argparse.Namespace) -> int:
    import time

    from core.method import distributed
    from core.corpus.data import load_pairs, text_columns
    from core.guides.guide_cache import GuideCache
    from core.guides.models import DEFAULT_GUIDE, load_guide

    distributed.init_from_env()
    if args.batch_size < 1:
        raise GistlabError(f"--batch-size must be at least 1, not {args.batch_size}.")
    spec = args.guide or DEFAULT_GUIDE
    ds = load_pairs(args.data, split=args.data_split, columns=args.data_columns)
    rows = ds[:]  # one Arrow read; ds[column] would yield the texts one row at a time
    texts = [t for column in text_columns(ds) for t in rows[column]]
    cache = GuideCache(load_guide(spec), spec, batch_size=args.batch_size)
    started = time.perf_counter()
    encoded = distributed.fill_guide_cache(cache, texts)
    if distributed.is_main():
        print(f"{len(set(texts))} distinct texts: {encoded} encoded in {time.perf_counter() - started:.1f} s "
              f"by {distributed.get_world_size()} process(es), the rest already cached; cache in {cache.path}")
    return 0


def _add_runs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list the training runs, newest first (the Train page's Past runs)")
    p.add_argument("--root", default=None, help="the folder of runs (default: <workspace>/runs)")
    p.set_defaults(run=_run_runs)


def _run_runs(args: argparse.Namespace) -> int:
    from core.training.runs import runs_text

    print(runs_text(args.root))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gistlab", description="Fine-tune text-embedding models with GISTEmbed."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_app, _add_eval, _add_train, _add_experiment, _add_inspect, _add_audit, _add_mine, _add_cache,
                _add_runs):
        add(sub)
    return parser


def _one_line_warnings() -> None:
    """Print gistlab's own warnings as ``gistlab: warning: ...`` (one line, no source echo)."""
    import warnings

    default = warnings.formatwarning

    def format_warning(message, category, *rest, **kwargs):
        if issubclass(category, GistlabWarning):
            return f"gistlab: warning: {message}\n"
        return default(message, category, *rest, **kwargs)

    warnings.formatwarning = format_warning


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _one_line_warnings()
    try:
        return int(args.run(args) or 0)
    except GistlabError as exc:
        print(f"{ERROR_PREFIX}{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("gistlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
