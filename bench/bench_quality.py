"""Search quality on real duplicate bug reports: keyword, semantic, hybrid, related.

    .venv/bin/python bench/bench_quality.py [--data FILE] [--limit N] [--variants]

The evaluation set (bench/data/, see its README) holds public bug reports with
human-made duplicate links. Every report is created as an Agira item through the normal
save path (`Item.objects.create`: the signals record it, the drain embeds it with the real
local model and writes it to a fresh embedded index in a temporary folder). Then, for
each report marked as a duplicate, the query is its title + body (the first 1,000
characters, the service's cap), the query item itself left out of the results, and the
rank of its original is read from:

* `search_objects` in keyword, semantic and hybrid mode (type item, first 10 results);
* `related_objects("item", <duplicate>)`, the item page's related list (top 10).

Figures: Recall@1, Recall@10 and MRR (reciprocal rank of the original within the first
10, 0 beyond). The goals: hybrid beats keyword by at least 5 points on Recall@10 and on
MRR; related finds the original in its top 10 for at least 85 % of the queries.

`--variants` also scores hybrid with other fusion constants (RRF k, the cosine floor of
its vector half) and keyword with another title weight, to show what moves the figures.
Nothing here asserts: the script prints figures and PASS/MISS against the goals.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench" / "data"))

TOP = 10
GOAL_HYBRID_GAIN = 5.0  # points, on Recall@10 and on MRR
GOAL_RELATED_R10 = 85.0  # percent


def configure(folder: Path) -> None:
    for key in list(os.environ):
        if key.startswith(("AGIRA_", "DJANGO_")) or key in ("DATABASE_URL", "DEBUG"):
            del os.environ[key]
    os.environ.update(
        DJANGO_SETTINGS_MODULE="agira.settings",
        DATABASE_URL=f"sqlite:///{folder / 'agira.sqlite3'}",
        AGIRA_VAR_DIR=str(folder),
        AGIRA_EMBEDDED_PATH=str(folder / "index" / "agira.db"),
        AGIRA_EMBEDDED_ENABLED="true",
        AGIRA_WEAVIATE_ENABLED="false",
        AGIRA_QDRANT_ENABLED="false",
        AGIRA_GRAPH_ENABLED="false",  # the indexes alone: the graph is another target
        AGIRA_EMBEDDER_PROVIDER="local",
        AGIRA_SYNC_MODE="queued",
        AGIRA_TASKS_BACKEND="django_tasks_db.DatabaseBackend",
        AGIRA_ENV="development",
        DEBUG="false",
    )
    import django

    django.setup()


class Scores:
    def __init__(self) -> None:
        self.ranks: list[int | None] = []

    def add(self, rank: int | None) -> None:
        self.ranks.append(rank)

    def recall(self, k: int) -> float:
        return 100.0 * sum(1 for r in self.ranks if r is not None and r <= k) / len(self.ranks)

    def mrr(self) -> float:
        return 100.0 * sum(1.0 / r for r in self.ranks if r is not None) / len(self.ranks)

    def line(self, name: str) -> str:
        return (
            f"  {name:<34} R@1 {self.recall(1):5.1f}  R@10 {self.recall(TOP):5.1f}  "
            f"MRR {self.mrr():5.1f}   (n={len(self.ranks)})"
        )


def rank_of(ids: list[str], wanted: str, skip: str) -> int | None:
    ranked = [i for i in ids if i != skip][:TOP]
    return ranked.index(wanted) + 1 if wanted in ranked else None


def load_items(reports: list[dict]) -> dict[str, int]:
    """Every report as an item of one project, through the normal save path; then the
    drain embeds and indexes them. Returns item pk by report id."""
    from core.models import Item, Organisation, Project
    from core.services.index.engine import drain

    org = Organisation.objects.create(name="Evaluation")
    project = Project.objects.create(organisation=org, name="Duplicates")
    pks: dict[str, int] = {}
    started = time.perf_counter()
    for report in reports:
        item = Item.objects.create(
            project=project, title=report["title"][:255], description=report["body"]
        )
        pks[report["id"]] = item.pk
    saved = time.perf_counter() - started
    started = time.perf_counter()
    report = drain()
    from core.models import SyncRecord, SyncState

    synced = SyncRecord.objects.filter(object_type="item", state=SyncState.SYNCED).count()
    errors = [r.error for r in report.targets.values() if r.error]
    if synced != len(reports) or errors:
        raise SystemExit(f"only {synced} of {len(reports)} items were indexed: {errors}")
    print(
        f"  {len(reports)} items saved in {saved:.1f} s, embedded and indexed in "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return pks


def score(
    queries, pks: dict[str, int], *, modes=("keyword", "semantic", "hybrid"), related=True
) -> dict:
    from core.services.index.context import related_objects, search_objects

    scores = {name: Scores() for name in (*modes, *(("related",) if related else ()))}
    for query, original in queries:
        own = str(pks[query["id"]])
        wanted = str(pks[original])
        text = f"{query['title']}\n\n{query['body']}"[:1000]
        for mode in modes:
            results = search_objects(query=text, object_type="item", per_page=TOP + 1, mode=mode)
            ids = [str(hit.document["object_id"]) for hit in results.hits]
            scores[mode].add(rank_of(ids, wanted, own))
        if related:
            found = related_objects("item", own, limit=TOP)
            scores["related"].add(rank_of([h.object_id for h in found.hits], wanted, own))
    return scores


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", help="the JSONL(.gz) file (default: the one in bench/data/)")
    parser.add_argument("--limit", type=int, help="score only the first N queries")
    parser.add_argument("--variants", action="store_true", help="also score other constants")
    args = parser.parse_args()

    import duplicates

    reports = duplicates.load(args.data)
    queries = duplicates.queries(reports)
    if args.limit:
        queries = queries[: args.limit]
    with tempfile.TemporaryDirectory(prefix="agira-bench-quality-") as tmp:
        folder = Path(tmp)
        configure(folder)
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        print(
            f"bench_quality: {len(reports)} reports, {len(queries)} duplicate queries "
            f"({os.cpu_count()} CPUs)",
            flush=True,
        )
        pks = load_items(reports)
        started = time.perf_counter()
        scores = score(queries, pks)
        print(f"\nScores (first {TOP} results; {time.perf_counter() - started:.1f} s):")
        for name, value in scores.items():
            print(value.line(name))
        keyword, hybrid, related = scores["keyword"], scores["hybrid"], scores["related"]
        gain_r10 = hybrid.recall(TOP) - keyword.recall(TOP)
        gain_mrr = hybrid.mrr() - keyword.mrr()
        ok = gain_r10 >= GOAL_HYBRID_GAIN and gain_mrr >= GOAL_HYBRID_GAIN
        print(
            f"\nhybrid - keyword: Recall@10 {gain_r10:+.1f} points, MRR {gain_mrr:+.1f} points "
            f"[goal >= +{GOAL_HYBRID_GAIN:g} on both: {'PASS' if ok else 'MISS'}]"
        )
        r10 = related.recall(TOP)
        print(
            f"related finds the original in its top {TOP}: {r10:.1f} % "
            f"[goal >= {GOAL_RELATED_R10:g} %: {'PASS' if r10 >= GOAL_RELATED_R10 else 'MISS'}]"
        )
        if args.variants:
            variants(queries, pks)
    return 0


def variants(queries, pks) -> None:
    """Hybrid and keyword again with other constants (module attributes read at
    query time), to show what each is worth."""
    from core.services.index import context
    from core.services.index.targets import embedded

    print("\nWhat moves them (the same queries):")
    defaults = (context.RRF_K, context.HYBRID_MIN_COSINE, embedded.TITLE_WEIGHT)
    trials = [
        ("hybrid, RRF k = 10", {"RRF_K": 10}, "hybrid"),
        ("hybrid, RRF k = 200", {"RRF_K": 200}, "hybrid"),
        ("hybrid, no cosine floor", {"HYBRID_MIN_COSINE": -1.0}, "hybrid"),
        ("hybrid, cosine floor 0.5", {"HYBRID_MIN_COSINE": 0.5}, "hybrid"),
        ("keyword, title weight 1", {"TITLE_WEIGHT": 1.0}, "keyword"),
        ("keyword, title weight 4", {"TITLE_WEIGHT": 4.0}, "keyword"),
    ]
    for name, changes, mode in trials:
        for attr, value in changes.items():
            setattr(embedded if attr == "TITLE_WEIGHT" else context, attr, value)
        result = score(queries, pks, modes=(mode,), related=False)
        print(result[mode].line(name))
        context.RRF_K, context.HYBRID_MIN_COSINE, embedded.TITLE_WEIGHT = defaults


if __name__ == "__main__":
    sys.exit(main())
