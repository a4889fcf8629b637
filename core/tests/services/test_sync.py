"""The sync engine, through the real weaviate-client against the in-process
Weaviate-compatible server (real HTTP and gRPC on 127.0.0.1)."""

import datetime as dt

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction

from core.models import (
    Attachment,
    ExternalIssueMapping,
    Item,
    SyncOutbox,
    SyncRecord,
    SyncState,
    SyncTargetStatus,
)
from core.services import index
from core.services.attachments import attachment_create
from core.services.index.documents import FIELDS, object_uuid
from core.services.index.engine import drain
from core.testing.weaviate_server.faults import BATCH_DELETE, BATCH_OBJECTS, OBJECTS_CREATED
from core.tests import factories

COLLECTION = "AgiraObject"


def stored(server, object_type: str, object_id) -> dict | None:
    return server.store.get(COLLECTION, object_uuid(object_type, object_id))


def record(object_type: str, object_id) -> SyncRecord:
    return SyncRecord.objects.get(
        target="weaviate", object_type=object_type, object_id=str(object_id)
    )


def make_one_of_each(user=None) -> dict:
    project = factories.make_project(name="Webshop")
    item = factories.make_item(
        project=project,
        title="Checkout breaks",
        status="Working",
        description="Basket empties on login.",
    )
    node = factories.make_node(project=project, name="API")
    return {
        "project": project,
        "item": item,
        "comment": factories.make_comment(item=item, body="Seen on staging", author=user),
        "attachment": attachment_create(
            item=item,
            upload=SimpleUploadedFile("notes.md", b"# Notes\nretry twice"),
            uploaded_by=None,
        ),
        "change": factories.make_change(project=project, title="Rotate keys", risk="High"),
        "node": factories.make_node(project=project, name="Gateway", parent=node),
        "release": factories.make_release(project=project, version="2.0.0"),
        "github_issue": factories.make_mapping(
            item=item, repository="acme/shop", number=5, state="closed", state_reason="completed"
        ),
        "github_pr": factories.make_mapping(
            item=item, repository="acme/shop", number=9, kind="pr", state="open", title="Fix basket"
        ),
    }


# -- create, update, delete of every type ---------------------------------------------
def test_create_of_each_type_reaches_the_index_with_the_seed_fields(weaviate_sync):
    objects = make_one_of_each()
    for object_type, obj in objects.items():
        doc = stored(weaviate_sync, object_type, obj.pk)
        assert doc is not None, object_type
        assert set(doc) <= set(FIELDS)
        assert doc["object_id"] == str(obj.pk)
        assert doc["type"] == object_type
        assert record(object_type, obj.pk).state == SyncState.SYNCED
    project, item = objects["project"], objects["item"]
    item_doc = stored(weaviate_sync, "item", item.pk)
    assert item_doc["text"] == "Status: Working\n\nBasket empties on login."
    assert item_doc["title"] == "Checkout breaks"
    assert item_doc["status"] == "Working"
    assert item_doc["project_id"] == str(project.pk)
    assert item_doc["org_id"] == str(project.organisation_id)
    assert item_doc["url"] == f"/items/{item.pk}/"
    assert item_doc["source_system"] == "agira"
    for child in ("comment", "attachment", "github_issue", "github_pr"):
        assert stored(weaviate_sync, child, objects[child].pk)["parent_object_id"] == str(item.pk)
    attachment_doc = stored(weaviate_sync, "attachment", objects["attachment"].pk)
    assert attachment_doc["text"] == "# Notes\nretry twice"
    assert attachment_doc["size_bytes"] == 19
    assert attachment_doc["sha256"] == objects["attachment"].sha256
    issue_doc = stored(weaviate_sync, "github_issue", objects["github_issue"].pk)
    assert issue_doc["external_key"] == "acme/shop#5"
    assert issue_doc["source_system"] == "github"
    assert issue_doc["status"] == "closed"
    node_doc = stored(weaviate_sync, "node", objects["node"].pk)
    assert node_doc["parent_object_id"] == str(objects["node"].parent_id)
    assert weaviate_sync.store.count(COLLECTION) == 10  # the nine, and the parent node


def test_update_of_each_type_reaches_the_index(weaviate_sync):
    objects = make_one_of_each()
    changes = {
        "project": ("name", "Webshop NG", "title"),
        "item": ("title", "Checkout fixed", "title"),
        "comment": ("body", "Fixed now", "text"),
        "attachment": ("original_filename", "notes-v2.md", "title"),
        "change": ("title", "Rotate all keys", "title"),
        "node": ("name", "Edge gateway", "title"),
        "release": ("notes", "Big release", "text"),
        "github_issue": ("title", "Basket bug", "title"),
        "github_pr": ("state", "closed", "status"),
    }
    for object_type, (field, value, doc_field) in changes.items():
        obj = objects[object_type]
        setattr(obj, field, value)
        obj.save()
        doc = stored(weaviate_sync, object_type, obj.pk)
        assert value in doc[doc_field], object_type
    assert weaviate_sync.store.count(COLLECTION) == 10


def test_delete_of_each_type_leaves_the_index(weaviate_sync):
    objects = make_one_of_each()
    for object_type in (
        "github_pr",
        "github_issue",
        "attachment",
        "comment",
        "release",
        "node",
        "change",
    ):
        obj = objects[object_type]
        pk = obj.pk
        obj.delete()
        assert stored(weaviate_sync, object_type, pk) is None, object_type
        assert record(object_type, pk).state == SyncState.DELETED
    objects["project"].delete()  # takes the item with it
    assert weaviate_sync.store.count(COLLECTION) == 0


def test_deleting_an_item_removes_its_comments_and_attachments(weaviate_sync):
    objects = make_one_of_each()
    item = objects["item"]
    with transaction.atomic():
        item.delete()
    for object_type in ("item", "comment", "attachment", "github_issue", "github_pr"):
        assert stored(weaviate_sync, object_type, objects[object_type].pk) is None, object_type
    # The project and its planning records stay (two nodes).
    assert weaviate_sync.store.count(COLLECTION) == 5


def test_moving_an_item_updates_its_childrens_project(weaviate_sync):
    objects = make_one_of_each()
    other = factories.make_project(name="Portal")
    item = objects["item"]
    item.project = other
    item.save()
    for object_type in ("item", "comment", "attachment", "github_issue"):
        doc = stored(weaviate_sync, object_type, objects[object_type].pk)
        assert doc["project_id"] == str(other.pk), object_type
        assert doc["org_id"] == str(other.organisation_id), object_type


# -- exactly once in effect ---------------------------------------------------------------
def test_an_update_of_an_object_deleted_behind_agiras_back_recreates_it(weaviate_sync):
    item = factories.make_item(title="Lost")
    weaviate_sync.store.delete(COLLECTION, str(object_uuid("item", item.pk)))
    assert stored(weaviate_sync, "item", item.pk) is None
    item.title = "Found again"
    item.save()  # no 404: the write is an upsert
    assert stored(weaviate_sync, "item", item.pk)["title"] == "Found again"
    assert record("item", item.pk).state == SyncState.SYNCED


def test_fifty_saves_of_one_object_in_one_transaction_cause_one_write(weaviate_sync):
    item = factories.make_item(title="v0")
    weaviate_sync.counters.reset()
    with transaction.atomic():
        for n in range(1, 51):
            item.title = f"v{n}"
            item.save()
    assert weaviate_sync.counters[BATCH_OBJECTS] == 1
    assert weaviate_sync.counters["objects sent in BatchObjects"] == 1
    assert stored(weaviate_sync, "item", item.pk)["title"] == "v50"
    assert not SyncOutbox.objects.exists()


def test_a_save_with_no_change_causes_no_write(weaviate_sync):
    item = factories.make_item(title="Same")
    weaviate_sync.counters.reset()
    item.save()  # updated_at moves; the content does not
    Item.objects.get(pk=item.pk).save()
    assert weaviate_sync.counters[BATCH_OBJECTS] == 0
    assert record("item", item.pk).state == SyncState.SYNCED


def _create_then_fail(title: str) -> None:
    with transaction.atomic():
        factories.make_item(title=title)
        raise RuntimeError("abort")


def test_a_rollback_records_nothing(weaviate_sync):
    with pytest.raises(RuntimeError):
        _create_then_fail("Never was")
    assert not SyncOutbox.objects.exists()
    assert not SyncRecord.objects.exists()
    assert weaviate_sync.store.count(COLLECTION) == 0


def test_a_rolled_back_savepoint_keeps_the_outer_change(weaviate_sync):
    with transaction.atomic():
        kept = factories.make_item(title="Kept")
        with pytest.raises(RuntimeError):
            _create_then_fail("Dropped")
    assert stored(weaviate_sync, "item", kept.pk)["title"] == "Kept"
    assert weaviate_sync.store.count(COLLECTION) == 2  # project + item


# -- the server down, slow, misconfigured ---------------------------------------------------
def test_a_hundred_saves_while_the_server_is_down_all_succeed_and_one_drain_writes_them(
    weaviate_sync,
):
    project = factories.make_project()
    weaviate_sync.down()
    items = [factories.make_item(project=project, title=f"offline {n}") for n in range(100)]
    assert Item.objects.count() == 100
    pending = SyncRecord.objects.filter(object_type="item", state=SyncState.PENDING)
    assert pending.count() == 100
    assert all(r.attempts == 0 for r in pending)  # an outage is nobody's fault
    status = SyncTargetStatus.objects.get(target="weaviate")
    assert not status.reachable
    assert f"Weaviate at http://127.0.0.1:{weaviate_sync.http_port}" in status.last_error
    assert "is not reachable" in status.last_error

    weaviate_sync.up()
    weaviate_sync.counters.reset()
    report = drain()
    assert report.targets["weaviate"].written == 100
    assert weaviate_sync.counters[BATCH_OBJECTS] == 1
    assert weaviate_sync.store.count(COLLECTION) == 101
    for item in items:
        assert stored(weaviate_sync, "item", item.pk)["title"] == item.title
    assert not SyncRecord.objects.exclude(state=SyncState.SYNCED).exists()
    # Nothing duplicated: a second drain writes nothing.
    weaviate_sync.counters.reset()
    drain()
    assert weaviate_sync.counters[BATCH_OBJECTS] == 0
    assert weaviate_sync.store.count(COLLECTION) == 101


def test_a_bad_object_in_a_batch_fails_alone_and_is_retried(weaviate_sync, settings):
    project = factories.make_project()
    with index.sync_paused():
        good = [factories.make_item(project=project, title=f"good {n}") for n in range(3)]
        bad = factories.make_item(project=project, title="poison")
        weaviate_sync.faults.fail_objects(
            uuids=[str(object_uuid("item", bad.pk))], message="invalid text property 'title'"
        )
    for item in good:
        assert record("item", item.pk).state == SyncState.SYNCED
    bad_record = record("item", bad.pk)
    assert bad_record.state == SyncState.PENDING
    assert bad_record.attempts == 1
    assert "invalid text property 'title'" in bad_record.last_error
    assert stored(weaviate_sync, "item", bad.pk) is None

    weaviate_sync.faults.clear()
    report = drain()  # due again at once: the test's backoff is zero
    assert report.targets["weaviate"].written == 1
    assert record("item", bad.pk).state == SyncState.SYNCED
    assert stored(weaviate_sync, "item", bad.pk)["title"] == "poison"


def test_retries_stop_at_the_limit_and_the_error_stays_visible(weaviate_sync, settings):
    settings.AGIRA_SYNC_MAX_ATTEMPTS = 3
    weaviate_sync.faults.fail_objects(
        where=lambda c, u, p: p.get("title") == "poison", message="rejected by validation"
    )
    item = factories.make_item(title="poison")
    drain()
    drain()
    failed = record("item", item.pk)
    assert failed.state == SyncState.FAILED
    assert failed.attempts == 3
    assert failed.last_error.endswith("rejected by validation")
    weaviate_sync.counters.reset()
    drain()
    assert weaviate_sync.counters[BATCH_OBJECTS] == 0  # failed means no more automatic tries
    # A new change gives it a fresh start.
    weaviate_sync.faults.clear()
    item.title = "fixed"
    item.save()
    assert record("item", item.pk).state == SyncState.SYNCED


def test_backoff_grows_exponentially_with_jitter(settings):
    from core.services.index.engine import backoff_delay

    settings.AGIRA_SYNC_BACKOFF_SECONDS = 10
    settings.AGIRA_SYNC_BACKOFF_MAX_SECONDS = 100
    for attempts, base in [(1, 10), (2, 20), (3, 40), (4, 80), (5, 100), (9, 100)]:
        delays = {backoff_delay(attempts).total_seconds() for _ in range(20)}
        assert all(base * 0.5 <= d <= base * 1.5 for d in delays), attempts
        assert len(delays) > 1  # jittered


def test_the_wrong_api_key_is_reported_as_such(weaviate_sync):
    from core.models import WeaviateConfiguration

    WeaviateConfiguration.objects.filter(pk=1).update(api_key="wrong-key-123")
    item = factories.make_item(title="Needs a key")
    status = SyncTargetStatus.objects.get(target="weaviate")
    assert not status.reachable
    assert "rejected the API key (401 Unauthorized)" in status.last_error
    assert "wrong-key-123" not in status.last_error
    assert record("item", item.pk).state == SyncState.PENDING
    assert record("item", item.pk).attempts == 0


def test_a_slow_server_never_breaks_a_save(weaviate_sync):
    from core.models import WeaviateConfiguration

    WeaviateConfiguration.objects.filter(pk=1).update(insert_timeout=0.3, query_timeout=0.3)
    weaviate_sync.faults.set_latency(1.0, protocol="grpc")
    item = factories.make_item(title="Slow")  # the drain times out; the save stands
    assert Item.objects.filter(pk=item.pk).exists()
    assert record("item", item.pk).state == SyncState.PENDING
    weaviate_sync.faults.clear()
    drain()
    assert stored(weaviate_sync, "item", item.pk)["title"] == "Slow"


def test_an_existing_collection_with_another_schema_is_reported_not_altered(weaviate_sync):
    weaviate_sync.store.create_class(
        {"class": COLLECTION, "properties": [{"name": "title", "dataType": ["int"]}]}
    )
    item = factories.make_item(title="Mismatch")
    status = SyncTargetStatus.objects.get(target="weaviate")
    assert "exists with a different schema" in status.last_error
    assert "property title is int, expected text" in status.last_error
    assert "Agira does not alter it" in status.last_error
    assert record("item", item.pk).state == SyncState.PENDING
    schema = weaviate_sync.store.schema(COLLECTION)
    assert [p["name"] for p in schema["properties"]] == ["title"]


def test_the_collection_is_created_with_the_agira_schema(weaviate_sync):
    factories.make_project()
    schema = weaviate_sync.store.schema(COLLECTION)
    types = {p["name"]: p["dataType"][0] for p in schema["properties"]}
    assert types["created_at"] == types["updated_at"] == "date"
    assert types["size_bytes"] == "int"
    assert {n for n, t in types.items() if t == "text"} == set(FIELDS) - {
        "created_at",
        "updated_at",
        "size_bytes",
    }


# -- awkward content ------------------------------------------------------------------------
def test_huge_text_is_truncated_visibly(weaviate_sync, settings):
    settings.AGIRA_INDEX_MAX_TEXT_CHARS = 1000
    item = factories.make_item(title="Huge", description="x" * 50_000)
    text = stored(weaviate_sync, "item", item.pk)["text"]
    assert text.startswith("Status: Inbox\n\nxxx")
    assert text.endswith("[truncated: 1,000 of 50,015 characters shown]")
    assert Item.objects.get(pk=item.pk).description == "x" * 50_000  # the database keeps it all


def test_binary_attachments_are_indexed_by_metadata_only(weaviate_sync):
    item = factories.make_item()
    content = bytes(range(256)) * 4
    attachment = attachment_create(
        item=item,
        upload=SimpleUploadedFile("dump.bin", content, content_type="application/octet-stream"),
        uploaded_by=None,
    )
    doc = stored(weaviate_sync, "attachment", attachment.pk)
    assert doc.get("text", "") == ""
    assert doc["mime_type"] == "application/octet-stream"
    # A binary the browser called text/plain is still recognised as binary.
    disguised = attachment_create(
        item=item,
        upload=SimpleUploadedFile("trace.txt", content, content_type="text/plain"),
        uploaded_by=None,
    )
    assert stored(weaviate_sync, "attachment", disguised.pk).get("text", "") == ""
    assert doc["size_bytes"] == 1024
    assert doc["title"] == "dump.bin"


def test_invalid_utf8_in_a_text_file_is_replaced_not_fatal(weaviate_sync):
    item = factories.make_item()
    attachment = attachment_create(
        item=item,
        upload=SimpleUploadedFile(
            "log.txt", b"ok \xff\xfe broken \xc3\x28 end", content_type="text/plain"
        ),
        uploaded_by=None,
    )
    doc = stored(weaviate_sync, "attachment", attachment.pk)
    assert doc["text"] == "ok \ufffd\ufffd broken \ufffd( end"
    assert Attachment.objects.get(pk=attachment.pk).size_bytes == 19


def test_a_large_text_file_is_cut_with_a_marker(weaviate_sync, settings):
    settings.AGIRA_INDEX_MAX_TEXT_CHARS = 100
    item = factories.make_item()
    attachment = attachment_create(
        item=item, upload=SimpleUploadedFile("big.csv", b"a,b\n" * 1000), uploaded_by=None
    )
    text = stored(weaviate_sync, "attachment", attachment.pk)["text"]
    assert text.startswith("a,b\na,b")
    assert text.endswith("[truncated: 100 characters of a 4,000-byte file shown]")


# -- switches ------------------------------------------------------------------------------------
def test_sync_disabled_records_nothing(weaviate_sync):
    with index.sync_disabled():
        item = factories.make_item(title="Quiet")
    assert not SyncOutbox.objects.exists()
    assert not SyncRecord.objects.exists()
    assert stored(weaviate_sync, "item", item.pk) is None


def test_sync_paused_holds_the_drain_then_writes_in_one_batch(weaviate_sync):
    project = factories.make_project()
    weaviate_sync.counters.reset()
    with index.sync_paused():
        items = [factories.make_item(project=project, title=f"bulk {n}") for n in range(20)]
        assert weaviate_sync.counters[BATCH_OBJECTS] == 0
        assert SyncOutbox.objects.count() == 20
    assert weaviate_sync.counters[BATCH_OBJECTS] == 1
    assert all(stored(weaviate_sync, "item", i.pk) for i in items)


def test_per_type_and_per_operation_switches(weaviate_sync, settings):
    settings.AGIRA_SYNC_TYPES = ["project"]
    item = factories.make_item(title="Not synced")
    assert stored(weaviate_sync, "item", item.pk) is None
    assert stored(weaviate_sync, "project", item.project.pk) is not None

    settings.AGIRA_SYNC_TYPES = []
    settings.AGIRA_SYNC_OPERATIONS = ["create", "update"]
    kept = factories.make_item(title="Stays in the index")
    pk = kept.pk
    kept.delete()
    assert stored(weaviate_sync, "item", pk) is not None


def test_immediate_mode_drains_in_the_saving_process(weaviate_sync, settings):
    settings.AGIRA_SYNC_MODE = "immediate"
    item = factories.make_item(title="Now")
    assert stored(weaviate_sync, "item", item.pk)["title"] == "Now"


def test_weaviate_disabled_records_and_drops_quietly(weaviate_sync):
    from core.models import WeaviateConfiguration

    WeaviateConfiguration.objects.filter(pk=1).update(enabled=False)
    factories.make_item()
    assert weaviate_sync.store.count(COLLECTION) == 0
    assert not SyncOutbox.objects.exists()
    assert not SyncRecord.objects.exists()


def test_mark_for_sync_covers_queryset_update(weaviate_sync):
    project = factories.make_project()
    with index.sync_paused():
        items = [factories.make_item(project=project, status="Working") for _ in range(5)]
    with transaction.atomic():
        Item.objects.filter(project=project).update(status="Closed")
        assert index.mark_for_sync(Item.objects.filter(project=project)) == 5
    for item in items:
        assert stored(weaviate_sync, "item", item.pk)["status"] == "Closed"


def test_mark_for_sync_splits_github_links_by_kind(weaviate_sync):
    item = factories.make_item()
    with index.sync_disabled():
        issue = factories.make_mapping(item=item, number=1)
        pr = factories.make_mapping(item=item, number=2, kind="pr")
    assert index.mark_for_sync(ExternalIssueMapping.objects.all()) == 2
    assert stored(weaviate_sync, "github_issue", issue.pk) is not None
    assert stored(weaviate_sync, "github_pr", pr.pk) is not None


def test_changing_a_link_from_issue_to_pr_moves_its_document(weaviate_sync):
    mapping = factories.make_mapping(number=3)
    mapping.kind = "pr"
    mapping.save()
    assert stored(weaviate_sync, "github_issue", mapping.pk) is None
    assert stored(weaviate_sync, "github_pr", mapping.pk) is not None


# -- the service functions of seed 000 --------------------------------------------------------
def test_service_functions(weaviate_sync):
    objects = make_one_of_each()
    item = objects["item"]
    assert index.get_weaviate_type(item) == "item"
    assert index.get_weaviate_type(objects["github_pr"]) == "github_pr"
    assert index.get_weaviate_type(factories.make_organisation()) is None
    assert index.exists_instance(item)
    assert index.exists_object("item", item.pk)
    assert not index.exists_object("item", 999999)
    assert index.fetch_object(item)["title"] == "Checkout breaks"
    assert index.fetch_object_by_type("item", 999999) is None
    with pytest.raises(ValueError, match="Unknown object type"):
        index.exists_object("bogus", 1)

    weaviate_sync.store.delete(COLLECTION, str(object_uuid("item", item.pk)))
    report = index.upsert_instance(item)
    assert report["weaviate"].written == 1
    assert index.exists_instance(item)
    index.delete_instance(item)
    assert not index.exists_instance(item)


def test_sync_project_writes_everything_and_counts_per_type(weaviate_sync):
    with index.sync_disabled():
        objects = make_one_of_each()
    assert weaviate_sync.store.count(COLLECTION) == 0
    counts = index.sync_project(project_id=objects["project"].pk)
    assert counts == {
        "project": 1,
        "item": 1,
        "comment": 1,
        "attachment": 1,
        "change": 1,
        "node": 2,
        "release": 1,
        "github_issue": 1,
        "github_pr": 1,
    }
    assert weaviate_sync.store.count(COLLECTION) == 10
    # Idempotent: the same ids, no duplicates.
    index.sync_project(project_id=objects["project"].pk)
    assert weaviate_sync.store.count(COLLECTION) == 10


def test_object_uuid_is_stable_and_documented():
    assert str(object_uuid("item", 1)) == str(object_uuid("item", "1"))
    assert object_uuid("item", 1) != object_uuid("comment", 1)
    # Fixed for ever: changing it would orphan every indexed object.
    assert str(object_uuid("item", 1)) == "981d0a19-d43a-5eb3-8aa9-f09ca81275e6"


def test_dates_are_rfc3339_utc(weaviate_sync):
    item = factories.make_item()
    doc = stored(weaviate_sync, "item", item.pk)
    created = dt.datetime.fromisoformat(str(doc["created_at"]).replace("Z", "+00:00"))
    assert abs(created - item.created_at) < dt.timedelta(milliseconds=1)
    assert stored(weaviate_sync, "project", item.project.pk)["status"] == "Active"
    assert weaviate_sync.counters[OBJECTS_CREATED] >= 2
    assert weaviate_sync.counters[BATCH_DELETE] == 0


def test_an_outage_is_never_mistaken_for_a_wrong_key(weaviate_sync):
    """Ports are random: one containing "401" must not read as Unauthorized."""
    from dataclasses import replace

    from core.services.index.config import weaviate_settings
    from core.services.index.targets.weaviate import WeaviateTarget

    config = replace(weaviate_settings(), http_port=40175, grpc_port=40176)  # nothing listens
    target = WeaviateTarget(config)
    with pytest.raises(index.TargetUnavailable) as caught:
        target.ping()
    target.close()
    assert caught.value.reason == "unreachable"
    assert "API key" not in str(caught.value)
    assert "Could not connect to Weaviate at http://127.0.0.1:40175" in str(caught.value)
