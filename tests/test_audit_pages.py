"""Pages of a stored audit: filtered ids in report order, a page's rows, duplicate groups kept whole."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from datasets import Dataset

from core.analysis.audit import AuditSettings, audit
from core.analysis.audit_pages import finding_ids, finding_rows, relations


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    rng = np.random.default_rng(0)
    n, d = 400, 8
    a = rng.normal(size=(n, d))
    p = a + rng.normal(scale=1.0, size=(n, d))
    p[1::20] = p[0::20]  # copies: duplicate groups
    anchors, positives = [f"anchor {k}" for k in range(n)], [f"positive {k % 7} of {k}" for k in range(n)]
    vectors = dict(zip(anchors, a)) | dict(zip(positives, p))
    embed = lambda texts: torch.tensor(np.stack([vectors[t] for t in texts]), dtype=torch.float32)  # noqa: E731
    ds = Dataset.from_dict({"anchor": anchors, "positive": positives, "group": [k // 2 for k in range(n)]})
    from core.analysis.audit import dataset_relations

    report = audit(ds, embed, AuditSettings(weak_share=0.3), relations=dataset_relations(ds))
    return report, report.save(tmp_path_factory.mktemp("audit"))


def test_ids_without_filters_are_the_report_order(stored):
    report, folder = stored
    for kind in ("fn", "dup", "pos"):
        assert finding_ids(folder, kind) == list(dict.fromkeys(report.table(kind)["finding"]))
        assert len(finding_ids(folder, kind)) > 3, kind


def test_filters_by_text_relation_and_decided(stored):
    report, folder = stored
    fn = report.false_negatives
    text = fn[fn["anchor"].str.contains("ANCHOR 1", case=False) | fn["positive"].str.contains("anchor 1")
              | fn["other_positive"].str.contains("Anchor 1") | fn["other_anchor"].str.contains("anchor 1", case=False)]
    assert finding_ids(folder, "fn", text="ANCHOR 1") == text["finding"].tolist() and len(text)
    assert relations(folder, "fn") == sorted(set(fn["relation"]))
    some = relations(folder, "fn")[0]
    assert finding_ids(folder, "fn", relation=some) == fn[fn["relation"] == some]["finding"].tolist()
    everything = finding_ids(folder, "fn")
    assert finding_ids(folder, "fn", exclude=everything[:5]) == everything[5:]


def test_a_page_reads_whole_duplicate_groups(stored):
    report, folder = stored
    dup = report.duplicates
    ids = finding_ids(folder, "dup")[2:4]
    rows = finding_rows(folder, "dup", ids)
    expected = dup[dup["finding"].isin(ids)].reset_index(drop=True)
    pd_equal = rows.reset_index(drop=True).equals(expected)
    assert pd_equal and rows["finding"].nunique() == 2
    member = dup[dup["finding"] == ids[0]].iloc[-1]["anchor"]  # a group matches through any of its rows
    assert ids[0] in finding_ids(folder, "dup", text=member)
    assert finding_rows(folder, "dup", []).empty and list(finding_rows(folder, "dup", []).columns) == list(dup.columns)
