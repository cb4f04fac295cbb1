"""Build gistlab's bundled offline data in ``assets/`` from the WordNet 3.0 database files.

    python scripts/build_assets.py --wordnet-dir /usr/share/wordnet --seed 0 --out assets

Reproducible: the same database, seed and library versions give the same bytes (every choice is
drawn from seeded ``random.Random`` over sorted lists; Parquet is written without timestamps). One
rng draws the held-out set, each synset's first training row, the category triplets and the
benchmark in that order; a synset's further training rows come from their own rng, so they leave
the benchmark unchanged.
After a rebuild, ``python scripts/fn_rates.py`` measures the false negatives into README.md.

1. Hold out evaluation synsets, split by synset: random parents of the noun and verb trees give
   2-3 hyponyms each, so the held-out set has co-hyponyms and close Wu-Palmer pairs to test on.
2. Training pairs from the other synsets only (``train/wordnet_pairs.parquet``: anchor, positive,
   negative, task, and each text's synset, lemmas and category: the ground truth of
   core/method/groundtruth.py), mirroring GISTEmbed's data: MEDI-style usage example -> definition and
   words -> definition (up to 3 rows of a synset each: its usage examples, or its word list and
   single words, all with its definition as positive: same-meaning rows, the false negatives a
   guide is for), and MTEB-classification-style definition -> same-category definition.
   No row holds a held-out definition or example, and no words -> definition row names a
   held-out synset's lemma (not even for another sense of it).
3. The six mini-benchmark tables (``benchmark/*.parquet``) that core/corpus/mteb_tasks.py loads.
4. ``manifest.json`` (counts, seed, content hash), ``LICENSE-WordNet`` and the datasheet ``README.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import sys
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from itertools import combinations
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.corpus.bundled import TRAIN_TASKS  # noqa: E402
from core.errors import GistlabError  # noqa: E402
from core.corpus.wordnet import Synset, WordNet, licence_header, read_wordnet  # noqa: E402


@dataclass
class BuildConfig:
    """Sizes of everything the build draws; the defaults are what assets/ ships."""

    seed: int = 0
    heldout: int = 1500  # evaluation synsets (nouns and verbs)
    per_train_task: int = 8000  # rows per training task
    # the benchmark sizes keep all six tasks within 60 s for MiniLM-L6 on 2 CPU cores
    retrieval_queries: int = 300
    reranking_queries: int = 150
    classification_train: int = 16  # per category, for mteb's logistic-regression probe
    classification_test: int = 10  # per category
    clustering_docs: int = 500
    pair_classification_pairs: int = 150  # per label
    sts_pairs: int = 300


def text_of(lemma: str) -> str:
    """A lemma as running text (WordNet joins collocations with underscores)."""
    return lemma.replace("_", " ")


def words_text(synset: Synset) -> str:
    """The synset's words as one anchor, e.g. ``dog, domestic dog, Canis familiaris``."""
    return ", ".join(text_of(lemma) for lemma in synset.lemmas)


def children_map(wn: WordNet) -> dict[str, list[str]]:
    """Direct hyponyms of every synset that has any, each list sorted."""
    children: dict[str, list[str]] = defaultdict(list)
    for sid in sorted(wn.synsets):
        for parent in wn.synsets[sid].hypernyms:
            children[parent].append(sid)
    return children


def hold_out(children: dict[str, list[str]], cfg: BuildConfig, rng: random.Random) -> list[str]:
    """Evaluation synsets: 2-3 random hyponyms of random noun/verb parents until ``cfg.heldout``."""
    parents = [p for p in sorted(children) if p[0] in "nv" and len(children[p]) >= 2]
    rng.shuffle(parents)
    held: set[str] = set()
    for parent in parents:
        free = [c for c in children[parent] if c not in held]
        if len(free) >= 2:
            held.update(rng.sample(free, min(len(free), rng.choice((2, 3)))))
        if len(held) >= cfg.heldout:
            break
    return sorted(held)


PER_SYNSET = 3  # most rows of one synset per definition task (usage examples, word lists)

Row = tuple[tuple[str, str, str], tuple[Synset, Synset, Synset]]
"""One training row: (anchor, positive, negative) texts and the synsets they come from."""


class TrainingBuilder:
    """Draws the training rows from the synsets that are not held out."""

    def __init__(self, wn: WordNet, heldout: list[str], rng: random.Random, seed: int = 0):
        self.wn, self.rng = wn, rng
        self.more_rng = random.Random(f"train-more-{seed}")  # the further rows of a synset, and the shuffle
        held = [wn.synsets[s] for s in heldout]
        self.eval_texts = {s.definition for s in held} | {e for s in held for e in s.examples}
        self.eval_lemmas = {text_of(lemma).lower() for s in held for lemma in s.lemmas}
        held_ids = set(heldout)
        self.train = [wn.synsets[s] for s in sorted(wn.synsets) if s not in held_ids]
        self.train_ids = {s.id for s in self.train}
        self.by_category: dict[str, list[Synset]] = defaultdict(list)
        for s in self.train:
            self.by_category[s.lexname].append(s)

    def clean(self, *texts: str) -> bool:
        """True when no text is a held-out definition or example, and the texts are distinct."""
        return len(set(texts)) == len(texts) and not any(t in self.eval_texts for t in texts)

    def other_sense(self, synset: Synset, rng: random.Random) -> Synset:
        """A hard negative's synset: another training sense of one of the synset's words, else a
        random training synset."""
        others = sorted({
            o.id for lemma in synset.lemmas for o in self.wn.senses_of(lemma, synset.id[0])
            if o.id != synset.id and o.id in self.train_ids
        })
        return self.wn.synsets[rng.choice(others)] if others else rng.choice(self.train)

    def example_definition(self, n: int) -> list[Row]:
        """MEDI-style: a usage example -> its definition; negative: another sense's definition.
        Up to ``PER_SYNSET`` examples of a synset, each its own row: the classic repeated positive."""
        pool = [s for s in self.train if s.examples]
        firsts = self._draw(pool, n, lambda s: self.rng.choice(s.examples))
        return self._more(firsts, n, lambda s, first: [e for e in s.examples if e != first])

    def words_definition(self, n: int) -> list[Row]:
        """MEDI-style: the synset's words -> its definition; none names a held-out lemma. A synset of
        several words also gives single words of it (up to ``PER_SYNSET`` rows in all)."""
        pool = [s for s in self.train
                if not any(text_of(lemma).lower() in self.eval_lemmas for lemma in s.lemmas)]
        firsts = self._draw(pool, n, words_text)
        return self._more(firsts, n, lambda s, _: [text_of(lemma) for lemma in s.lemmas] if len(s.lemmas) > 1 else [])

    def _draw(self, pool: list[Synset], n: int, anchor_text) -> list[Row]:
        """Up to ``n`` clean rows (``anchor_text(s)``, s's definition, another sense's definition)
        over ``pool`` in random order, one per synset. Draws from the shared rng exactly as the
        one-row-per-synset build did, so the benchmark drawn after it stays byte-identical."""
        rows = []
        for s in self.rng.sample(pool, len(pool)):
            anchor = anchor_text(s)
            negative = self.other_sense(s, self.rng)
            row = (anchor, s.definition, negative.definition)
            if self.clean(*row):
                rows.append((row, (s, s, negative)))
            if len(rows) == n:
                break
        return rows

    def _more(self, firsts: list[Row], n: int, more_anchors) -> list[Row]:
        """``n`` rows: each synset of ``firsts`` (in their order) with its first row, then up to
        ``PER_SYNSET - 1`` more rows of other anchors (``more_anchors(s, first_anchor)``) sharing its
        definition as positive, each with its own negative; shuffled so a synset's rows spread out."""
        rows = []
        for first in firsts:
            s = first[1][0]
            rows.append(first)
            for anchor in more_anchors(s, first[0][0])[:PER_SYNSET - 1]:
                negative = self.other_sense(s, self.more_rng)
                row = (anchor, s.definition, negative.definition)
                if self.clean(*row):
                    rows.append((row, (s, s, negative)))
            if len(rows) >= n:
                break
        rows = rows[:n]
        self.more_rng.shuffle(rows)
        return rows

    def category_triplet(self, n: int) -> list[Row]:
        """MTEB-classification-style: a definition -> another definition of the same lexicographer
        category; negative: a definition from another category of the same part of speech."""
        categories = [c for c in sorted(self.by_category) if len(self.by_category[c]) >= 2]
        family: dict[str, list[str]] = defaultdict(list)
        for c in categories:
            family[c.split(".")[0]].append(c)
        rows = []
        while len(rows) < n:
            category = self.rng.choice(categories)
            others = [c for c in family[category.split(".")[0]] if c != category] or \
                [c for c in categories if c != category]
            anchor, positive = self.rng.sample(self.by_category[category], 2)
            negative = self.rng.choice(self.by_category[self.rng.choice(others)])
            row = (anchor.definition, positive.definition, negative.definition)
            if self.clean(*row):
                rows.append((row, (anchor, positive, negative)))
        return rows


ROLES = ("anchor", "positive", "negative")
FN_BEGIN, FN_END = "<!-- fn-rates:begin -->", "<!-- fn-rates:end -->"  # scripts/fn_rates.py's table


def training_table(builder: TrainingBuilder, cfg: BuildConfig) -> pa.Table:
    """All training tasks in one table, task by task (rows shuffled within a task): the texts and
    task, then each text's provenance (``<role>_synset``, ``<role>_lemmas``, ``<role>_category``)."""
    columns: dict[str, list] = {key: [] for key in (*ROLES, "task")}
    columns |= {f"{role}_{kind}": [] for kind in ("synset", "lemmas", "category") for role in ROLES}
    for task in TRAIN_TASKS:
        for texts, synsets in getattr(builder, task)(cfg.per_train_task):
            for role, text, synset in zip(ROLES, texts, synsets):
                columns[role].append(text)
                columns[f"{role}_synset"].append(synset.id)
                columns[f"{role}_lemmas"].append(list(synset.lemmas))
                columns[f"{role}_category"].append(synset.lexname)
            columns["task"].append(task)
    return pa.table(columns)


class BenchmarkBuilder:
    """The six mini-benchmark tables, all from held-out synsets."""

    def __init__(self, wn: WordNet, heldout: list[str], children: dict[str, list[str]],
                 cfg: BuildConfig, rng: random.Random):
        self.wn, self.cfg, self.rng = wn, cfg, rng
        self.held = [wn.synsets[s] for s in heldout]
        held_ids = set(heldout)
        self.siblings = {p: [c for c in kids if c in held_ids] for p, kids in children.items()}
        self.siblings = {p: kids for p, kids in self.siblings.items() if len(kids) >= 2}

    def synsets_table(self) -> pa.Table:
        """The held-out synsets themselves, for the datasheet, the tests and the app."""
        rows = self.held
        return pa.table({
            "id": [s.id for s in rows], "name": [s.name for s in rows],
            "pos": [s.pos for s in rows], "lexname": [s.lexname for s in rows],
            "lemmas": [list(s.lemmas) for s in rows], "definition": [s.definition for s in rows],
            "examples": [list(s.examples) for s in rows], "hypernyms": [list(s.hypernyms) for s in rows],
        })

    def retrieval(self) -> dict[str, pa.Table]:
        """Usage example -> its definition among all held-out definitions."""
        with_examples = [s for s in self.held if s.examples]
        queries = sorted(self.rng.sample(with_examples, min(self.cfg.retrieval_queries, len(with_examples))),
                         key=lambda s: s.id)
        by_definition: dict[str, list[str]] = defaultdict(list)
        for s in self.held:
            by_definition[s.definition].append(s.id)
        qrels = [(f"q-{q.id}", doc) for q in queries for doc in by_definition[q.definition]]
        return {
            "queries": pa.table({"id": [f"q-{q.id}" for q in queries],
                                 "text": [self.rng.choice(q.examples) for q in queries]}),
            "corpus": pa.table({"id": [s.id for s in self.held], "text": [s.definition for s in self.held]}),
            "qrels": pa.table({"query-id": [q for q, _ in qrels], "corpus-id": [d for _, d in qrels],
                               "score": [1] * len(qrels)}),
        }

    def reranking(self) -> dict[str, pa.Table]:
        """Usage example -> the definitions of every sense of its word (same part of speech)."""
        candidates = []
        for s in self.held:
            senses = self.wn.senses_of(s.lemmas[0], s.id[0])
            if s.examples and len(senses) >= 2:
                candidates.append((s, senses))
        chosen = sorted(self.rng.sample(candidates, min(self.cfg.reranking_queries, len(candidates))),
                        key=lambda c: c[0].id)
        docs = {sense.id: sense.definition for _, senses in chosen for sense in senses}
        qids = [f"q-{s.id}" for s, _ in chosen]
        return {
            "queries": pa.table({"id": qids, "text": [self.rng.choice(s.examples) for s, _ in chosen]}),
            "corpus": pa.table({"id": sorted(docs), "text": [docs[d] for d in sorted(docs)]}),
            "qrels": pa.table({"query-id": qids, "corpus-id": [s.id for s, _ in chosen],
                               "score": [1] * len(chosen)}),
            "top_ranked": pa.table({"query-id": qids,
                                    "corpus-ids": [[x.id for x in senses] for _, senses in chosen]}),
        }

    def _categories(self, minimum: int, pos: str = "nv") -> dict[str, list[Synset]]:
        groups: dict[str, list[Synset]] = defaultdict(list)
        for s in self.held:
            if s.id[0] in pos and s.lexname != "noun.Tops":
                groups[s.lexname].append(s)
        return {c: g for c, g in sorted(groups.items()) if len(g) >= minimum}

    def classification(self) -> pa.Table:
        """Definition -> lexicographer category; a train split for mteb's probe, a test split."""
        n_train, n_test = self.cfg.classification_train, self.cfg.classification_test
        groups = self._categories(n_train + n_test // 2)
        columns: dict[str, list] = {"text": [], "label": [], "category": [], "split": []}
        for label, (category, members) in enumerate(groups.items()):
            picked = self.rng.sample(members, min(len(members), n_train + n_test))
            for i, s in enumerate(picked):
                for key, value in zip(columns, (s.definition, label, category,
                                                "train" if i < n_train else "test")):
                    columns[key].append(value)
        return pa.table(columns)

    def clustering(self) -> pa.Table:
        """Definitions grouped by lexicographer category."""
        members = [s for g in self._categories(20).values() for s in g]
        picked = sorted(self.rng.sample(members, min(len(members), self.cfg.clustering_docs)),
                        key=lambda s: s.id)
        return pa.table({"sentences": [s.definition for s in picked],
                         "labels": [s.lexname for s in picked]})

    def _sibling_pairs(self) -> list[tuple[Synset, Synset]]:
        pairs = {tuple(sorted(pair)) for kids in self.siblings.values() for pair in combinations(kids, 2)}
        return [(self.wn.synsets[a], self.wn.synsets[b]) for a, b in sorted(pairs)]

    def _distinct_pair(self, pool: list[Synset]) -> tuple[Synset, Synset]:
        while True:
            a, b = self.rng.sample(pool, 2)
            if a.definition != b.definition:
                return a, b

    def pair_classification(self) -> pa.Table:
        """Are two definitions co-hyponyms (share a direct hypernym)? Negatives share the category
        but no hypernym, so the task asks for more than the topic."""
        n = self.cfg.pair_classification_pairs
        positives = [p for p in self._sibling_pairs() if p[0].definition != p[1].definition]
        positives = self.rng.sample(positives, min(n, len(positives)))
        groups = list(self._categories(2).values())
        negatives: list[tuple[Synset, Synset]] = []
        while len(negatives) < len(positives):
            a, b = self._distinct_pair(self.rng.choice(groups))
            if not set(a.hypernyms) & set(b.hypernyms):
                negatives.append((a, b))
        rows = [(a, b, 1) for a, b in positives] + [(a, b, 0) for a, b in negatives]
        self.rng.shuffle(rows)
        return pa.table({"sentence1": [a.definition for a, _, _ in rows],
                         "sentence2": [b.definition for _, b, _ in rows],
                         "labels": [label for _, _, label in rows]})

    def sts(self) -> pa.Table:
        """Noun definition pairs scored 0..5 by Wu-Palmer similarity (5 * wup, 3 decimals):
        a third co-hyponyms, a third same category, a third any two nouns."""
        third = self.cfg.sts_pairs // 3
        nouns = [s for s in self.held if s.id[0] == "n"]
        siblings = [p for p in self._sibling_pairs() if p[0].id[0] == "n" and p[0].definition != p[1].definition]
        groups = list(self._categories(2, pos="n").values())
        pairs = self.rng.sample(siblings, min(third, len(siblings)))
        pairs += [self._distinct_pair(self.rng.choice(groups)) for _ in range(third)]
        pairs += [self._distinct_pair(nouns) for _ in range(self.cfg.sts_pairs - len(pairs))]
        self.rng.shuffle(pairs)
        return pa.table({"sentence1": [a.definition for a, _ in pairs],
                         "sentence2": [b.definition for _, b in pairs],
                         "score": [round(5 * self.wn.wu_palmer(a.id, b.id), 3) for a, b in pairs]})

    def tables(self) -> dict[str, pa.Table]:
        """Every benchmark table by file name (without ``benchmark/`` and ``.parquet``)."""
        out = {"eval_synsets": self.synsets_table()}
        for task in ("retrieval", "reranking"):
            out.update({f"{task}_{k}": t for k, t in getattr(self, task)().items()})
        for task in ("classification", "clustering", "pair_classification", "sts"):
            out[task] = getattr(self, task)()
        return out


def parquet_bytes(table: pa.Table) -> bytes:
    """The table as Parquet bytes: zstd, no pandas metadata, so equal tables give equal bytes."""
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", compression_level=9)
    return sink.getvalue()


def write_files(out: Path, files: dict[str, bytes]) -> None:
    """Write each relative path's bytes under ``out``, making folders as needed."""
    for rel, data in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def build(wordnet_dir: str | Path, out: str | Path, cfg: BuildConfig) -> dict:
    """Build every asset into ``out`` and return the manifest."""
    wn = read_wordnet(wordnet_dir)
    rng = random.Random(cfg.seed)
    children = children_map(wn)
    heldout = hold_out(children, cfg, rng)
    train = training_table(TrainingBuilder(wn, heldout, rng, cfg.seed), cfg)
    bench = BenchmarkBuilder(wn, heldout, children, cfg, rng).tables()

    files = {"train/wordnet_pairs.parquet": parquet_bytes(train)}
    files.update({f"benchmark/{name}.parquet": parquet_bytes(t) for name, t in bench.items()})
    task_counts = {t: train["task"].to_pylist().count(t) for t in TRAIN_TASKS}
    synsets = {t: Counter(s for s, k in zip(train["positive_synset"].to_pylist(), train["task"].to_pylist()) if k == t)
               for t in ("example_definition", "words_definition")}
    manifest = {
        "source": "Princeton WordNet 3.0 (Debian wordnet-base database files)",
        "config": asdict(cfg),
        "train_tasks": task_counts,
        "synsets_per_task": {f"{t.split('_')[0]}_{kind}": n for t, c in synsets.items() for kind, n in
                             (("synsets", len(c)), ("multi", sum(v > 1 for v in c.values())))},
        "benchmark_rows": {name: t.num_rows for name, t in bench.items()},
        "benchmark_revision": hashlib.sha256(
            b"".join(files[k] for k in sorted(files) if k.startswith("benchmark/"))).hexdigest()[:12],
        "files": {k: hashlib.sha256(v).hexdigest() for k, v in sorted(files.items())},
    }
    files["manifest.json"] = (json.dumps(manifest, indent=2) + "\n").encode()
    files["LICENSE-WordNet"] = ("WordNet Release 3.0\n\n" + licence_header(wordnet_dir)).encode()
    files["README.md"] = datasheet(manifest, bench, fn_rates_block(Path(out) / "README.md")).encode()
    write_files(Path(out), files)
    return manifest


def fn_rates_block(readme: Path) -> str:
    """The fn-rates table between its markers in an existing datasheet (scripts/fn_rates.py writes
    it), kept across a rebuild; else the bare markers for fn_rates.py to fill."""
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    if FN_BEGIN in text and FN_END in text:
        return text[text.index(FN_BEGIN):text.index(FN_END) + len(FN_END)]
    return f"{FN_BEGIN}\n(run python scripts/fn_rates.py)\n{FN_END}"


def datasheet(manifest: dict, bench: dict[str, pa.Table], fn_rates: str) -> str:
    """assets/README.md: what the files are, how they were made, how to rebuild them."""
    cfg = manifest["config"]
    train_rows = "\n".join(f"| `{t}` | {n} |" for t, n in manifest["train_tasks"].items())
    bench_rows = "\n".join(f"| `benchmark/{k}.parquet` | {n} |" for k, n in manifest["benchmark_rows"].items())
    n_categories = len(set(bench["classification"]["category"].to_pylist()))
    return DATASHEET.format(
        seed=cfg["seed"], heldout=manifest["benchmark_rows"]["eval_synsets"], train_rows=train_rows,
        train_total=sum(manifest["train_tasks"].values()), bench_rows=bench_rows,
        n_categories=n_categories, revision=manifest["benchmark_revision"], fn_rates=fn_rates,
        per_synset=PER_SYNSET, **manifest["synsets_per_task"],
    )


DATASHEET = """\
# Bundled data: WordNet-derived training sets and a six-task mini benchmark

Everything here is generated by `scripts/build_assets.py` from the Princeton WordNet 3.0
database files (Debian's `wordnet-base`, under /usr/share/wordnet) with seed {seed}. Do not edit
by hand; rebuild instead. `demo/` is not built here (it holds a finished demo run).

## Source and licence

Princeton WordNet 3.0: human-written synsets (sets of synonymous words), definitions, usage
examples, lexicographer categories (`noun.animal`, `verb.motion`, ...) and a hypernym taxonomy.
Redistributed under Princeton's WordNet 3.0 licence, whose full notice is in `LICENSE-WordNet`
and must accompany every copy. WordNet 3.0 Copyright 2006 by Princeton University.

## Splits (by synset)

{heldout} noun and verb synsets are held out for evaluation: random parents of the hypernym tree
give 2-3 of their hyponyms each, so the held-out set contains co-hyponyms. The training file is
drawn from the other synsets only, and no training row contains a held-out definition or usage
example; no `words_definition` row names a held-out synset's lemma, even for another sense.
`tests/test_bundled.py` checks this from the files. Reranking candidates are *all* senses of a
word, so some of its distractor definitions are training synsets' definitions (never the target).

## `train/wordnet_pairs.parquet`

Columns `anchor`, `positive`, `negative`, `task` (strings; every row has a negative so the tasks
can share one dataset). Rows are grouped by task and shuffled within it.

Provenance of every text (the ground truth `core/method/groundtruth.py` judges masks against), for each
role `anchor`, `positive`, `negative`:

- `<role>_synset`: the WordNet synset the text comes from (part of speech + offset, `n02084071`);
- `<role>_lemmas`: that synset's lemmas (list of strings, WordNet spelling: `domestic_dog`);
- `<role>_category`: its lexicographer category (`noun.animal`).

An in-batch candidate is a *false negative* of a row when it is a right answer for the row by the
row's task's relation (`core.corpus.bundled.TASK_RELATIONS`): the same synset for
`example_definition` and `words_definition`, the same category for `category_triplet`. Otherwise it
is a *related hard negative* when it shares a lemma (another sense) or the category (where that is
not the task's relation), else *unrelated*. A mask's precision is false negatives masked / masked,
its recall false negatives masked / false negatives present (`core/method/groundtruth.py`).
`core.corpus.bundled.bundled_pairs()` keeps these columns; training drops them. The definition
tasks hold up to {per_synset} rows of one synset (its usage examples, or its word list and single
words), all with its definition as positive, so random batches hold a few false negatives
naturally (table below); `--false-negatives RATE` (`core/corpus/false_negatives.py`) adds more.

| task | rows |
|---|---|
{train_rows}
| total | {train_total} |

- `example_definition` (MEDI-style): a usage example -> its synset's definition; negative: the
  definition of another sense of one of the synset's words (a hard negative), else a random one.
  Each of up to {per_synset} usage examples of a synset is its own row sharing the definition as
  positive (the classic repeated positive): {example_synsets} synsets, {example_multi} of them with
  several rows.
- `words_definition` (MEDI-style): the synset's words (`dog, domestic dog, Canis familiaris`) ->
  its definition; negative as above. A synset of several words also gives rows of its single words
  (`dog` -> the same definition), up to {per_synset} rows: {words_synsets} synsets, {words_multi}
  of them with several rows.
- `category_triplet` (MTEB-classification-style): a definition -> another definition of the same
  lexicographer category; negative: a definition from another category of the same part of
  speech. Same-category positives make in-batch false negatives common, which is what GISTEmbed's
  guide is for. The WordNetClassification/Clustering tasks use the same categories (on held-out
  synsets): report that overlap, as for the paper's MTEB classification data.

### False negatives in training batches

Measured by `python scripts/fn_rates.py` (rerun it after a rebuild: the build keeps the table
between the markers as it was): all task-homogeneous batches of epoch 0 with seed 0, as training
draws them, at `--false-negatives` 0 (the data as shipped), 0.1 and 0.2. Per row: false-negative
candidates (another row's positive in a-p, anchor in a-a, positive in p-p that is a right answer by
the task's relation; the a-p block alone beside it), the share of rows with at least one, and how
many are *identical* to the row's own anchor or positive text (masked by the identical-text rule
whatever the guide) or *distinct* texts (what a guide must judge). In the definition tasks a
same-synset positive is always the identical definition, so only a-a candidates (another example or
word list of the synset) can be distinct; a synset has at most {per_synset} rows, so larger
clusters at a set rate repeat them.

{fn_rates}

As shipped, the definition tasks' same-meaning rows seldom share a random batch (a synset's 2-3
rows among 8000; the expected count grows with B), so most of their batches hold none:
`--false-negatives` is what makes them common. There most added false negatives are identical texts
(a definition repeated, or a synset's few rows repeated), so there the rate mostly tests MNRL against
GIST; the guides differ on the distinct ones, and on `category_triplet`, whose false negatives
(natural and added) are nearly all distinct texts.

## `benchmark/` (loaded by `core/corpus/mteb_tasks.py`, revision `{revision}`)

| file | rows |
|---|---|
{bench_rows}

- `eval_synsets`: the held-out synsets (id = part of speech + WordNet offset, NLTK-style name,
  pos, lexname, lemmas, definition, examples, hypernym ids).
- `retrieval_*` (WordNetRetrieval): queries are usage examples, the corpus is every held-out
  definition, qrels mark the synset's definition (and any identical held-out definition).
- `reranking_*` (WordNetReranking): a usage example against the definitions of every sense of its
  synset's first word in the same part of speech (`top_ranked`), the right sense relevant.
- `classification` (WordNetClassification): definition -> lexicographer category ({n_categories}
  categories), `split` = `train` (for mteb's logistic-regression probe) or `test`.
- `clustering` (WordNetClustering): definitions (`sentences`) with their category (`labels`).
- `pair_classification` (WordNetPairClassification): `labels` 1 when the two definitions'
  synsets share a direct hypernym (co-hyponyms), 0 for pairs of the same category sharing none.
- `sts` (WordNetSTS): noun definition pairs, `score` = 5 x Wu-Palmer similarity of the synsets
  (a third co-hyponyms, a third same category, a third random).

## Rebuild

    python scripts/build_assets.py --wordnet-dir /usr/share/wordnet --seed {seed} --out assets

    python scripts/fn_rates.py

`manifest.json` records the sizes, counts and a SHA-256 of every file.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet-dir", default="/usr/share/wordnet")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "assets"))
    args = parser.parse_args(argv)
    try:
        manifest = build(args.wordnet_dir, args.out, BuildConfig(seed=args.seed))
    except GistlabError as exc:
        print(f"build_assets: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({k: manifest[k] for k in ("train_tasks", "benchmark_rows")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
