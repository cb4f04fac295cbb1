"""A small reader of the Princeton WordNet 3.0 database files (``data.*`` and ``index.*``, wndb(5)).

It keeps what gistlab's bundled data needs: each synset's offset, part of speech, lexicographer
file (``noun.animal``), lemmas, gloss split into definition and quoted usage examples, and
hypernym pointers; plus the word -> senses index and Wu-Palmer similarity over the hypernym tree.
Debian's ``wordnet-base`` installs the files under /usr/share/wordnet. Only the build script
(scripts/build_assets.py) and its tests read WordNet; the app reads the built files in ``assets/``.

    >>> wn = read_wordnet("/usr/share/wordnet")
    >>> dog = wn.by_name("dog.n.01")
    >>> dog.lexname, dog.lemmas[:2]
    ('noun.animal', ('dog', 'domestic_dog'))
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from core.errors import GistlabError

# lexnames(5): the lexicographer file for each two-digit lex_filenum, in order.
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event",
    "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object",
    "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather", "adj.ppl",
)
FILE_POS = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
HYPERNYM_SYMBOLS = ("@", "@i")  # hypernym and instance hypernym
_ADJ_MARKER = re.compile(r"\((?:a|p|ip)\)$")  # syntactic marker on adjectives in data.adj
_QUOTED = re.compile(r'"([^"]*)"')


@dataclass(frozen=True, slots=True)
class Synset:
    """One synset. ``id`` is ``<file pos><offset>`` (``n02084071``), unique across the four files;
    ``pos`` is the synset type (n, v, a, s for adjective satellites, r); ``hypernyms`` holds the
    ids of the ``@`` and ``@i`` (instance) hypernym pointers."""

    id: str
    offset: int
    pos: str
    lexname: str
    lemmas: tuple[str, ...]
    definition: str
    examples: tuple[str, ...]
    hypernyms: tuple[str, ...]
    name: str = ""


def split_gloss(gloss: str) -> tuple[str, tuple[str, ...]]:
    """Split a gloss into its definition (the text before the first quote) and quoted examples."""
    gloss = gloss.strip()
    examples = tuple(e.strip() for e in _QUOTED.findall(gloss) if e.strip())
    head = gloss.split('"', 1)[0].strip().rstrip(";").strip()
    return head, examples


def parse_data_line(
    line: str, file_pos: str, senses: dict[tuple[str, str], list[str]] | None = None
) -> Synset:
    """Parse one synset line of a ``data.<pos>`` file (format in wndb(5)); with the sense index
    (see :func:`parse_index_line`) it also names the synset NLTK's way (``dog.n.01``)."""
    fields, _, gloss = line.partition(" | ")
    parts = fields.split()
    offset, lex_filenum, ss_type = int(parts[0]), int(parts[1]), parts[2]
    w_cnt = int(parts[3], 16)
    lemmas = tuple(_ADJ_MARKER.sub("", parts[4 + 2 * i]) for i in range(w_cnt))
    at = 4 + 2 * w_cnt
    p_cnt = int(parts[at])
    hypernyms = []
    for i in range(p_cnt):
        symbol, target, target_pos = parts[at + 1 + 4 * i: at + 4 + 4 * i]
        if symbol in HYPERNYM_SYMBOLS:
            hypernyms.append(f"{'a' if target_pos == 's' else target_pos}{target}")
    definition, examples = split_gloss(gloss)
    sid = f"{file_pos}{offset:08d}"
    name = ""
    if senses is not None:
        first = lemmas[0].lower()
        name = f"{first}.{ss_type}.{senses[(first, file_pos)].index(sid) + 1:02d}"
    return Synset(
        id=sid, offset=offset, pos=ss_type, lexname=LEXNAMES[lex_filenum], lemmas=lemmas,
        definition=definition, examples=examples, hypernyms=tuple(hypernyms), name=name,
    )


def parse_index_line(line: str, file_pos: str) -> tuple[str, list[str]]:
    """Parse one line of an ``index.<pos>`` file into (lemma, synset ids in sense order)."""
    parts = line.split()
    synset_cnt, p_cnt = int(parts[2]), int(parts[3])
    offsets = parts[6 + p_cnt: 6 + p_cnt + synset_cnt]
    return parts[0], [f"{file_pos}{o}" for o in offsets]


def _content_lines(path: Path):
    """The lines of a database file after its licence header (header lines start with two spaces)."""
    with path.open(encoding="utf-8") as f:
        for line in f:
            if not line.startswith("  "):
                yield line.rstrip("\n")


def licence_header(wordnet_dir: str | Path) -> str:
    """The licence notice that heads every database file, without its line numbers."""
    lines = []
    with (Path(wordnet_dir) / "data.noun").open(encoding="utf-8") as f:
        for line in f:
            if not line.startswith("  "):
                break
            lines.append(line[2:].split(" ", 1)[1].rstrip() if line[2:].strip() else "")
    return "\n".join(lines).strip() + "\n"


class WordNet:
    """All synsets of the four data files, the sense index, and taxonomy helpers."""

    def __init__(self, synsets: dict[str, Synset], senses: dict[tuple[str, str], list[str]]):
        self.synsets = synsets
        self.senses = senses  # (lemma lower-case, file pos) -> synset ids in sense order
        self._by_name = {s.name: s for s in synsets.values()}
        self._depth: dict[str, int] = {}

    def by_name(self, name: str) -> Synset:
        """The synset called ``lemma.pos.NN`` (NLTK's naming: first lemma, sense number)."""
        return self._by_name[name]

    def senses_of(self, lemma: str, file_pos: str) -> list[Synset]:
        """Every sense of ``lemma`` in one part of speech, in WordNet's sense order."""
        return [self.synsets[i] for i in self.senses.get((lemma.lower(), file_pos), [])]

    def ancestors(self, synset_id: str) -> dict[str, int]:
        """Every hypernym ancestor (and the synset itself) with its shortest distance in edges."""
        dist = {synset_id: 0}
        queue = deque([synset_id])
        while queue:
            node = queue.popleft()
            for parent in self.synsets[node].hypernyms:
                if parent not in dist:
                    dist[parent] = dist[node] + 1
                    queue.append(parent)
        return dist

    def depth(self, synset_id: str) -> int:
        """Nodes on the longest hypernym path from a root down to the synset (a root has depth 1)."""
        if synset_id not in self._depth:
            parents = self.synsets[synset_id].hypernyms
            self._depth[synset_id] = 1 + max((self.depth(p) for p in parents), default=0)
        return self._depth[synset_id]

    def wu_palmer(self, a: str, b: str) -> float:
        """Wu-Palmer similarity 2*d / (dist_a + dist_b + 2*d), d = depth of the deepest common
        hypernym, dist = edges to it; 0.0 when the two share no hypernym (e.g. verbs of
        different trees). Matches NLTK's ``wup_similarity`` on nouns (dog/cat: 0.857)."""
        up_a, up_b = self.ancestors(a), self.ancestors(b)
        common = up_a.keys() & up_b.keys()
        if not common:
            return 0.0
        lcs = max(common, key=lambda c: (self.depth(c), -(up_a[c] + up_b[c]), c))
        d = self.depth(lcs)
        return 2.0 * d / (up_a[lcs] + up_b[lcs] + 2.0 * d)


def read_wordnet(wordnet_dir: str | Path) -> WordNet:
    """Read the WordNet 3.0 database in ``wordnet_dir`` (the folder holding data.noun, index.noun...)."""
    root = Path(wordnet_dir)
    missing = [f"{k}.{p}" for p in FILE_POS.values() for k in ("data", "index")
               if not (root / f"{k}.{p}").is_file()]
    if missing:
        raise GistlabError(
            f"{root} is not a WordNet 3.0 database folder (missing {', '.join(missing)}): "
            "install Debian's wordnet-base or pass the folder that holds data.noun."
        )
    synsets: dict[str, Synset] = {}
    senses: dict[tuple[str, str], list[str]] = {}
    for file_pos, name in FILE_POS.items():
        for line in _content_lines(root / f"index.{name}"):
            lemma, ids = parse_index_line(line, file_pos)
            senses[(lemma, file_pos)] = ids
        for line in _content_lines(root / f"data.{name}"):
            synset = parse_data_line(line, file_pos, senses)
            synsets[synset.id] = synset
    return WordNet(synsets, senses)
