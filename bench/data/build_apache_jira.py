"""Rebuild `apache-jira-duplicates.jsonl.gz` from the LogInBugReportsEmpirical_Data snapshot.

    python3 bench/data/build_apache_jira.py SOURCE [--out PATH] [--pairs 500] [--total 4000]

SOURCE is the fetched repository https://github.com/SPEAR-SE/LogInBugReportsEmpirical_Data:
either a work tree (a folder holding `bug_reports/`) or its bare git directory (read with
`git ls-tree` / `git cat-file`, so `git` must be on PATH). Each `bug_reports/<Project>/<KEY>.json`
there is one issue exactly as Apache JIRA's REST API (v2) returned it, including the issue links
that people set by hand.

Selection (deterministic: fixed seed, every list sorted before it is sampled):

* Projects: Hive, HDFS, YARN, MapReduce, ActiveMQ, ZooKeeper, Storm. HADOOP (Hadoop Common) is
  left out on purpose: the GitBugs collection, kept for an independent check, has HADOOP issues.
* A duplicate is an issue resolved "Duplicate" that has exactly one JIRA link of type "Duplicate"
  to another issue in those projects: its outward link ("duplicates X") if there is exactly one,
  else its only inward one (the link set the wrong way round, which JIRA users often do).
  The original must not itself be resolved "Duplicate" (no chains), and each original keeps one
  duplicate only (the earliest created), so every query has exactly one right answer.
* `--pairs` of those pairs are drawn at random (seed 20240611); the rest of `--total` are
  distractors: issues of the same projects, created within the span of that project's chosen
  pairs, drawn per project in proportion to its pairs, never resolved "Duplicate" and never
  linked (Duplicate / Supercedes / Incorporates) to a chosen issue.

Output: gzip JSON Lines (gzip header without name or time, so the bytes are reproducible), one
object per issue sorted by project and number: {"id", "title", "body", "duplicate_of", "created"}.
The body is the JIRA description (wiki markup kept, CRLF made LF), cut to at most 2,000 characters.
Standard library only; not needed at benchmark time.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import random
import re
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

SEED = 20240611
PROJECTS = {  # folder in bug_reports/ -> JIRA key prefix
    "Hive": "HIVE",
    "HDFS": "HDFS",
    "YARN": "YARN",
    "MAPREDUCE": "MAPREDUCE",
    "ActiveMQ": "AMQ",
    "Zookeeper": "ZOOKEEPER",
    "Storm": "STORM",
}
BODY_MAX = 2000
NEAR_LINKS = {"Duplicate", "Supercedes", "Incorporates"}
KEY_RE = re.compile(r"^([A-Z]+)-(\d+)$")
DEFAULT_OUT = Path(__file__).resolve().parent / "apache-jira-duplicates.jsonl.gz"


def _read_worktree(root: Path):
    for folder in sorted(PROJECTS):
        for path in sorted((root / "bug_reports" / folder).glob("*.json")):
            yield path.read_bytes()


def _read_gitdir(gitdir: Path):
    listing = subprocess.run(
        ["git", f"--git-dir={gitdir}", "ls-tree", "-r", "HEAD", "bug_reports/"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    shas = []
    for line in sorted(listing, key=lambda entry: entry.split("\t", 1)[1]):
        meta, path = line.split("\t", 1)
        parts = path.split("/")
        if len(parts) == 3 and parts[1] in PROJECTS and parts[2].endswith(".json"):
            shas.append(meta.split()[2])
    with subprocess.Popen(
        ["git", f"--git-dir={gitdir}", "cat-file", "--batch"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    ) as proc:
        for sha in shas:
            proc.stdin.write(sha.encode() + b"\n")
            proc.stdin.flush()
            header = proc.stdout.readline().split()
            if len(header) < 3 or header[1] != b"blob":
                continue  # absent from the snapshot
            data = proc.stdout.read(int(header[2]))
            proc.stdout.read(1)
            yield data
        proc.stdin.close()


def read_issues(source: Path) -> dict[str, dict]:
    """Every bug report of the chosen projects, by JIRA key, reduced to what is needed."""
    if (source / "bug_reports").is_dir():
        raw = _read_worktree(source)
    else:
        gitdir = source / ".git" if (source / ".git").exists() else source
        raw = _read_gitdir(gitdir)
    issues = {}
    for data in raw:
        try:
            doc = json.loads(data)
        except ValueError:
            continue
        if not isinstance(doc, dict) or "fields" not in doc or "key" not in doc:
            continue
        key = doc["key"]
        match = KEY_RE.match(key)
        if not match or match.group(1) not in PROJECTS.values():
            continue
        fields = doc["fields"]
        links = []
        for link in fields.get("issuelinks") or []:
            kind = (link.get("type") or {}).get("name")
            for side, direction in (("outwardIssue", "out"), ("inwardIssue", "in")):
                if side in link:
                    links.append((kind, direction, link[side]["key"]))
        issues[key] = {
            "key": key,
            "project": match.group(1),
            "number": int(match.group(2)),
            "title": (fields.get("summary") or "").strip(),
            "body": fields.get("description") or "",
            "created": fields.get("created") or "",
            "resolution": (fields.get("resolution") or {}).get("name"),
            "links": links,
        }
    return issues


def trim(text: str, limit: int = BODY_MAX) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = max(cut.rfind(" "), cut.rfind("\n"))
    if space > limit * 0.8:
        cut = cut[:space]
    return cut.rstrip()


def iso(created: str) -> str:
    # "2006-10-24T14:24:11.000+0000" -> "2006-10-24T14:24:11+00:00"
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.\d+)?([+-]\d\d)(\d\d)$", created)
    return f"{match.group(1)}{match.group(2)}:{match.group(3)}" if match else created


def sort_key(key: str) -> tuple[str, int]:
    project, number = key.rsplit("-", 1)
    return project, int(number)


def candidate_pairs(issues: dict[str, dict]) -> tuple[list[tuple[str, str]], Counter]:
    why = Counter()
    by_original: dict[str, list[str]] = defaultdict(list)
    for key in sorted(issues, key=sort_key):
        issue = issues[key]
        if issue["resolution"] != "Duplicate":
            continue
        dup_links = [(d, k) for kind, d, k in issue["links"] if kind == "Duplicate" and k != key]
        outward = sorted({k for d, k in dup_links if d == "out" and k in issues})
        inward = sorted({k for d, k in dup_links if d == "in" and k in issues})
        if len(outward) == 1:
            original = outward[0]
            why["outward link"] += 1
        elif not outward and len(inward) == 1:
            original = inward[0]
            why["inward link (set the wrong way round)"] += 1
        else:
            why["skipped: no or several Duplicate links to issues in the set"] += 1
            continue
        if issues[original]["resolution"] == "Duplicate":
            why["skipped: original is itself resolved Duplicate"] += 1
            continue
        if not issue["title"] or not issues[original]["title"]:
            why["skipped: empty title"] += 1
            continue
        by_original[original].append(key)
    pairs = []
    for original in sorted(by_original, key=sort_key):
        dups = sorted(by_original[original], key=lambda k: (issues[k]["created"], sort_key(k)))
        why["skipped: not the first duplicate of its original"] += len(dups) - 1
        pairs.append((dups[0], original))
    return pairs, why


def select(issues: dict[str, dict], n_pairs: int, total: int):
    rng = random.Random(SEED)
    pairs, why = candidate_pairs(issues)
    if len(pairs) < n_pairs:
        sys.exit(f"only {len(pairs)} usable pairs, fewer than --pairs {n_pairs}")
    chosen = sorted(rng.sample(pairs, n_pairs), key=lambda p: sort_key(p[0]))
    duplicate_of = dict(chosen)
    selected = set(duplicate_of) | set(duplicate_of.values())
    if len(selected) != 2 * n_pairs:
        sys.exit("a report is in two chosen pairs")

    near = set()  # anything linked as Duplicate / Supercedes / Incorporates to a chosen report
    for key in selected:
        near.update(k for kind, _d, k in issues[key]["links"] if kind in NEAR_LINKS)
    for key, issue in issues.items():
        if any(kind in NEAR_LINKS and k in selected for kind, _d, k in issue["links"]):
            near.add(key)

    per_project = Counter(issues[k]["project"] for k in selected)
    span = {}
    for key in selected:
        project, created = issues[key]["project"], issues[key]["created"]
        low, high = span.get(project, (created, created))
        span[project] = (min(low, created), max(high, created))
    n_distractors = total - len(selected)
    quota = {p: n_distractors * c // len(selected) for p, c in per_project.items()}
    for p, _c in per_project.most_common(n_distractors - sum(quota.values())):
        quota[p] += 1  # the rounding remainder goes to the biggest projects
    distractors = []
    for project in sorted(quota):
        low, high = span[project]
        pool = sorted(
            (
                k
                for k, issue in issues.items()
                if issue["project"] == project
                and k not in selected
                and k not in near
                and issue["resolution"] != "Duplicate"
                and issue["title"]
                and low <= issue["created"] <= high
            ),
            key=sort_key,
        )
        if len(pool) < quota[project]:
            sys.exit(f"{project}: {len(pool)} distractors available, {quota[project]} wanted")
        distractors.extend(rng.sample(pool, quota[project]))
    return chosen, distractors, why


def write(path: Path, issues, chosen, distractors) -> list[dict]:
    duplicate_of = dict(chosen)
    keys = sorted(set(duplicate_of) | set(duplicate_of.values()) | set(distractors), key=sort_key)
    rows = []
    for key in keys:
        issue = issues[key]
        rows.append(
            {
                "id": key,
                "title": issue["title"],
                "body": trim(issue["body"]),
                "duplicate_of": duplicate_of.get(key),
                "created": iso(issue["created"]),
            }
        )
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=9) as gz:
        for row in rows:
            gz.write((json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
    path.write_bytes(buffer.getvalue())
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="the fetched repository (work tree or git dir)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--pairs", type=int, default=500)
    parser.add_argument("--total", type=int, default=4000)
    args = parser.parse_args()

    issues = read_issues(args.source)
    if not issues:
        sys.exit(f"no bug reports found under {args.source}")
    chosen, distractors, why = select(issues, args.pairs, args.total)
    rows = write(args.out, issues, chosen, distractors)

    print(f"read {len(issues)} bug reports of {', '.join(sorted(PROJECTS.values()))}")
    for reason, count in sorted(why.items()):
        print(f"  {reason}: {count}")
    print(f"wrote {args.out}: {len(rows)} reports, {len(chosen)} duplicate queries,")
    print(f"  {len(chosen)} originals, {len(distractors)} distractors")
    print("  per project:", dict(sorted(Counter(r["id"].split("-")[0] for r in rows).items())))


if __name__ == "__main__":
    main()
