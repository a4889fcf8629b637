"""The sync-status endpoints in every state, through the real client against
the in-process Weaviate-compatible server."""

import json

import pytest
from django.test import Client
from django.urls import reverse

from core.models import SyncRecord, SyncState, WeaviateConfiguration
from core.services.index import drain
from core.services.index.documents import object_uuid
from core.tests import factories

DB_TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}


@pytest.fixture
def browser(weaviate_sync, user):
    """Staff: the buttons and the modal name the targets and their errors."""
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client = Client()
    client.force_login(user)
    return client


def status(client, object_type, object_id):
    return client.get(reverse("core:weaviate-status", args=[object_type, object_id]))


def modal(client, object_type, object_id):
    return client.get(
        reverse("core:weaviate-object", args=[object_type, object_id]), HTTP_HX_REQUEST="true"
    )


def colour(response) -> str:
    html = response.content.decode()
    return html.split('data-sync-colour="', 1)[1].split('"', 1)[0]


def test_synced_is_green_and_the_modal_shows_the_stored_json(browser, weaviate_sync):
    item = factories.make_item(title="Green one")
    button = status(browser, "item", item.pk)
    assert button.status_code == 200
    assert colour(button) == "green"
    assert "btn-success" in button.content.decode()
    assert "Weaviate: In sync" in button.content.decode()

    content = modal(browser, "item", item.pk)
    html = content.content.decode()
    assert "<!doctype html>" not in html  # a fragment for the modal
    stored = weaviate_sync.store.get("AgiraObject", object_uuid("item", item.pk))
    assert stored["title"] == "Green one"
    assert "&quot;title&quot;: &quot;Green one&quot;" in html  # pretty-printed JSON, escaped
    assert f"&quot;object_id&quot;: &quot;{item.pk}&quot;" in html
    assert 'id="weaviate-resync"' in html
    assert 'id="weaviate-push"' not in html


def test_missing_is_red_and_push_writes_it_and_fires_the_refresh_event(browser, weaviate_sync):
    item = factories.make_item(title="Lost one")
    weaviate_sync.store.delete("AgiraObject", str(object_uuid("item", item.pk)))
    # The button answers from the records (green until a reconcile finds the loss);
    # the modal asks the index and shows it at once.
    assert colour(status(browser, "item", item.pk)) == "green"
    html = modal(browser, "item", item.pk).content.decode()
    assert "This object is not in the index." in html
    assert "removed behind Agira" in html
    assert 'id="weaviate-push"' in html
    # From now on the records say so too: the button and the list's badge agree.
    assert colour(status(browser, "item", item.pk)) == "red"
    from core.services.index.status import badge_states

    assert badge_states("item", [item.pk]) == {str(item.pk): "red"}

    response = browser.post(
        reverse("core:weaviate-push", args=["item", item.pk]), HTTP_HX_REQUEST="true"
    )
    assert response.status_code == 200
    assert "Written to the index now." in response.content.decode()
    assert json.loads(response["HX-Trigger"]) == {"objectSynced": {"key": f"item:{item.pk}"}}
    assert weaviate_sync.store.get("AgiraObject", object_uuid("item", item.pk))["title"] == (
        "Lost one"
    )
    assert colour(status(browser, "item", item.pk)) == "green"


def test_pending_is_amber(browser, settings):
    settings.TASKS = DB_TASKS  # the change waits for the worker
    item = factories.make_item(title="Waiting")
    button = status(browser, "item", item.pk)
    assert colour(button) == "amber"
    assert "Change pending" in button.content.decode()


def test_an_amber_button_asks_again_until_it_settles(browser, weaviate_sync, settings):
    settings.TASKS = DB_TASKS  # the change waits for the worker
    item = factories.make_item(title="Waiting")
    every_2s = "every 2s [document.visibilityState === 'visible']"
    assert every_2s in status(browser, "item", item.pk).content.decode()

    # Retrying waits out a backoff: asking every 2 s would only cost requests.
    drain()
    SyncRecord.objects.filter(object_type="item", object_id=item.pk).update(
        state=SyncState.PENDING, attempts=2, last_error="timed out"
    )
    assert "every 10s [" in status(browser, "item", item.pk).content.decode()

    SyncRecord.objects.filter(object_type="item", object_id=item.pk).update(
        state=SyncState.SYNCED, attempts=0, last_error=""
    )
    settled = status(browser, "item", item.pk)
    assert colour(settled) == "green"
    assert "weaviate-poll" not in settled.content.decode()


def test_failed_is_red_with_the_error(browser, weaviate_sync, settings):
    settings.AGIRA_SYNC_MAX_ATTEMPTS = 1
    weaviate_sync.faults.fail_objects(
        where=lambda c, u, p: p.get("title") == "Bad", message="invalid text property 'title'"
    )
    item = factories.make_item(title="Bad")
    assert SyncRecord.objects.get(object_type="item", object_id=item.pk).state == SyncState.FAILED
    button = status(browser, "item", item.pk).content.decode()
    assert 'data-sync-colour="red"' in button
    assert "Sync failed" in button
    assert "invalid text property" in button
    html = modal(browser, "item", item.pk).content.decode()
    assert "invalid text property" in html
    assert 'id="weaviate-push"' in html


def test_disabled_is_grey_and_says_so(browser, settings):
    WeaviateConfiguration.objects.filter(pk=1).update(enabled=False)
    settings.AGIRA_QDRANT_ENABLED = False
    item = factories.make_item()
    button = status(browser, "item", item.pk).content.decode()
    assert 'data-sync-colour="grey"' in button
    assert "Sync disabled" in button
    html = modal(browser, "item", item.pk).content.decode()
    assert "Weaviate is configured but disabled in the admin." in html
    assert "weaviate-push" not in html
    WeaviateConfiguration.objects.filter(pk=1).update(api_key="")
    html = modal(browser, "item", item.pk).content.decode()
    assert "Sync is off: no index is enabled." in html


def test_unreachable_is_grey_with_the_reason(browser, weaviate_sync):
    item = factories.make_item()
    weaviate_sync.down()
    item.title = "Changed while down"
    item.save()  # the drain finds the index down and records why
    button = status(browser, "item", item.pk)
    assert button.status_code == 200  # never a 500
    html = button.content.decode()
    assert 'data-sync-colour="grey"' in html
    assert "Unreachable" in html
    assert f"127.0.0.1:{weaviate_sync.http_port}" in html
    assert modal(browser, "item", item.pk).status_code == 200


def test_wrong_key_is_grey_and_names_the_key_without_showing_it(browser, weaviate_sync):
    item = factories.make_item()
    WeaviateConfiguration.objects.filter(pk=1).update(api_key="wrong-secret-999")
    item.title = "Changed with a wrong key"
    item.save()  # the drain is refused and records why
    html = status(browser, "item", item.pk).content.decode()
    assert 'data-sync-colour="grey"' in html
    assert "API key rejected" in html
    assert "wrong-secret-999" not in html
    assert "wrong-secret-999" not in modal(browser, "item", item.pk).content.decode()


def test_every_type_has_a_working_button(browser):
    objects = {
        "project": factories.make_project(),
        "item": factories.make_item(),
        "comment": factories.make_comment(),
        "node": factories.make_node(),
        "release": factories.make_release(),
        "change": factories.make_change(),
        "github_issue": factories.make_mapping(),
        "github_pr": factories.make_mapping(kind="pr"),
    }
    for object_type, obj in objects.items():
        assert colour(status(browser, object_type, obj.pk)) == "green", object_type


def test_both_targets_get_a_section_in_the_modal(browser, settings):
    settings.AGIRA_EMBEDDED_ENABLED = True
    item = factories.make_item()
    html = modal(browser, "item", item.pk).content.decode()
    assert 'data-target="weaviate"' in html
    assert 'data-target="embedded"' in html
    button = status(browser, "item", item.pk).content.decode()
    assert "embedded index" in button


@pytest.mark.parametrize("name", ["core:weaviate-status", "core:weaviate-object"])
def test_unknown_type_or_id_is_404(browser, name):
    item = factories.make_item()
    assert browser.get(reverse(name, args=["bogus", item.pk])).status_code == 404
    assert browser.get(reverse(name, args=["item", 987654])).status_code == 404
    assert browser.get(reverse(name, args=["item", "not-a-number"])).status_code == 404
    push = reverse("core:weaviate-push", args=["bogus", item.pk])
    assert browser.post(push).status_code == 404


def test_push_is_a_post_with_csrf_and_needs_a_login(weaviate_sync, user):
    item = factories.make_item()
    url = reverse("core:weaviate-push", args=["item", item.pk])
    logged_in = Client()
    logged_in.force_login(user)
    assert logged_in.get(url).status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(url).status_code == 403
    anonymous = Client()
    for response in (
        anonymous.get(reverse("core:weaviate-status", args=["item", item.pk])),
        anonymous.get(reverse("core:weaviate-object", args=["item", item.pk])),
        anonymous.post(url),
    ):
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))


def test_without_javascript_the_modal_content_is_a_page(browser):
    item = factories.make_item()
    response = browser.get(reverse("core:weaviate-object", args=["item", item.pk]))
    assert b"<!doctype html>" in response.content
    assert b"Index status" in response.content


def test_item_list_badges_cost_the_same_queries_for_any_number_of_rows(
    browser, django_assert_max_num_queries, settings
):
    settings.AGIRA_ITEMS_PER_PAGE = 50
    project = factories.make_project()
    factories.make_item(project=project)
    with django_assert_max_num_queries(20) as few:
        browser.get(reverse("core:item-list"))
    for _ in range(30):
        factories.make_item(project=project)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = browser.get(reverse("core:item-list"))
    assert response.content.decode().count('data-sync-colour="green"') == 31


def test_item_list_badges_show_each_rows_state(browser, weaviate_sync, settings):
    synced = factories.make_item(title="synced")
    settings.TASKS = DB_TASKS
    pending = factories.make_item(project=synced.project, title="pending")
    html = browser.get(reverse("core:item-list")).content.decode()
    rows = {row.split("</a>")[0].rsplit(">", 1)[-1]: row for row in html.split("<tr>")[1:]}
    assert 'data-sync-colour="green"' in rows["synced"]
    assert 'data-sync-colour="amber"' in rows["pending"]
    assert pending.pk != synced.pk


def test_the_button_answers_from_the_database_without_asking_the_index(browser, weaviate_sync):
    item = factories.make_item(title="Quiet")
    weaviate_sync.counters.reset()
    assert colour(status(browser, "item", item.pk)) == "green"
    assert weaviate_sync.counters.total() == 0  # not one request reached the index
    weaviate_sync.down()
    try:
        assert colour(status(browser, "item", item.pk)) == "green"
        # The modal does ask, and says what it found.
        assert "Unreachable" in modal(browser, "item", item.pk).content.decode()
    finally:
        weaviate_sync.up()


def test_a_deletion_behind_agiras_back_shows_red_in_the_modal(browser, weaviate_sync):
    item = factories.make_item(title="Vanished")
    weaviate_sync.store.delete("AgiraObject", str(object_uuid("item", item.pk)))
    html = modal(browser, "item", item.pk).content.decode()
    assert "Not in the index" in html
    assert "removed behind Agira" in html


def test_people_who_do_not_run_agira_see_plain_states_without_internals(weaviate_sync, user):
    """Target names, hosts, ports and raw errors are for staff: a member sees
    one plain state, and a failure as something their administrator can see."""
    from core.tests.harness import WeaviateHarness

    item = factories.make_item(title="Plain")
    client = Client()
    client.force_login(user)
    green = status(client, "item", item.pk).content.decode()
    assert 'data-sync-colour="green"' in green
    assert "In the index" in green
    assert "Weaviate" not in green
    weaviate = WeaviateHarness(weaviate_sync)
    weaviate.down()
    try:
        factories.make_item(title="Waiting while the index is down")
        failing = factories.make_item(title="x")
        modal = client.get(
            reverse("core:weaviate-object", args=["item", failing.pk]), HTTP_HX_REQUEST="true"
        ).content.decode()
    finally:
        weaviate.up()
    for secret in ("Weaviate", "127.0.0.1", str(weaviate_sync.http_port), "liveness"):
        assert secret not in modal
    assert "Not available now" in modal or "Waiting" in modal


@pytest.mark.parametrize("object_id", ["99999999999999999999999", "²", "-1", "1e3", "0x10"])
def test_an_id_that_cannot_be_a_key_is_404_on_every_sync_route(browser, object_id):
    for name in ("core:weaviate-status", "core:weaviate-object"):
        response = browser.get(reverse(name, args=["item", object_id]))
        assert response.status_code == 404, (name, response.status_code)
    push = reverse("core:weaviate-push", args=["item", object_id])
    assert browser.post(push).status_code == 404


def test_with_sync_switched_off_buttons_and_badges_are_grey(browser, settings):
    from core.services.index.status import badge_states

    item = factories.make_item(title="Not synced")
    settings.AGIRA_SYNC_ENABLED = False
    response = status(browser, "item", item.pk)
    assert colour(response) == "grey"
    button = response.content.decode()
    assert "Sync is off" in button
    assert "push" not in button.lower()
    assert badge_states("item", [item.pk]) == {str(item.pk): "grey"}
