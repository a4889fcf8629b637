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
from core.services.index.targets.qdrant import qdrant_target
from core.testing.weaviate_server.faults import BATCH_OBJECTS
from core.tests import factories

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def both(weaviate_sync, settings):
    settings.AGIRA_QDRANT_ENABLED = True
    return weaviate_sync


def test_weaviate_enabled_is_the_primary_and_the_embedded_index_the_default(both):
    assert [t.name for t in active_targets()] == ["weaviate", "qdrant"]
    assert index.primary_target().label == "Weaviate"
    WeaviateConfiguration.objects.filter(pk=1).update(enabled=False)
    assert [t.name for t in active_targets()] == ["qdrant"]
    assert index.primary_target().label == "embedded index"


def test_with_one_target_down_the_other_stays_in_sync_and_the_down_one_catches_up(both):
    project = factories.make_project()
    both.down()
    items = [factories.make_item(project=project, title=f"both {n}") for n in range(20)]
    embedded = qdrant_target()
    for item in items:
        assert embedded.fetch(object_uuid("item", item.pk))["title"] == item.title
    assert SyncRecord.objects.filter(target="qdrant", state=SyncState.SYNCED).count() == 21
    assert SyncRecord.objects.filter(target="weaviate", state=SyncState.PENDING).count() == 20
    assert both.store.count("AgiraObject") == 1  # only the project, from before

    both.up()
    both.counters.reset()
    embedded.stats.clear()
    report = drain()
    assert report.targets["weaviate"].written == 20
    assert report.targets["qdrant"].written == 0  # it was up to date
    assert embedded.stats["upsert batches"] == 0
    assert both.counters[BATCH_OBJECTS] == 1
    assert both.store.count("AgiraObject") == 21
    assert embedded.count() == 21
    assert not SyncRecord.objects.exclude(state=SyncState.SYNCED).exists()


def test_a_failure_in_one_target_is_recorded_for_that_target_only(both):
    both.faults.fail_objects(where=lambda c, u, p: p.get("title") == "picky", message="no thanks")
    item = factories.make_item(title="picky")
    weaviate = SyncRecord.objects.get(target="weaviate", object_type="item", object_id=item.pk)
    qdrant = SyncRecord.objects.get(target="qdrant", object_type="item", object_id=item.pk)
    assert weaviate.state == SyncState.PENDING
    assert weaviate.attempts == 1
    assert weaviate.last_error.endswith("no thanks")
    assert qdrant.state == SyncState.SYNCED
    assert qdrant.last_error == ""


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


def test_two_processes_share_the_local_folder_without_already_accessed_errors(settings, tmp_path):
    env = {
        **os.environ,
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

    settings.AGIRA_QDRANT_PATH = env["AGIRA_QDRANT_PATH"]
    assert qdrant_target().count() == 400  # 2 processes x 20 batches x 10


def test_a_busy_folder_is_reported_and_the_change_waits(settings, transactional_db):
    from core.services.index.targets.qdrant import FolderLock

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
