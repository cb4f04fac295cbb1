"""The gistlab lab: the entry script that ``streamlit run app/main.py`` (or ``gistlab app``) starts.

It sets the page frame and lists every page with ``st.navigation``. The Demo page comes first: it
appears at once from precomputed files and tells a first-time user what the guide does, then points
to Inspect. A page whose file is not in this checkout is left out rather than breaking the app.
"""

import sys
from pathlib import Path

import streamlit as st

APP = Path(__file__).resolve().parent
if str(APP.parent) not in sys.path:  # a checkout run without `pip install -e .` still finds core/
    sys.path.insert(0, str(APP.parent))

SECTIONS = {
    "Start here": [("demo.py", "Demo", ":material/slideshow:")],
    "Explore the guide": [
        ("inspect.py", "Inspect a batch", ":material/grid_on:"),
        ("whatif.py", "Margin what-if", ":material/tune:"),
        ("embedding_map.py", "Embedding map", ":material/scatter_plot:"),
        ("compare_guides.py", "Compare strategies", ":material/compare:"),
    ],
    "Experiment": [
        ("train.py", "Train", ":material/model_training:"),
        ("results.py", "Results", ":material/leaderboard:"),
    ],
    "Clean the data": [("audit.py", "Audit the data", ":material/fact_check:")],
}

# A file shipped in the repo, not an emoji or a :material/ icon: those make the browser fetch the
# favicon from a CDN, and the lab must not reach the network (it runs offline).
st.set_page_config(page_title="gistlab", page_icon=APP / "static" / "favicon.png", layout="wide")
pages = {
    section: [
        st.Page(f"views/{file}", title=title, icon=icon)
        for file, title, icon in entries
        if (APP / "views" / file).is_file()
    ]
    for section, entries in SECTIONS.items()
}
st.navigation({section: listed for section, listed in pages.items() if listed}).run()
