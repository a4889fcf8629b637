"""`manage.py sync_weaviate`, in this process, against both targets.

The tests with real concurrent and killed processes are in
test_sync_weaviate_processes.py.
"""

import io
import os
import subprocess
import sys

import pytest
from django.core.management import call_command
from django.utils import timezone

from core.models import Item, ReconcileRun, ReconcileStatus, SyncRecord, SyncState
from core.services.index import sync_disabled
from core.services.index.documents import object_uuid
from core.services.index.engine import active_targets
from core.services.index.reconcile import HOST, reconcile
from core.testing.weaviate_server.faults import (
    BATCH_DELETE,
    BATCH_OBJECTS,
    OBJECTS_CREATED,
    OBJECTS_DELETED,
    OBJECTS_UPDATED,
)
from core.tests import factories


@pytest.fixture(autouse=True)
def _mirror_folder(settings, tmp_path):
    """The reconcile command's index mirror of a test goes to its own folder."""
    settings.AGIRA_RECONCILE_CACHE_DIR = str(tmp_path / "reconcile")


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("sync_weaviate", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


def make_data() -> dict:
    """Objects in the database and not in the index (sync recorded nothing)."""
    with sync_disabled():
        project = factories.make_project(name="Webshop")
        items = [factories.make_item(project=project, title=f"Item {n}") for n in range(5)]
        comment = factories.make_comment(item=items[0], body="A comment")
        node = factories.make_node(project=project, name="API")
    return {"project": project, "items": items, "comment": comment, "node": node}


def db_total() -> int:
    from core.services.index.documents import OBJECT_TYPES

    return sum(spec.queryset().count() for spec in OBJECT_TYPES.values())


def totals(target: str) -> dict[str, int]:
    return ReconcileRun.objects.filter(target=target).order_by("-id").first().totals()


def test_cold_start_creates_everything_and_a_warm_start_writes_nothing(sync):
    data = make_data()
    total = db_total()
    assert sync.count() == 0

    code, out, _err = run()
    assert code == 0, out
    assert sync.count() == total
    assert totals(sync.name)["created"] == total
    assert sync.get("item", data["items"][0].pk)["title"] == "Item 0"
    record = sync.record("item", data["items"][0].pk)
    assert record.state == SyncState.SYNCED
    assert record.content_hash
    assert "in sync" in out
    assert "created" in out

    sync.reset_counts()
    records_before = list(SyncRecord.objects.values_list("id", "changed_at"))
    code, out, _err = run()
    assert code == 0
    assert sync.writes() == 0
    assert totals(sync.name) == {
        "created": 0,
        "updated": 0,
        "unchanged": total,
        "deleted": 0,
        "failed": 0,
    }
    assert list(SyncRecord.objects.values_list("id", "changed_at")) == records_before
    run_row = ReconcileRun.objects.filter(target=sync.name).order_by("-id").first()
    assert run_row.status == ReconcileStatus.COMPLETED
    assert run_row.lock is None
    assert run_row.finished_at
    assert run_row.pid == os.getpid()


def test_warm_start_makes_no_write_calls_at_all_on_weaviate(weaviate_sync):
    make_data()
    assert run()[0] == 0
    weaviate_sync.counters.reset()
    assert run()[0] == 0
    for key in (BATCH_OBJECTS, BATCH_DELETE, OBJECTS_CREATED, OBJECTS_UPDATED, OBJECTS_DELETED):
        assert weaviate_sync.counters[key] == 0, key


def test_orphans_are_deleted_and_no_delete_is_respected(sync):
    data = make_data()
    assert run()[0] == 0
    gone = data["items"][1]
    gone_pk = gone.pk
    with sync_disabled():
        gone.delete()
    assert sync.get("item", gone_pk) is not None

    code, out, _err = run("--no-delete")
    assert code == 4  # the index still differs: not "in sync"
    assert sync.get("item", gone_pk) is not None
    assert "1 orphans left in place" in out
    assert "in sync" not in out
    assert "1 object left differing" in out

    code, out, _err = run()
    assert code == 0
    assert sync.get("item", gone_pk) is None
    assert totals(sync.name)["deleted"] == 1
    assert sync.count() == db_total()


def test_an_object_changed_behind_agiras_back_is_repaired(sync):
    data = make_data()
    assert run()[0] == 0
    item = data["items"][2]
    target = next(t for t in active_targets() if t.name == sync.name)
    doc = dict(sync.get("item", item.pk))
    doc["title"] = "Vandalised"
    with target.session():
        target.upsert_many([(object_uuid("item", item.pk), doc)])
    assert sync.get("item", item.pk)["title"] == "Vandalised"

    sync.reset_counts()
    code, _out, _err = run()
    assert code == 0
    assert sync.get("item", item.pk)["title"] == "Item 2"
    assert totals(sync.name)["updated"] == 1
    assert sync.objects_written() == 1


def test_dry_run_writes_nothing(sync):
    make_data()
    total = db_total()
    code, out, _err = run("--dry-run")
    assert code == 4  # it found work and did none of it
    assert "DRY RUN" in out
    assert "in sync" not in out
    assert f"would change {total} objects" in out
    assert sync.count() == 0
    assert sync.writes() == 0
    assert totals(sync.name)["created"] == total
    assert not SyncRecord.objects.exists()


def test_dry_run_writes_nothing_on_weaviate_counters(weaviate_sync):
    data = make_data()
    assert run()[0] == 0
    with sync_disabled():
        data["items"][3].delete()
        Item.objects.filter(pk=data["items"][1].pk).update(title="Changed")
    weaviate_sync.counters.reset()
    code, out, _err = run("--dry-run")
    assert code == 4
    assert "would change 2 objects" in out
    assert totals("weaviate")["updated"] == 1
    assert totals("weaviate")["deleted"] == 1
    for key in (BATCH_OBJECTS, BATCH_DELETE, OBJECTS_CREATED, OBJECTS_UPDATED, OBJECTS_DELETED):
        assert weaviate_sync.counters[key] == 0, key


def test_full_rewrites_everything(sync):
    make_data()
    total = db_total()
    assert run()[0] == 0
    code, _out, _err = run("--full", "--force")
    assert code == 0
    assert totals(sync.name)["updated"] == total
    assert sync.count() == total


def test_project_and_type_filters(sync):
    data = make_data()
    with sync_disabled():
        other = factories.make_item(title="Elsewhere")
    assert run("--type", "item", "--project-id", str(data["project"].pk))[0] == 0
    assert sync.get("item", data["items"][0].pk) is not None
    assert sync.get("item", other.pk) is None
    assert sync.get("node", data["node"].pk) is None
    assert run()[0] == 0
    # An orphan of another project is left to a run over that project.
    other_pk = other.pk
    with sync_disabled():
        other.delete()
    assert run("--project-id", str(data["project"].pk))[0] == 0
    assert sync.get("item", other_pk) is not None
    assert run()[0] == 0
    assert sync.get("item", other_pk) is None


def test_the_outbox_is_drained(sync):
    item = factories.make_item(title="Queued")  # recorded in the outbox
    assert run()[0] == 0
    assert sync.get("item", item.pk)["title"] == "Queued"
    assert sync.record("item", item.pk).state == SyncState.SYNCED


def test_index_down_exits_3_with_a_clear_message(sync):
    make_data()
    sync.down()
    try:
        code, _out, err = run()
    finally:
        sync.up()
    assert code == 3
    assert "is unreachable or misconfigured (exit 3)" in err
    expected = "Could not connect to Weaviate" if sync.name == "weaviate" else sync.down_message
    assert expected in err
    last = ReconcileRun.objects.filter(target=sync.name).order_by("-id").first()
    assert last.status == ReconcileStatus.FAILED
    assert expected in last.error
    assert last.lock is None


def test_an_inactive_target_exits_3(weaviate_sync):
    code, _out, err = run("--target", "qdrant")
    assert code == 3
    assert "not active" in err


def _holder(**fields) -> ReconcileRun:
    now = timezone.now()
    values = {
        "target": "weaviate",
        "lock": "weaviate",
        "started_at": now,
        "heartbeat_at": now,
        "host": HOST,
        "pid": os.getppid(),
    }
    values.update(fields)
    return ReconcileRun.objects.create(**values)


def test_a_live_holder_makes_a_second_run_exit_2_naming_it(weaviate_sync):
    holder = _holder()
    code, _out, err = run()
    assert code == 2
    assert f"run #{holder.pk}" in err
    assert f"pid {holder.pid}" in err
    holder.refresh_from_db()
    assert holder.status == ReconcileStatus.IN_PROGRESS


def test_with_two_targets_a_held_lock_leaves_both_to_its_holder(weaviate_sync, settings):
    """All the targets or none: the embedded index is free, but the run does
    not do it alone while another run holds Weaviate."""
    settings.AGIRA_EMBEDDED_ENABLED = True
    make_data()
    holder = _holder()
    code, out, err = run()
    assert code == 2, out
    assert f"Another run holds weaviate: run #{holder.pk}" in err
    assert f"Left to run #{holder.pk}, which holds weaviate" in err
    assert list(ReconcileRun.objects.values_list("pk", flat=True)) == [holder.pk]
    holder.delete()
    assert run()[0] == 0
    assert sorted(ReconcileRun.objects.values_list("target", "status")) == [
        ("embedded", ReconcileStatus.COMPLETED),
        ("weaviate", ReconcileStatus.COMPLETED),
    ]


def test_a_dead_holder_is_taken_over_and_marked_failed(weaviate_sync):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    holder = _holder(pid=dead.pid)
    make_data()
    code, out, _err = run()
    assert code == 0
    holder.refresh_from_db()
    assert holder.status == ReconcileStatus.FAILED
    assert holder.lock is None
    assert f"holder pid {dead.pid}" in holder.error
    assert "died" in holder.error
    assert f"run #{holder.pk} was stale" in out


def test_a_holder_without_heartbeat_is_taken_over(weaviate_sync, settings):
    settings.AGIRA_RECONCILE_STALE_SECONDS = 60
    holder = _holder(
        host="another-machine", heartbeat_at=timezone.now() - timezone.timedelta(hours=1)
    )
    assert run()[0] == 0
    holder.refresh_from_db()
    assert holder.status == ReconcileStatus.FAILED
    assert "no heartbeat" in holder.error


def test_service_report_per_target(weaviate_sync):
    make_data()
    report = reconcile(batch_size=2)
    assert report.exit_code == 0
    (result,) = report.targets
    assert result.counts["item"]["created"] == 5
    assert set(result.counts) >= {"item", "comment", "node", "project"}


@pytest.mark.parametrize("batch_size", ["0", "-1"])
def test_a_bad_batch_size_is_refused(weaviate_sync, batch_size):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("sync_weaviate", "--batch-size", batch_size)


def test_runs_are_shown_on_the_dashboard_and_in_the_admin(weaviate_sync, client):
    from django.urls import reverse

    make_data()
    assert run()[0] == 0
    code, out, _err = run("--dry-run")
    assert code == 0  # nothing to do: a dry run of an index in sync
    assert "in sync" in out
    first, second = ReconcileRun.objects.order_by("id")
    client.force_login(factories.make_user("boss", is_staff=True, is_superuser=True))
    html = client.get(reverse("core:sync-dashboard")).content.decode()
    runs_section = html.split("data-runs", 1)[1]
    assert f'data-run="{first.pk}" data-run-status="completed"' in runs_section
    assert f'data-run="{second.pk}"' in runs_section
    assert "dry run" in runs_section
    admin_list = client.get(reverse("admin:core_reconcilerun_changelist"))
    assert admin_list.status_code == 200
    assert f"{db_total()} / 0 / 0 / 0" in admin_list.content.decode()
    detail = client.get(reverse("admin:core_reconcilerun_change", args=[first.pk]))
    assert detail.status_code == 200


# -- what an incremental run leaves alone, and what it still finds -----------------
def make_old_data() -> dict:
    """make_data() with every row a day old, and a first run behind it: the next
    run may leave alone what has not changed since."""
    from core.services.index.documents import OBJECT_TYPES

    data = make_data()
    with sync_disabled():
        data["release"] = factories.make_release(project=data["project"], version="2.0")
    a_day_ago = timezone.now() - timezone.timedelta(days=1)
    for spec in OBJECT_TYPES.values():
        spec.model._default_manager.update(updated_at=a_day_ago)
    assert run()[0] == 0
    return data


def test_a_row_changed_by_an_update_that_bypasses_signals_is_found(sync):
    data = make_old_data()
    item = data["items"][3]
    total = db_total()
    sync.reset_counts()
    # QuerySet.update() sends no signal: nothing is recorded in the outbox.
    Item.objects.filter(pk=item.pk).update(title="Changed quietly", updated_at=timezone.now())

    code, _out, _err = run()
    assert code == 0
    assert totals(sync.name) == {
        "created": 0,
        "updated": 1,
        "unchanged": total - 1,
        "deleted": 0,
        "failed": 0,
    }
    assert sync.get("item", item.pk)["title"] == "Changed quietly"
    assert sync.objects_written() == 1


def test_a_parent_changed_by_an_update_reaches_the_documents_built_from_it(sync):
    data = make_old_data()
    release = data["release"]
    assert sync.get("release", release.pk)["title"] == "Webshop 2.0"
    # A release's title carries its project's name; only the project row changes.
    from core.models import Project

    Project.objects.filter(pk=data["project"].pk).update(name="Shop", updated_at=timezone.now())
    assert run()[0] == 0
    assert sync.get("release", release.pk)["title"] == "Shop 2.0"
    assert sync.get("project", data["project"].pk)["title"] == "Shop"
    assert totals(sync.name)["updated"] == 2


def test_an_old_row_whose_record_matches_the_index_is_not_serialized(sync):
    data = make_old_data()
    item = data["items"][4]
    total = db_total()
    # Changed without updated_at and without signals: the one change the
    # incremental run cannot see. That it keeps the old document proves the
    # row was neither loaded nor serialized.
    Item.objects.filter(pk=item.pk).update(title="Unseen")
    sync.reset_counts()

    assert run()[0] == 0
    assert totals(sync.name)["unchanged"] == total
    assert sync.get("item", item.pk)["title"] == "Item 4"
    assert sync.writes() == 0

    assert run("--full", "--force")[0] == 0
    assert sync.get("item", item.pk)["title"] == "Unseen"


def test_an_old_row_changed_behind_agiras_back_in_the_index_is_repaired(sync):
    data = make_old_data()
    item = data["items"][2]
    target = next(t for t in active_targets() if t.name == sync.name)
    doc = dict(sync.get("item", item.pk))
    doc["title"] = "Vandalised"
    with target.session():
        target.upsert_many([(object_uuid("item", item.pk), doc)])
    sync.reset_counts()

    assert run()[0] == 0
    assert sync.get("item", item.pk)["title"] == "Item 2"
    assert totals(sync.name)["updated"] == 1
    assert sync.objects_written() == 1


def test_a_copy_under_another_id_is_an_orphan(sync):
    import uuid

    data = make_old_data()
    item = data["items"][0]
    target = next(t for t in active_targets() if t.name == sync.name)
    stray = uuid.UUID("00000000-0000-4000-8000-000000000001")
    with target.session():
        target.upsert_many([(stray, dict(sync.get("item", item.pk)))])
    total = db_total()

    assert run()[0] == 0
    assert totals(sync.name) == {
        "created": 0,
        "updated": 0,
        "unchanged": total,
        "deleted": 1,
        "failed": 0,
    }
    assert sync.count() == total
    assert sync.get("item", item.pk)["title"] == "Item 0"


def test_other_document_code_makes_the_next_run_compare_every_row(sync, settings):
    data = make_old_data()
    settings.AGIRA_INDEX_MAX_TEXT_CHARS = 12  # e.g. a deploy that changes the documents
    assert run()[0] == 0
    assert "[truncated:" in sync.get("item", data["items"][0].pk)["text"]
    assert totals(sync.name)["updated"] >= len(data["items"])


def test_a_warm_run_reads_only_the_index_ids_and_versions(weaviate_sync):
    data = make_old_data()
    weaviate_sync.counters.reset()
    assert run()[0] == 0
    # One cursor page of ids and versions; no document is read again.
    assert weaviate_sync.counters["grpc Search"] == 1

    # An object changed behind Agira's back has a new version: read again.
    uid = object_uuid("item", data["items"][1].pk)
    doc = dict(weaviate_sync.store.get("AgiraObject", uid))
    weaviate_sync.store.put("AgiraObject", uid, {**doc, "text": "Replaced"})
    weaviate_sync.counters.reset()
    assert run()[0] == 0
    assert weaviate_sync.store.get("AgiraObject", uid)["text"] == doc["text"]
    assert totals("weaviate")["updated"] == 1
    # The walk, the changed document, and the repaired one read back.
    assert weaviate_sync.counters["grpc Search"] == 3


def test_an_unusable_mirror_costs_a_slower_run_not_a_wrong_one(weaviate_sync, settings):
    from pathlib import Path

    make_old_data()
    (mirror,) = Path(settings.AGIRA_RECONCILE_CACHE_DIR).glob("weaviate-*.sqlite3")
    mirror.write_bytes(b"not a database" * 100)
    weaviate_sync.counters.reset()
    assert run()[0] == 0
    assert totals("weaviate")["unchanged"] == db_total()
    assert weaviate_sync.counters[BATCH_OBJECTS] == 0
    # The mirror was made again: the next run reads no document.
    weaviate_sync.counters.reset()
    assert run()[0] == 0
    assert weaviate_sync.counters["grpc Search"] == 1


def test_the_stamps_cover_every_row_a_document_is_built_from():
    from core.services.index.documents import OBJECT_TYPES
    from core.services.index.reconcile import stamp_fields

    assert stamp_fields(OBJECT_TYPES["item"]) == ["updated_at", "project__updated_at"]
    assert stamp_fields(OBJECT_TYPES["comment"]) == [
        "updated_at",
        "item__updated_at",
        "item__project__updated_at",
    ]
    assert stamp_fields(OBJECT_TYPES["release"]) == ["updated_at", "project__updated_at"]
    assert stamp_fields(OBJECT_TYPES["project"]) == ["updated_at"]


def test_an_old_row_whose_change_waits_in_the_queue_is_compared(weaviate_sync, settings):
    """A change recorded with mark_for_sync whose write failed: the row is old,
    its index object unchanged, but its record is not synced, so the run
    compares the row instead of trusting the index."""
    from django.db import transaction

    from core.services.index import mark_for_sync

    data = make_old_data()
    item = data["items"][1]
    settings.AGIRA_SYNC_BACKOFF_SECONDS = 3600  # the retry is not due during the run
    weaviate_sync.faults.fail_objects(uuids=[str(object_uuid("item", item.pk))])
    with transaction.atomic():
        Item.objects.filter(pk=item.pk).update(title="Queued quietly")
        mark_for_sync(Item.objects.filter(pk=item.pk))
    weaviate_sync.faults.clear()
    assert SyncRecord.objects.get(
        target="weaviate", object_type="item", object_id=str(item.pk)
    ).state == (SyncState.PENDING)
    assert weaviate_sync.store.get("AgiraObject", object_uuid("item", item.pk))["title"] == (
        "Item 1"
    )

    assert run()[0] == 0
    assert totals("weaviate")["updated"] == 1
    assert weaviate_sync.store.get("AgiraObject", object_uuid("item", item.pk))["title"] == (
        "Queued quietly"
    )
    # Compared, found equal: a third run leaves it alone and reads nothing again.
    weaviate_sync.counters.reset()
    assert run()[0] == 0
    assert totals("weaviate")["updated"] == 0
    assert weaviate_sync.counters["grpc Search"] == 1


def test_a_run_with_failed_objects_never_says_in_sync(weaviate_sync, settings):
    settings.AGIRA_SYNC_MAX_ATTEMPTS = 1
    make_data()
    weaviate_sync.faults.fail_objects(
        where=lambda c, u, p: p.get("title") == "Item 3", message="invalid text property 'title'"
    )
    code, out, _err = run()
    assert code == 1
    assert "in sync" not in out
    assert "1 object failed" in out
    assert totals("weaviate")["failed"] == 1
