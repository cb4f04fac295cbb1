"""Masked pairs in plain words: which ones to show a newcomer, and one sentence on each, by case.

Works on core.analysis.inspect's masked-pairs table (``masked_pairs`` columns, plus ``weak_row`` where the
demo copy adds it) with pandas alone, so the Demo page can use it without importing torch;
core.analysis.experiment_demo uses the same ranking to choose the batch it ships for that page.

The sentence depends on the case, because the mask is not always right. By the one definition of
core.method.groundtruth, a masked candidate is a *false negative* (a right answer for the row under
its task's relation: the same synset for the definition tasks, the same category for
``category_triplet``, the same group): a catch. Otherwise it is a cost: a *related hard negative*
(another sense of the same word, or the same category where that is not the task's relation, a
near miss the student would have learned from) or *unrelated*. A row whose own positive the guide
scores low masks almost everything (a weak positive, a data-quality signal). Tables recorded before
that definition call a false negative ``same-meaning``: read as ``false-negative``.
"""

from __future__ import annotations

import pandas as pd

DEFINITION = ("A false negative is a candidate that is a right answer for the row by its task's relation: the same "
              "WordNet synset for the definition tasks, the same category for category_triplet, the same group "
              "in your own data. precision = false negatives masked / masked (the rest are costs: related hard "
              "negatives, i.e. the same word or category where that is not the task's relation, and unrelated); "
              "recall = false negatives masked / false negatives present.")
"""The one definition of core.method.groundtruth in words, for every page's help."""

DEMO_PAIRS = 6
"""How many masked pairs the Demo page explains."""

CASES = ("false-negative", "same-word", "same-category", "weak positive", "unrelated")
"""The cases the Demo tries to show one of each before filling up with the guide's closest pairs."""
LEGACY = {"same-meaning": "false-negative"}  # relation names of tables recorded before issue 22
KIND = {"false-negative": "false negative: a catch", "same-word": "related hard negative: a cost",
        "same-category": "related hard negative: a cost", "unrelated": "unrelated: a cost",
        "weak positive": "weak positive: a cost", "identical text": "identical text"}
"""Each case in the three-way split of a mask (core.method.groundtruth.SHARES) for captions."""


def relation(pair: pd.Series) -> str | None:
    """The pair's ground-truth relation by the current names (None without ground truth)."""
    value = pair.get("relation")
    return LEGACY.get(value, value) if isinstance(value, str) else None


def split_counts(pairs: pd.DataFrame) -> dict[str, int] | None:
    """Masked pairs per share of the three-way split (false negative, related hard negative,
    unrelated), None without ground truth."""
    if "relation" not in pairs or pairs["relation"].isna().all():
        return None
    names = pairs.apply(relation, axis=1) if len(pairs) else pd.Series(dtype=object)
    return {"false negative": int((names == "false-negative").sum()),
            "related hard negative": int(names.isin(["same-word", "same-category"]).sum()),
            "unrelated": int((names == "unrelated").sum())}


def case(pair: pd.Series) -> str:
    """Which case a masked pair is: identical text, weak positive, its ground-truth relation, or unknown."""
    if bool(pair.get("identical_text", False)):
        return "identical text"
    if bool(pair.get("weak_row", False)) and relation(pair) != "false-negative":
        return "weak positive"
    return relation(pair) or "no ground truth"


def clearest_pairs(pairs: pd.DataFrame, n: int) -> pd.DataFrame:
    """``n`` masked pairs a person reads easily, one of each case first (see CASES), then the closest.

    Ranked by the guide's score of the candidate (how alike the two texts look, not how far the
    candidate beats a weak positive), each unordered pair of texts once (a-a and p-p blocks list
    both directions), and at most one pair masked only because its texts are identical.
    """
    same = pairs["identical_text"].fillna(False).astype(bool)
    duplicate = pairs[same].head(1)
    ranked = pairs[~same].sort_values("guide_score", ascending=False, kind="stable")
    texts = pd.Series([frozenset(t) for t in zip(ranked["text"], ranked["candidate"])], index=ranked.index)
    ranked = ranked[~texts.duplicated()]
    cases = ranked.apply(case, axis=1) if len(ranked) else pd.Series(dtype=object)
    firsts = [cases[cases == c].index[0] for c in CASES if (cases == c).any()]
    room = max(n - len(duplicate), 0)
    chosen = firsts[:room] + [i for i in ranked.index if i not in firsts][:max(room - len(firsts), 0)]
    picked = ranked.loc[chosen].sort_values("guide_score", ascending=False, kind="stable")
    return pd.concat([picked, duplicate]).head(n)


def explain(pair: pd.Series) -> str:
    """One sentence on why the guide masked this candidate, said by case (and what the student made of it)."""
    g, p, t = pair["guide_score"], pair["positive_score"], pair["threshold"]
    role = pair["candidate_role"]
    scores = f"the guide scores it {g:.2f}, the row's own positive {p:.2f} (threshold {t:.2f})"
    sentence = {
        "identical text": "The candidate is the very same text as this row's own anchor or positive: always masked.",
        "false-negative": f"A false negative caught: this {role} is another right answer for the row by its "
                          f"task's relation (same synset, or same category for a category task); {scores}, so "
                          "the loss no longer pushes it away.",
        "same-word": f"A cost: another sense of the same word, not a right answer (a related hard negative): "
                     f"{scores}. The guide cannot tell the senses apart, so this near miss is spared as if it "
                     "were right.",
        "same-category": f"A cost: same category, different meaning, and the category is not this task's "
                         f"relation (a related hard negative): {scores}. Masking removes a hard negative the "
                         "student would have learned from.",
        "weak positive": f"Weak positive: the guide scores this row's own positive only {p:.2f}, so almost every "
                         f"candidate clears the threshold {t:.2f} (this one at {g:.2f}) and the row drops out of "
                         "the loss. A data-quality signal (the guide disbelieves the pair), not a second right answer.",
        "unrelated": f"A cost: unrelated in the ground truth, yet masked: {scores}. A mask the data does not back.",
        "no ground truth": f"The guide finds this {role} at least as close as the row's own positive: {scores}. "
                           "It reads as another right answer, so the loss leaves it alone.",
    }[case(pair)]
    if case(pair) != "identical text" and pd.notna(pair.get("student_prefers")) and bool(pair["student_prefers"]):
        sentence += " The student, too, ranks it above the positive: unmasked, it would be pushed away hard."
    return sentence
