"""The task worker as real processes: killed in the middle of a batch, and
left with work that is due while nobody saves.

Each test has its own file-based SQLite database (migrated once per module,
copied per test), `manage.py db_worker` processes on the database queue, and
the in-process Weaviate-compatible server of the test session.
"""

import signal

import pytest

from core.tests import processes
from core.tests.processes import base_env, query, wait_for

ITEMS = 12
SAVE_ITEMS = f"""
from core.models import Item, Organisation, Project
organisation = Organisation.objects.create(name="Workers")
project = Project.objects.create(name="Worker test", organisation=organisation)
for n in range({ITEMS}):
    Item.objects.create(project=project, title=f"item {{n}}")
"""


@pytest.fixture(scope="module")
def migrated(tmp_path_factory):
    var_dir = tmp_path_factory.mktemp("worker-var")
    db_file = var_dir / "template.sqlite3"
    processes.manage(base_env(var_dir, db_file), "migrate", "-v0")
    processes.checkpoint(db_file)
    return var_dir, db_file


@pytest.fixture
def env(migrated, tmp_path, weaviate_server) -> dict:
    var_dir, template = migrated
    env = processes.copied_env(template, var_dir, tmp_path, weaviate_server)
    env.update(
        AGIRA_TASKS_BACKEND="django_tasks_db.DatabaseBackend",
        AGIRA_EMBEDDER_PROVIDER="none",
        AGIRA_SYNC_UPKEEP_SECONDS="0.3",
    )
    return env


@pytest.fixture
def live_database_env(tmp_path) -> dict:
    return processes.test_database_env(tmp_path)


def worker(env: dict):
    return processes.start(
        env, "db_worker", "--interval", "0.1", "--no-reload", "--no-startup-delay"
    )


def stop(proc) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.communicate(timeout=30)
        except Exception:
            proc.kill()
            proc.communicate()


def records(env: dict) -> list:
    return query(env["_DB"], "SELECT * FROM core_syncrecord WHERE target = 'weaviate'")


def all_synced(env: dict, server, count: int = ITEMS + 1) -> bool:
    """`count` objects, each in the index and recorded as synced there."""
    rows = records(env)
    return (
        len(rows) == count
        and all(r["state"] == "synced" for r in rows)
        and server.store.count("AgiraObject") == count
    )


def test_a_worker_killed_mid_batch_leaves_nothing_stuck(env, weaviate_server):
    """A worker is killed with SIGKILL while its drain writes a batch. The
    lease is long (10 minutes), so only finding the holder dead frees it:
    another worker does, writes the batch without any new save, and marks the
    killed task failed instead of running for ever."""
    env = {**env, "AGIRA_SYNC_LEASE_SECONDS": "600"}
    processes.manage(env, "shell", "-c", SAVE_ITEMS)
    weaviate_server.faults.set_latency(30.0, protocol="grpc")
    victim = worker(env)
    try:
        wait_for(
            lambda: any(r["claim_token"] for r in records(env)),
            seconds=60,
            what="the first worker to lease a batch",
        )
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)
    finally:
        stop(victim)
        weaviate_server.faults.set_latency(0.0)
    (killed,) = query(
        env["_DB"], "SELECT * FROM django_tasks_database_dbtaskresult WHERE status = 'RUNNING'"
    )
    assert all(r["state"] == "pending" for r in records(env))

    rescuer = worker(env)
    try:
        wait_for(
            lambda: all_synced(env, weaviate_server),
            seconds=60,
            what="the second worker to write the killed worker's batch",
        )
    finally:
        stop(rescuer)
    (row,) = query(
        env["_DB"], "SELECT * FROM django_tasks_database_dbtaskresult WHERE id = ?", (killed["id"],)
    )
    assert row["status"] == "FAILED"
    assert row["exception_class_path"] == "core.services.index.upkeep.WorkerDied"
    assert f"(pid {victim.pid} on " in row["traceback"]
    statuses = [
        r["status"] for r in query(env["_DB"], "SELECT * FROM django_tasks_database_dbtaskresult")
    ]
    assert "RUNNING" not in statuses  # nothing left claiming to run
    titles = sorted(o["title"] for o in weaviate_server.store.objects("AgiraObject").values())
    assert titles == sorted(["Worker test", *(f"item {n}" for n in range(ITEMS))])


def test_the_worker_drains_what_becomes_due_without_a_save(env, weaviate_server):
    """Records leased by a drain on another machine that never came back, and
    records waiting for their retry's backoff, with no task in the queue: the
    worker writes them once the lease ends and the backoff is over, though
    nobody saves anything."""
    prepare = (
        SAVE_ITEMS
        + """
from datetime import timedelta
from django.utils import timezone
from django_tasks_db.models import DBTaskResult
from core.models import SyncRecord
from core.services.index.engine import fold_outbox
fold_outbox(target_names=["weaviate"])
ids = list(SyncRecord.objects.order_by("id").values_list("id", flat=True))
soon = timezone.now() + timedelta(seconds=2)
SyncRecord.objects.filter(id__in=ids[::2]).update(
    claim_token="elsewhere:4242:0123456789abcdef", claimed_until=soon
)
SyncRecord.objects.filter(id__in=ids[1::2]).update(attempts=1, next_attempt_at=soon)
DBTaskResult.objects.all().delete()
"""
    )
    processes.manage(env, "shell", "-c", prepare)
    assert not query(env["_DB"], "SELECT * FROM django_tasks_database_dbtaskresult")
    assert not query(env["_DB"], "SELECT * FROM core_syncoutbox")
    proc = worker(env)
    try:
        wait_for(
            lambda: all_synced(env, weaviate_server),
            seconds=60,
            what="the worker to drain the records once due",
        )
    finally:
        stop(proc)
    assert all(r["attempts"] == 0 and not r["claim_token"] for r in records(env))


def test_the_worker_writes_again_an_index_that_came_back_empty(env, weaviate_server):
    """Weaviate restarts without its volume while the worker runs and nobody
    saves: the worker finds the index far below what the records say is
    synced, puts those records back in the queue and writes them again; the
    dashboard's status and the worker's log say what happened."""
    env = {**env, "AGIRA_SYNC_INDEX_CHECK_SECONDS": "0.5"}
    many = SAVE_ITEMS.replace(f"range({ITEMS})", "range(30)")
    processes.manage(env, "shell", "-c", many)
    proc = worker(env)
    try:
        wait_for(lambda: all_synced(env, weaviate_server, 31), seconds=60, what="the first sync")
        weaviate_server.down()
        weaviate_server.store.reset()  # restarted without its data
        weaviate_server.up()
        wait_for(
            lambda: query(env["_DB"], "SELECT * FROM core_synctargetstatus WHERE index_lost_at"),
            seconds=60,
            what="the worker to find the index emptied",
        )
        wait_for(
            lambda: all_synced(env, weaviate_server, 31),
            seconds=60,
            what="the worker to write the index again",
        )
    finally:
        proc.terminate()
        _out, err = proc.communicate(timeout=30)
    (status,) = query(env["_DB"], "SELECT * FROM core_synctargetstatus WHERE target = 'weaviate'")
    said = "Weaviate held 0 objects where 31 were synced: it lost them"
    assert said in status["index_lost_note"]
    assert said in err
    titles = sorted(o["title"] for o in weaviate_server.store.objects("AgiraObject").values())
    assert titles == sorted(["Worker test", *(f"item {n}" for n in range(30))])


WRITER = """
import random, time
from django.db import transaction
from core.models import Item
from core.services.index import mark_for_sync
rng = random.Random({seed})
ids = list(Item.objects.order_by("pk").values_list("pk", flat=True))
for n in range({saves}):
    pk = rng.choice(ids)
    # Back and forth between two titles, while drains write slowly: a change
    # back to what the index held while another drain writes the other title
    # is the lost update to catch. The writes bypass the signals (an update()
    # that keeps updated_at, then mark_for_sync), so a change back has exactly
    # the content the index held before.
    with transaction.atomic():
        item = Item.objects.select_for_update().get(pk=pk)
        title = "B" if item.title == "A" else "A"
        Item.objects.filter(pk=pk).update(title=title)
        mark_for_sync(Item.objects.filter(pk=pk))
    time.sleep(rng.random() * 0.05)
"""


@pytest.mark.postgres
def test_many_workers_and_writers_lose_nothing(weaviate_sync, settings, live_database_env):
    """Three `db_worker` processes and three writer processes saving the same
    six items back and forth, on PostgreSQL, with a slow index: no task
    fails, no change is lost, and the index ends equal to the database."""
    from core.models import SyncOutbox, SyncRecord, SyncState
    from core.services.index.documents import object_uuid
    from core.tests import factories
    from core.tests.services.test_sync_runtime import DB_TASKS

    settings.TASKS = DB_TASKS  # the test's own saves only record
    project = factories.make_project()
    items = [factories.make_item(project=project, title="A") for n in range(6)]
    env = {
        **processes.with_weaviate(live_database_env, weaviate_sync),
        "AGIRA_TASKS_BACKEND": "django_tasks_db.DatabaseBackend",
        "AGIRA_EMBEDDER_PROVIDER": "none",
        "AGIRA_SYNC_UPKEEP_SECONDS": "0.5",
        "AGIRA_SYNC_BATCH_SIZE": "7",
    }
    weaviate_sync.faults.set_latency(0.2, protocol="grpc")
    workers = [worker(env) for _ in range(3)]
    try:
        writers = [
            processes.start(env, "shell", "-c", WRITER.format(seed=seed, saves=60))
            for seed in range(3)
        ]
        for writer in writers:
            code, out, err = processes.finish(writer)
            assert code == 0, (out, err)

        def settled() -> bool:
            from django_tasks_db.models import DBTaskResult

            return (
                not SyncOutbox.objects.exists()
                and not SyncRecord.objects.exclude(state=SyncState.SYNCED).exists()
                and not DBTaskResult.objects.filter(status__in=["READY", "RUNNING"]).exists()
            )

        wait_for(settled, seconds=120, what="the workers to write every change")
    finally:
        weaviate_sync.faults.set_latency(0.0)
        for proc in workers:
            stop(proc)
    from django_tasks_db.models import DBTaskResult

    failed = DBTaskResult.objects.filter(status="FAILED")
    assert not failed.exists(), [t.traceback for t in failed]
    for item in items:
        item.refresh_from_db()
        stored = weaviate_sync.store.get("AgiraObject", object_uuid("item", item.pk))
        assert stored["title"] == item.title, item.pk
    assert SyncRecord.objects.filter(object_type="item").count() == len(items)
