"""``gistlab`` commands that look at what the guide does to data: inspect, audit, mine."""

from __future__ import annotations

import argparse
import sys

from core.cli.options import CONFIG_HELP, FALSE_NEGATIVES_HELP, add_search_option, batch_options, data_options, guide_options, settings_from_args
from core.errors import GistlabError
from core.paths import check_output_dir, check_output_file


def add_inspect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", parents=[batch_options()], help="mask one seeded batch (or a run's batch at "
                                                                  "a step) and list the masked pairs with their scores")
    p.add_argument("--run", dest="run_dir", default=None, help="open the batch this run trained on at --step (its data, "
                                               "guide, settings and trained student)")
    p.add_argument("--step", type=int, default=1, help="with --run: the step (from 1)")
    p.add_argument("--false-negatives", type=float, default=0.0, help=FALSE_NEGATIVES_HELP)
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
    from core.guides.models import DEFAULT_GUIDE, load_guide, load_model

    if args.csv:
        check_output_file(args.csv, "--csv")
    if args.run_dir:
        batch, config = open_run_batch(args.run_dir, args.step)
        guide, student, settings = config.guide, args.student or run_student(args.run_dir), config.masking
        before_training = config.student  # what guide "self" means for this run
        where = f"run {args.run_dir} step {args.step}"
    else:
        ds = load_pairs(args.data, split=args.data_split, columns=args.data_columns, batch_size=args.batch_size)
        batch = Batch.draw(ds, args.batch_size, args.seed, args.task, args.false_negatives)
        guide, student = args.guide or DEFAULT_GUIDE, args.student
        before_training = student
        settings = settings_from_args(args)
        where = f"{args.data} seed {args.seed}" + (f" at false-negative rate {args.false_negatives:g}"
                                                   if args.false_negatives else "")
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
    """The mask against the ground truth (false negatives present, caught and missed; precision,
    recall and the two cost shares, per block; per task when the batch mixes tasks) and the
    weak-positive rows, listed."""
    from core.method.groundtruth import in_words, quality_table
    from core.method.masking import WEAK_SHARE

    quality = report.quality
    if quality is None:
        print("no ground truth in this data: precision and recall are not defined "
              "(add a 'group' column, or use --data bundled)")
    else:
        pooled = quality[(quality.task == "all") & (quality.block == "all")].iloc[0]
        print(in_words(pooled))
        print("per block and task (a false negative: a right answer for the row by its task's relation; "
              "precision = caught / masked, recall = caught / present):")
        print(quality_table(quality).to_string(index=False, na_rep="n/a", float_format=lambda x: f"{x:.3f}"))
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


def add_audit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "audit", parents=[batch_options("the guide's encoding batch size (default 64)", 64)], help="audit a whole data set with the guide: suspected false negatives, duplicate groups "
                      "and suspect positives, with their precision where the data has ground truth",
        description="Every text is embedded once (guide cache) and every row compared with every other "
                    "(core/analysis/audit.py). With --apply and --export, decisions are applied and a cleaned data "
                    "set written (core/analysis/cleaning.py).")
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
    add_search_option(p)
    p.add_argument("--export", default=None, help="with --apply: write the cleaned data here (.parquet, .csv, "
                   ".jsonl, or a folder for datasets' save_to_disk) and a .report.json beside it")
    p.add_argument("--config", help=CONFIG_HELP)
    p.set_defaults(run=_run_audit)


def _run_audit(args: argparse.Namespace) -> int:
    from pathlib import Path

    from core.analysis.audit import (KINDS, LOADING, LOADING_STEPS, AuditSettings, audit, dataset_relations,
                                     progress_writer)
    from core.analysis.cleaning import check_output, decisions_to_apply, export
    from core.analysis.neighbours import NeighbourSettings, search_line
    from core.corpus.data import load_pairs
    from core.guides.guide_cache import GuideCache
    from core.guides.models import DEFAULT_GUIDE, load_guide

    if bool(args.apply) != bool(args.export):
        raise GistlabError("Give --apply and --export together: the decisions to apply and where the cleaned data goes.")
    if args.batch_size < 1:
        raise GistlabError(f"--batch-size must be at least 1, not {args.batch_size}.")
    out = check_output_dir(args.out)  # before the work: a file there would fail only after the scoring
    if args.export:
        check_output(Path(args.export), args.data, "--export")
    progress = progress_writer(out)  # the Audit page counts the loading steps too (a first load takes ~45 s)
    loaded = lambda step: progress(LOADING, step, len(LOADING_STEPS))  # noqa: E731
    loaded(0)
    ds = load_pairs(args.data, split=args.data_split, columns=args.data_columns)
    decisions = decisions_to_apply(Path(args.apply), len(ds)) if args.apply else None
    guide = args.guide or DEFAULT_GUIDE
    margin = settings_from_args(args)
    search = NeighbourSettings(args.search, seed=args.seed, target_recall=args.recall)
    settings = AuditSettings(margin, args.duplicate_threshold, args.max_above, args.weak_share, args.limit,
                             args.seed, args.task, search)
    loaded(1)
    guide_model = load_guide(guide, args.student)
    loaded(2)
    cache = GuideCache(guide_model, guide, batch_size=args.batch_size)
    loaded(3)
    report = audit(ds, cache.embed, settings, dataset_relations(ds), progress,
                   about={"data": args.data, "guide": guide, "split": args.data_split})
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


def add_mine(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "mine", parents=[data_options(), guide_options()], help="add hard negatives (negative_1..k): a retriever proposes, the guide removes likely false "
                     "negatives (TopK-PercPos with the guide's scores)")
    p.add_argument("--task", default=None, help="mine only this task's rows (needs a task column)")
    p.add_argument("--limit", type=int, default=None, help="mine the first this many rows (of --task)")
    p.add_argument("--retriever", default=None, help="the model that retrieves candidates (default: the student, "
                                                     "bundled:minilm-l3)")
    p.add_argument("--num-negatives", type=int, default=3, help="negatives per row (default 3)")
    p.add_argument("--candidates", type=int, default=30, help="retrieved candidates per row (default 30)")
    p.add_argument("--guide-share", type=float, default=0.95,
                   help="keep a candidate only if the guide scores it below this share of the positive (default 0.95)")
    p.add_argument("--out", required=True, help="the mined data: .parquet, .csv, .jsonl or a folder; a "
                                                ".summary.json lands beside it")
    add_search_option(p)
    p.set_defaults(run=_run_mine)


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
    search = NeighbourSettings(args.search, target_recall=args.recall)
    settings = MiningSettings(args.num_negatives, args.candidates, args.guide_share, search)
    ds = select_rows(load_pairs(args.data, split=args.data_split, columns=args.data_columns), args.task, args.limit)
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
    shares = summary.get("false_negative_share")
    if shares:
        removed = "n/a" if shares["removed"] is None else f"{shares['removed']:.1%}"
        kept = "n/a" if shares["kept"] is None else f"{shares['kept']:.1%}"
        print(f"ground truth: false negatives (right answers by the task's relation) among removed candidates "
              f"{removed}, among kept {kept}")
    return 0
