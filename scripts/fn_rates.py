"""Measure the false negatives that training batches of the bundled data hold, per task.

    python scripts/fn_rates.py              # print the table and write it into assets/README.md
    python scripts/fn_rates.py --no-write   # print only

Batches are drawn as training draws them: every full batch of epoch 0, seed 0, task-homogeneous
(core.corpus.data.epoch_batches through core.corpus.false_negatives.false_negative_plan, which
adds rows at ``--false-negatives`` RATE > 0). A candidate of row i is another row's positive (a-p),
anchor (a-a) or positive (p-p); it is a false negative when core.method.groundtruth.relations says
so (the task's relation, core.corpus.bundled.TASK_RELATIONS). Each false-negative candidate is
*identical* when its text equals row i's anchor or positive (the identical-text rule masks it
whatever the guide), else *distinct* (what a guide must judge). Runs in well under a minute.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.corpus.bundled import TRAIN_TASKS, bundled_pairs  # noqa: E402
from core.corpus.false_negatives import false_negative_plan  # noqa: E402
from core.method.groundtruth import FALSE_NEGATIVE, ground_truth, relations, stack_truths  # noqa: E402

BLOCKS = {"a-p": ("anchor", "positive"), "a-a": ("anchor", "anchor"), "p-p": ("positive", "positive")}
TRUTH = [f"{role}_{kind}" for role in ("anchor", "positive") for kind in ("synset", "lemmas", "category")]
BEGIN, END = "<!-- fn-rates:begin -->", "<!-- fn-rates:end -->"
README = Path(__file__).resolve().parent.parent / "assets" / "README.md"


@dataclass(frozen=True)
class Rate:
    """False-negative candidates of one task's batches: per row (all three blocks, and a-p alone),
    the share of rows with any, and how many are identical to the row's texts or distinct."""

    task: str
    batch_size: int
    rate: float
    per_row: float
    per_row_ap: float
    rows_with: float
    identical: int
    distinct: int


def measure(ds, task: str, batch_size: int, rate: float, seed: int = 0) -> Rate:
    """The false negatives of ``task``'s batches of ``batch_size`` in epoch 0 at ``rate``."""
    plan = false_negative_plan(ds, batch_size, seed, rate, homogeneous=True, epochs=1)
    table = plan.pairs.with_format("arrow")[:]
    columns = {c: table[c].to_pylist() for c in ("anchor", "positive", "task", *TRUTH)}
    batches = [b for b in plan.batches(0) if columns["task"][b[0]] == task]
    truths = [ground_truth({c: [values[r] for r in b] for c, values in columns.items()}) for b in batches]
    rel = relations(stack_truths(truths), BLOCKS)
    off_diagonal = ~torch.eye(batch_size, dtype=torch.bool)
    fn_total = torch.zeros(len(batches), batch_size, dtype=torch.long)
    identical = distinct = 0
    for block, (row_side, cand_side) in BLOCKS.items():
        fn = (rel[block] == FALSE_NEGATIVE) & off_diagonal
        fn_total += fn.sum(-1)
        for k, b in enumerate(batches):
            for i, j in fn[k].nonzero().tolist():
                text = columns[cand_side][b[j]]
                same = text in (columns["anchor"][b[i]], columns["positive"][b[i]])
                identical += same
                distinct += not same
    ap = ((rel["a-p"] == FALSE_NEGATIVE) & off_diagonal).sum(-1)
    return Rate(task, batch_size, rate, fn_total.float().mean().item(), ap.float().mean().item(),
                (fn_total > 0).float().mean().item(), identical, distinct)


def rate_table(ds, sizes=(16, 32, 64), rates=(0.0, 0.1, 0.2), tasks=TRAIN_TASKS) -> list[Rate]:
    """:func:`measure` for every task, batch size and rate (tasks absent from ``ds`` skipped)."""
    present = set(ds.with_format("arrow")["task"].to_pylist())
    return [measure(ds, t, b, r) for r in rates for t in tasks if t in present for b in sizes]


def markdown(rates: list[Rate]) -> str:
    """The table as Markdown."""
    lines = ["| `--false-negatives` | task | batch | FN candidates / row | of them a-p | rows with >= 1 | "
             "identical / row | distinct / row |", "|---|---|---|---|---|---|---|---|"]
    for r in rates:
        scale = r.per_row / max(r.identical + r.distinct, 1)  # counted candidates -> per row
        lines.append(f"| {r.rate:g} | `{r.task}` | {r.batch_size} | {r.per_row:.3f} | {r.per_row_ap:.3f} | "
                     f"{r.rows_with:.1%} | {r.identical * scale:.3f} | {r.distinct * scale:.3f} |")
    return "\n".join(lines)


def write_between_markers(path: Path, body: str) -> None:
    """Replace what stands between the fn-rates markers of ``path`` with ``body``."""
    text = path.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"fn_rates: {path} has no {BEGIN} ... {END} markers: rebuild it with scripts/build_assets.py.")
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    path.write_text(pattern.sub(lambda _: f"{BEGIN}\n{body}\n{END}", text), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print the table, leave assets/README.md alone")
    args = parser.parse_args(argv)
    table = markdown(rate_table(bundled_pairs()))
    print(table)
    if not args.no_write:
        write_between_markers(README, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
