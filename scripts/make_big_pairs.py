"""A large synthetic pairs set from the bundled WordNet texts, for auditing and mining at size.

Draws ``--rows`` rows (default 200,000) from the 24,000 bundled rows with replacement (seeded), and
rewords each drawn text with one of a few neutral frames ("{text}", "In other words: {text}", ...),
chosen per text and seed, so most rows are new texts while the provenance columns (synset, lemmas,
category) still hold: the audit's ground truth works on the result. Rows drawn twice with the same
frames are exact copies, as real large sets have.

    python scripts/make_big_pairs.py --out big_pairs.parquet            # 200k rows, seed 0
    gistlab audit --data big_pairs.parquet --out audits/big              # searches through the index
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FRAMES = ("{}", "In other words: {}", "{} (as used here)", "That is, {}", "Meaning: {}", "{}, in short",
          "As a rule, {}", "Put simply, {}")
TEXTS = ("anchor", "positive", "negative")


def make(rows: int, seed: int):
    """``rows`` reworded rows of the bundled pairs, with their provenance columns, as a datasets.Dataset."""
    from core.corpus.bundled import bundled_pairs

    source = bundled_pairs()
    rng = np.random.default_rng(seed)
    picked = source.select(np.sort(rng.choice(len(source), size=rows, replace=True)).tolist())
    frames = rng.integers(len(FRAMES), size=(rows, len(TEXTS)))
    columns = {}
    for k, role in enumerate(TEXTS):
        columns[role] = [FRAMES[f].format(text) for f, text in zip(frames[:, k], picked[role])]
    order = rng.permutation(rows).tolist()  # tasks mixed, as a practitioner's set would be
    return picked.remove_columns(list(TEXTS)).add_column("anchor", columns["anchor"]) \
        .add_column("positive", columns["positive"]).add_column("negative", columns["negative"]).select(order)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="a .parquet file")
    args = p.parse_args()
    from datasets import disable_progress_bars

    disable_progress_bars()
    if args.rows < 2 or not args.out.endswith(".parquet"):
        p.error("give --rows of at least 2 and an --out ending in .parquet")
    ds = make(args.rows, args.seed)
    ds.to_parquet(args.out)
    print(f"{len(ds)} rows ({len(set(ds['positive']))} distinct positives) written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
