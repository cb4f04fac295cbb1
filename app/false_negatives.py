"""The one definition of a false negative, as the analysis pages show it: the rate control and the words.

A masked candidate is a false negative (a catch) when it is a right answer for its row by the row's
task's relation, else a related hard negative or unrelated (costs): core.method.groundtruth. Each
page that draws batches offers the false-negative rate (core.corpus.false_negatives) in the sidebar
where the data has ground truth, and says "no false negatives in this batch" instead of drawing an
empty recall chart.
"""

import streamlit as st

from app.sidebar import bind
from core.corpus.false_negatives import MAX_RATE, has_ground_truth
from core.method.explain import DEFINITION

__all__ = ["DEFINITION", "choose_rate"]
RATE_HELP = ("Rebuild each drawn batch so that about this share of a row's in-batch candidates are right answers "
             "(rows of its meaning added from the data; `gistlab train --false-negatives` trains at a rate). "
             "0: the data as it is; random batches of the bundled definition tasks then hold none.")


def choose_rate(ds) -> float:
    """Sidebar: the false-negative rate of drawn batches, one of the shared settings (so it holds on
    every page and in the URL); 0 where the data has no ground truth."""
    if not has_ground_truth(ds.column_names):
        return 0.0
    key = "false_negative_rate"
    return float(st.sidebar.number_input("False-negative rate", 0.0, MAX_RATE, step=0.05, key=key, format="%.2f",
                                         help=RATE_HELP, on_change=bind(key, "false_negatives", convert=float)))
