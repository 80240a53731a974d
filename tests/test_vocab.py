"""The shipped WordNet noun list (bytes, words, licence, rebuild script) and --vocabulary files."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
from pathlib import Path

import pytest

import laicbench.data.vocab
from laicbench.api.errors import UserError
from laicbench.data.vocab import (
    WORDNET_NOUNS_FILE,
    WORDNET_NOUNS_SHA256,
    load_vocabulary,
    vocabulary_hash,
    wordnet_nouns,
)

TAC_SHA256 = "deff9dec810a2ff5c8012c61b5e052e7ba5e62476da9acb6ce8e68df01fd8e5d"
N_NOUNS = 146_347
REPO = Path(__file__).resolve().parent.parent
DATA_NOUN = Path("/usr/share/wordnet/data.noun")


@pytest.fixture(scope="module")
def csv_bytes() -> bytes:
    return gzip.decompress(WORDNET_NOUNS_FILE.read_bytes())


def test_shipped_list_is_tacs_noun_csv(csv_bytes):
    assert WORDNET_NOUNS_FILE.name == "wordnet_nouns.csv.gz"
    assert WORDNET_NOUNS_FILE.read_bytes()[:2] == b"\x1f\x8b"  # gzip
    assert hashlib.sha256(csv_bytes).hexdigest() == TAC_SHA256 == WORDNET_NOUNS_SHA256
    assert csv_bytes.startswith(b"word,definition\n")


def test_wordnet_nouns_words():
    words = wordnet_nouns()
    assert len(words) == N_NOUNS
    assert words[:3] == ("entity", "physical_entity", "abstraction")
    assert all(isinstance(w, str) and w for w in words)
    # lemmas that pandas' CSV reader would turn into NaN stay words
    assert "nan" in words and "null" in words
    assert words.count("thing") > 1  # duplicates kept, one row per (lemma, synset)
    assert "physical_entity" in words and "physical entity" not in words  # underscores kept
    assert load_vocabulary(None) == list(words)


def test_tampered_list_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "wordnet_nouns.csv.gz"
    fake.write_bytes(gzip.compress(b"word,definition\ncat,a feline\n"))
    monkeypatch.setattr(laicbench.data.vocab, "WORDNET_NOUNS_FILE", fake)
    wordnet_nouns.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="SHA-256"):
            wordnet_nouns()
    finally:
        wordnet_nouns.cache_clear()


def test_licence_is_shipped():
    licence = WORDNET_NOUNS_FILE.parent / "WORDNET_LICENSE"
    assert licence.is_file()
    text = licence.read_text()
    assert "Princeton" in text
    assert "WordNet 3.0" in text


def _build_script():
    path = REPO / "scripts" / "build_wordnet_nouns.py"
    spec = importlib.util.spec_from_file_location("build_wordnet_nouns_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not DATA_NOUN.is_file(), reason=f"{DATA_NOUN} is not installed")
def test_build_script_reproduces_the_shipped_bytes(csv_bytes):
    script = _build_script()
    rows, licence = script.parse_data_noun(DATA_NOUN.read_text(encoding="utf-8"))
    assert len(rows) == N_NOUNS
    assert script.to_csv(rows) == csv_bytes
    assert script.EXPECTED_SHA256 == TAC_SHA256
    assert "Princeton" in licence


# ---------------------------------------------------------------------------------------------
# --vocabulary files


def test_vocabulary_file_gives_its_non_empty_lines(tmp_path):
    path = tmp_path / "nouns.txt"
    path.write_text("cat\n\n  dog  \n\t\nnan\r\nice cream\ncat\n", encoding="utf-8")
    assert load_vocabulary(str(path)) == ["cat", "dog", "nan", "ice cream", "cat"]


@pytest.mark.parametrize(
    "content", [b"", b"\n\n", b"  \n\t\r\n"], ids=["empty", "newlines", "blank"]
)
def test_vocabulary_file_without_words_is_a_user_error(tmp_path, content):
    path = tmp_path / "nouns.txt"
    path.write_bytes(content)
    with pytest.raises(UserError, match="no words"):
        load_vocabulary(str(path))


def test_unreadable_vocabulary_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot read"):
        load_vocabulary(str(tmp_path / "absent.txt"))
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(UserError, match="cannot read"):
        load_vocabulary(str(latin1))


def test_vocabulary_hash_sees_order_and_duplicates():
    words = ["cat", "dog"]
    assert vocabulary_hash(words) == vocabulary_hash(("cat", "dog"))
    assert vocabulary_hash(words) != vocabulary_hash(["dog", "cat"])
    assert vocabulary_hash(words) != vocabulary_hash(["cat", "dog", "dog"])
    assert len(vocabulary_hash(words)) == 64
