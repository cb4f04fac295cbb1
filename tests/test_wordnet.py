"""The WordNet reader against known synsets of the Debian wordnet-base files (skipped without them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import GistlabError
from core.corpus.wordnet import licence_header, parse_data_line, read_wordnet, split_gloss

WORDNET_DIR = Path("/usr/share/wordnet")
needs_wordnet = pytest.mark.skipif(
    not (WORDNET_DIR / "data.noun").is_file(),
    reason="WordNet 3.0 database not installed at /usr/share/wordnet (apt-get install wordnet-base)",
)


@pytest.fixture(scope="module")
def wn():
    return read_wordnet(WORDNET_DIR)


def test_split_gloss_separates_definition_and_examples():
    definition, examples = split_gloss('a domesticated canine; occurs in many breeds; "the dog barked"; "a dog\'s life"')
    assert definition == "a domesticated canine; occurs in many breeds"
    assert examples == ("the dog barked", "a dog's life")


def test_parse_data_line_reads_pointers_and_strips_adjective_markers():
    line = ("00002312 00 s 02 abaxial(a) 0 dorsal 4 002 ;c 06037666 n 0000 @ 00002527 a 0101 "
            '| facing away from the axis; "the abaxial surface"  ')
    synset = parse_data_line(line, "a")
    assert synset.id == "a00002312" and synset.pos == "s" and synset.lexname == "adj.all"
    assert synset.lemmas == ("abaxial", "dorsal")
    assert synset.hypernyms == ("a00002527",)
    assert synset.examples == ("the abaxial surface",)


@needs_wordnet
def test_dog_n_01(wn):
    dog = wn.by_name("dog.n.01")
    assert dog.offset == 2084071 and dog.id == "n02084071" and dog.pos == "n"
    assert dog.lexname == "noun.animal"
    assert dog.lemmas == ("dog", "domestic_dog", "Canis_familiaris")
    assert dog.definition.startswith("a member of the genus Canis")
    assert dog.examples == ("the dog barked all night",)
    assert [wn.synsets[h].name for h in dog.hypernyms] == ["canine.n.02", "domestic_animal.n.01"]
    assert [h[1:] for h in dog.hypernyms] == ["02083346", "01317541"]


@needs_wordnet
def test_other_parts_of_speech_and_senses(wn):
    breathe = wn.by_name("breathe.v.01")
    assert breathe.lexname == "verb.body" and "respire" in breathe.lemmas
    assert breathe.examples[0] == "I can breathe better when the air is clean"
    assert wn.by_name("able.a.01").definition.endswith("authority to do something")
    assert [s.name for s in wn.senses_of("dog", "n")][:2] == ["dog.n.01", "frump.n.01"]
    assert len(wn.senses_of("Dog", "n")) == 7
    einstein = wn.by_name("einstein.n.01")  # instance hypernym @i counts as a hypernym
    assert [wn.synsets[h].name for h in einstein.hypernyms] == ["physicist.n.01"]


@needs_wordnet
def test_wu_palmer_matches_nltk_values(wn):
    dog, cat = wn.by_name("dog.n.01").id, wn.by_name("cat.n.01").id
    assert wn.wu_palmer(dog, dog) == 1.0
    assert wn.wu_palmer(dog, cat) == pytest.approx(0.857142857, abs=1e-6)
    assert wn.wu_palmer(dog, cat) == wn.wu_palmer(cat, dog)
    car = wn.by_name("car.n.01").id
    assert 0.0 < wn.wu_palmer(dog, car) < wn.wu_palmer(dog, cat)
    assert wn.depth(wn.by_name("entity.n.01").id) == 1


@needs_wordnet
def test_licence_header_is_princetons_notice():
    text = licence_header(WORDNET_DIR)
    assert text.startswith("This software and database is being provided to you")
    assert "WordNet 3.0 Copyright 2006 by Princeton University." in text
    assert text.rstrip().endswith("LICENSEE agrees to preserve same.")


def test_missing_folder_is_one_clear_error(tmp_path):
    with pytest.raises(GistlabError, match="not a WordNet 3.0 database folder"):
        read_wordnet(tmp_path)
