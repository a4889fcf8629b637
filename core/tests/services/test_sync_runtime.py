"""The sync engine at run time: the database task queue and its worker, one
client per process shared by threads and always closed, concurrent drains."""

import gc
import threading
import time
import warnings

import pytest
from django.core.management import call_command
from django.db import close_old_connections, connection
from django.utils import timezone

from core.models import Item, SyncOutbox, SyncRecord, SyncState
from core.services.index.documents import object_uuid
from core.services.index.engine import drain
from core.services.index.targets.weaviate import close_weaviate, weaviate_target
from core.testing.weaviate_server.faults import BATCH_OBJECTS
from core.tests import factories

DB_TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}


def test_queued_mode_with_the_database_queue_writes_nothing_until_the_worker_runs(
    weaviate_sync, settings
):
    from django_tasks_db.models import DBTaskResult

    settings.TASKS = DB_TASKS
    item = factories.make_item(title="Queued")
    # The save only recorded the change and enqueued the drain.
    assert weaviate_sync.counters[BATCH_OBJECTS] == 0
    assert SyncOutbox.objects.count() == 2  # the project and the item
    # Both saves rely on one deferred drain task (the coalescing window).
    assert DBTaskResult.objects.filter(status="READY").count() == 1

    _wait_for_due_tasks()
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)
    assert weaviate_sync.store.get("AgiraObject", object_uuid("item", item.pk))["title"] == "Queued"
    assert not SyncOutbox.objects.exists()
    assert SyncRecord.objects.get(object_type="item").state == SyncState.SYNCED


def test_a_drain_task_that_finds_weaviate_down_schedules_a_retry(weaviate_sync, settings):
    from django_tasks_db.models import DBTaskResult

    settings.TASKS = DB_TASKS
    factories.make_item(title="Later")
    weaviate_sync.down()
    _wait_for_due_tasks()
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)
    later = DBTaskResult.objects.filter(status="READY", run_after__isnull=False)
    assert later.count() == 1  # one retry, not one per change
    assert SyncRecord.objects.filter(state=SyncState.PENDING).count() == 2


def _wait_for_due_tasks() -> None:
    """Deferred drain tasks become due after the coalescing window."""
    import time

    from core.services.index.engine import DRAIN_COALESCE

    time.sleep(DRAIN_COALESCE.total_seconds() + 0.05)


def test_one_client_per_process_shared_by_threads(weaviate_sync):
    targets, errors = [], []

    def use() -> None:
        try:
            target = weaviate_target()
            target.count()
            targets.append(target)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len({id(t) for t in targets}) == 1
    assert len({id(t._client) for t in targets}) == 1


def test_the_client_is_closed_without_a_resource_warning(weaviate_sync):
    factories.make_item(title="Closes cleanly")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        close_weaviate()
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert weaviate_target()._client is None  # a new one is made lazily on next use


def test_an_admin_edit_reconnects_with_the_new_settings(weaviate_sync):
    from core.models import WeaviateConfiguration

    first = weaviate_target()
    first.count()
    WeaviateConfiguration.objects.filter(pk=1).update(collection_name="OtherCollection")
    second = weaviate_target()
    assert second is not first
    assert first._client is None  # the old client was closed
    factories.make_item(title="Elsewhere")
    assert weaviate_sync.store.count("OtherCollection") == 2


@pytest.mark.postgres
def test_concurrent_drains_write_each_change_once(weaviate_sync, settings):
    """Four drains at once over 401 pending changes: every object written, and
    each exactly once (leases keep drains off each other's records)."""
    settings.TASKS = DB_TASKS  # saves only enqueue; the threads below drain
    settings.AGIRA_SYNC_BATCH_SIZE = 25  # many small leases to fight over
    project = factories.make_project()
    for n in range(400):
        factories.make_item(project=project, title=f"c{n}")
    assert SyncOutbox.objects.count() == 401

    reports, errors = [], []

    def run() -> None:
        try:
            reports.append(drain())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    written = sum(r.targets["weaviate"].written for r in reports)
    assert written == 401
    assert weaviate_sync.counters["objects sent in BatchObjects"] == 401
    assert weaviate_sync.store.count("AgiraObject") == 401
    assert SyncRecord.objects.filter(object_type="item", state=SyncState.SYNCED).count() == 400


def test_the_outbox_row_commits_with_the_save_even_in_autocommit(weaviate_sync, settings):
    """A save outside any transaction still writes its row and its outbox row
    in one transaction: when a later receiver fails, neither is kept."""
    from django.db import connection
    from django.db.models.signals import post_save

    from core.models import Item

    settings.TASKS = DB_TASKS
    item = factories.make_item(title="before")
    SyncOutbox.objects.all().delete()
    assert connection.get_autocommit()

    def boom(sender, instance, **kwargs):
        assert SyncOutbox.objects.filter(object_id=str(instance.pk)).exists()  # recorded
        raise RuntimeError("a receiver after the outbox failed")

    post_save.connect(boom, sender=Item, dispatch_uid="test-boom")
    try:
        item.title = "after"
        with pytest.raises(RuntimeError, match="receiver after the outbox failed"):
            item.save()
    finally:
        post_save.disconnect(sender=Item, dispatch_uid="test-boom")
    assert Item.objects.get(pk=item.pk).title == "before"
    assert not SyncOutbox.objects.exists()


def test_saves_in_one_window_share_one_drain_task(weaviate_sync, settings):
    from django_tasks_db.models import DBTaskResult

    settings.TASKS = DB_TASKS
    project = factories.make_project()
    for n in range(10):
        factories.make_item(project=project, title=f"burst {n}")
    assert DBTaskResult.objects.count() == 1  # ten saves, one deferred drain
    task = DBTaskResult.objects.get()
    assert task.run_after is not None
    # Not due yet: a worker now leaves it for later.
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)
    assert weaviate_sync.store.count("AgiraObject") == 0
    _wait_for_due_tasks()
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)
    assert weaviate_sync.store.count("AgiraObject") == 11
    assert not SyncOutbox.objects.exists()


def test_without_a_worker_the_drain_runs_beside_the_save_not_in_it(sync, settings):
    """The inline task backend (development without a worker): a save returns
    before its drain, which runs in the process's background drain thread and
    writes the change a moment later."""
    from django_tasks.signals import task_started

    from core.services.index.engine import wait_for_background_drain

    if sync.name == "qdrant":
        pytest.skip("qdrant-client's local mode takes one client at a time (a lock file)")
    # The test database is SQLite in memory, shared between threads without a busy
    # timeout: the project is saved (and drained) first, so that the background
    # drain never writes while this thread does.
    project = factories.make_project()
    settings.AGIRA_SYNC_INLINE = False
    threads: list[str] = []

    def started(sender, task_result, **kwargs):
        threads.append(threading.current_thread().name)

    task_started.connect(started)
    try:
        item = factories.make_item(project=project, title="Saved at once")
        assert wait_for_background_drain(60)
    finally:
        task_started.disconnect(started)
    assert threads
    assert set(threads) == {"agira-sync-drain"}
    assert threading.current_thread().name not in threads
    assert sync.get("item", item.pk)["title"] == "Saved at once"
    assert sync.record("item", item.pk).state == SyncState.SYNCED


def _unlocked(fn):
    """`fn()`, again a moment later while the in-memory test database (one
    cache shared by the threads, which waits for no lock) says a table is
    locked by the drain's thread."""
    from django.db import OperationalError

    for _attempt in range(50):
        try:
            return fn()
        except OperationalError as exc:
            if "locked" not in str(exc):
                raise
            time.sleep(0.02)
    return fn()


def test_a_change_back_while_a_drain_writes_is_not_lost(weaviate_sync, settings):
    """Synced as A; saved as B and a drain starts writing B slowly; saved back
    to A meanwhile. When the slow drain completes, the record holds what the
    index now holds (B), so the next drain writes A instead of skipping it."""
    from core.services.index.engine import fold_outbox

    item = factories.make_item(title="A")  # synced inline
    settings.TASKS = DB_TASKS  # from here saves only record; the test drains
    item.title = "B"
    item.save()
    weaviate_sync.faults.set_latency(1.0, protocol="grpc")
    errors = []

    def slow_drain() -> None:
        try:
            drain()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    batches_before = weaviate_sync.counters[BATCH_OBJECTS]
    first = threading.Thread(target=slow_drain)
    first.start()
    try:
        # Until the slow drain is inside its write (the record claimed, the batch
        # sent, its answer a second away): the save back then races the write,
        # not the drain's own reads, which the in-memory test database would
        # refuse as "table is locked" instead of waiting.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if weaviate_sync.counters[BATCH_OBJECTS] > batches_before:
                break
            time.sleep(0.01)
        held = _unlocked(lambda: SyncRecord.objects.get(object_type="item", object_id=str(item.pk)))
        assert held.claim_token  # the drain holds the record while it writes
        item.title = "A"
        _unlocked(item.save)
        fold_outbox(target_names=["weaviate"])  # the change back is folded meanwhile
    finally:
        first.join()
        weaviate_sync.faults.set_latency(0.0)
    assert not errors
    uid = object_uuid("item", item.pk)
    assert weaviate_sync.store.get("AgiraObject", uid)["title"] == "B"
    record = SyncRecord.objects.get(target="weaviate", object_type="item", object_id=str(item.pk))
    assert record.state == SyncState.PENDING  # the change back waits
    drain()
    assert weaviate_sync.store.get("AgiraObject", uid)["title"] == "A"
    record.refresh_from_db()
    assert record.state == SyncState.SYNCED


@pytest.mark.postgres
def test_drains_folding_and_recording_at_once_never_deadlock(weaviate_sync, settings):
    """Six threads each save items and drain, over and over, on PostgreSQL:
    no drain fails (folds take disjoint outbox rows, records are locked in one
    order, a deadlock the database still reports is retried), and every
    change ends in the index."""
    settings.TASKS = DB_TASKS  # saves only record; the threads drain
    settings.AGIRA_SYNC_BATCH_SIZE = 7
    project = factories.make_project()
    shared = [factories.make_item(project=project, title=f"shared {n}") for n in range(30)]
    errors: list[Exception] = []

    def work(worker: int) -> None:
        try:
            for round_ in range(10):
                # Overlapping sets, in opposite orders in alternate workers.
                chosen = shared[worker % 3 :: 2] + shared[: 30 - worker * 4]
                for item in chosen if worker % 2 else reversed(chosen):
                    mine = Item.objects.get(pk=item.pk)
                    mine.title = f"{worker}-{round_}"
                    mine.save()
                drain()
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    drain()
    assert not SyncOutbox.objects.exists()
    for item in shared:
        item.refresh_from_db()
        stored = weaviate_sync.store.get("AgiraObject", object_uuid("item", item.pk))
        assert stored["title"] == item.title
    assert not SyncRecord.objects.exclude(state=SyncState.SYNCED).exists()


def test_one_waiting_drain_task_serves_every_process(weaviate_sync, settings):
    """Saves from many processes (here: windows reset as a new process would
    have them) leave one waiting drain task in the queue, not one each; once
    it ran, the next save queues the next."""
    from django_tasks_db.models import DBTaskResult

    from core.services.index.engine import reset_enqueue_window

    settings.TASKS = DB_TASKS
    project = factories.make_project()
    for n in range(12):
        reset_enqueue_window()  # as if each save came from another process
        factories.make_item(project=project, title=f"elsewhere {n}")
    assert DBTaskResult.objects.count() == 1
    _wait_for_due_tasks()
    call_command("db_worker", "--batch", "--no-startup-delay", "--no-reload", verbosity=0)
    assert weaviate_sync.store.count("AgiraObject") == 13
    reset_enqueue_window()
    factories.make_item(project=project, title="after the drain")
    assert DBTaskResult.objects.filter(status="READY").count() == 1


def test_a_slow_batch_keeps_its_lease_while_it_works(weaviate_sync, settings):
    """Leases are short and renewed while the batch is in flight: after the
    first lease would have ended, no other drain can take the batch, and the
    slow drain's write is recorded."""
    from core.services.index.engine import _claim

    settings.AGIRA_SYNC_LEASE_SECONDS = 0.6
    item = factories.make_item(title="Fast")
    settings.TASKS = DB_TASKS  # from here saves only record; the test drains
    item.title = "Slow"
    item.save()
    weaviate_sync.faults.set_latency(1.5, protocol="grpc")
    reports = []

    def slow_drain() -> None:
        try:
            reports.append(drain())
        finally:
            connection.close()

    first = threading.Thread(target=slow_drain)
    first.start()
    try:
        record = SyncRecord.objects.filter(object_type="item", object_id=str(item.pk))
        deadline = time.monotonic() + 10
        while not _unlocked(record.get).claim_token and time.monotonic() < deadline:
            time.sleep(0.02)
        leased = _unlocked(record.get)
        assert leased.claim_token, "the slow drain never leased the record"
        while timezone.now() <= leased.claimed_until and time.monotonic() < deadline:
            time.sleep(0.02)
        # The first lease is over, the write is not: the batch is still held.
        assert _unlocked(lambda: _claim("weaviate", timezone.now())) == []
        renewed = _unlocked(record.get)
        assert renewed.claim_token == leased.claim_token
        assert renewed.claimed_until > leased.claimed_until
    finally:
        first.join()
        weaviate_sync.faults.set_latency(0.0)
    assert reports[0].targets["weaviate"].written == 1
    done = record.get()
    assert done.state == SyncState.SYNCED
    assert not done.claim_token
    uid = object_uuid("item", item.pk)
    assert weaviate_sync.store.get("AgiraObject", uid)["title"] == "Slow"
