"""Library-parity figures: gistlab's GISTLoss against the installed sentence-transformers' GISTEmbedLoss.

Both losses run on the same bundled batch (16 WordNet pairs with a negative) with the bundled
3-layer student and all-MiniLM-L6-v2 as guide (one tokenizer, so the library's guide sees the same
tokens as gistlab's cached guide). Each case prints the library's loss, gistlab's, their difference
and the largest gradient difference relative to that tensor's largest entry. The last cases repeat
margin -1, where the rule keeps every candidate: gistlab still masks a text against itself
(a_i-a_i, p_i-p_i) and against an identical text in another row, so there the two differ on purpose,
by an amount that depends on what the library masks itself (6.3 masks the self cells too).

    python scripts/parity_figures.py --json parity.json    # also a Markdown table on stdout

scripts/check_upgrades.sh runs it with the locked and the newest versions and puts both in
docs/UPGRADES.md, so a release that moves the library's loss shows up as a number.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sentence_transformers.sentence_transformer.losses import GISTEmbedLoss  # noqa: E402

from core.corpus.bundled import bundled_pairs  # noqa: E402
from core.corpus.data import sample_batch  # noqa: E402
from core.guides.guide_cache import GuideCache  # noqa: E402
from core.guides.models import load_model  # noqa: E402
from core.method.loss import GISTLoss  # noqa: E402
from core.method.masking import MarginSettings  # noqa: E402

CASES = [(f"{strategy} {margin:+.2f}", MarginSettings(strategy, margin), False)
         for strategy in ("absolute", "relative") for margin in (0.0, 0.1, -0.1)]
CASES += [("absolute -1.00 (keeps everything)", MarginSettings("absolute", -1.0), False),
          ("absolute -1.00, row 1 repeats row 0's anchor", MarginSettings("absolute", -1.0), True)]


def batch(duplicate: bool):
    """The bundled batch (seed 0, task example_definition, 16 rows), row ids as labels; with
    ``duplicate`` row 1's anchor repeats row 0's."""
    pairs = bundled_pairs(["example_definition"])
    ds = pairs.select(sample_batch(pairs, 16, seed=0)).select_columns(["anchor", "positive", "negative"])
    if duplicate:
        anchors = ds["anchor"]
        ds = ds.remove_columns("anchor").add_column("anchor", [anchors[0], anchors[0], *anchors[2:]])
        ds = ds.select_columns(["anchor", "positive", "negative"])
    return ds.add_column("label", list(range(len(ds))))


def run(loss_fn, student, feats, labels) -> tuple[float, dict[str, torch.Tensor]]:
    student.zero_grad()
    loss = loss_fn([dict(f) for f in feats], labels)
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in student.named_parameters() if p.grad is not None}


def figures() -> list[dict]:
    torch.manual_seed(0)
    student = load_model("bundled:minilm-l3", device="cpu").double().eval()  # float64: no rounding noise
    guide = load_model("bundled:minilm-l6", device="cpu").eval()
    rows = []
    with tempfile.TemporaryDirectory() as root:
        cache = GuideCache(guide, "bundled:minilm-l6", root=root)
        for name, settings, duplicate in CASES:
            ds = batch(duplicate)
            feats = [student.preprocess(ds[c]) for c in ("anchor", "positive", "negative")]
            labels = torch.tensor(ds["label"])
            want, want_grads = run(GISTEmbedLoss(student, guide, **settings.library_options()), student, feats, labels)
            got, got_grads = run(GISTLoss(student, cache, ds, settings=settings), student, feats, labels)
            grad = max(((got_grads[k] - g).abs().max() / max(g.abs().max().item(), 1.0)).item()
                       for k, g in want_grads.items())
            rows.append({"case": name, "library": want, "gistlab": got, "difference": got - want,
                         "max_grad_difference": grad})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the figures and versions here")
    args = parser.parse_args()
    versions = {name: version(name) for name in ("sentence-transformers", "transformers", "torch")}
    rows = figures()
    print(" · ".join(f"{k} {v}" for k, v in versions.items()))
    print("\n| case | library loss | gistlab loss | difference | max grad difference (relative) |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['case']} | {r['library']:.6f} | {r['gistlab']:.6f} | {r['difference']:+.2e} | "
              f"{r['max_grad_difference']:.1e} |")
    if args.json:
        args.json.write_text(json.dumps({"versions": versions, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
