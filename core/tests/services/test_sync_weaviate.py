"""Weaviate-specific sync behaviour, through the real weaviate-client against
the in-process Weaviate-compatible server: faults on the wire, API keys,
schemas, dates."""

import datetime as dt
from dataclasses import replace

import pytest

from core.models import (
    Item,
    SyncOutbox,
    SyncRecord,
    SyncState,
    SyncTargetStatus,
    WeaviateConfiguration,
)
from core.services import index
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

    WeaviateConfiguration.objects.filter(pk=1).update(api_key="wrong-key-123")
    item = factories.make_item(title="Needs a key")
    status = SyncTargetStatus.objects.get(target="weaviate")
    assert not status.reachable
    assert "rejected the API key (401 Unauthorized)" in status.last_error
    assert "wrong-key-123" not in status.last_error
    assert record("item", item.pk).state == SyncState.PENDING
    assert record("item", item.pk).attempts == 0


def test_a_slow_server_never_breaks_a_save(weaviate_sync):

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


def test_weaviate_disabled_records_and_drops_quietly(weaviate_sync):

    WeaviateConfiguration.objects.filter(pk=1).update(enabled=False)
    factories.make_item()
    assert weaviate_sync.store.count(COLLECTION) == 0
    assert not SyncOutbox.objects.exists()
    assert not SyncRecord.objects.exists()


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


def test_the_reconcile_walk_reads_ids_versions_and_documents(weaviate_sync, monkeypatch):
    """What reconcile.py reads Weaviate with: ids and versions in id order,
    page after page; documents with their versions, as written."""
    import time
    import uuid

    from core.services.index.documents import content_hash, normalise
    from core.services.index.engine import active_targets
    from core.services.index.targets import weaviate as weaviate_module

    monkeypatch.setattr(weaviate_module, "VERSION_PAGE", 3)  # several pages, one partial
    project = factories.make_project()
    items = [factories.make_item(project=project, title=f"Walk {n}") for n in range(6)]
    (target,) = active_targets()
    assert target.supports_versions()

    pages = list(target.iter_versions())
    walked = [oid for page in pages for oid, _version in page]
    assert [len(page) for page in pages] == [3, 3, 1]  # 6 items and their project
    assert walked == sorted(walked)
    assert {str(uuid.UUID(bytes=raw)) for raw in walked} == set(
        weaviate_sync.store.objects(COLLECTION)
    )
    versions = dict(oid_version for page in pages for oid_version in page)

    first = object_uuid("item", items[0].pk)
    docs = target.fetch_versioned([first.bytes, uuid.uuid4().bytes])
    assert list(docs) == [first.bytes]  # an id the index does not hold is absent
    doc, version = docs[first.bytes]
    assert version == versions[first.bytes]
    assert content_hash(doc) == record("item", items[0].pk).content_hash
    assert normalise(doc)["title"] == "Walk 0"

    # Any write of the object gives it a new version (a millisecond later).
    time.sleep(0.002)
    items[0].title = "Walked"
    items[0].save()
    (_doc, newer) = target.fetch_versioned([first.bytes])[first.bytes]
    assert newer > version


def test_weaviate_can_vectorise_on_the_server_with_its_text2vec_module(weaviate_sync, client, user):
    from core.services.index.embeddings import current_embedder

    calls = []

    def module(texts):  # the t2v-transformers container, serving the same model
        calls.append(len(texts))
        return [v.tolist() for v in current_embedder().embed(texts)]

    weaviate_sync.set_vectorizer(module)
    WeaviateConfiguration.objects.filter(pk=1).update(vectorizer="text2vec-transformers")
    item = factories.make_item(
        title="Cannot sign in once the password was reset", description="Three reports."
    )
    factories.make_item(title="Invoice PDF shows the wrong logo")
    assert calls  # the server computed the vectors: Agira sent none
    stored_vector = weaviate_sync.store.record(COLLECTION, object_uuid("item", item.pk)).vectors
    assert "default" in stored_vector
    assert record("item", item.pk).embedding_model == "weaviate:text2vec-transformers"

    client.force_login(user)
    response = client.get(
        "/search/", {"q": "login fails after a password change", "mode": "semantic"}
    )
    assert response.context["rows"][0]["doc"]["object_id"] == str(item.pk)


def test_a_collection_made_before_vectors_is_reported_with_the_fix(weaviate_sync):
    weaviate_sync.store.create_class(
        {
            "class": COLLECTION,
            "vectorizer": "none",
            "properties": [
                {"name": name, "dataType": ["text"]}
                for name in FIELDS
                if name not in ("size_bytes", "created_at", "updated_at")
            ]
            + [
                {"name": "size_bytes", "dataType": ["int"]},
                {"name": "created_at", "dataType": ["date"]},
                {"name": "updated_at", "dataType": ["date"]},
            ],
        }
    )
    item = factories.make_item(title="Waits for a collection with vectors")
    error = SyncTargetStatus.objects.get(target="weaviate").last_error
    assert "has no named vector 'default'" in error
    assert "Agira does not alter it" in error
    assert record("item", item.pk).state == SyncState.PENDING


def test_a_server_error_answering_one_delete_fails_those_objects_not_the_target(
    weaviate_sync, settings
):
    """A 500 (gRPC INTERNAL) answering a batch's delete: the edits of the same
    drain are written and recorded once, the deletion counts an attempt and is
    retried, the target stays reachable and the next edits are not held back."""
    import grpc

    project = factories.make_project()
    items = [factories.make_item(project=project, title=f"item {n}") for n in range(5)]
    doomed = items[0]
    doomed_pk = doomed.pk
    weaviate_sync.faults.fail_next(
        endpoints=[BATCH_DELETE], grpc_code=grpc.StatusCode.INTERNAL, message="disk full"
    )
    with index.sync_paused():
        doomed.delete()
        for item in items[1:]:
            item.title = f"{item.title} edited"
            item.save()
    edited = items[1:]
    for item in edited:
        assert record("item", item.pk).state == SyncState.SYNCED
        assert stored(weaviate_sync, "item", item.pk)["title"].endswith("edited")
    gone = record("item", doomed_pk)
    assert gone.state == SyncState.PENDING
    assert gone.attempts == 1
    assert "disk full" in gone.last_error
    status = SyncTargetStatus.objects.get(target="weaviate")
    assert status.reachable
    # Nothing held back: the next edit is written at once, and the deletion
    # is retried (the test's backoff is zero).
    edited[0].title = "written at once"
    edited[0].save()
    assert stored(weaviate_sync, "item", edited[0].pk)["title"] == "written at once"
    assert record("item", doomed_pk).state == SyncState.DELETED
    assert stored(weaviate_sync, "item", doomed_pk) is None


def test_what_a_batch_wrote_before_the_target_went_down_is_recorded(weaviate_sync):
    """Edits written, then the deletion of the same drain meets a dead
    server: the edits are recorded as written, not left pending and sent again."""
    project = factories.make_project()
    items = [factories.make_item(project=project, title=f"item {n}") for n in range(3)]
    import grpc

    # Refused as a whole (credentials): the target is unavailable, not the objects.
    weaviate_sync.faults.fail_next(
        endpoints=[BATCH_DELETE], grpc_code=grpc.StatusCode.PERMISSION_DENIED, message="denied"
    )
    doomed_pk = items[0].pk
    with index.sync_paused():
        items[0].delete()
        items[1].title = "edited"
        items[1].save()
    assert record("item", items[1].pk).state == SyncState.SYNCED
    assert stored(weaviate_sync, "item", items[1].pk)["title"] == "edited"
    assert record("item", doomed_pk).state == SyncState.PENDING
    assert record("item", doomed_pk).attempts == 0  # the target's fault, not the object's
    weaviate_sync.counters.reset()
    drain()
    assert weaviate_sync.counters[BATCH_OBJECTS] == 0  # the edit is not sent again
