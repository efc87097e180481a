"""The floor of P5 (benchmarks/bench.py): the least a program can do to ingest seed-format
text files, with the standard library only. It reads every file, splits it into title,
standfirst, date, body paragraphs and related entries the way the seed format lays them
out, and makes one SQLite INSERT per article (one transaction, as `ingest` commits).
No slugs, no related-link index, no checks: what `ingest` does beyond this is its cost.

    python benchmarks/floor_ingest.py FOLDER DATABASE
"""

from __future__ import annotations

import json
import sqlite3
import sys
from datetime import datetime
from pathlib import Path

SCHEMA = """CREATE TABLE IF NOT EXISTS articles (
  id INTEGER PRIMARY KEY, source TEXT UNIQUE, title TEXT, standfirst TEXT,
  published TEXT, body TEXT, related TEXT)"""
NOISE = {"Facebook X Reddit Pinterest Email", "ADVERTISEMENT"}


def parse(text: str) -> tuple[str, str, str, str, str]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    title, standfirst, dated = lines[0], lines[1], lines[2]
    published = datetime.strptime(dated.removeprefix("Published "), "%B %d, %Y").isoformat()
    rest = lines[3:]
    cut = rest.index("Related Articles") if "Related Articles" in rest else len(rest)
    body = [line for line in rest[:cut] if line not in NOISE]
    related = rest[cut + 1 :]
    return title, standfirst, published, json.dumps(body), json.dumps(related)


def main(folder: str, database: str) -> int:
    db = sqlite3.connect(database)
    db.execute(SCHEMA)
    with db:
        for path in sorted(Path(folder).glob("*.txt")):
            row = parse(path.read_text(encoding="utf-8"))
            db.execute(
                "INSERT INTO articles (source, title, standfirst, published, body, related) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (str(path), *row),
            )
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
