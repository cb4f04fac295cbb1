"""Demo: the GISTEmbed story for stakeholders, drawn from the precomputed files in ``assets/demo/`` only.

Nothing is computed and no model is loaded, so the page appears at once. The headline numbers come
from the multi-seed guide ladder (``gistlab experiment``): each guide minus MNRL on the same seeds
and batches, with its spread and seed count. Then one training batch, each masked pair shown with
the row, its own positive, the candidate and both guide scores and explained by case (another right
answer, another sense of the word, a weak positive...), and the first seed's paired runs.

The folder (written by ``gistlab experiment --demo-dir``; ``GISTLAB_DEMO_DIR`` points the page at
another one) holds ``gist/`` and ``mnrl/`` run directories, ``sample_batch.parquet`` (core.analysis.inspect's
masked-pairs table) with ``sample_batch.json`` (its denominators), ``results.csv`` (core.training.results)
and the experiment's ``ladder_scores.csv`` and ``ladder_masking.csv``.
"""

import json
import os
from pathlib import Path

import pandas as pd
import streamlit as st

from app.paired_charts import arm_hue, paired_delta_figure, seeds_text, task_scores_figure
from app.views import curves_figure, page_link
from core.method.explain import DEFINITION, DEMO_PAIRS, KIND, case, clearest_pairs, explain, split_counts
from core.training.results import MEAN_TASK, MNRL, arm_label, arm_summary, paired_deltas

demo_dir = Path(os.environ.get("GISTLAB_DEMO_DIR") or Path(__file__).resolve().parents[2] / "assets" / "demo")

st.title("What the guide removes, and why it matters")
st.markdown(
    "Contrastive training treats every other text in a batch as a wrong answer. In real data some "
    "of them are right answers too (the same meaning, another sense of the same word), and the "
    "loss then teaches the model to push apart texts that belong together. **GISTEmbed** asks a "
    "frozen *guide* model to score every in-batch candidate: any candidate the guide finds at least "
    "as close as the row's own positive is masked out of the loss."
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
runs = {loss: pd.read_json(c["folder"] / "metrics.jsonl", lines=True)
        for loss, c in sorted(configs.items(), key=lambda item: item[0] != "mnrl")  # MNRL first
        if (c["folder"] / "metrics.jsonl").is_file()}
guide = configs.get("gist", {}).get("guide")
student = configs.get("gist", {}).get("student")
pairs = read("sample_batch.parquet", pd.read_parquet)
sample = read("sample_batch.json", lambda p: json.loads(p.read_text())) or {}
scores = read("ladder_scores.csv", pd.read_csv)
masking = read("ladder_masking.csv", pd.read_csv)
metrics = (scores.drop_duplicates("task").set_index("task")["metric"].dropna().to_dict()
           if scores is not None and "metric" in scores else {})

# ---------------------------------------------------------------- headline: the multi-seed experiment
deltas = None
if scores is not None and student is not None:
    own = scores[scores["student"] == student]
    deltas = paired_deltas(own, [])
headline = st.columns(3)
if deltas is not None and guide is not None and ((deltas["arm"] == guide) & (deltas["task"] == MEAN_TASK)).any():
    row = deltas[(deltas["arm"] == guide) & (deltas["task"] == MEAN_TASK)].iloc[0]
    n = int(row["seeds"])
    spread = f" ± {row['spread']:.4f}" if n > 1 else ""
    headline[0].metric(f"{arm_label(guide)} − MNRL", f"{row['delta']:+.4f}{spread}",  # a longer label was cut off
                       help=f"Paired over {seeds_text(n)}: same batches, with and without the mask; higher in "
                            f"{int(row['wins'])} of {n} seeds. ± is the std of the per-seed differences.")
    headline[0].caption(f"Mean score difference over the tasks, {seeds_text(n)}")
if masking is not None and guide is not None and (masking["arm"] == guide).any():
    mine = masking[(masking["arm"] == guide) & (masking["student"] == student)]
    n = mine["seed"].nunique()

    def spread_of(column: str) -> str:
        return f"{mine[column].mean():.0%}" + (f" ± {mine[column].std():.0%}" if n > 1 else "")

    headline[1].metric(f"Candidates masked per step ({seeds_text(n)})", spread_of("masked"),
                       help="Mean share of in-batch candidates the guide masked per training step.")
    if "fn_precision" in mine and mine["fn_precision"].notna().any():
        recall = (f" Recall (false negatives present that the mask caught): {spread_of('fn_recall')}."
                  if "fn_recall" in mine and mine["fn_recall"].notna().any() else
                  " Recall undefined: the batches held no false negatives.")
        headline[2].metric(f"Masks that were false negatives ({seeds_text(n)})", spread_of("fn_precision"),
                           help=DEFINITION + recall)
    else:  # an experiment recorded before that definition counted related hard negatives as backed
        headline[2].metric("Masks that were false negatives", "not recorded",
                           help="This experiment was recorded before the lab counted only false negatives as "
                                "catches; the batch below is counted by the current definition. " + DEFINITION)

# ---------------------------------------------------------------- 1. one batch
st.subheader("1. A training batch: what the guide masked")
if pairs is not None:
    split = split_counts(pairs)
    if split is not None:
        present = sample.get("false_negatives")
        found = ("." if present is None else
                 "; no false negatives in this batch (recall undefined), so every mask here is a cost." if not present
                 else f"; {split['false negative']} of its {present} false negatives were caught.")
        st.caption(f"Of the {len(pairs)} masked candidates: {split['false negative']} false negatives (right "
                   f"answers: catches), {split['related hard negative']} related hard negatives and "
                   f"{split['unrelated']} unrelated (both costs){found}", help=DEFINITION)
    if sample:
        st.caption(f"{sample['masked']} of {sample['candidates']} in-batch candidates were masked in this batch "
                   f"(step {sample['step']}, {sample['rows']} rows, guide `{sample['guide']}`); "
                   f"{sample['weak_rows']} of {sample['rows']} rows were weak positives. One pair of each "
                   f"kind, then the closest ({DEMO_PAIRS} in all):")
    else:
        st.caption(f"{len(pairs)} candidates were masked in this batch of the GIST run; {DEMO_PAIRS} of them:")
    for _, pair in clearest_pairs(pairs, DEMO_PAIRS).iterrows():
        with st.container(border=True):
            left, right = st.columns(2)
            if pair.get("block") == "p-p":  # the row is compared by its positive
                left.markdown(f"**Row's positive** (compared with other positives) · {pair['text']}  \n"
                              f"guide score with its own anchor **{pair['positive_score']:.2f}**")
            else:
                left.markdown(f"**Row** · {pair['text']}")
                if pd.notna(pair.get("positive")):
                    left.markdown(f"**Its own positive** · {pair['positive']}  \nguide score "
                                  f"**{pair['positive_score']:.2f}**")
            right.markdown(f"**Masked {pair['candidate_role']}** ({KIND.get(case(pair), case(pair))}) · "
                           f"{pair['candidate']}  \n"
                           f"guide score **{pair['guide_score']:.2f}**")
            st.caption(explain(pair))
else:
    st.info("No sample batch in the demo files.")

# ---------------------------------------------------------------- 2. the ladder
st.subheader("2. Does the guide help? Each guide against MNRL, same seeds, same batches")
if scores is not None:
    for case_student, part in scores.groupby("student", sort=False):
        case_deltas = paired_deltas(part, [])
        if case_deltas.empty:
            continue
        st.plotly_chart(paired_delta_figure(case_deltas, metrics, f"Student {case_student}"), width="stretch",
                        key=f"ladder-{case_student}")
    st.caption("Dots: mean over seeds of (guide arm − MNRL) on the same batches; whiskers: std of the per-seed "
               "differences, drawn from 2 seeds up. WordNetClassification and WordNetClustering group "
               "definitions by the lexicographer categories the training triplets also use (other synsets): "
               "a gain there is partly in-domain.")
    means = arm_summary(scores[scores["student"] == student] if student else scores, [])
    means = means[means["task"] != MEAN_TASK].assign(
        label=lambda f: f["arm"].map(arm_label), main_score=lambda f: f["mean"],
        metric=lambda f: f["task"].map(metrics).fillna(""))
    colors = {arm_label(a): arm_hue(a) for a in dict.fromkeys(["base", MNRL, *means["arm"]])}
    st.plotly_chart(task_scores_figure(means, colors), width="stretch", key="ladder-scores")
    st.caption(f"Score per task, mean over seeds, student {student} (base = before fine-tuning).")
else:
    st.info("No results of the guide ladder in the demo files.")

# ---------------------------------------------------------------- 3. the paired run
st.subheader("3. The first seed's paired runs, step by step")
if runs:
    st.caption("Each loss on its own axis: GIST's softmax leaves the masked candidates out, so its loss is "
               "lower for that reason alone. Compare each curve with itself over the steps, not the two levels.")
    names = {"mnrl": "MNRL (no guide)", "gist": arm_label(guide) if guide else "GIST"}
    colors = {names["mnrl"]: arm_hue(MNRL), names["gist"]: arm_hue(guide or "gist")}
    panels = st.columns(len(runs))
    for panel, (loss, frame) in zip(panels, runs.items()):
        panel.plotly_chart(curves_figure({names[loss]: frame}, "loss", f"{names[loss]}: training loss", colors),
                           width="stretch", key=f"loss-{loss}")
    if "gist" in runs:
        left, right = st.columns(2)
        left.plotly_chart(curves_figure({names["gist"]: runs["gist"]}, "masked_fraction",
                                        "Share of in-batch candidates masked", colors), width="stretch")
        if "weak_rows" in runs["gist"]:
            right.plotly_chart(curves_figure({names["gist"]: runs["gist"]}, "weak_rows",
                                             "Weak-positive rows per step", colors), width="stretch")
else:
    st.info("No finished run in the demo files.")

st.divider()
st.markdown("**Try it yourself**")
links = st.columns(2)
with links[0]:
    page_link("inspect.py", "Inspect a batch with your own margin", ":material/grid_on:")
with links[1]:
    page_link("train.py", "Train a paired comparison", ":material/model_training:")
