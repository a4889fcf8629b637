import pytest
from django.urls import reverse

from core.models import Item, Project
from core.tests import factories

pytestmark = pytest.mark.django_db


def _card(html: str, project: Project) -> str:
    start = html.index(f'data-project-id="{project.pk}"')
    return html[start : html.index('class="col"', start) if 'class="col"' in html[start:] else None]


def test_project_cards_count_items_per_open_status(auth_client):
    project = factories.make_project(name="Webshop")
    for status, n in [("Inbox", 2), ("Backlog", 1), ("Working", 3), ("Testing", 1), ("Closed", 4)]:
        for _ in range(n):
            factories.make_item(project=project, status=status)
    html = auth_client.get(reverse("core:project-list")).content.decode()
    card = _card(html, project)
    assert 'data-bs-title="Inbox: 2 items"' in card
    assert 'data-bs-title="Backlog: 1 item"' in card
    assert 'data-bs-title="Working: 3 items"' in card
    assert 'data-bs-title="Testing: 1 item"' in card
    assert 'data-bs-title="Ready for Release: 0 items"' in card
    assert "Closed" not in card


def test_project_list_filters_by_organisation_and_status(auth_client):
    north = factories.make_organisation(name="Northwind")
    active = factories.make_project(organisation=north, name="Active one", status="Active")
    held = factories.make_project(organisation=north, name="Held one", status="On Hold")
    other = factories.make_project(name="Elsewhere", status="Active")

    def shown(**params):
        response = auth_client.get(reverse("core:project-list"), params)
        return {
            p.name for p in (active, held, other) if f">{p.name}</a>" in response.content.decode()
        }

    assert shown() == {"Active one", "Held one", "Elsewhere"}
    assert shown(organisation=north.pk) == {"Active one", "Held one"}
    assert shown(organisation=north.pk, status="On Hold") == {"Held one"}
    assert shown(status="Active") == {"Active one", "Elsewhere"}


def test_project_list_query_count_does_not_grow_with_projects(
    auth_client, django_assert_max_num_queries
):
    for _ in range(3):
        factories.make_item()
    with django_assert_max_num_queries(6) as small:
        auth_client.get(reverse("core:project-list"))
    for _ in range(20):
        factories.make_item()
    with django_assert_max_num_queries(len(small.captured_queries)):
        auth_client.get(reverse("core:project-list"))


def test_create_edit_delete_project(auth_client):
    organisation = factories.make_organisation()
    response = auth_client.post(
        reverse("core:project-create"),
        {"organisation": organisation.pk, "name": "Portal", "status": "Planned", "description": ""},
    )
    project = Project.objects.get(name="Portal")
    assert response.status_code == 302
    assert response.url == project.get_absolute_url()

    auth_client.post(
        reverse("core:project-edit", args=[project.pk]),
        {"organisation": organisation.pk, "name": "Portal 2", "status": "Active"},
    )
    project.refresh_from_db()
    assert (project.name, project.status) == ("Portal 2", "Active")

    factories.make_item(project=project)
    page = auth_client.get(reverse("core:project-delete", args=[project.pk]))
    assert b"also deletes its 1 items" in page.content
    response = auth_client.post(reverse("core:project-delete", args=[project.pk]))
    assert response.url == reverse("core:project-list")
    assert not Project.objects.filter(pk=project.pk).exists()
    assert Item.objects.count() == 0


def test_project_with_a_duplicate_name_is_a_form_error(auth_client):
    project = factories.make_project(name="Portal")
    response = auth_client.post(
        reverse("core:project-create"),
        {"organisation": project.organisation.pk, "name": "Portal", "status": "Active"},
    )
    assert response.status_code == 200
    assert b"already exists" in response.content
    assert Project.objects.count() == 1


def test_project_detail_has_the_four_tabs_with_their_records(auth_client):
    project = factories.make_project()
    root = factories.make_node(project=project, name="Backend")
    factories.make_node(project=project, name="Order service", parent=root)
    factories.make_release(project=project, version="3.1.0")
    factories.make_change(project=project, title="Rotate keys")
    factories.make_item(project=project, title="Fix checkout")
    html = auth_client.get(project.get_absolute_url()).content.decode()
    for tab in ("items", "nodes", "releases", "changes"):
        assert f'data-tab="{tab}"' in html
    assert "Fix checkout" in html
    assert "3.1.0" in html
    assert "Rotate keys" in html
    # The child is drawn under its parent, one level in.
    assert html.index("Backend") < html.index("Order service")
    assert 'class="node-depth-1"><i class="bi bi-arrow-return-right' in html
