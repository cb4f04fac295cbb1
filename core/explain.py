"""Masked pairs in plain words: which ones to show a newcomer, and one sentence on each.

Works on core.inspect's masked-pairs table (``masked_pairs`` columns) with pandas alone, so the
Demo page can use it without importing torch; core.experiment uses the same ranking to choose
the batch it ships for that page.
"""

from __future__ import annotations

import pandas as pd

DEMO_PAIRS = 6
"""How many masked pairs the Demo page explains."""


def clearest_pairs(pairs: pd.DataFrame, n: int) -> pd.DataFrame:
    """The ``n`` masked pairs a person reads most easily as a second right answer.

    Ranked by the guide's score of the candidate (how alike the two texts look, not how far the
    candidate beats a weak positive), each unordered pair of texts once (a-a and p-p blocks list
    both directions), and at most one pair masked only because its texts are identical.
    """
    same = pairs["identical_text"].fillna(False).astype(bool)
    duplicate = pairs[same].head(1)
    ranked = pairs[~same].sort_values("guide_score", ascending=False, kind="stable")
    texts = pd.Series([frozenset(t) for t in zip(ranked["text"], ranked["candidate"])], index=ranked.index)
    ranked = ranked[~texts.duplicated()]
    return pd.concat([ranked.head(max(n - len(duplicate), 0)), duplicate]).head(n)


def explain(pair: pd.Series) -> str:
    """One sentence on why the guide masked this candidate (and what the student made of it)."""
    if pair["identical_text"]:
        return "The candidate is the very same text as this row's own anchor or positive: always masked."
    sentence = (
        f"The guide scores this {pair['candidate_role']} at {pair['guide_score']:.2f}, above the row's "
        f"threshold {pair['threshold']:.2f} (its own positive scores {pair['positive_score']:.2f}): "
        "it reads as another right answer, so the loss leaves it alone."
    )
    if pd.notna(pair.get("student_prefers")) and bool(pair["student_prefers"]):
        sentence += " The student, too, ranks it above the positive: unmasked, it would be pushed away hard."
    return sentence
