"""Demo: the GISTEmbed story for stakeholders, drawn from the precomputed files in ``assets/demo/`` only.

Nothing is computed and no model is loaded, so the page appears at once: a sample batch with each
masked pair explained in a sentence, the paired gist/mnrl run's curves, and its evaluation results.
The folder holds run directories (config.json, metrics.jsonl, ...), ``sample_batch.parquet``
(core.inspect's masked-pairs table) and ``results.csv`` (core.results' tidy table).
"""

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from app.pages import OVERLAP_NOTE, curves_figure, page_link, scores_figure

DEMO_DIR = Path(__file__).resolve().parents[2] / "assets" / "demo"
demo_dir = Path(st.session_state.get("demo_dir", DEMO_DIR))

st.title("What the guide removes, and why it matters")
st.markdown(
    "Contrastive training treats every other text in a batch as a wrong answer. In real data some "
    "of them are right answers too (the same meaning, another sense of the same word), and the "
    "loss then teaches the model to push apart texts that belong together. **GISTEmbed** asks a "
    "frozen *guide* model to score every in-batch candidate: any candidate the guide finds at least "
    "as close as the row's own positive is masked out of the loss."
)

if not demo_dir.is_dir():
    st.error(f"The demo files are missing ({demo_dir}): rebuild them with scripts/build_assets.py, "
             "or use the Inspect page, which computes everything live.")
    st.stop()


def explain(pair: pd.Series) -> str:
    """One sentence on why the guide masked this candidate."""
    if pair["identical_text"]:
        return "The candidate is the very same text as this row's own anchor or positive: always masked."
    return (
        f"The guide scores this {pair['candidate_role']} at {pair['guide_score']:.2f}, above the row's "
        f"threshold {pair['threshold']:.2f} (its positive scores {pair['positive_score']:.2f}): it "
        "reads as another right answer, so the loss does not push it away."
    )


st.subheader("1. A training batch: what the guide masked")
batch_file = demo_dir / "sample_batch.parquet"
if batch_file.is_file():
    pairs = pd.read_parquet(batch_file).sort_values("beats_positive_by", ascending=False)
    st.caption(f"{len(pairs)} candidates masked in this batch; the clearest six:")
    for _, pair in pairs.head(6).iterrows():
        with st.container(border=True):
            left, right = st.columns(2)
            left.markdown(f"**Row text** · {pair['text']}")
            right.markdown(f"**Masked {pair['candidate_role']}** · {pair['candidate']}")
            st.caption(explain(pair))
else:
    st.info("No sample batch in the demo files.")

st.subheader("2. The paired run: same batches, same seed, with and without the guide")
runs = {
    json.loads(config.read_text()).get("loss", config.parent.name):
        pd.read_json(config.parent / "metrics.jsonl", lines=True)
    for config in sorted(demo_dir.glob("*/config.json"))
}
if runs:
    left, right = st.columns(2)
    left.plotly_chart(curves_figure(runs, "loss", "Training loss"), width="stretch")
    right.plotly_chart(curves_figure(runs, "masked_fraction", "Share of candidates masked"),
                       width="stretch")
else:
    st.info("No finished run in the demo files.")

st.subheader("3. What it did to the benchmark")
results_file = demo_dir / "results.csv"
if results_file.is_file():
    table = pd.read_csv(results_file)
    st.plotly_chart(scores_figure(table, "task", "Main score per task"), width="stretch")
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
