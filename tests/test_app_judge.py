"""Inspect's "Who masks" choice (app/judge.py): the self-judge masks with the student's own cosines at margin
-0.1, whatever the margin slider says. The tiny random BERT is guide and student."""

from __future__ import annotations

from tests.test_app_inspect import errors, open_page, pair_count, table, tiny_models  # noqa: F401 (a fixture)


def test_the_self_judge_masks_with_the_student_at_margin_minus_a_tenth(tiny_models):
    at = open_page()
    at.sidebar.slider(key="margin").set_value(0.1).run()
    guided = pair_count(at)
    at.sidebar.radio(key="inspect_strategy").set_value("self-judge").run()
    assert not errors(at)
    assert any(c.value.startswith("Self-judge: the student") for c in at.caption)
    judged = pair_count(at)
    # the same model judging: margin -0.1 masks a subset of what margin +0.1 masks
    assert judged < guided
    pairs = table(at, "candidate")
    assert (pairs["margin"] == -0.1).all() and (pairs["beats_positive_by"] > 0.1).all()
    at.sidebar.slider(key="margin").set_value(0.3).run()  # the slider does not move the self-judge
    assert pair_count(at) == judged
    at.sidebar.radio(key="inspect_strategy").set_value("gist").run()
    assert pair_count(at) > guided  # back to the guide, at the new margin
