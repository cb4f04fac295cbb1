"""Inspect page: draws a batch with heatmaps and tables, re-masks without encoding, shows bad input as errors."""

from __future__ import annotations

import base64
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import core.analysis.inspect
from core.analysis.margin_grid import slider_margins

MAIN = str(Path(__file__).resolve().parent.parent / "app" / "main.py")
GOOD_CSV = "anchor,positive\n" + "".join(f"text number {i},meaning {i}\n" for i in range(8))


@pytest.fixture
def tiny_models(tiny_model_dir, monkeypatch):
    """Point the pages' default guide and student at the tiny random BERT."""
    monkeypatch.setenv("GISTLAB_APP_GUIDE", str(tiny_model_dir))
    monkeypatch.setenv("GISTLAB_APP_STUDENT", str(tiny_model_dir))


@pytest.fixture
def encodes(monkeypatch):
    """Count how often the page embeds a batch (core.analysis.inspect.inspect_batch is the only way in), from
    a cold report cache (an earlier test in this process may have embedded the same batch)."""
    from app import loaders

    loaders._batch_report.clear()
    calls = []
    real = core.analysis.inspect.inspect_batch

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(core.analysis.inspect, "inspect_batch", counted)
    return calls


def open_page(page: str = "views/inspect.py") -> AppTest:
    """The app opened on ``page`` (the other analysis pages' tests use this too)."""
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.run()
    return at.switch_page(page).run()


def upload(at: AppTest, name: str, content: bytes) -> AppTest:
    at.sidebar.radio(key="data_source").set_value("Upload a file").run()
    at.sidebar.get("file_uploader")[0].set_value((name, content, "text/plain"))
    return at.run()


def errors(at: AppTest) -> str:
    """The page's st.error lines, after checking no exception reached it."""
    assert not at.exception, [e.value for e in at.exception]
    return " ".join(e.value for e in at.error)


def pair_count(at: AppTest) -> int:
    """N from the page's "Masked pairs (N)" heading."""
    heading = next(h.value for h in at.subheader if h.value.startswith("Masked pairs"))
    return int(heading.split("(")[1].rstrip(")"))


def table(at: AppTest, *columns: str):
    """The page's dataframe that has ``columns`` (masked pairs: candidate; per row: weak; weak rows:
    fraction and positive)."""
    return next(d.value for d in at.dataframe if set(columns) <= set(d.value.columns))


def plotted(array) -> np.ndarray:
    """A plotly JSON array (numpy arrays arrive base64-encoded as 'bdata', with a shape if 2D)."""
    if isinstance(array, dict):
        flat = np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
        return flat.reshape([int(n) for n in str(array.get("shape", len(flat))).split(",")])
    return np.asarray(array)


def maps(at: AppTest) -> list[dict]:
    """The page's heatmaps as plotly figures, without their mask (what app.live_figures redraws on a new base)."""
    found = at.get("component_instance")
    return [json.loads(base) for base in json.loads(found[0].proto.json_args)["figures"]] if found else []


def drawn_mask(at: AppTest, figure: int = 0) -> np.ndarray:
    """The mask laid over heatmap ``figure``: its layout image's PNG, one pixel per cell, True where red."""
    source = json.loads(at.get("component_instance")[0].proto.json_args)["images"][figure][0]
    png = Image.open(io.BytesIO(base64.b64decode(source.removeprefix("data:image/png;base64,"))))
    return np.asarray(png.convert("RGBA"))[..., 3] > 0


def test_bundled_batch_heatmaps_tables_and_remask(tiny_models, tiny_model_dir, encodes):
    tiny = str(tiny_model_dir)
    at = open_page()
    assert errors(at) == ""
    assert len(encodes) == 1
    assert at.metric[0].label == "Masked, all blocks"
    assert [m["layout"]["title"]["text"] for m in maps(at)] == [f"Guide ({tiny}): a-p", f"Student ({tiny}): a-p"]
    at.radio(key="heatmap_block").set_value("a-n").run()
    student_map = maps(at)[1]
    assert student_map["layout"]["title"]["text"].endswith(": a-n")
    tint = drawn_mask(at, 1)  # the red layer: one red pixel on each masked a-n candidate
    counts = table(at, "weak")
    assert tint.sum() == counts["a-n"].sum() > 0 and (tint == drawn_mask(at, 0)).all()
    assert tint.shape == (32, 32) and student_map["layout"]["height"] >= 420
    assert json.loads(at.get("component_instance")[0].proto.json_args)["columns"] == 2  # batch 32: side by side
    image = student_map["layout"]["images"][0]  # laid exactly over the 32 x 32 cells
    assert (image["x"], image["y"], image["sizex"], image["sizey"]) == (-0.5, -0.5, 32, 32)
    before = pair_count(at)
    pairs = table(at, "candidate")
    assert len(pairs) == min(before, 500)  # at most 500 rows go to the browser
    assert counts["row"].tolist() == list(range(32))
    base = json.loads(at.get("component_instance")[0].proto.json_args)["base"]
    at.sidebar.slider(key="margin").set_value(0.5).run()
    assert errors(at) == "" and len(encodes) == 1  # the margin re-masks, it does not re-encode
    assert pair_count(at) > before and (table(at, "candidate")["margin"] == 0.5).all()
    after = json.loads(at.get("component_instance")[0].proto.json_args)
    assert after["base"] == base and drawn_mask(at, 1).sum() > tint.sum()  # only the mask image changed
    at.sidebar.number_input(key="batch_seed").set_value(1).run()
    assert len(encodes) == 2  # a new batch is embedded once


def test_pairs_lead_with_the_rows_own_positive_and_hover_names_both_texts(tiny_models):
    at = open_page()
    at.sidebar.slider(key="margin").set_value(0.3).run()
    pairs = table(at, "candidate")
    assert list(pairs.columns[:5]) == ["row", "text", "positive", "candidate", "beats_positive_by"]
    counts = table(at, "weak")
    a_p = pairs[pairs.block == "a-p"].iloc[0]
    assert a_p.text == counts.anchor[a_p.row] and a_p.positive != a_p.candidate
    assert a_p.beats_positive_by == pytest.approx(a_p.guide_score - a_p.positive_score, abs=1e-6)
    guide_map = maps(at)[0]
    cells = guide_map["data"][0]
    assert cells["y"][a_p.row].startswith(f"{a_p.row} · ") and a_p.text[:20] in cells["y"][a_p.row]
    assert len(cells["x"]) == 32 and len(set(cells["x"])) == 32  # one label per column, unique
    assert "%{customdata" in cells["hovertemplate"] and "%{x}" in cells["hovertemplate"]
    assert plotted(cells["customdata"]).shape == (32, 32)  # the student's score of each cell
    assert "g" == guide_map["layout"]["xaxis2"]["title"]["text"]  # the strip's short title, below it:
    assert "side" not in guide_map["layout"]["xaxis2"]  # on top it overlapped the subtitle


def test_ground_truth_beside_the_fractions_and_weak_rows(tiny_models):
    at = open_page()
    assert errors(at) == ""
    lines = [c.value for c in at.caption]
    # the bundled data has ground truth: per block, false negatives caught (or none) with precision
    assert any(line.startswith(("false negatives caught ", "no false negatives · precision")) for line in lines)
    split = next(line for line in lines if line.startswith("Against the ground truth: "))
    assert "related hard negatives" in split and "unrelated" in split
    at.sidebar.number_input(key="false_negative_rate").set_value(0.2).run()
    assert errors(at) == ""
    split = next(c.value for c in at.caption if c.value.startswith("Against the ground truth: "))
    present = int(split.split("false negatives: ")[1].split(" present")[0])
    assert present > 32 * 3  # about 6 right answers per row in each of a-p, a-a and p-p
    at.sidebar.number_input(key="false_negative_rate").set_value(0.0).run()
    at.sidebar.slider(key="margin").set_value(0.5).run()  # a wide margin: rows mask nearly everything
    weak = next(m for m in at.metric if m.label == "Weak positives")
    counts = table(at, "weak")
    assert weak.value == f"{int(counts.weak.sum())} of 32"
    if counts.weak.any():
        assert set(table(at, "fraction", "positive").row) == set(counts.row[counts.weak])


def test_filters_and_csv(tiny_models):
    at = open_page()
    at.sidebar.slider(key="margin").set_value(0.5).run()
    total = pair_count(at)
    at.multiselect(key="pairs_blocks").set_value(["a-n"]).run()
    shown = table(at, "candidate")
    assert len(shown) > 0 and set(shown["block"]) == {"a-n"}
    assert pair_count(at) < total and f"of the batch's {total:,} masked pairs" in " ".join(c.value for c in at.caption)
    word = shown["candidate"].iloc[0].split()[0]
    at.text_input(key="pairs_text").set_value(word.upper()).run()
    found = table(at, "candidate")
    assert 0 < len(found) <= len(shown) and pair_count(at) == len(found)
    assert (found["text"].str.contains(word, case=False) | found["candidate"].str.contains(word, case=False)).all()
    at.text_input(key="pairs_text").set_value("no text has this").run()
    assert pair_count(at) == 0 and "No masked pair matches these filters." in [i.value for i in at.info]
    assert not [d for d in at.dataframe if "candidate" in d.value.columns]  # no empty grid
    at.text_input(key="pairs_text").set_value("").run()
    at.checkbox(key="pairs_prefers").check().run()
    preferred = table(at, "candidate")
    assert len(preferred) and preferred["student_prefers"].all()
    assert at.get("download_button")  # the CSV of the filtered pairs


def test_uploaded_file_without_student(tiny_models):
    at = open_page()
    at.sidebar.text_input(key="student_spec").set_value("").run()
    at = upload(at, "pairs.csv", GOOD_CSV.encode())
    assert errors(at) == ""
    assert at.sidebar.number_input(key="batch_size").value == 8  # clamped to the file's 8 rows
    assert len(maps(at)) == 1  # the guide's map only
    assert at.radio(key="heatmap_block").options == ["a-p: anchor vs positives", "a-a: anchor vs anchors",
                                                     "p-p: positive vs positives"]
    assert "student" in at.info[0].value
    assert "no ground truth" in [c.value for c in at.caption]  # no zeros for data without ground truth


@pytest.mark.parametrize("name,content,expected", [
    ("bad.csv", b"anchor,positive\n\xff\xfe,x\n", "not UTF-8"),
    ("empty.jsonl", b"", "empty"),
    ("broken.jsonl", b'{"anchor": "a", "positive": "b"}\n{"anchor": \n', "not valid JSON"),
])
def test_bad_uploads_are_errors(tiny_models, name, content, expected):
    at = upload(open_page(), name, content)
    assert expected in errors(at)


def test_upload_with_other_column_names_is_mapped_in_the_page(tiny_models):
    qa = "question,answer,wrong\n" + "".join(f"question {i},answer {i},wrong {i}\n" for i in range(6))
    at = upload(open_page(), "qa.csv", qa.encode())
    assert errors(at) == "" and "--data-columns" not in " ".join(w.value for w in at.sidebar.warning)
    assert "pick which column is which" in at.sidebar.warning[0].value
    assert "pick its anchor and positive columns" in at.info[0].value and not maps(at)
    at.sidebar.selectbox(key="map_anchor").set_value("question").run()
    at.sidebar.selectbox(key="map_positive").set_value("answer").run()
    assert errors(at) == "" and at.sidebar.number_input(key="batch_size").value == 6
    assert at.radio(key="heatmap_block").options[-1] == "p-p: positive vs positives"  # no negatives yet
    at.sidebar.multiselect(key="map_negatives").set_value(["wrong"]).run()
    assert errors(at) == "" and at.radio(key="heatmap_block").options[-1] == "a-n: anchor vs negatives"
    assert set(table(at, "weak").anchor) == {f"question {i}" for i in range(6)}


def test_oversized_upload_is_an_error(tiny_models):
    at = upload(open_page(), "huge.csv", b"anchor,positive\n" + b"x" * (50 * 2**20))
    assert "over the 50 MB limit" in errors(at)


def test_unknown_model_offline_is_an_error(tiny_models):
    at = open_page()
    at.sidebar.text_input(key="guide_spec").set_value("nobody/no-such-model").run()
    assert "nobody/no-such-model" in errors(at)


def test_run_step_without_runs_says_what_to_do(tiny_models, tmp_path, monkeypatch):
    monkeypatch.setenv("GISTLAB_HOME", str(tmp_path))
    at = open_page()
    at.sidebar.radio(key="batch_origin").set_value("A training run's step").run()
    assert errors(at) == "" and "No training run has recorded a batch yet" in at.info[0].value


@pytest.fixture
def two_runs(tiny_model_dir, tmp_path, monkeypatch):
    """A workspace with a completed 3-step run ``demo`` (saved model) and a failed run ``broken`` (1 step)."""
    import json as json_module

    from core.training.train import TrainConfig, run_training

    monkeypatch.setenv("GISTLAB_HOME", str(tmp_path))
    data = tmp_path / "pairs.csv"
    data.write_text(GOOD_CSV)
    run_training(TrainConfig.from_dict({"data": str(data), "student": str(tiny_model_dir), "guide": str(tiny_model_dir),
                                        "steps": 3, "batch_size": 4, "margin": -0.1, "out": str(tmp_path / "runs" / "demo")}))
    broken = tmp_path / "runs" / "broken"
    shutil.copytree(tmp_path / "runs" / "demo", broken, ignore=shutil.ignore_patterns("model"))
    status = json_module.loads((broken / "status.json").read_text())
    (broken / "status.json").write_text(json_module.dumps({**status, "state": "failed", "steps_done": 1,
                                                           "started": "2999-01-01T00:00:00+00:00"}))
    (broken / "batches.jsonl").write_text((broken / "batches.jsonl").read_text().splitlines()[0] + "\n")
    return tmp_path / "runs"


def test_open_a_runs_step(tiny_models, two_runs):
    at = open_page()
    at.sidebar.radio(key="batch_origin").set_value("A training run's step").run()
    assert errors(at) == ""
    assert at.sidebar.selectbox(key="inspect_run").value == str(two_runs / "demo")  # completed before newest
    step = at.sidebar.number_input(key="inspect_step")
    assert (step.min, step.max) == (1, 3)  # bounded to the steps the run recorded
    step.set_value(3).run()
    assert errors(at) == "" and at.query_params["step"] == "3" and at.query_params["run"] == "demo"
    assert at.sidebar.slider(key="margin").value == -0.1  # the run's own settings (a random model masks all at >= 0)
    assert at.query_params["margin"] == "-0.10"  # the URL names what is in use
    assert maps(at)[1]["layout"]["title"]["text"].startswith("Student (final model of run demo)")
    assert len(table(at, "weak")) == 4
    at.sidebar.selectbox(key="inspect_run").set_value(str(two_runs / "broken")).run()
    assert errors(at) == "" and at.sidebar.number_input(key="inspect_step").value == 1  # not 3: it has 1 step
    assert "there is no step 3" in at.warning[0].value
    assert "no saved model" in maps(at)[1]["layout"]["title"]["text"]  # labelled: its untrained student
    shutil.rmtree(two_runs / "demo")  # deleted underneath the page
    shutil.rmtree(two_runs / "broken")
    at.run()
    assert errors(at) == "" and "No training run has recorded a batch yet" in at.info[0].value


def test_the_train_pages_link_lands_on_the_runs_step(tiny_models, two_runs):
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.run()
    at.query_params.update(run="demo", step="2")
    at.switch_page("views/inspect.py").run()
    assert errors(at) == ""
    assert at.sidebar.radio(key="batch_origin").value == "A training run's step"
    assert at.sidebar.selectbox(key="inspect_run").value == str(two_runs / "demo")
    assert at.sidebar.number_input(key="inspect_step").value == 2
    assert "Step 2 of run demo" in at.sidebar.caption[0].value
    at.query_params.update(run="demo", step="9")
    at.run()
    assert at.sidebar.number_input(key="inspect_step").value == 3
    assert "Run demo has steps 1–3: there is no step 9" in at.warning[0].value
    at.query_params.update(run="nobody", step="1")
    at.run()
    assert errors(at) == "" and "nobody" in at.warning[0].value


def test_a_copied_run_step_url_reproduces_its_margin(tiny_models, two_runs):
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.run()
    at.query_params.update(run="demo", step="2", margin="0.05", aa="0")
    at.switch_page("views/inspect.py").run()
    assert errors(at) == "" and at.sidebar.radio(key="batch_origin").value == "A training run's step"
    assert at.sidebar.slider(key="margin").value == 0.05 and not at.sidebar.checkbox(key="contrast_anchors").value
    assert at.query_params["margin"] == "0.05" and at.query_params["run"] == "demo"


def test_a_new_batchs_guide_encode_is_counted(tiny_models, monkeypatch, tmp_path):
    """More than one chunk of uncached texts: the guide fills its cache chunk by chunk (the page's bar)."""
    from app import cache, loaders

    monkeypatch.setenv("GISTLAB_HOME", str(tmp_path))  # an empty guide cache, whatever ran before in this process
    monkeypatch.setattr(loaders, "_GUIDE_CACHES", cache.Kept(4))
    at = open_page()
    cache = loaders.guide_cache(loaders.default_guide())
    chunks = []
    real = type(cache).fill
    monkeypatch.setattr(type(cache), "fill", lambda self, texts: chunks.append(len(texts)) or real(self, texts))
    at.sidebar.number_input(key="batch_seed").set_value(7).run()
    assert errors(at) == ""
    assert len(chunks) >= 2 and max(chunks) <= loaders.GUIDE_CHUNK  # 96 new texts: counted in chunks


def test_a_new_batchs_student_encode_is_counted_once(tiny_models, monkeypatch):
    """The student embeds a new batch under a bar that counts its texts; a margin change draws no bar."""
    from test_app_cache import Recorder

    from app import cache, loaders
    from core.analysis.inspect import Batch
    from core.corpus.data import load_pairs

    texts = []
    monkeypatch.setattr(loaders, "_STUDENT_VECTORS", cache.Kept(4))  # no texts embedded by other tests
    monkeypatch.setattr(loaders.st, "progress", lambda value, text=None: Recorder(texts, text))
    at = open_page()
    assert errors(at) == ""
    size = at.sidebar.number_input(key="batch_size").value
    count = len(set(Batch.draw(load_pairs("bundled"), size, 0).texts()))
    assert count > loaders.GUIDE_CHUNK
    student = [t for t in texts if t and t.startswith("The student")]
    assert student == [f"The student embeds the batch: text {start + 1} of {count}…"
                       for start in range(0, count, loaders.GUIDE_CHUNK)]
    texts.clear()
    at.sidebar.slider(key="margin").set_value(0.2).run()
    assert errors(at) == "" and texts == []


MARGINS = slider_margins()  # the margins the page's sliders offer


def png_mask(source: str) -> np.ndarray:
    """A mask image's PNG data URL as bool cells, True where red."""
    png = Image.open(io.BytesIO(base64.b64decode(source.removeprefix("data:image/png;base64,"))))
    return np.asarray(png.convert("RGBA"))[..., 3] > 0


def test_the_maps_slider_holds_the_mask_at_every_margin_and_its_release_sets_the_pages(tiny_models):
    at = open_page()
    args = json.loads(at.get("component_instance")[0].proto.json_args)
    steps = [m["layout"]["sliders"][0]["steps"] for m in maps(at)]
    assert [float(s["value"]) for s in steps[0]] == list(MARGINS) and steps[0] == steps[1]  # both maps, one grid
    assert args["active"] == MARGINS.index(0.0)  # the page's margin
    for margin in (-0.2, 0.07, 0.5):  # a step's mask is the page's own mask at that margin
        at.sidebar.slider(key="margin").set_value(margin).run()
        args = json.loads(at.get("component_instance")[0].proto.json_args)
        assert args["active"] == MARGINS.index(margin)
        assert (png_mask(steps[0][args["active"]]["args"][0]["images[0].source"]) == drawn_mask(at, 0)).all()
    assert png_mask(steps[0][0]["args"][0]["images[0].source"]).sum() < drawn_mask(at, 0).sum()
    at.session_state["maps"] = {"value": "0.12", "at": 1}  # released on a map's slider at +0.12
    at.run()
    assert errors(at) == "" and at.sidebar.slider(key="margin").value == 0.12
    assert json.loads(at.get("component_instance")[0].proto.json_args)["active"] == MARGINS.index(0.12)
    assert (table(at, "candidate")["margin"] == 0.12).all()
    at.sidebar.slider(key="margin").set_value(0.3).run()  # the sidebar's later step is not undone by that release
    assert at.sidebar.slider(key="margin").value == 0.3
