"""The gistlab Streamlit lab: ``streamlit run app/main.py`` from the repo root (see main.py)."""
