"""Demo: the GISTEmbed story for stakeholders, drawn from the precomputed files in ``assets/demo/`` only.

Nothing is computed and no model is loaded, so the page appears at once. First the verdict, from the
experiment summary (``experiment.json``, core.analysis.demo_story): which student, which arm, the gain
in points over MNRL on the bundled benchmark with its spread and seed count, at which false-negative
rate (or plainly that nothing beat MNRL); whether a cheaper guide did as well; the published at-scale
figure beside it, labelled as such. Then one real batch of the demo's GIST run: a caught false
negative beside a cost, each with the scores its caption names; then the per-task differences on one
scale. Jargon (blocks, weak rows, raw losses, every masked pair) waits in an expander below the story.

The folder (written by ``gistlab experiment --demo-dir``; ``GISTLAB_DEMO_DIR`` points the page at
another one) holds ``experiment.json``, ``gist/`` and ``mnrl/`` run directories, ``sample_batch.parquet``
(core.analysis.inspect's masked-pairs table) with ``sample_batch.json`` (its denominators), and the
experiment's ``ladder_scores.csv`` (the tasks' metric names).
"""

import json
import os
from pathlib import Path

import pandas as pd
import streamlit as st

from app.paired_charts import arm_hue, delta_reach, paired_delta_figure, seeds_text
from app.views import curves_figure, page_link
from core.analysis.demo_story import (PUBLISHED, POINTS, cheaper_guide, headline_gain, paired_gains, per_rate_line,
                                      quality_line, rate_text, read_summary, story_pairs, task_count, verdict)
from core.errors import GistlabError
from core.method.explain import DEFINITION, DEMO_PAIRS, KIND, case, clearest_pairs, explain, split_counts
from core.training.results import MNRL, arm_label

demo_dir = Path(os.environ.get("GISTLAB_DEMO_DIR") or Path(__file__).resolve().parents[2] / "assets" / "demo")

st.title("What the guide removes, and why it matters")
st.markdown(
    "Contrastive training treats every other text in a batch as a wrong answer. Some of them are right "
    "answers too (*false negatives*), and the loss then pushes apart texts that belong together. "
    "**GISTEmbed** asks a frozen *guide* model to score every in-batch candidate and leaves out of the loss "
    "any candidate the guide finds at least as close as the row's own positive."
)

if not demo_dir.is_dir():
    st.error(f"The demo files are missing ({demo_dir}): rebuild them with `gistlab experiment` "
             "(see docs/RESULTS.md), or use the Inspect page, which computes everything live.")
    st.stop()


def read(name: str, reader) -> pd.DataFrame | dict | None:
    path = demo_dir / name
    return reader(path) if path.is_file() else None


configs = {(c := json.loads(file.read_text())).get("loss", file.parent.name): c | {"folder": file.parent}
           for file in sorted(demo_dir.glob("*/config.json"))}
gist = configs.get("gist", {})
pairs = read("sample_batch.parquet", pd.read_parquet)
sample = read("sample_batch.json", lambda p: json.loads(p.read_text())) or {}
scores = read("ladder_scores.csv", pd.read_csv)
metrics = (scores.drop_duplicates("task").set_index("task")["metric"].dropna().to_dict()
           if scores is not None and "metric" in scores else {})
try:
    summary = read_summary(demo_dir / "experiment.json")
except GistlabError as exc:
    summary, missing = None, str(exc)

# ---------------------------------------------------------------- the verdict
gains = paired_gains(summary) if summary else None
best = headline_gain(gains) if gains is not None else None
if summary is None:
    st.caption(f"No verdict: {missing}")
else:
    with st.container(border=True):
        st.markdown(verdict(summary, gains))
        if best is not None:
            st.caption(f"Points: the paired difference (arm − MNRL, same seed, so the same batches) of the mean "
                       f"score over the {task_count(summary)} bundled tasks, x{POINTS}; ± is the std of the per-seed "
                       f"differences over {seeds_text(best.seeds)}. A false-negative rate of r: about r x batch size "
                       "of a row's in-batch candidates are right answers for it.")
    if best is not None:
        cheaper = cheaper_guide(gains, best.rate)
        if cheaper:
            st.markdown(cheaper)
        quality = quality_line(summary, best.rate, best.arm)
        if quality:
            st.caption(quality, help=DEFINITION)
        st.caption(per_rate_line(gains))
with st.container(border=True):
    st.markdown(f"**At scale** · {PUBLISHED.sentence()}")
    st.caption(f"{PUBLISHED.source}. The lab's own figures above come from a small student trained for a few steps "
               "on the bundled WordNet data: they show the mechanism, not the published gain.")

# ---------------------------------------------------------------- one batch: a catch beside a cost
st.subheader("One batch: a right answer caught, and what the mask cost")
caught, cost = story_pairs(pairs)
run_rate = gist.get("false_negatives") or 0.0
origin = (f"step {sample.get('step', '?')} of the demo's GIST run (guide {gist.get('guide', '?')}, seed "
          f"{gist.get('seed', '?')}, false-negative rate {rate_text(run_rate)})")


def card(pair: pd.Series, heading: str) -> None:
    with st.container(border=True):
        st.markdown(f"**{heading}**")
        if pair.get("block") == "p-p":  # the row is compared by its positive
            st.markdown(f"Row's positive · {pair['text']}")
        else:
            st.markdown(f"Row · {pair['text']}" + (f"  \nIts own positive · {pair['positive']}"
                                                   if pd.notna(pair.get("positive")) else ""))
        st.markdown(f"Masked {pair['candidate_role']} ({KIND.get(case(pair), case(pair))}) · {pair['candidate']}")
        st.markdown(f"guide score **{pair['guide_score']:.2f}** vs the row's own positive "
                    f"**{pair['positive_score']:.2f}** (threshold {pair['threshold']:.2f})")
        st.caption(explain(pair))


if caught is None:
    st.info(f"No false negative was caught in the demo's batch ({origin}): every mask there is a cost. "
            "Inspect a batch at a false-negative rate above 0 to see catches." if pairs is not None else
            "No sample batch in the demo files.")
left, right = st.columns(2)
if caught is not None:
    with left:
        card(caught, "Caught: a false negative (a right answer) left out of the loss")
if cost is not None:
    with right if caught is not None else left:
        card(cost, "Cost: an unrelated candidate removed" if case(cost) == "unrelated" else
             "Cost: a hard negative removed")
split = split_counts(pairs) if pairs is not None else None
if split is not None:
    present = sample.get("false_negatives")
    found = ("" if present is None else "; the batch held no false negatives (recall undefined)" if not present
             else f"; {sample.get('caught', split['false negative'])} of the {present} false negatives present "
                  "were caught")
    st.caption(f"From {origin}: of its {len(pairs)} masked candidates, {split['false negative']} are false negatives "
               f"(catches), {split['related hard negative']} related hard negatives and {split['unrelated']} "
               f"unrelated (costs){found}.", help=DEFINITION)

# ---------------------------------------------------------------- per task, on one scale
if gains is not None and len(gains):
    st.subheader("Per task: each arm against MNRL, same seeds, same batches")
    rates = sorted(gains["rate"].unique())
    rate = st.radio("False-negative rate", rates, index=rates.index(best.rate) if best else 0, horizontal=True,
                    format_func=rate_text, key="demo_rate")
    shown = gains[gains["rate"] == rate]
    seeds = int(shown["seeds"].max()) if len(shown) else 0
    st.plotly_chart(paired_delta_figure(shown, metrics, f"Student {summary.get('setup', {}).get('student', '?')} at a "
                                        f"false-negative rate of {rate_text(rate)}", scale=POINTS, unit=" points",
                                        reach=delta_reach(gains, POINTS)),
                    width="stretch", key="demo-deltas")
    st.caption(f"Mean score difference over the tasks, {seeds_text(seeds)}, and per task: a dot is the mean of the "
               "per-seed differences (arm − MNRL on the same batches) in points, its whisker ± their std, drawn "
               "from 2 seeds up; every rate is drawn on the same scale. WordNetClassification and "
               "WordNetClustering group definitions by the lexicographer categories the training data also "
               "uses: a gain there is partly in-domain.")

# ---------------------------------------------------------------- the details, for practitioners
with st.expander("Under the hood: blocks, weak rows, raw losses, every masked pair"):
    if summary is not None:
        rows = [{"false-negative rate": rate_text(r["rate"]), "arm": r.get("label") or arm_label(r["arm"]),
                 "seed": r["seed"], "mean over tasks": r.get("mean"), **(r.get("quality") or {})}
                for r in summary["runs"]]
        st.markdown("**Every run of the experiment** (shares are fractions of the masked candidates; precision = "
                    "false negatives masked / masked, recall = false negatives masked / present)")
        st.dataframe(pd.DataFrame(rows).rename(columns={
            "masked_share": "masked share", "fn_present": "false negatives present", "fn_caught": "caught",
            "fn_precision": "precision", "fn_recall": "recall", "related_share": "related hard negatives",
            "unrelated_share": "unrelated", "steps": "steps"}), hide_index=True)
    if pairs is not None:
        if sample:
            st.caption(f"{sample['masked']} of {sample['candidates']} in-batch candidates were masked in this batch "
                       f"(blocks a-p, a-a, p-p and a-n pooled; {sample['rows']} rows); {sample['weak_rows']} of "
                       f"{sample['rows']} rows were weak positives (the guide doubts their own positive, so they "
                       f"mask nearly everything). One pair of each kind, then the closest ({DEMO_PAIRS} in all):")
        for _, pair in clearest_pairs(pairs, DEMO_PAIRS).iterrows():
            st.markdown(f"- **{pair['text']}** · masked {pair['candidate_role']} ({KIND.get(case(pair), case(pair))}, "
                        f"block {pair.get('block', '?')}): {pair['candidate']}")
            st.caption(explain(pair))
    runs = {loss: pd.read_json(c["folder"] / "metrics.jsonl", lines=True)
            for loss, c in sorted(configs.items(), key=lambda item: item[0] != "mnrl")  # MNRL first
            if (c["folder"] / "metrics.jsonl").is_file()}
    if runs:
        st.caption("The paired runs' raw losses, each on its own axis: GIST's softmax leaves the masked candidates "
                   "out, so its loss is lower for that reason alone. Compare each curve with itself over the steps.")
        names = {"mnrl": arm_label(MNRL), "gist": arm_label(gist["guide"]) if gist.get("guide") else "GIST"}
        colors = {names["mnrl"]: arm_hue(MNRL), names["gist"]: arm_hue(gist.get("guide") or "gist")}
        for panel, (loss, frame) in zip(st.columns(len(runs)), runs.items()):
            panel.plotly_chart(curves_figure({names[loss]: frame}, "loss", f"{names[loss]}: training loss", colors),
                               width="stretch", key=f"loss-{loss}")
        if "gist" in runs:
            left, right = st.columns(2)
            left.plotly_chart(curves_figure({names["gist"]: runs["gist"]}, "masked_fraction",
                                            "Share of in-batch candidates masked", colors), width="stretch")
            if "weak_rows" in runs["gist"]:
                right.plotly_chart(curves_figure({names["gist"]: runs["gist"]}, "weak_rows",
                                                 "Weak-positive rows per step", colors), width="stretch")
    elif pairs is None and summary is None:
        st.info("No finished run in the demo files.")

st.divider()
st.markdown("**Try it yourself**")
links = st.columns(2)
with links[0]:
    page_link("inspect.py", "Inspect a batch with your own margin", ":material/grid_on:")
with links[1]:
    page_link("train.py", "Train a paired comparison", ":material/model_training:")
