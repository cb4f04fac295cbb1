"""Inspect's choice of who masks: the guide (GIST, the default) or the student itself (the self-judge).

The self-judge (Qwen3-Embedding's rule, ``gistlab train --loss self-judge``) masks a candidate the student
scores above its row's positive + the judge margin: GIST's rule with the student as a frozen judge and the
settings :meth:`core.analysis.strategies.Strategy.masking` gives (training's), so Inspect shows it by
putting the student where the guide was. MNRL and the hardness arms mask nothing beyond GIST's: Compare
strategies shows them.
"""

from __future__ import annotations

import streamlit as st

from app.loaders import default_student
from core.analysis.strategies import LABELS, Strategy
from core.method.margin import JUDGE_MARGIN
from core.method.masking import MarginSettings

JUDGES = ("gist", "self-judge")


def choose_judge(guide: str, student: str | None, settings: MarginSettings) -> tuple[str, MarginSettings]:
    """Sidebar: who masks. The guide spec and settings to mask with: as given for GIST; for the self-judge,
    the student (the default one when none is named) and the judge's settings (the margin slider unused)."""
    judge = st.sidebar.radio("Who masks", JUDGES, key="inspect_strategy", format_func=LABELS.get,
                             help="GIST: the guide masks at the margin above. Self-judge (Qwen3-Embedding): the "
                                  f"student masks a candidate it scores above its row's positive + {JUDGE_MARGIN:g}.")
    if judge == "gist":
        return guide, settings
    student = student or default_student()
    st.caption(f"Self-judge: the student {student} masks, with its own cosines, every candidate it scores above "
               f"its row's positive + {JUDGE_MARGIN:g} (GIST's rule with margin {-JUDGE_MARGIN:g}); the maps' "
               "\"guide\" is that student. "
               "The margin and floor in the sidebar do not apply, the blocks do.")
    return student, Strategy("self-judge").masking(settings)
