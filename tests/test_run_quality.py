"""core.analysis.run_quality: a run recorded before the false-negative definition, judged again from its masks."""

from __future__ import annotations

import json
import math
from pathlib import Path

DEMO_GIST = Path(__file__).resolve().parent.parent / "assets" / "demo" / "gist"


def test_shipped_demo_run_is_judged_by_the_current_definition():
    from core.analysis.run_quality import run_quality
    from core.training.runs import read_masks

    table = run_quality(DEMO_GIST).set_index("step")
    # the copy keeps the masks of steps 1-5 and of the sample batch's step only: the other steps are left
    # out, not read as "nothing masked"
    sample_step = json.loads((DEMO_GIST.parent / "sample_batch.json").read_text())["step"]
    assert list(table.index) == sorted({1, 2, 3, 4, 5, sample_step})
    masks = read_masks(DEMO_GIST)
    for step, row in table.iterrows():
        masked = int((masks["step"] == step).sum())
        shares = row["fn_precision"] + row["related_share"] + row["unrelated_share"]
        assert masked == 0 or math.isclose(shares, 1.0, abs_tol=2e-4), step  # the three-way split adds up
        assert row["fn_caught"] <= row["fn_present"]
        if row["fn_present"] == 0:  # a batch of a definition task: no false negative, recall undefined
            assert row["fn_recall"] is None or row["fn_recall"] != row["fn_recall"]
    assert table["fn_present"].sum() > 0  # task-homogeneous batches of category triplets hold some
