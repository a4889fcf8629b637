"""The graph as a target of the sync engine, embedded and in Neo4j (through the
Bolt test server): fed by the same outbox and drain as the embedded index, with
its own records; shown on the dashboard and in the status modal; repaired by
`sync_weaviate --target graph` (or `neo4j`); never asked to search."""

import contextlib
import io
from collections.abc import Iterator

import pytest
from django.core.management import call_command
from django.urls import reverse

from core.models import Neo4jConfiguration, ReconcileRun, SyncRecord, SyncState
from core.services.index.documents import object_uuid
from core.services.index.engine import drain, graph_target
from core.tests import factories
from core.tests.services.test_graph_target import hold_the_graph


@pytest.fixture(params=["embedded", "neo4j"])
def graph(request, settings, transactional_db):
    """The embedded index and a graph (each engine in turn), both written by
    every drain."""
    settings.AGIRA_GRAPH_ENABLED = request.param == "embedded"
    settings.AGIRA_GRAPH_LOCK_TIMEOUT = 0.3
    settings.AGIRA_SYNC_MODE = "queued"
    settings.AGIRA_SYNC_BACKOFF_SECONDS = 0.0
    settings.AGIRA_EMBEDDER_PROVIDER = "none"
    if request.param == "neo4j":
        server = request.getfixturevalue("bolt_server")
        Neo4jConfiguration.objects.update_or_create(
            pk=1,
            defaults={
                "enabled": True,
                "uri": server.uri,
                "user": server.user,
                "password": server.password,
                "database": server.database,
                "connect_timeout": 2.0,
            },
        )
    target = graph_target()
    assert target is not None
    assert target.name == ("graph" if request.param == "embedded" else "neo4j")
    return target


@contextlib.contextmanager
def unavailable(graph, request) -> Iterator[None]:
    """The graph out of reach for a while: another process writing the
    embedded graph, or the Neo4j server gone."""
    if graph.name == "graph":
        holder = hold_the_graph(graph.path)
        try:
            yield
        finally:
            holder.communicate("done\n", timeout=30)
    else:
        server = request.getfixturevalue("bolt_server")
        server.down()
        try:
            yield
        finally:
            server.up()


def links(graph, object_type: str, instance) -> list[tuple[str, str, str]]:
    return graph.relationships(object_uuid(object_type, instance.pk))


def uid(object_type: str, instance) -> str:
    return str(object_uuid(object_type, instance.pk))


def test_saves_reach_the_graph_with_their_relationships(graph):
    project = factories.make_project()
    item = factories.make_item(project=project, title="Crash on login")
    comment = factories.make_comment(item=item)

    assert graph.fetch(object_uuid("item", item.pk))["title"] == "Crash on login"
    assert links(graph, "item", item) == [("IN_PROJECT", "Project", uid("project", project))]
    assert links(graph, "comment", comment) == [("ON", "Item", uid("item", item))]
    records = SyncRecord.objects.filter(target=graph.name)
    assert records.count() == 3
    assert set(records.values_list("state", "embedding_model")) == {(SyncState.SYNCED, "")}
    # The embedded index got the same changes, with its own records.
    assert SyncRecord.objects.filter(target="embedded", state=SyncState.SYNCED).count() == 3


def test_a_move_and_a_delete_reach_the_graph(graph):
    first, second = factories.make_project(), factories.make_project()
    item = factories.make_item(project=first)
    comment = factories.make_comment(item=item)
    item.project = second
    item.save()
    assert links(graph, "item", item) == [("IN_PROJECT", "Project", uid("project", second))]

    item.delete()  # and its comment with it (a cascade)
    assert graph.fetch(object_uuid("item", item.pk)) is None
    assert graph.fetch(object_uuid("comment", comment.pk)) is None
    assert graph.count() == 2  # the projects
    assert (
        not SyncRecord.objects.filter(target=graph.name)
        .exclude(state__in=[SyncState.SYNCED, SyncState.DELETED])
        .exists()
    )


def test_a_graph_out_of_reach_makes_the_changes_wait(graph, request):
    item = factories.make_item(title="First")
    with unavailable(graph, request):
        item.title = "Second"
        item.save()
        record = SyncRecord.objects.get(target=graph.name, object_type="item")
        assert record.state == SyncState.PENDING
        assert record.attempts == 0  # the graph was out of reach, not the object wrong
        embedded = SyncRecord.objects.get(target="embedded", object_type="item")
        assert embedded.state == SyncState.SYNCED  # the other target did not wait
    drain()
    assert graph.fetch(object_uuid("item", item.pk))["title"] == "Second"
    assert SyncRecord.objects.get(target=graph.name, object_type="item").state == SyncState.SYNCED


def test_the_dashboard_and_the_modal_show_the_graph(graph, client):
    item = factories.make_item()
    client.force_login(factories.make_user("boss", is_staff=True, is_superuser=True))
    dashboard = client.get(reverse("core:sync-dashboard")).content.decode()
    panel = dashboard.split(f'data-target="{graph.name}"', 1)[1].split("</section>", 1)[0]
    assert graph.label[:1].upper() + graph.label[1:] in panel
    assert 'data-reachable="yes"' in panel
    modal = client.get(
        reverse("core:weaviate-object", args=["item", item.pk]), HTTP_HX_REQUEST="true"
    ).content.decode()
    assert graph.label.lower() in modal.lower()


def test_search_never_asks_the_graph(graph, auth_client):
    factories.make_item(title="Unique searchable words")
    page = auth_client.get(reverse("core:search"), {"q": "searchable"}).content.decode()
    assert "Unique searchable words" in page
    assert "cannot answer" not in page


def reconcile(graph, *args: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("sync_weaviate", "--target", graph.name, *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue() + err.getvalue()


def behind_our_back(graph, statement: str, parameters: dict) -> None:
    """A write that is no sync's: someone else's client, a restore."""
    with graph.session():
        graph._in_transaction(graph._run, statement, parameters)


def test_the_reconcile_repairs_a_missing_relationship_and_deletes_an_orphan(
    graph, settings, tmp_path
):
    settings.AGIRA_RECONCILE_CACHE_DIR = str(tmp_path / "mirror")
    project = factories.make_project()
    item = factories.make_item(project=project)
    other = factories.make_item(project=project)
    code, out = reconcile(graph)
    assert code == 0, out
    # Behind Agira's back: a relationship lost, an object node nobody owns.
    behind_our_back(
        graph,
        "MATCH (n:Item {uuid: $id})-[e:IN_PROJECT]->() DELETE e",
        {"id": uid("item", item)},
    )
    behind_our_back(
        graph,
        "CREATE (n:Item {uuid: $id, object_id: '999999', type: 'item', title: 'Orphan'})",
        {"id": str(object_uuid("item", 999999))},
    )
    assert links(graph, "item", item) == []

    code, out = reconcile(graph)
    assert code == 0, out
    repair = ReconcileRun.objects.filter(target=graph.name).order_by("id").last()
    assert repair.counts["item"]["updated"] == 1  # the item that lost its relationship
    assert repair.counts["item"]["deleted"] == 1  # the orphan
    assert repair.counts["item"]["unchanged"] == 1
    assert links(graph, "item", item) == [("IN_PROJECT", "Project", uid("project", project))]
    assert links(graph, "item", other) == [("IN_PROJECT", "Project", uid("project", project))]
    assert graph.fetch(object_uuid("item", 999999)) is None
    assert graph.count() == 3
    code, out = reconcile(graph, "--dry-run")
    assert code == 0, out  # nothing left to do


def links_page(client, item, **headers) -> str:
    response = client.get(reverse("core:item-links", args=[item.pk]), **headers)
    assert response.status_code == 200
    return response.content.decode()


def group(html: str, name: str) -> str:
    """The part of the Links view listing one group ("" when absent)."""
    marker = f'data-links-group="{name}"'
    return html.split(marker, 1)[1].split("</section>", 1)[0] if marker in html else ""


def test_the_links_view_lists_what_the_graph_links_to_the_item(graph, auth_client):
    project = factories.make_project(name="Portal")
    item = factories.make_item(project=project, title="Login fails")
    comment = factories.make_comment(item=item, body="Seen on Firefox")
    issue = factories.make_mapping(item=item, kind="issue", number=42, title="Login 500")
    fix = factories.make_mapping(
        item=item, kind="pr", number=43, title="Fix the session check", closes_issue=True
    )
    sibling = factories.make_item(project=project, title="Password reset")
    release = factories.make_release(project=project, version="2.1.0")
    node = factories.make_node(project=project, name="Auth service")
    change = factories.make_change(project=project, title="Rotate keys")
    elsewhere = factories.make_item(title="Another project's item")

    html = links_page(auth_client, item, HTTP_HX_REQUEST="true")
    assert "<!doctype html>" not in html.lower()  # the tab's fragment alone
    assert "Portal" in group(html, "Project")
    assert 'data-hops="1"' in html
    assert f'data-link-id="{issue.pk}"' in group(html, "GitHub issues tracking it")
    assert f'data-link-id="{comment.pk}"' in group(html, "Comments")
    assert f'data-link-id="{fix.pk}"' in group(html, "Pull requests that closed its issues")
    others = group(html, "Other items in the project")
    assert f'data-link-id="{sibling.pk}"' in others
    assert f'data-link-id="{item.pk}"' not in others  # not itself
    assert f'data-link-id="{release.pk}"' in group(html, "Releases of the project")
    assert f'data-link-id="{node.pk}"' in group(html, "Nodes of the project")
    assert f'data-link-id="{change.pk}"' in group(html, "Changes in the project")
    # Another project's item is no neighbour (ids of other types may share its number).
    assert f'data-link-type="item" data-link-id="{elsewhere.pk}"' not in html
    assert f'data-link-type="item" data-link-id="{sibling.pk}"' in html  # the form checked
    assert group(html, "Attachments") == ""  # an empty group is not shown

    page = links_page(auth_client, item)  # without JavaScript: a page of its own
    assert "<!doctype html>" in page.lower()
    assert "Links of" in page
    assert f'data-link-id="{sibling.pk}"' in page


def test_the_links_view_says_when_the_graph_is_out_of_reach_or_off(
    graph, auth_client, settings, request
):
    item = factories.make_item()
    with unavailable(graph, request):
        html = links_page(auth_client, item, HTTP_HX_REQUEST="true")
    if graph.name == "neo4j":  # another process writing the embedded graph: read all the same
        assert 'id="links-unavailable"' in html
        assert "cannot answer now" in html
    else:
        assert 'data-links-group="Project"' in html

    settings.AGIRA_GRAPH_ENABLED = False
    Neo4jConfiguration.objects.filter(pk=1).update(enabled=False)
    html = links_page(auth_client, item, HTTP_HX_REQUEST="true")
    assert 'id="links-unavailable"' in html
    assert "No graph is on: the embedded graph is switched off (AGIRA_GRAPH_ENABLED)" in html


def test_the_item_page_has_a_links_tab_loaded_after_the_page(graph, auth_client):
    item = factories.make_item()
    html = auth_client.get(reverse("core:item-detail", args=[item.pk])).content.decode()
    assert 'id="tab-links"' in html
    assert f'hx-get="{reverse("core:item-links", args=[item.pk])}"' in html
