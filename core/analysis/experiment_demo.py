"""The guide ladder's demo copy: the first seed's MNRL run and strongest-guide run, without weights,
with the experiment's tidy scores and masking figures, for the Demo page (``assets/demo/``).

The copy is staged beside ``dest`` and swapped in whole, so the page never reads half a demo; the
sample batch (the inspector's table of the clearest early batch) is reused while the GIST run is the
same, since finding it loads the guide and the trained student.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from core.analysis.experiment_plan import Arm, ExperimentResult
from core.training.results import MNRL

if TYPE_CHECKING:
    from core.analysis.experiment import ExperimentConfig

DEMO_MASK_STEPS = 5
DEMO_SEARCH_STEPS = 20
DEMO_FILES = ("config.json", "status.json", "metrics.jsonl", "batches.jsonl")
DEMO_SCORES, DEMO_MASKING, DEMO_SAMPLE = "ladder_scores.csv", "ladder_masking.csv", "sample_batch.json"


def copy_demo(result: ExperimentResult, config: ExperimentConfig, dest: Path) -> None:
    """Copy the first seed's MNRL run and strongest-guide run (ladder case) into ``dest`` for the demo page.

    Writes ``dest/mnrl/`` and ``dest/gist/`` (config, status, metrics, batches, masks of the first
    steps and of the sample batch's step, so core.analysis.run_quality can judge the card's batch
    from the copy; results JSON; no weights), ``dest/results.csv`` (base and both runs),
    ``dest/sample_batch.parquet`` (the masked pairs of the GIST run's sample batch, as the inspector
    shows them), and the whole experiment's tidy scores and masking figures.
    """
    from core.training.results import results_table
    from core.training.runs import read_masks

    student, guides = config.cases()[0]
    seed = min((arm.seed for arm in result.runs), default=None)
    ready = [g for g in reversed(guides) if Arm(student, g, seed).loss == "gist" and Arm(student, g, seed) in result.runs]
    if seed is None or Arm(student, MNRL, seed) not in result.runs or not ready:
        return
    pair = {"mnrl": result.runs[Arm(student, MNRL, seed)], "gist": result.runs[Arm(student, ready[0], seed)]}
    staging = dest.with_name(f".{dest.name}-staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shipped = dest / "sample_batch.parquet"
    same_run = all((dest / "gist" / name).is_file() and (pair["gist"] / name).is_file()  # the very same run, not
                   and (dest / "gist" / name).read_bytes() == (pair["gist"] / name).read_bytes()  # a rerun of its
                   for name in ("config.json", "metrics.jsonl"))  # settings on rebuilt data (its timings differ)
    if same_run and shipped.is_file() and (dest / DEMO_SAMPLE).is_file():
        for name in ("sample_batch.parquet", DEMO_SAMPLE):  # same run as last time: same batch
            shutil.copy2(dest / name, staging / name)
    else:
        pairs, stats = _sample_batch(pair["gist"])
        pairs.to_parquet(staging / "sample_batch.parquet", index=False)
        (staging / DEMO_SAMPLE).write_text(json.dumps(stats, indent=2))
    sample_step = json.loads((staging / DEMO_SAMPLE).read_text()).get("step")
    for name, run in pair.items():
        target = staging / name
        target.mkdir()
        for file in DEMO_FILES:
            if (run / file).is_file():
                shutil.copy2(run / file, target / file)
        masks = read_masks(run)
        kept = (masks["step"] <= DEMO_MASK_STEPS) | (masks["step"] == sample_step)
        masks[kept].to_parquet(target / "masks.parquet", index=False)
        for found in run.glob("results/*/*/*"):
            copied = target / found.relative_to(run)
            copied.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(found, copied)
    table = results_table([*result.base_files.get(student, []), *pair.values()])
    table.drop(columns="path").to_csv(staging / "results.csv", index=False)
    result.scores.to_csv(staging / DEMO_SCORES, index=False)
    result.masking.to_csv(staging / DEMO_MASKING, index=False)
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)


def _sample_batch(run: Path) -> tuple[pd.DataFrame, dict]:
    """The inspector's masked-pairs table for the demo (the run's clearest batch, trained student) and
    its denominators: rows, candidates, masked, weak-positive rows, precision against the ground truth.

    Of the first DEMO_SEARCH_STEPS batches, one whose mask holds both a caught false negative and a
    cost (core.analysis.demo_story.story_pairs: the Demo's card shows the two side by side), else one
    with a caught false negative, then the one whose DEMO_PAIRS clearest masked pairs
    (core.method.explain.clearest_pairs) the guide scores highest: with WordNet a category batch masks
    many candidates against weak positives, which explains the method less well than two senses of
    one word. The table gets ``step`` and ``weak_row`` (the row masks at
    least 90% of its candidates) columns.
    """
    from core.analysis.demo_story import story_pairs
    from core.method.explain import DEMO_PAIRS, clearest_pairs
    from core.guides.guide_cache import GuideCache
    from core.analysis.inspect import encoder, inspect_batch, open_run_batches, run_student
    from core.guides.models import load_guide, load_model
    from core.training.runs import read_metrics

    steps = range(1, min(DEMO_SEARCH_STEPS, len(read_metrics(run))) + 1)
    batches, config = open_run_batches(run, steps)
    guide = GuideCache(load_guide(config.guide, config.student, device="cpu"), config.guide)

    def rank(batch) -> tuple[bool, bool, float]:
        pairs = inspect_batch(batch, guide.embed, config.masking).pairs
        if not len(pairs):
            return False, False, float("-inf")
        caught, cost = story_pairs(pairs)
        return caught is not None and cost is not None, caught is not None, \
            clearest_pairs(pairs, DEMO_PAIRS)["guide_score"].mean()

    best = max(range(len(batches)), key=lambda k: rank(batches[k]))
    student = encoder(load_model(run_student(run), device="cpu"))
    report = inspect_batch(batches[best], guide.embed, config.masking, student)
    mask = report.mask
    weak = mask.weak_rows().numpy()
    quality = report.quality
    pooled = (quality[(quality["task"] == "all") & (quality["block"] == "all")].iloc[0]
              if quality is not None and len(quality) else None)
    shares = {} if pooled is None else {  # the three-way split of the mask (core.method.groundtruth)
        "false_negatives": int(pooled["false_negatives"]), "caught": int(pooled["caught"]),
        "related": int(pooled["masked_same-word"] + pooled["masked_same-category"]),
        "unrelated": int(pooled["masked_unrelated"])}
    precision = None if pooled is None or pooled["precision"] != pooled["precision"] else float(pooled["precision"])
    stats = {"step": steps[best], "guide": config.guide, "rows": len(batches[best]),
             "candidates": sum(int(mask.candidates[b].sum()) for b in mask.blocks),
             "masked": sum(int(mask.masked_candidates(b).sum()) for b in mask.blocks),
             "weak_rows": int(weak.sum()), "precision": precision, **shares}
    return report.pairs.assign(step=steps[best], weak_row=weak[report.pairs["row"].to_numpy()]), stats
