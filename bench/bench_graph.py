"""Benchmark of the graph target (seed 004), in embedded LadybugDB or in Neo4j.

    .venv/bin/python bench/bench_graph.py [--objects 10000] [--loop-sample 2000]
        [--engine embedded|neo4j]

One process, a fresh temporary directory (SQLite database, graph), the graph as the
only target (no index, no embedder). `--engine neo4j` writes through the real `neo4j`
driver over Bolt to the Bolt test server (`core/testing/bolt_server/`, LadybugDB
behind it, in this process): what batching saves in round trips, not Neo4j's own
speed. In one run it measures:

1. The drain: N demo objects put in the outbox (`mark_for_sync`), then `drain()` end to
   end (records, documents, one transaction per type and batch: `UNWIND` + `MERGE` for
   the nodes, then per kind of relationship the old ones deleted and the current ones
   merged). Checked: the graph holds N object nodes and exactly the relationships the
   documents name.
2. The baseline: the same documents written one object at a time into a fresh graph,
   one `MERGE` of the node and, per relationship, one of its other end and one of the
   relationship, each statement in its own transaction (a loop as seed 004 would
   write), on a sample, as objects per second.
3. Reads: the neighbourhood of 200 items (the Links tab's queries), p50 and p95.

It asserts nothing on time: figures and ratios are printed, the script exits 0 (1 only
if a check failed).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
BOLT_PASSWORD = secrets.token_urlsafe()


def prepare(tmp: Path, *, embedded_graph: bool) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="agira.settings",
        AGIRA_ENV="development",
        AGIRA_VAR_DIR=str(tmp),
        MEDIA_ROOT=str(tmp / "media"),
        DATABASE_URL=f"sqlite:///{tmp / 'agira.sqlite3'}",
        DEBUG="false",
        LOG_LEVEL="WARNING",
        AGIRA_TASKS_BACKEND="django_tasks_db.DatabaseBackend",
        AGIRA_SYNC_MODE="queued",
        AGIRA_WEAVIATE_ENABLED="false",
        AGIRA_EMBEDDED_ENABLED="false",
        AGIRA_QDRANT_ENABLED="false",
        AGIRA_GRAPH_ENABLED="true" if embedded_graph else "false",
        AGIRA_GRAPH_PATH=str(tmp / "graph" / "agira.lbug"),
        AGIRA_EMBEDDER_PROVIDER="none",
    )
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def seed(n_objects: int) -> int:
    """Demo data of about n objects, recorded nowhere; returns how many objects."""
    from core.services.demo import demo_seed
    from core.services.index import sync_disabled
    from core.services.index.documents import OBJECT_TYPES

    with sync_disabled():
        demo_seed(
            items=int(n_objects / 2.2) + 10, password=secrets.token_urlsafe(), log=lambda *a: None
        )
    return sum(spec.queryset().count() for spec in OBJECT_TYPES.values())


def documents() -> list[tuple]:
    from core.services.index.documents import OBJECT_TYPES, normalise, object_uuid

    docs = []
    for object_type, spec in OBJECT_TYPES.items():
        for instance in spec.queryset().select_related(*spec.related).order_by("pk"):
            doc = normalise(spec.serialize(instance))
            docs.append((object_uuid(object_type, instance.pk), doc))
    return docs


def expected_relationships(docs: list[tuple]) -> int:
    from core.services.index.targets.graph import EDGES_BY_TYPE, other_end

    return sum(
        1 for _oid, doc in docs for edge in EDGES_BY_TYPE[doc["type"]] if other_end(edge, doc)
    )


def held_relationships(graph) -> int:
    with graph.session():
        return graph._read("MATCH ()-[e]->() RETURN count(e)")[0][0]


def bench_drain(graph, total: int, docs: list[tuple]) -> dict:
    from core.models import SyncRecord, SyncState
    from core.services.index import drain, mark_for_sync
    from core.services.index.documents import OBJECT_TYPES

    for object_type, spec in OBJECT_TYPES.items():
        mark_for_sync(spec.queryset(), object_type=object_type)
    started = time.perf_counter()
    report = drain()
    seconds = time.perf_counter() - started
    result = report.targets[graph.name]
    rate = total / seconds
    print(
        f"drain(): folded {report.folded:,}; written {result.written:,}, failed "
        f"{result.failed:,}, error {result.error!r}; {seconds:.2f} s = {rate:,.0f} objects/s"
    )
    checks = {
        f"the graph holds {total:,} object nodes": graph.count() == total,
        f"{total:,} graph records synced": SyncRecord.objects.filter(
            target=graph.name, state=SyncState.SYNCED
        ).count()
        == total,
        "exactly the relationships the documents name": held_relationships(graph)
        == expected_relationships(docs),
    }
    for what, ok in checks.items():
        print(f"  [{'ok' if ok else 'FAILED'}] {what}")
    return {"rate": rate, "ok": all(checks.values())}


def bench_loop(graph, docs: list[tuple], sample: int) -> float:
    """One object at a time into a fresh `graph`: a MERGE of the node, then one
    per relationship, each statement in its own transaction."""
    from core.services.index.targets.graph import (
        EDGES_BY_TYPE,
        LABELS,
        link,
        merge_ends,
        other_end,
        upsert_nodes,
    )

    def one(statement: str, parameters: dict) -> None:
        graph._in_transaction(graph._run, statement, parameters)

    chosen = docs[:: max(1, len(docs) // sample)][:sample]
    with graph.session():
        one("RETURN 1", {})  # opened for writing, with its schema
        started = time.perf_counter()
        for oid, doc in chosen:
            row = {name: doc.get(name) for name in doc}
            row["uuid"] = str(oid)
            one(upsert_nodes(LABELS[doc["type"]], [row]), {"rows": [row]})
            for edge in EDGES_BY_TYPE[doc["type"]]:
                other = other_end(edge, doc)
                if other:
                    rows = {"rows": [{**row, edge.key: other}]}
                    one(merge_ends(edge), rows)
                    one(link(edge), rows)
        seconds = time.perf_counter() - started
    graph.close()
    rate = len(chosen) / seconds
    print(
        f"one object at a time: {len(chosen):,} objects in {seconds:.2f} s = {rate:,.0f} objects/s"
    )
    return rate


def bench_reads(graph, items: int = 200) -> None:
    from core.models import Item
    from core.services.index.documents import object_uuid

    pks = list(Item.objects.order_by("?").values_list("pk", flat=True)[:items])
    times = []
    for pk in pks:
        started = time.perf_counter()
        graph.neighbourhood("item", object_uuid("item", pk))
        times.append(time.perf_counter() - started)
    p95 = statistics.quantiles(times, n=20)[18]
    print(
        f"neighbourhood of {len(pks)} items (the Links tab, a session of its own "
        f"each time): p50 {statistics.median(times) * 1e3:.1f} ms, p95 {p95 * 1e3:.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--loop-sample", type=int, default=2_000)
    parser.add_argument("--engine", choices=["embedded", "neo4j"], default="embedded")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="agira-bench-graph-"))
    servers = []
    prepare(tmp, embedded_graph=args.engine == "embedded")

    def server(name: str):
        from core.services.index.targets.graph import LADYBUG_SCHEMA
        from core.testing.bolt_server import BoltTestServer

        started = BoltTestServer(
            path=tmp / name, schema=LADYBUG_SCHEMA, password=BOLT_PASSWORD
        ).start()
        servers.append(started)
        return started

    if args.engine == "neo4j":  # read from the environment by every neo4j_settings()
        os.environ.update(
            AGIRA_NEO4J_ENABLED="true",
            AGIRA_NEO4J_URI=server("neo4j.lbug").uri,
            AGIRA_NEO4J_USER="neo4j",
            AGIRA_NEO4J_PASSWORD=BOLT_PASSWORD,
        )
    import ladybug

    from core.services.index.engine import graph_target
    from core.services.index.targets.graph import EmbeddedGraphTarget

    engine = "Neo4j driver over Bolt to the test server" if servers else "embedded"
    print(f"LadybugDB {ladybug.__version__}, Python {sys.version.split()[0]}, {engine}, in {tmp}")
    total = seed(args.objects)
    docs = documents()
    print(f"demo data: {total:,} objects, {expected_relationships(docs):,} relationships")
    graph = graph_target()
    print(f"\n1. Through the drain ({graph.label})")
    drained = bench_drain(graph, total, docs)
    print("\n2. One object at a time")
    if servers:
        from dataclasses import replace

        from core.services.index.targets.neo4j import Neo4jGraphTarget, neo4j_settings

        fresh = Neo4jGraphTarget(replace(neo4j_settings(), uri=server("loop.lbug").uri))
    else:
        fresh = EmbeddedGraphTarget(tmp / "loop-graph" / "agira.lbug")
    looped = bench_loop(fresh, docs, args.loop_sample)
    print(f"\ndrain / one at a time: {drained['rate'] / looped:.1f}x")
    print("\n3. Reads")
    bench_reads(graph)
    graph.close()
    for started in servers:
        started.stop()
    return 0 if drained["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
