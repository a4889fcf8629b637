"""Loader for the duplicate-report evaluation set (see README.md in this folder).

    from bench.data import duplicates  # the repository root on sys.path
    reports = duplicates.load()  # [{"id", "title", "body", "duplicate_of", "created"}, ...]
    for query, original_id in duplicates.queries(reports):
        ...  # search with query["title"] + query["body"]; the hit that counts is original_id

Every report is one item to index (the duplicates too). Each duplicate has exactly one original
in the file and each original exactly one duplicate, so a query has one right answer; leave the
query's own report out of its result list. Standard library only.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

DEFAULT_PATH = Path(__file__).resolve().parent / "apache-jira-duplicates.jsonl.gz"


def load(path: str | Path | None = None) -> list[dict]:
    """The reports of a JSON Lines file, gzip-compressed (`.gz`) or not, in file order."""
    path = Path(path) if path is not None else DEFAULT_PATH
    if not path.exists():
        raise SystemExit(
            f"{path} is missing: build it with bench/data/build_apache_jira.py from a clone of "
            "https://github.com/SPEAR-SE/LogInBugReportsEmpirical_Data (bench/data/README.md)."
        )
    opener = gzip.open if path.suffix == ".gz" else open
    reports = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            report = json.loads(line)
            for field in ("id", "title", "body"):
                if not isinstance(report.get(field), str):
                    raise ValueError(f"{path}:{number}: {field!r} is missing or not a string")
            report.setdefault("duplicate_of", None)
            reports.append(report)
    return reports


def queries(reports: list[dict]) -> list[tuple[dict, str]]:
    """(duplicate report, id of its original) for every duplicate, in the reports' order."""
    ids = {report["id"] for report in reports}
    if len(ids) != len(reports):
        raise ValueError("report ids are not unique")
    pairs = []
    for report in reports:
        original = report.get("duplicate_of")
        if original is None:
            continue
        if original not in ids:
            raise ValueError(f"{report['id']}: its original {original} is not in the reports")
        pairs.append((report, original))
    return pairs


if __name__ == "__main__":
    import sys

    reports = load(sys.argv[1] if len(sys.argv) > 1 else None)
    pairs = queries(reports)
    originals = {original for _query, original in pairs}
    print(f"{len(reports)} reports: {len(pairs)} duplicate queries, {len(originals)} originals,")
    print(f"{len(reports) - len(pairs) - len(originals)} distractors")
    for query, original in pairs[:3]:
        target = next(report for report in reports if report["id"] == original)
        print(f"  {query['id']} {query['title']!r}\n    -> {original} {target['title']!r}")
