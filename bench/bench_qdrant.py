"""Syncing demo objects into the embedded index (Qdrant local mode).

    .venv/bin/python bench/bench_qdrant.py [--objects 10000] [--sample 1500]

Measures, in one run and on the same documents:

1. Agira's drain into the embedded target, end to end: database read,
   document, hash, batch write under the folder lock, sync records.
2. The baseline: the Qdrant client's one-point-at-a-time upsert into a fresh
   local folder, as a naive integration would do it (timed on a sample and
   extrapolated: it slows as the collection grows, so the sample flatters it).
3. The same one-point loop with Agira's storage tuning, to separate what the
   batching gains from what the tuning gains.

Prints figures and ratios; asserts nothing about time.
"""

import argparse
import importlib.metadata
import os
import platform
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def setup(tmp: Path) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "agira.settings"
    os.environ["AGIRA_VAR_DIR"] = str(tmp / "var")
    os.environ["AGIRA_QDRANT_PATH"] = str(tmp / "qdrant-agira")
    os.environ["AGIRA_SYNC_MODE"] = "queued"
    # Saves only enqueue the drain (as with the worker); the benchmark drains itself.
    os.environ["AGIRA_TASKS_BACKEND"] = "django_tasks_db.DatabaseBackend"
    os.environ.pop("DATABASE_URL", None)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=1_500)
    args = parser.parse_args()
    print(f"$ {' '.join([Path(sys.executable).name, *sys.argv])}")

    tmp = Path(tempfile.mkdtemp(prefix="agira-bench-qdrant-"))
    setup(tmp)

    from django.db.models import Model

    from core.models import Attachment, Item, ItemComment, SyncRecord, SyncState
    from core.services.demo import demo_seed
    from core.services.index import mark_for_sync, sync_disabled
    from core.services.index.documents import document_for, normalise, object_uuid
    from core.services.index.engine import drain
    from core.services.index.targets.qdrant import _tune_connection, close_qdrant, qdrant_target

    print(
        f"cpus={os.cpu_count()} python={platform.python_version()} "
        f"qdrant-client={importlib.metadata.version('qdrant-client')}"
    )

    # Demo data without sync, then exactly N objects put in the outbox.
    items_needed = max(50, args.objects // 2)
    with sync_disabled():
        demo_seed(
            items=items_needed, password="bench-only-password", log=lambda _: None, index=False
        )
    chosen: list[Model] = []
    for model in (Item, ItemComment, Attachment):
        remaining = args.objects - len(chosen)
        if remaining <= 0:
            break
        chosen.extend(model.objects.order_by("pk")[:remaining])
    mix = {
        m.__name__: sum(isinstance(o, m) for o in chosen) for m in (Item, ItemComment, Attachment)
    }
    n = len(chosen)
    for model in (Item, ItemComment, Attachment):
        ids = [o.pk for o in chosen if isinstance(o, model)]
        mark_for_sync(model.objects.filter(pk__in=ids))
    print(f"objects: {n} ({', '.join(f'{v} {k}' for k, v in mix.items())})")

    # 1. Agira's drain (its client libraries imported first, as in a running worker).
    import core.services.index.targets.weaviate  # noqa: F401

    assert SyncRecord.objects.count() == 0, "nothing may be drained before the clock starts"
    started = time.perf_counter()
    if os.environ.get("AGIRA_BENCH_PROFILE"):
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(drain)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
    else:
        drain()
    agira_s = time.perf_counter() - started
    target = qdrant_target()
    stored = target.count()
    synced = SyncRecord.objects.filter(target="qdrant", state=SyncState.SYNCED).count()
    again = drain()
    agira_rate = n / agira_s
    print(
        f"\nAgira drain: {agira_s:.2f} s, {agira_rate:,.0f} objects/s "
        f"({target.stats['upsert batches']} batch writes); index holds {stored}, "
        f"{synced} records synced; a second drain wrote {again.written}"
    )
    close_qdrant()

    # The same documents for the baselines.
    docs = [
        (object_uuid(d["type"], d["object_id"]), d)
        for d in (normalise(document_for(o)) for o in chosen)
    ]
    sample = docs[: min(args.sample, len(docs))]

    def batched(folder: Path) -> float:
        """The index write alone, as the drain does it: tuned, 500 per call."""
        from qdrant_client import QdrantClient
        from qdrant_client import models as qm

        client = QdrantClient(path=str(folder))
        client.create_collection("AgiraObject", vectors_config={})
        for collection in client._client.collections.values():
            _tune_connection(collection.storage.storage)
        points = [qm.PointStruct(id=str(oid), vector={}, payload=doc) for oid, doc in docs]
        started = time.perf_counter()
        for start in range(0, len(points), 500):
            client.upsert("AgiraObject", points=points[start : start + 500])
        elapsed = time.perf_counter() - started
        client.close()
        return len(points) / elapsed

    def one_at_a_time(folder: Path, tuned: bool) -> float:
        from qdrant_client import QdrantClient
        from qdrant_client import models as qm

        client = QdrantClient(path=str(folder))
        client.create_collection("AgiraObject", vectors_config={})
        if tuned:
            for collection in client._client.collections.values():
                _tune_connection(collection.storage.storage)
        started = time.perf_counter()
        for oid, doc in sample:
            client.upsert(
                "AgiraObject", points=[qm.PointStruct(id=str(oid), vector={}, payload=doc)]
            )
        elapsed = time.perf_counter() - started
        client.close()
        return len(sample) / elapsed

    batch_rate = batched(tmp / f"qdrant-batched-{uuid.uuid4().hex}")
    naive_rate = one_at_a_time(tmp / f"qdrant-naive-{uuid.uuid4().hex}", tuned=False)
    tuned_rate = one_at_a_time(tmp / f"qdrant-tuned-{uuid.uuid4().hex}", tuned=True)
    print(f"one point at a time, plain client ({len(sample)} sampled): {naive_rate:,.0f} objects/s")
    print(
        f"one point at a time, tuned storage ({len(sample)} sampled): {tuned_rate:,.0f} objects/s"
    )

    print("\nThe one-point loops and the index-write row only write to the index; the drain")
    print("also reads the database, builds and hashes documents and keeps sync records.")
    print("\n| way | objects/s | Agira's drain is |")
    print("| --- | ---: | ---: |")
    print(f"| Agira's drain, end to end | {agira_rate:,.0f} | 1.0x |")
    print(
        f"| index write alone, Agira's batches of 500, tuned | {batch_rate:,.0f} | "
        f"(batching: {batch_rate / tuned_rate:,.1f}x the tuned one-point loop) |"
    )
    print(
        f"| one point at a time, plain client | {naive_rate:,.0f} | "
        f"{agira_rate / naive_rate:,.1f}x faster |"
    )
    print(
        f"| one point at a time, tuned storage | {tuned_rate:,.0f} | "
        f"{agira_rate / tuned_rate:,.1f}x faster |"
    )
    ok = stored == n and synced == n and again.written == 0
    print(f"\ncorrect: {'yes' if ok else 'NO'} (every object stored once, nothing rewritten)")


if __name__ == "__main__":
    main()
