"""Rebuild laicbench's WordNet noun list (TAC's WordNetNouns.csv) from WordNet 3.0's data.noun.

Usage: python scripts/build_wordnet_nouns.py [/usr/share/wordnet/data.noun]

One row per (lemma, noun synset) in data.noun order: word = the lemma as written (underscores
kept), definition = the gloss without its quoted examples, stripped of spaces and ";" at both
ends. Written
with csv.writer and '\\n' line ends under the header "word,definition", the CSV must have SHA-256
deff9dec...8e5d (146,347 rows); it is stored gzip-compressed as laicbench/data/wordnet_nouns.csv.gz
with WordNet's licence notice beside it.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import re
import sys
from pathlib import Path

EXPECTED_SHA256 = "deff9dec810a2ff5c8012c61b5e052e7ba5e62476da9acb6ce8e68df01fd8e5d"
OUT_DIR = Path(__file__).resolve().parent.parent / "laicbench" / "data"
_QUOTED = re.compile(r'".*?"')


def parse_data_noun(text: str) -> tuple[list[tuple[str, str]], str]:
    """The (word, definition) rows and the licence header of a data.noun file's text."""
    rows: list[tuple[str, str]] = []
    licence: list[str] = []
    for line in text.splitlines():
        if line.startswith("  "):
            licence.append(line.strip().split(" ", 1)[1] if " " in line.strip() else "")
            continue
        head, gloss = line.strip().split("|", 1)
        fields = head.split()
        n_words = int(fields[3], 16)
        words = fields[4 : 4 + 2 * n_words : 2]
        definition = _QUOTED.sub("", gloss).strip().strip("; ")
        rows.extend((word, definition) for word in words)
    return rows, "\n".join(licence).strip() + "\n"


def to_csv(rows: list[tuple[str, str]]) -> bytes:
    """The CSV bytes of `rows` under the header word,definition."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["word", "definition"])
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def main(path: str = "/usr/share/wordnet/data.noun") -> int:
    rows, licence = parse_data_noun(Path(path).read_text(encoding="utf-8"))
    data = to_csv(rows)
    digest = hashlib.sha256(data).hexdigest()
    print(f"{len(rows)} rows, {len(data)} bytes, sha256 {digest}")
    if digest != EXPECTED_SHA256:
        print(f"error: expected sha256 {EXPECTED_SHA256}", file=sys.stderr)
        return 1
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "wordnet_nouns.csv.gz").write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    (OUT_DIR / "WORDNET_LICENSE").write_text(licence)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
