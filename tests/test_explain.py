"""core.method.explain: which masked pairs a newcomer sees first, and the sentence that explains each, by case."""

from __future__ import annotations

import pandas as pd

from core.method.explain import case, clearest_pairs, explain


def pairs_table() -> pd.DataFrame:
    rows = [
        # text, candidate, guide score, positive score, identical, relation, weak row
        ("shine the silver", "shine hard", 0.59, 0.53, False, "same-word", False),
        ("a firm rebuke", "cause to continue", 0.25, -0.13, False, "unrelated", True),  # a weak positive
        ("make it shine", "polished", 0.68, 0.53, False, "false-negative", False),
        ("polished", "make it shine", 0.68, 0.13, False, "false-negative", False),  # the same two texts, mirrored
        ("a bank", "a bank", 1.0, 0.6, True, "false-negative", False),
        ("a shore", "a shore", 1.0, 0.6, True, "same-meaning", False),  # a table recorded before issue 22
        ("a dog", "a cat", 0.70, 0.65, False, "same-category", False),
        ("a dog", "a wolf", 0.72, 0.65, False, "same-category", False),
    ]
    frame = pd.DataFrame(rows, columns=["text", "candidate", "guide_score", "positive_score", "identical_text",
                                        "relation", "weak_row"])
    return frame.assign(candidate_role="positive", threshold=frame["positive_score"],
                        beats_positive_by=frame["guide_score"] - frame["positive_score"])


def test_clearest_shows_one_of_each_case_first_then_the_closest():
    shown = clearest_pairs(pairs_table(), 5)
    assert shown["candidate"].tolist() == ["a wolf", "polished", "shine hard", "cause to continue", "a bank"]
    assert clearest_pairs(pairs_table(), 6)["candidate"].tolist()[:5] == [
        "a wolf", "a cat", "polished", "shine hard", "cause to continue"]  # then filled by guide score


def test_clearest_without_duplicates_fills_every_slot():
    table = pairs_table()
    shown = clearest_pairs(table[~table["identical_text"]], 3)
    assert set(shown["candidate"]) == {"polished", "shine hard", "a wolf"}  # mirror dropped
    assert len(clearest_pairs(table, 1)) == 1 and clearest_pairs(table.head(0), 6).empty
    plain = table.drop(columns=["relation", "weak_row"])  # no ground truth: the closest, one duplicate
    assert clearest_pairs(plain, 3)["candidate"].tolist() == ["a wolf", "a cat", "a bank"]


def test_explain_varies_with_the_case():
    table = pairs_table()
    said = {case(row): explain(row) for _, row in table.iterrows()}
    assert said["false-negative"].startswith("A false negative caught: this positive is another right answer")
    # the related hard negatives are costs, said as such
    assert said["same-word"].startswith("A cost: another sense of the same word, not a right answer")
    assert said["same-category"].startswith("A cost: same category, different meaning")
    assert said["weak positive"].startswith("Weak positive: the guide scores this row's own positive only -0.13")
    assert "not a second right answer" in said["weak positive"]
    assert "very same text" in said["identical text"]
    unrelated = table.iloc[1].copy()
    unrelated["weak_row"] = False
    assert explain(unrelated).startswith("A cost: unrelated in the ground truth, yet masked")
    legacy = table.iloc[5].copy()
    legacy["identical_text"] = False
    assert case(legacy) == "false-negative"  # "same-meaning" of an older table reads as a false negative
    plain = table.iloc[0].drop(["relation", "weak_row"])
    assert "reads as another right answer" in explain(plain)


def test_explain_says_what_the_student_thought():
    pair = pairs_table().iloc[0]
    assert "The student" not in explain(pair)
    assert "pushed away hard" in explain(pd.concat([pair, pd.Series({"student_prefers": True})]))
    assert "The student" not in explain(pd.concat([pair, pd.Series({"student_prefers": False})]))
