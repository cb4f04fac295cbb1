"""scripts/fn_rates.py: false negatives per task of training batches, counted on a small slice of
the bundled data against an independent count, and the table written between its markers."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest

from core.corpus.bundled import bundled_pairs
from core.corpus.data import epoch_batches

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import fn_rates  # noqa: E402


@pytest.fixture(scope="module")
def triples():
    """All rows of 16 example_definition synsets that have 3 rows each (48 rows, 3 batches of 16)."""
    ds = bundled_pairs(["example_definition"])
    synsets = ds.with_format("arrow")["positive_synset"].to_pylist()
    threes = sorted(s for s, k in Counter(synsets).items() if k == 3)[:16]
    return ds.select([r for r, s in enumerate(synsets) if s in set(threes)])


def test_counts_agree_with_a_count_by_synset(triples):
    """Each same-synset partner in a batch is a false negative in a-p and p-p (the identical
    definition) and in a-a (another usage example: a distinct text)."""
    got = fn_rates.measure(triples, "example_definition", 16, 0.0)
    synsets = triples.with_format("arrow")["positive_synset"].to_pylist()
    partners = [sum(synsets[j] == synsets[i] for j in b if j != i)
                for b in epoch_batches(triples, 16, 0, 0, homogeneous=True) for i in b]
    assert sum(partners) > 0
    assert got.per_row == pytest.approx(3 * sum(partners) / len(partners))
    assert got.per_row_ap == pytest.approx(sum(partners) / len(partners))
    assert (got.identical, got.distinct) == (2 * sum(partners), sum(partners))
    assert got.rows_with == pytest.approx(sum(p > 0 for p in partners) / len(partners))


def test_a_rate_adds_about_rate_times_batch_per_row(triples):
    got = fn_rates.measure(triples, "example_definition", 16, 0.25)
    assert got.per_row_ap == pytest.approx(0.25 * 16, rel=0.2) and got.rows_with > 0.9
    assert got.distinct > 0  # the synset's other examples, not only repeats


def test_table_goes_between_the_markers_and_the_readme_has_them(tmp_path):
    rates = [fn_rates.Rate("example_definition", 16, 0.1, 4.5, 1.5, 0.9375, 30, 6)]
    table = fn_rates.markdown(rates)
    assert "| 0.1 | `example_definition` | 16 | 4.500 | 1.500 | 93.8% | 3.750 | 0.750 |" in table
    readme = tmp_path / "README.md"
    readme.write_text(f"before\n{fn_rates.BEGIN}\nold\n{fn_rates.END}\nafter\n")
    fn_rates.write_between_markers(readme, table)
    assert readme.read_text() == f"before\n{fn_rates.BEGIN}\n{table}\n{fn_rates.END}\nafter\n"
    shipped = fn_rates.README.read_text()
    assert fn_rates.BEGIN in shipped and "| `--false-negatives` | task | batch |" in shipped
    assert "python scripts/fn_rates.py" in shipped
