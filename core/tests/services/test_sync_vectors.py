"""Vectors: every object written to every target with the embedder's vector,
computed once per text (the cache), again when the text changes, never for a
change that leaves the embedded text alone."""

import numpy as np
import pytest

from core.models import EmbeddingCache, Item, SyncRecord, SyncState
from core.services.index import sync_project
from core.services.index.documents import document_for, embedding_text, normalise
from core.services.index.embeddings import current_embedder
from core.services.index.engine import drain, write_now
from core.services.index.reconcile import reconcile
from core.tests import factories


def model_calls() -> int:
    return current_embedder().calls


def expected_vector(instance) -> np.ndarray:
    text = embedding_text(normalise(document_for(instance)))
    return current_embedder().embed([text])[0]


def cosine(a, b) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_each_object_is_stored_with_the_embedders_vector_of_its_text(sync):
    item = factories.make_item(
        title="Login fails after a password change", description="Users cannot sign in."
    )
    comment = factories.make_comment(item=item, body="Reproduced with a fresh account.")
    for instance, object_type in ((item, "item"), (comment, "comment")):
        stored = sync.vector(object_type, instance.pk)
        assert stored is not None
        assert stored.shape == (384,)
        assert cosine(stored, expected_vector(instance)) >= 0.999
    record = sync.record("item", item.pk)
    assert record.embedding_model == "local:all-MiniLM-L6-v2:384"


def test_a_change_of_text_re_embeds_and_a_change_of_status_alone_does_not(sync):
    item = factories.make_item(title="Export is slow", description="CSV export takes minutes.")
    before = sync.vector("item", item.pk)
    calls = model_calls()

    item.status = "Working"
    item.save()
    assert model_calls() == calls  # the embedded text is unchanged: no model call
    assert sync.get("item", item.pk)["status"] == "Working"  # but the document was written
    assert cosine(sync.vector("item", item.pk), before) >= 0.9999

    item.description = "The PDF export crashes on large invoices."
    item.save()
    assert model_calls() == calls + 1
    after = sync.vector("item", item.pk)
    assert cosine(after, expected_vector(Item.objects.get(pk=item.pk))) >= 0.999
    assert cosine(after, before) < 0.99


def test_identical_texts_are_embedded_once(sync):
    project = factories.make_project()
    calls = model_calls()
    for _ in range(5):
        factories.make_item(project=project, title="Same words", description="Same text.")
    assert model_calls() == calls + 1
    assert EmbeddingCache.objects.count() == 2  # the project and the one item text


def test_a_full_resync_and_a_push_make_no_model_call(sync):
    project = factories.make_project()
    items = [factories.make_item(project=project, title=f"Task {n}") for n in range(6)]
    calls = model_calls()
    report = reconcile(full=True)
    assert not report.targets[0].error
    assert report.targets[0].total("updated") == 7
    write_now(items[:2])
    assert sync_project(project_id=project.pk)["item"] == 6
    assert model_calls() == calls
    assert not SyncRecord.objects.exclude(state=SyncState.SYNCED).exists()


def test_a_second_target_makes_no_model_call(settings, weaviate_sync):
    from core.tests.harness import EmbeddedHarness, WeaviateHarness

    settings.AGIRA_EMBEDDED_ENABLED = True
    item = factories.make_item(title="Two indexes", description="Both get the same vector.")
    assert current_embedder().texts >= 1
    weaviate = WeaviateHarness(weaviate_sync).vector("item", item.pk)
    embedded = EmbeddedHarness(settings.AGIRA_EMBEDDED_PATH).vector("item", item.pk)
    assert cosine(weaviate, embedded) >= 0.99999
    assert EmbeddingCache.objects.count() == 2  # the project's text and the item's


def test_a_change_of_model_makes_every_record_due_for_a_new_vector(sync, monkeypatch):
    item = factories.make_item(title="Model change", description="Re-embed me.")
    record = sync.record("item", item.pk)
    SyncRecord.objects.filter(pk=record.pk).update(embedding_model="local:older-model:384")
    Item.objects.filter(pk=item.pk).update(title="Model change")  # no signal, no outbox
    calls = model_calls()
    report = reconcile()
    assert report.targets[0].total("updated") >= 1
    assert sync.record("item", item.pk).embedding_model == "local:all-MiniLM-L6-v2:384"
    assert model_calls() == calls  # the text is cached under the current model


@pytest.mark.parametrize("provider", ["none"])
def test_without_an_embedder_documents_are_written_without_vectors(sync, monkeypatch, provider):
    monkeypatch.setenv("AGIRA_EMBEDDER_PROVIDER", provider)
    item = factories.make_item(title="Keyword only")
    assert sync.get("item", item.pk)["title"] == "Keyword only"
    assert sync.record("item", item.pk).embedding_model == ""
    assert drain().written == 0


def test_an_http_embedder_of_another_dimension_is_refused_before_any_write(
    settings, transactional_db, embedding_server, monkeypatch
):
    settings.AGIRA_SYNC_BACKOFF_SECONDS = 0.0
    item = factories.make_item(title="Local vectors first", description="384 dimensions.")
    from core.tests.harness import EmbeddedHarness

    embedded = EmbeddedHarness(settings.AGIRA_EMBEDDED_PATH)
    assert embedded.vector("item", item.pk).shape == (384,)

    monkeypatch.setenv("AGIRA_EMBEDDER_PROVIDER", "http")
    monkeypatch.setenv("AGIRA_EMBEDDER_URL", embedding_server.url)
    monkeypatch.setenv("AGIRA_EMBEDDER_MODEL", "tiny")
    item.title = "Endpoint vectors"
    item.save()
    record = embedded.record("item", item.pk)
    assert record.state == SyncState.PENDING
    assert record.attempts == 0  # the index is not to blame for a mismatch: nothing counted
    from core.models import SyncTargetStatus

    error = SyncTargetStatus.objects.get(target="embedded").last_error
    assert "holds 384-dimensional vectors" in error
    assert "8-dimensional" in error
    assert "sync_weaviate --full --target embedded" in error
    assert embedded.get("item", item.pk)["title"] == "Local vectors first"  # nothing written

    # The documented fix: a full reconcile rebuilds the vectors with the new model.
    report = reconcile(full=True, target="embedded")
    assert not report.targets[0].error
    assert embedded.get("item", item.pk)["title"] == "Endpoint vectors"
    assert embedded.vector("item", item.pk).shape == (8,)
    assert embedded.record("item", item.pk).embedding_model == "http:tiny:8"


def test_an_unusable_embedder_keeps_changes_pending_and_says_why(
    settings, transactional_db, embedding_server, monkeypatch
):
    secret = "sk-wrong-key-0042"
    embedding_server.set_api_keys(["sk-right"])
    embedding_server.echo_key_in_errors(True)
    monkeypatch.setenv("AGIRA_EMBEDDER_PROVIDER", "http")
    monkeypatch.setenv("AGIRA_EMBEDDER_URL", embedding_server.url)
    monkeypatch.setenv("AGIRA_EMBEDDER_MODEL", "tiny")
    monkeypatch.setenv("AGIRA_EMBEDDER_API_KEY", secret)
    monkeypatch.setenv("AGIRA_EMBEDDER_DIMENSION", "8")
    item = factories.make_item(title="Waits for the embedder")
    from core.models import SyncTargetStatus

    record = SyncRecord.objects.get(target="embedded", object_type="item", object_id=item.pk)
    assert record.state == SyncState.PENDING
    assert record.attempts == 0
    status = SyncTargetStatus.objects.get(target="embedded")
    assert "rejected the API key" in status.last_error
    assert secret not in status.last_error

    embedding_server.set_api_keys([secret])
    drain()
    record.refresh_from_db()
    assert record.state == SyncState.SYNCED
    assert record.embedding_model == "http:tiny:8"
