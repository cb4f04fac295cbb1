"""core.analysis.experiment_report: the setup and caveats state what the config says, not a fixed text."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from core.analysis.experiment import ExperimentConfig
from core.analysis.experiment_plan import MASKING_COLUMNS, ExperimentResult
from core.analysis.experiment_report import arms_text, caveats, markdown_table, render_report, run_masking, run_settings


def test_the_arms_line_reads_margin_strategy_temperature_and_layers_from_the_settings():
    config = ExperimentConfig()
    settings = run_settings(config)
    assert settings.guide == "self" and settings.steps == config.steps  # the first guided arm's own settings
    text = arms_text(config, settings)
    assert "(margin 0, absolute)" in text and "temperature 0.01" in text
    assert "the 3-layer student is cut from it: layers 0, 2, 4" in text
    masking = replace(settings.masking, margin=0.1, margin_strategy="relative", contrast_positives=False)
    other = replace(settings, masking=masking, temperature=0.05)
    text = arms_text(config, other)
    assert "(margin 0.1, relative, no p-p block)" in text and "temperature 0.05" in text


def test_a_student_not_cut_from_the_guide_gets_no_layer_note_nor_parent_caveat():
    config = ExperimentConfig(student="/models/tiny", guides=("none", "bundled:minilm-l6", "/models/judge"),
                              small_student=None, data="pairs.csv", tasks="WordNetSTS")
    text = arms_text(config, run_settings(config))
    assert "layers" not in text and "`bundled:minilm-l6` = all-MiniLM-L6-v2." in text.replace(",\n", ".")
    assert "`/models/judge`" in text
    assert caveats(config).splitlines()[0] == "- Toy scale (50 steps of 16): this shows the"
    assert "own parent" not in caveats(config) and "lexicographer" not in caveats(config)
    assert "own parent" in caveats(ExperimentConfig()) and "lexicographer" in caveats(ExperimentConfig())


def test_an_empty_report_renders_with_every_heading():
    config = ExperimentConfig(seeds=(0,), small_student=None)
    empty = ExperimentResult({}, pd.DataFrame(columns=["student", "arm", "seed", "task", "task_type", "main_score"]),
                             pd.DataFrame(columns=MASKING_COLUMNS))
    text = render_report(config, empty, "gistlab experiment")
    assert "0 of 4 runs finished" in text and "No results yet." in text
    assert text.index("## Setup") < text.index("## Time") < text.index("## Caveats")


def test_markdown_tables_keep_formatted_numbers_as_written():
    table = markdown_table([["a", "0.5000", "+0.0100"]], ["x", "y", "z"]).splitlines()
    assert [cell.strip() for cell in table[2].strip("|").split("|")] == ["a", "0.5000", "+0.0100"]


def test_a_runs_precision_and_recall_are_pooled_over_steps_as_the_curve_reports_them():
    metrics = pd.DataFrame({"masked_fraction": [0.1, 0.3], "weak_rows": [0, 2], "fn_precision": [1.0, 0.1],
                            "fn_recall": [1.0, 0.5]})  # per step: 1 of 1 masked is a FN, then 1 of 10
    quality = {"fn_precision": 0.1818, "fn_recall": 0.6667}  # pooled: 2 of 11 masked, 2 of 3 present
    figures = run_masking(metrics, quality)
    assert figures == {"steps": 2, "masked": 0.2, "fn_precision": 0.1818, "fn_recall": 0.6667, "weak_rows": 1.0}
    nothing = run_masking(metrics, None)  # no ground truth: no precision, not the per-step mean
    assert pd.isna(nothing["fn_precision"]) and pd.isna(nothing["fn_recall"])
    assert pd.isna(run_masking(metrics, {"fn_precision": 0.5, "fn_recall": None})["fn_recall"])  # none present
