"""The WordNet noun vocabulary (TAC's 146,347-row noun list), shipped as package data.

``scripts/build_wordnet_nouns.py`` rebuilds it byte for byte from WordNet 3.0's data.noun; the
licence notice is in ``laicbench/data/WORDNET_LICENSE``. Rows are read with the csv module, so
lemmas such as "nan" and "null" stay words.
"""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import io
from collections.abc import Sequence
from pathlib import Path

from laicbench.api.errors import UserError
from laicbench.files import canonical_json

WORDNET_NOUNS_FILE = Path(__file__).parent / "wordnet_nouns.csv.gz"
WORDNET_NOUNS_SHA256 = "deff9dec810a2ff5c8012c61b5e052e7ba5e62476da9acb6ce8e68df01fd8e5d"


@functools.cache
def wordnet_nouns() -> tuple[str, ...]:
    """The 146,347 noun lemmas in data.noun order (duplicates and underscores kept).

    Raises RuntimeError if the shipped file does not have the expected SHA-256.
    """
    data = gzip.decompress(WORDNET_NOUNS_FILE.read_bytes())
    digest = hashlib.sha256(data).hexdigest()
    if digest != WORDNET_NOUNS_SHA256:
        raise RuntimeError(f"{WORDNET_NOUNS_FILE} has SHA-256 {digest}, expected the TAC list's")
    reader = csv.reader(io.StringIO(data.decode("utf-8")))
    next(reader)  # header: word,definition
    return tuple(row[0] for row in reader)


def vocabulary_hash(words: Sequence[str]) -> str:
    """SHA-256 of the word list (order and duplicates matter)."""
    return hashlib.sha256(canonical_json(list(words)).encode()).hexdigest()


def load_vocabulary(path: str | None) -> list[str]:
    """The WordNet nouns when `path` is None, else the non-empty lines of the text file `path`."""
    if path is None:
        return list(wordnet_nouns())
    try:
        words = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--vocabulary {path}: cannot read ({exc})") from exc
    words = [w for w in words if w]
    if not words:
        raise UserError(f"--vocabulary {path}: no words in the file")
    return words
