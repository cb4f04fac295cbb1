"""Demo: the GISTEmbed story for stakeholders, drawn from the precomputed files in ``assets/demo/`` only.

Nothing is computed and no model is loaded, so the page appears at once: a sample batch with each
masked pair explained in a sentence, the paired gist/mnrl run's curves, and its evaluation results.
The folder (written by ``gistlab experiment --demo-dir``; ``GISTLAB_DEMO_DIR`` points the page at
another one) holds ``gist/`` and ``mnrl/`` run directories, ``sample_batch.parquet`` (core.inspect's
masked-pairs table) and ``results.csv`` (core.results).
"""

import json
import os
from pathlib import Path

import pandas as pd
import streamlit as st

from app.views import OVERLAP_NOTE, curves_figure, page_link, scores_figure
from core.explain import DEMO_PAIRS, clearest_pairs, explain
from core.results import mark_overlaps

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


runs = {
    json.loads(config.read_text()).get("loss", config.parent.name):
        pd.read_json(config.parent / "metrics.jsonl", lines=True)
    for config in sorted(demo_dir.glob("*/config.json"))
}
table_file, batch_file = demo_dir / "results.csv", demo_dir / "sample_batch.parquet"
table = pd.read_csv(table_file) if table_file.is_file() else None
pairs = pd.read_parquet(batch_file) if batch_file.is_file() else None

headline = st.columns(3)
if "gist" in runs and len(runs["gist"]):
    headline[0].metric("Candidates the guide masked", f"{runs['gist']['masked_fraction'].mean():.0%}",
                       help="Mean share of in-batch candidates masked per training step (GIST run).")
if pairs is not None:
    headline[1].metric("Masked in the sample batch", f"{len(pairs)}")
if table is not None and {"gist", "mnrl"} <= set(table["loss"].dropna()):
    means = table.groupby("loss")["main_score"].mean()
    headline[2].metric("Benchmark mean, GIST vs MNRL", f"{means['gist']:.3f}",
                       delta=f"{means['gist'] - means['mnrl']:+.3f}")

st.subheader("1. A training batch: what the guide masked")
if pairs is not None:
    step = f" (step {pairs['step'].iloc[0]})" if "step" in pairs and len(pairs) else ""
    st.caption(f"{len(pairs)} candidates were masked in this batch{step} of the GIST run; the "
               f"{DEMO_PAIRS} the guide finds most alike:")
    for _, pair in clearest_pairs(pairs, DEMO_PAIRS).iterrows():
        with st.container(border=True):
            left, right = st.columns(2)
            left.markdown(f"**Row** · {pair['text']}")
            right.markdown(f"**Masked {pair['candidate_role']}** · {pair['candidate']}")
            st.caption(explain(pair))
else:
    st.info("No sample batch in the demo files.")

st.subheader("2. The paired run: same batches, same seed, with and without the guide")
if runs:
    left, right = st.columns(2)
    left.plotly_chart(curves_figure(runs, "loss", "Training loss"), width="stretch")
    right.plotly_chart(curves_figure(runs, "masked_fraction", "Share of candidates masked"),
                       width="stretch")
else:
    st.info("No finished run in the demo files.")

st.subheader("3. What it did to the benchmark")
if table is not None:
    scores = mark_overlaps(table.assign(run=table["loss"]))  # label the bars by arm: gist, mnrl, base
    st.plotly_chart(scores_figure(scores, "task", "Main score per task (held-out WordNet synsets)"),
                    width="stretch")
    if scores["task"].str.endswith(" *").any():
        st.caption(OVERLAP_NOTE)
else:
    st.info("No results in the demo files.")

st.divider()
st.markdown("**Try it yourself**")
links = st.columns(2)
with links[0]:
    page_link("inspect.py", "Inspect a batch with your own margin", ":material/grid_on:")
with links[1]:
    page_link("train.py", "Train a paired comparison", ":material/model_training:")
