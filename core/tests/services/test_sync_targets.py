"""Several targets at once, and the embedded index shared between processes."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.models import SyncRecord, SyncState, WeaviateConfiguration
from core.services import index
from core.services.index.documents import object_uuid
from core.services.index.engine import active_targets, drain
from core.services.index.targets.embedded import embedded_target
from core.services.index.targets.qdrant import qdrant_target
from core.testing.weaviate_server.faults import BATCH_OBJECTS
from core.tests import factories

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def both(weaviate_sync, settings):
    settings.AGIRA_EMBEDDED_ENABLED = True
    return weaviate_sync


def test_weaviate_enabled_is_the_primary_and_the_embedded_index_the_default(both, settings):
    assert [t.name for t in active_targets()] == ["weaviate", "embedded"]
    assert index.primary_target().label == "Weaviate"
    WeaviateConfiguration.objects.filter(pk=1).update(enabled=False)
    assert [t.name for t in active_targets()] == ["embedded"]
    assert index.primary_target().label == "embedded index"
    settings.AGIRA_QDRANT_ENABLED = True
    assert [t.name for t in active_targets()] == ["embedded", "qdrant"]


def test_with_one_target_down_the_other_stays_in_sync_and_the_down_one_catches_up(both):
    project = factories.make_project()
    both.down()
    items = [factories.make_item(project=project, title=f"both {n}") for n in range(20)]
    embedded = embedded_target()
    for item in items:
        assert embedded.fetch(object_uuid("item", item.pk))["title"] == item.title
    assert SyncRecord.objects.filter(target="embedded", state=SyncState.SYNCED).count() == 21
    assert SyncRecord.objects.filter(target="weaviate", state=SyncState.PENDING).count() == 20
    assert both.store.count("AgiraObject") == 1  # only the project, from before

    both.up()
    both.counters.reset()
    embedded.stats.clear()
    report = drain()
    assert report.targets["weaviate"].written == 20
    assert report.targets["embedded"].written == 0  # it was up to date
    assert embedded.stats["upsert batches"] == 0
    assert both.counters[BATCH_OBJECTS] == 1
    assert both.store.count("AgiraObject") == 21
    assert embedded.count() == 21
    assert not SyncRecord.objects.exclude(state=SyncState.SYNCED).exists()


def test_a_failure_in_one_target_is_recorded_for_that_target_only(both):
    both.faults.fail_objects(where=lambda c, u, p: p.get("title") == "picky", message="no thanks")
    item = factories.make_item(title="picky")
    weaviate = SyncRecord.objects.get(target="weaviate", object_type="item", object_id=item.pk)
    embedded = SyncRecord.objects.get(target="embedded", object_type="item", object_id=item.pk)
    assert weaviate.state == SyncState.PENDING
    assert weaviate.attempts == 1
    assert weaviate.last_error.endswith("no thanks")
    assert embedded.state == SyncState.SYNCED
    assert embedded.last_error == ""


WRITER = textwrap.dedent(
    """
    import os, sys, uuid, django
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agira.settings")
    django.setup()
    from core.services.index.targets.qdrant import qdrant_target
    target = qdrant_target()
    tag = sys.argv[1]
    for batch in range(20):
        docs = [(uuid.uuid5(uuid.NAMESPACE_URL, f"{tag}-{batch}-{n}"),
                 {"type": "item", "title": f"{tag} {batch} {n}", "text": "x"})
                for n in range(10)]
        errors = target.upsert_many(docs)
        assert not errors, errors
        target.count()  # a read between writes, like a page would
    target.close()
    print("ok", tag)
    """
)


def test_two_processes_share_qdrants_local_folder_without_already_accessed_errors(
    settings, tmp_path
):
    env = {
        **os.environ,
        "AGIRA_QDRANT_ENABLED": "true",
        "AGIRA_GRAPH_ENABLED": "false",
        "AGIRA_QDRANT_PATH": str(tmp_path / "shared-qdrant"),
        "AGIRA_VAR_DIR": str(tmp_path / "var"),
        "AGIRA_QDRANT_LOCK_TIMEOUT": "30",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, tag],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("web", "worker")
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-2000:]
        assert "already accessed by another instance" not in err
    assert {out.strip() for out, _ in outputs} == {"ok web", "ok worker"}

    settings.AGIRA_QDRANT_ENABLED = True
    settings.AGIRA_QDRANT_PATH = env["AGIRA_QDRANT_PATH"]
    assert qdrant_target().count() == 400  # 2 processes x 20 batches x 10


def test_a_busy_qdrant_folder_is_reported_and_the_change_waits(settings, transactional_db):
    from core.services.index.targets.qdrant import FolderLock

    settings.AGIRA_EMBEDDED_ENABLED = False
    settings.AGIRA_QDRANT_ENABLED = True
    settings.AGIRA_QDRANT_LOCK_TIMEOUT = 0.1
    blocker = FolderLock(Path(settings.AGIRA_QDRANT_PATH))
    assert blocker.acquire(timeout=1)
    try:
        item = factories.make_item(title="Waits")
        record = SyncRecord.objects.get(target="qdrant", object_type="item", object_id=item.pk)
        assert record.state == SyncState.PENDING
        from core.models import SyncTargetStatus

        status = SyncTargetStatus.objects.get(target="qdrant")
        assert "is busy: another process held it for more than 0.1 s" in status.last_error
    finally:
        blocker.release()
    drain()
    assert qdrant_target().fetch(object_uuid("item", item.pk))["title"] == "Waits"


EMBEDDED_WRITER = textwrap.dedent(
    """
    import os, sys, uuid, django
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agira.settings")
    django.setup()
    import numpy as np
    from core.services.index.targets.embedded import embedded_target
    target = embedded_target()
    tag = sys.argv[1]
    rng = np.random.default_rng(abs(hash(tag)) % 2**32)
    for batch in range(30):
        docs = [(uuid.uuid5(uuid.NAMESPACE_URL, f"{tag}-{batch}-{n}"),
                 {"type": "item", "title": f"{tag} shared words {batch} {n}", "text": "x"})
                for n in range(10)]
        vectors = rng.normal(size=(10, 8)).astype("float32")
        errors = target.upsert_many(docs, vectors=vectors, embedding_model="test:rng:8")
        assert not errors, errors
        # Reads between writes, like a page would: a search and a count.
        assert target.search("shared", filters={"type": "item"}, limit=5, offset=0).hits
        target.count()
    target.close()
    print("ok", tag)
    """
)


def test_web_and_worker_processes_write_and_read_the_embedded_index_at_once(settings, tmp_path):
    """Three processes (a web server's reads and writes, a worker's, a command's)
    use one index file at the same time: no error, no lost write."""
    path = tmp_path / "shared" / "agira.db"
    env = {**os.environ, "AGIRA_EMBEDDED_PATH": str(path), "AGIRA_VAR_DIR": str(tmp_path / "var")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", EMBEDDED_WRITER, tag],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for tag in ("web", "worker", "command")
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err[-2000:]
    assert {out.strip() for out, _ in outputs} == {"ok web", "ok worker", "ok command"}

    settings.AGIRA_EMBEDDED_PATH = str(path)
    target = embedded_target()
    assert target.count() == 900  # 3 processes x 30 batches x 10
    assert target.vector_info() == (8, "test:rng:8")
    probe = object_uuid("x", "y")  # an id no process wrote
    assert target.fetch(probe) is None
    web = target.search("web", filters={}, limit=1000, offset=0)
    assert len(web.hits) == 300


def test_a_writer_holding_the_embedded_index_delays_the_change_and_readers_go_on(
    settings, transactional_db
):
    import apsw

    settings.AGIRA_EMBEDDED_BUSY_TIMEOUT = 0.1
    project = factories.make_project(name="Readable")
    target = embedded_target()
    blocker = apsw.Connection(settings.AGIRA_EMBEDDED_PATH)
    blocker.execute("BEGIN IMMEDIATE")  # another process's long write
    try:
        item = factories.make_item(project=project, title="Waits")
        record = SyncRecord.objects.get(target="embedded", object_type="item", object_id=item.pk)
        assert record.state == SyncState.PENDING
        from core.models import SyncTargetStatus

        status = SyncTargetStatus.objects.get(target="embedded")
        assert "is busy: another process has been writing for more than 0.1 s" in status.last_error
        # Readers are never blocked by a writer.
        assert target.fetch(object_uuid("project", project.pk))["title"] == "Readable"
        assert target.search("Readable", filters={}, limit=5, offset=0).hits
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    drain()
    assert target.fetch(object_uuid("item", item.pk))["title"] == "Waits"


def test_a_reconcile_with_nothing_changed_reads_and_writes_nothing_in_the_embedded_index(
    transactional_db,
):
    from core.services.index.reconcile import reconcile

    project = factories.make_project()
    for n in range(12):
        factories.make_item(project=project, title=f"Quiet {n}")
    target = embedded_target()
    first = reconcile(target="embedded")  # builds the index mirror
    assert not first.targets[0].error
    target.stats.clear()
    report = reconcile(target="embedded")
    result = report.targets[0]
    assert not result.error
    assert result.total("unchanged") == 13
    assert result.total("created") + result.total("updated") + result.total("deleted") == 0
    assert target.stats["documents read"] == 0
    assert target.stats["upsert batches"] == 0


def test_a_status_change_moves_the_vector_filter_without_rewriting_text_or_vector(
    transactional_db,
):
    from core.services.index.context import embed_query

    item = factories.make_item(title="Export crashes on large files", status="Inbox")
    target = embedded_target()
    vector = embed_query("export crash")

    def found(status: str, **search) -> bool:
        page = target.search(
            search.get("query", ""),
            filters={"status": status},
            limit=5,
            offset=0,
            vector=search.get("vector"),
        )
        return str(item.pk) in {hit.document["object_id"] for hit in page.hits}

    before = target.fetch_vector(object_uuid("item", item.pk))
    assert found("Inbox", vector=vector)
    assert not found("Working", vector=vector)
    item.status = "Working"
    item.save()
    assert found("Working", vector=vector)
    assert not found("Inbox", vector=vector)
    assert found("Working", query="export")  # the full-text row still answers
    assert (target.fetch_vector(object_uuid("item", item.pk)) == before).all()


def test_vector_search_ranks_by_the_exact_cosine_with_filters_inside(db):
    """The int8 index finds candidates; the page is ranked by the float32 vectors."""
    import numpy as np

    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(600, 384)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    docs = [
        (
            object_uuid("item", n),
            {"object_id": str(n), "type": "item" if n % 3 else "comment", "title": f"t{n}"},
        )
        for n in range(600)
    ]
    target = embedded_target()
    assert target.upsert_many(docs, vectors=vectors, embedding_model="test:rng:384") == {}
    query = vectors[5] + rng.normal(size=384).astype(np.float32) * 0.05
    query /= np.linalg.norm(query)
    exact = vectors @ query
    items = [n for n in range(600) if n % 3]
    expected = sorted(items, key=lambda n: -exact[n])[:15]

    page = target.search("", filters={"type": "item"}, limit=10, offset=0, vector=query)
    assert [int(h.document["object_id"]) for h in page.hits] == expected[:10]
    for hit in page.hits:
        assert abs(hit.score - exact[int(hit.document["object_id"])]) < 1e-5
    assert page.has_next
    second = target.search("", filters={"type": "item"}, limit=10, offset=10, vector=query)
    assert [int(h.document["object_id"]) for h in second.hits][:5] == expected[10:15]


def test_two_threads_opening_a_new_index_at_once_both_answer(tmp_path):
    """A hybrid search's two halves, and the related list's, each open their own
    connection: on a new index file the two first opens met each other in WAL
    set-up, and one was refused at once as "locked" (about one pair in eighty
    here). Three hundred new files, two threads each: no refusal."""
    import threading

    from core.services.index.targets.embedded import EmbeddedSettings, EmbeddedTarget

    failures = []
    for n in range(300):
        target = EmbeddedTarget(
            EmbeddedSettings(enabled=True, path=str(tmp_path / f"{n}.db"), busy_timeout=5)
        )
        start = threading.Barrier(2)

        def search(target=target, start=start, n=n):
            start.wait()
            try:
                target.search("anything", filters={}, limit=5, offset=0)
            except Exception as exc:
                failures.append(f"{n}: {exc}")

        threads = [threading.Thread(target=search) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        target.close()
    assert failures == []
