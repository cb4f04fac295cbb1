"""core.explain: which masked pairs a newcomer sees first, and the sentence that explains each."""

from __future__ import annotations

import pandas as pd

from core.explain import clearest_pairs, explain


def pairs_table() -> pd.DataFrame:
    rows = [
        # text, candidate, guide score, positive score, identical
        ("shine the silver", "shine hard", 0.59, 0.53, False),
        ("a firm rebuke", "cause to continue", 0.25, -0.13, False),  # beats a weak positive by most
        ("make it shine", "polished", 0.68, 0.53, False),
        ("polished", "make it shine", 0.68, 0.13, False),  # the same two texts, the other way round
        ("a bank", "a bank", 1.0, 0.6, True),
        ("a shore", "a shore", 1.0, 0.6, True),
    ]
    frame = pd.DataFrame(rows, columns=["text", "candidate", "guide_score", "positive_score", "identical_text"])
    return frame.assign(candidate_role="positive", threshold=frame["positive_score"],
                        beats_positive_by=frame["guide_score"] - frame["positive_score"])


def test_clearest_ranks_by_how_alike_the_texts_look():
    shown = clearest_pairs(pairs_table(), 3)
    assert shown["candidate"].tolist() == ["polished", "shine hard", "a bank"]  # mirror dropped, one duplicate


def test_clearest_without_duplicates_fills_every_slot():
    table = pairs_table()
    shown = clearest_pairs(table[~table["identical_text"]], 3)
    assert shown["candidate"].tolist() == ["polished", "shine hard", "cause to continue"]
    assert len(clearest_pairs(table, 1)) == 1 and clearest_pairs(table.head(0), 6).empty


def test_explain_says_why_and_what_the_student_thought():
    pair = pairs_table().iloc[0]
    assert explain(pair).startswith("The guide scores this positive at 0.59, above the row's threshold 0.53")
    assert "The student" not in explain(pair)
    assert "pushed away hard" in explain(pd.concat([pair, pd.Series({"student_prefers": True})]))
    assert "The student" not in explain(pd.concat([pair, pd.Series({"student_prefers": False})]))
    assert "very same text" in explain(pairs_table().iloc[4])
