import pytest
from django.urls import reverse

from core.models import Change, Node, Release
from core.tests import factories

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("kind", "model", "data", "field", "edited"),
    [
        ("node", Node, {"name": "API", "type": "service"}, "name", "Gateway"),
        ("release", Release, {"version": "2.0.0", "status": "Planned"}, "version", "2.0.1"),
        (
            "change",
            Change,
            {"title": "Rotate keys", "status": "Draft", "risk": "High"},
            "title",
            "Rotate all keys",
        ),
    ],
)
def test_create_edit_delete_project_records(auth_client, kind, model, data, field, edited):
    project = factories.make_project()
    response = auth_client.post(reverse(f"core:{kind}-create", args=[project.pk]), data)
    obj = model.objects.get()
    assert obj.project == project
    assert response.status_code == 302
    assert response.url == f"{project.get_absolute_url()}#{kind}s"

    auth_client.post(reverse(f"core:{kind}-edit", args=[obj.pk]), {**data, field: edited})
    obj.refresh_from_db()
    assert getattr(obj, field) == edited

    auth_client.post(reverse(f"core:{kind}-delete", args=[obj.pk]))
    assert not model.objects.exists()


def test_node_parent_choices_are_limited_to_the_project_and_exclude_itself(auth_client):
    project = factories.make_project()
    node = factories.make_node(project=project, name="Mine")
    sibling = factories.make_node(project=project, name="Sibling")
    stranger = factories.make_node(name="Stranger")
    html = auth_client.get(reverse("core:node-edit", args=[node.pk])).content.decode()
    assert f'value="{sibling.pk}"' in html
    assert f'value="{stranger.pk}"' not in html
    assert f'value="{node.pk}"' not in html

    response = auth_client.post(
        reverse("core:node-edit", args=[node.pk]),
        {"name": "Mine", "type": "service", "parent": stranger.pk},
    )
    assert response.status_code == 200
    assert b"Select a valid choice" in response.content


def test_a_loop_in_the_node_tree_is_refused(auth_client):
    project = factories.make_project()
    root = factories.make_node(project=project, name="Root")
    child = factories.make_node(project=project, name="Child", parent=root)
    response = auth_client.post(
        reverse("core:node-edit", args=[root.pk]),
        {"name": "Root", "type": "system", "parent": child.pk},
    )
    assert b"cannot be its own ancestor" in response.content
    root.refresh_from_db()
    assert root.parent is None


def test_a_release_version_is_unique_within_its_project(auth_client):
    release = factories.make_release(version="1.0.0")
    response = auth_client.post(
        reverse("core:release-create", args=[release.project.pk]),
        {"version": "1.0.0", "status": "Planned"},
    )
    assert response.status_code == 200
    assert b"already exists" in response.content
    assert Release.objects.count() == 1
