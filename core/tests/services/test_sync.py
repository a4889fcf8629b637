"""The sync engine's behaviour, the same for every target: run against
Weaviate (the real weaviate-client and the in-process Weaviate-compatible
server over HTTP and gRPC), the embedded index (SQLite with FTS5 and
sqlite-vec, in a temporary folder) and Qdrant (the real qdrant-client in local
mode). Every write carries the local model's vectors (test_sync_vectors.py).

Weaviate-specific behaviour (faults on the wire, API keys, schemas) is in
test_sync_weaviate.py."""

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
from core.services.index.documents import FIELDS
from core.services.index.engine import drain
from core.tests import factories


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


def test_create_of_each_type_reaches_the_index_with_the_seed_fields(sync):
    objects = make_one_of_each()
    for object_type, obj in objects.items():
        doc = sync.get(object_type, obj.pk)
        assert doc is not None, object_type
        assert set(doc) <= set(FIELDS)
        assert doc["object_id"] == str(obj.pk)
        assert doc["type"] == object_type
        assert sync.record(object_type, obj.pk).state == SyncState.SYNCED
    project, item = objects["project"], objects["item"]
    item_doc = sync.get("item", item.pk)
    assert item_doc["text"] == "Status: Working\n\nBasket empties on login."
    assert item_doc["title"] == "Checkout breaks"
    assert item_doc["status"] == "Working"
    assert item_doc["project_id"] == str(project.pk)
    assert item_doc["org_id"] == str(project.organisation_id)
    assert item_doc["url"] == f"/items/{item.pk}/"
    assert item_doc["source_system"] == "agira"
    for child in ("comment", "attachment", "github_issue", "github_pr"):
        assert sync.get(child, objects[child].pk)["parent_object_id"] == str(item.pk)
    attachment_doc = sync.get("attachment", objects["attachment"].pk)
    assert attachment_doc["text"] == "# Notes\nretry twice"
    assert attachment_doc["size_bytes"] == 19
    assert attachment_doc["sha256"] == objects["attachment"].sha256
    issue_doc = sync.get("github_issue", objects["github_issue"].pk)
    assert issue_doc["external_key"] == "acme/shop#5"
    assert issue_doc["source_system"] == "github"
    assert issue_doc["status"] == "closed"
    node_doc = sync.get("node", objects["node"].pk)
    assert node_doc["parent_object_id"] == str(objects["node"].parent_id)
    assert sync.count() == 10  # the nine, and the parent node


def test_update_of_each_type_reaches_the_index(sync):
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
        doc = sync.get(object_type, obj.pk)
        assert value in doc[doc_field], object_type
    assert sync.count() == 10


def test_delete_of_each_type_leaves_the_index(sync):
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
        assert sync.get(object_type, pk) is None, object_type
        assert sync.record(object_type, pk).state == SyncState.DELETED
    objects["project"].delete()  # takes the item with it
    assert sync.count() == 0


def test_deleting_an_item_removes_its_comments_and_attachments(sync):
    objects = make_one_of_each()
    item = objects["item"]
    with transaction.atomic():
        item.delete()
    for object_type in ("item", "comment", "attachment", "github_issue", "github_pr"):
        assert sync.get(object_type, objects[object_type].pk) is None, object_type
    # The project and its planning records stay (two nodes).
    assert sync.count() == 5


def test_moving_an_item_updates_its_childrens_project(sync):
    objects = make_one_of_each()
    other = factories.make_project(name="Portal")
    item = objects["item"]
    item.project = other
    item.save()
    for object_type in ("item", "comment", "attachment", "github_issue"):
        doc = sync.get(object_type, objects[object_type].pk)
        assert doc["project_id"] == str(other.pk), object_type
        assert doc["org_id"] == str(other.organisation_id), object_type


def test_an_update_of_an_object_deleted_behind_agiras_back_recreates_it(sync):
    item = factories.make_item(title="Lost")
    sync.remove("item", item.pk)
    assert sync.get("item", item.pk) is None
    item.title = "Found again"
    item.save()  # no 404: the write is an upsert
    assert sync.get("item", item.pk)["title"] == "Found again"
    assert sync.record("item", item.pk).state == SyncState.SYNCED


def test_fifty_saves_of_one_object_in_one_transaction_cause_one_write(sync):
    item = factories.make_item(title="v0")
    sync.reset_counts()
    with transaction.atomic():
        for n in range(1, 51):
            item.title = f"v{n}"
            item.save()
    assert sync.writes() == 1
    assert sync.objects_written() == 1
    assert sync.get("item", item.pk)["title"] == "v50"
    assert not SyncOutbox.objects.exists()


def test_a_save_with_no_change_causes_no_write(sync):
    item = factories.make_item(title="Same")
    sync.reset_counts()
    item.save()  # updated_at moves; the content does not
    Item.objects.get(pk=item.pk).save()
    assert sync.writes() == 0
    assert sync.record("item", item.pk).state == SyncState.SYNCED


def _create_then_fail(title: str) -> None:
    with transaction.atomic():
        factories.make_item(title=title)
        raise RuntimeError("abort")


def test_a_rollback_records_nothing(sync):
    with pytest.raises(RuntimeError):
        _create_then_fail("Never was")
    assert not SyncOutbox.objects.exists()
    assert not SyncRecord.objects.exists()
    assert sync.count() == 0


def test_a_rolled_back_savepoint_keeps_the_outer_change(sync):
    with transaction.atomic():
        kept = factories.make_item(title="Kept")
        with pytest.raises(RuntimeError):
            _create_then_fail("Dropped")
    assert sync.get("item", kept.pk)["title"] == "Kept"
    assert sync.count() == 2  # project + item


def test_a_hundred_saves_while_the_server_is_down_all_succeed_and_one_drain_writes_them(
    sync,
):
    project = factories.make_project()
    sync.down()
    items = [factories.make_item(project=project, title=f"offline {n}") for n in range(100)]
    assert Item.objects.count() == 100
    pending = SyncRecord.objects.filter(object_type="item", state=SyncState.PENDING)
    assert pending.count() == 100
    assert all(r.attempts == 0 for r in pending)  # an outage is nobody's fault
    status = SyncTargetStatus.objects.get(target=sync.name)
    assert not status.reachable
    assert sync.says_down(status.last_error), status.last_error

    sync.up()
    sync.reset_counts()
    report = drain()
    assert report.targets[sync.name].written == 100
    assert sync.writes() == 1
    assert sync.count() == 101
    for item in items:
        assert sync.get("item", item.pk)["title"] == item.title
    assert not SyncRecord.objects.exclude(state=SyncState.SYNCED).exists()
    # Nothing duplicated: a second drain writes nothing.
    sync.reset_counts()
    drain()
    assert sync.writes() == 0
    assert sync.count() == 101


def test_huge_text_is_truncated_visibly(sync, settings):
    settings.AGIRA_INDEX_MAX_TEXT_CHARS = 1000
    item = factories.make_item(title="Huge", description="x" * 50_000)
    text = sync.get("item", item.pk)["text"]
    assert text.startswith("Status: Inbox\n\nxxx")
    assert text.endswith("[truncated: 1,000 of 50,015 characters shown]")
    assert Item.objects.get(pk=item.pk).description == "x" * 50_000  # the database keeps it all


def test_binary_attachments_are_indexed_by_metadata_only(sync):
    item = factories.make_item()
    content = bytes(range(256)) * 4
    attachment = attachment_create(
        item=item,
        upload=SimpleUploadedFile("dump.bin", content, content_type="application/octet-stream"),
        uploaded_by=None,
    )
    doc = sync.get("attachment", attachment.pk)
    assert doc.get("text", "") == ""
    assert doc["mime_type"] == "application/octet-stream"
    # A binary the browser called text/plain is still recognised as binary.
    disguised = attachment_create(
        item=item,
        upload=SimpleUploadedFile("trace.txt", content, content_type="text/plain"),
        uploaded_by=None,
    )
    assert sync.get("attachment", disguised.pk).get("text", "") == ""
    assert doc["size_bytes"] == 1024
    assert doc["title"] == "dump.bin"


def test_invalid_utf8_in_a_text_file_is_replaced_not_fatal(sync):
    item = factories.make_item()
    attachment = attachment_create(
        item=item,
        upload=SimpleUploadedFile(
            "log.txt", b"ok \xff\xfe broken \xc3\x28 end", content_type="text/plain"
        ),
        uploaded_by=None,
    )
    doc = sync.get("attachment", attachment.pk)
    assert doc["text"] == "ok \ufffd\ufffd broken \ufffd( end"
    assert Attachment.objects.get(pk=attachment.pk).size_bytes == 19


def test_a_large_text_file_is_cut_with_a_marker(sync, settings):
    settings.AGIRA_INDEX_MAX_TEXT_CHARS = 100
    item = factories.make_item()
    attachment = attachment_create(
        item=item, upload=SimpleUploadedFile("big.csv", b"a,b\n" * 1000), uploaded_by=None
    )
    text = sync.get("attachment", attachment.pk)["text"]
    assert text.startswith("a,b\na,b")
    assert text.endswith("[truncated: 100 characters of a 4,000-byte file shown]")


def test_sync_disabled_records_nothing(sync):
    with index.sync_disabled():
        item = factories.make_item(title="Quiet")
    assert not SyncOutbox.objects.exists()
    assert not SyncRecord.objects.exists()
    assert sync.get("item", item.pk) is None


def test_sync_paused_holds_the_drain_then_writes_in_one_batch(sync):
    project = factories.make_project()
    sync.reset_counts()
    with index.sync_paused():
        items = [factories.make_item(project=project, title=f"bulk {n}") for n in range(20)]
        assert sync.writes() == 0
        assert SyncOutbox.objects.count() == 20
    assert sync.writes() == 1
    assert all(sync.get("item", i.pk) for i in items)


def test_per_type_and_per_operation_switches(sync, settings):
    settings.AGIRA_SYNC_TYPES = ["project"]
    item = factories.make_item(title="Not synced")
    assert sync.get("item", item.pk) is None
    assert sync.get("project", item.project.pk) is not None

    settings.AGIRA_SYNC_TYPES = []
    settings.AGIRA_SYNC_OPERATIONS = ["create", "update"]
    kept = factories.make_item(title="Stays in the index")
    pk = kept.pk
    kept.delete()
    assert sync.get("item", pk) is not None


def test_immediate_mode_drains_in_the_saving_process(sync, settings):
    settings.AGIRA_SYNC_MODE = "immediate"
    item = factories.make_item(title="Now")
    assert sync.get("item", item.pk)["title"] == "Now"


def test_mark_for_sync_covers_queryset_update(sync):
    project = factories.make_project()
    with index.sync_paused():
        items = [factories.make_item(project=project, status="Working") for _ in range(5)]
    with transaction.atomic():
        Item.objects.filter(project=project).update(status="Closed")
        assert index.mark_for_sync(Item.objects.filter(project=project)) == 5
    for item in items:
        assert sync.get("item", item.pk)["status"] == "Closed"


def test_mark_for_sync_splits_github_links_by_kind(sync):
    item = factories.make_item()
    with index.sync_disabled():
        issue = factories.make_mapping(item=item, number=1)
        pr = factories.make_mapping(item=item, number=2, kind="pr")
    assert index.mark_for_sync(ExternalIssueMapping.objects.all()) == 2
    assert sync.get("github_issue", issue.pk) is not None
    assert sync.get("github_pr", pr.pk) is not None


def test_changing_a_link_from_issue_to_pr_moves_its_document(sync):
    mapping = factories.make_mapping(number=3)
    mapping.kind = "pr"
    mapping.save()
    assert sync.get("github_issue", mapping.pk) is None
    assert sync.get("github_pr", mapping.pk) is not None


def test_service_functions(sync):
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

    sync.remove("item", item.pk)
    report = index.upsert_instance(item)
    assert report[sync.name].written == 1
    assert index.exists_instance(item)
    index.delete_instance(item)
    assert not index.exists_instance(item)


def test_sync_project_writes_everything_and_counts_per_type(sync):
    with index.sync_disabled():
        objects = make_one_of_each()
    assert sync.count() == 0
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
    assert sync.count() == 10
    # Idempotent: the same ids, no duplicates.
    index.sync_project(project_id=objects["project"].pk)
    assert sync.count() == 10


def test_document_urls_match_the_pages(sync):
    objects = make_one_of_each()
    for object_type in ("item", "project", "attachment", "change", "node", "release"):
        obj = objects[object_type]
        assert sync.get(object_type, obj.pk)["url"] == obj.get_absolute_url(), object_type
    comment = objects["comment"]
    assert sync.get("comment", comment.pk)["url"] == (
        f"{comment.item.get_absolute_url()}#comment-{comment.pk}"
    )
