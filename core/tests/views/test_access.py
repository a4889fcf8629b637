"""Every page needs a login; every state change needs CSRF; unknown ids are 404."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

# (url name, object key in `world` whose pk goes in the URL, or None)
PAGES = [
    ("core:project-list", None),
    ("core:project-create", None),
    ("core:project-detail", "project"),
    ("core:project-edit", "project"),
    ("core:project-delete", "project"),
    ("core:item-list", None),
    ("core:item-inbox", None),
    ("core:item-create", None),
    ("core:item-detail", "item"),
    ("core:item-edit", "item"),
    ("core:item-delete", "item"),
    ("core:comment-edit", "comment"),
    ("core:comment-delete", "comment"),
    ("core:node-create", "project"),
    ("core:node-edit", "node"),
    ("core:node-delete", "node"),
    ("core:release-create", "project"),
    ("core:release-edit", "release"),
    ("core:release-delete", "release"),
    ("core:change-create", "project"),
    ("core:change-edit", "change"),
    ("core:change-delete", "change"),
    ("core:github-link-delete", "mapping"),
]
POST_ONLY = [
    ("core:comment-create", "item"),
    ("core:attachment-create", "item"),
    ("core:github-link-create", "item"),
]
STATE_CHANGES = [
    (name, key) for name, key in PAGES if name.endswith(("-create", "-edit", "-delete"))
] + POST_ONLY


def _url(world, name, key):
    return reverse(name, args=[world[key].pk]) if key else reverse(name)


@pytest.mark.parametrize(("name", "key"), PAGES + POST_ONLY)
def test_anonymous_requests_are_sent_to_login(client, world, name, key):
    url = _url(world, name, key)
    response = client.get(url)
    assert response.status_code == 302
    assert response.url.startswith(reverse("login") + "?next=")
    response = client.post(url, {"title": "x"})
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))


@pytest.mark.parametrize(("name", "key"), PAGES)
def test_every_page_renders_for_a_logged_in_user(auth_client, world, name, key):
    response = auth_client.get(_url(world, name, key))
    assert response.status_code == 200
    assert b"<!doctype html>" in response.content


@pytest.mark.parametrize(("name", "key"), STATE_CHANGES)
def test_a_post_without_csrf_is_refused_and_changes_nothing(csrf_client, world, name, key):
    from core.models import Change, ExternalIssueMapping, Item, ItemComment, Node, Project

    models = [Project, Item, ItemComment, Node, Change, ExternalIssueMapping]
    before = [m.objects.count() for m in models]
    response = csrf_client.post(_url(world, name, key), {"title": "x", "body": "x", "name": "x"})
    assert response.status_code == 403
    assert [m.objects.count() for m in models] == before


@pytest.mark.parametrize(("name", "key"), POST_ONLY)
def test_post_only_endpoints_answer_get_with_405(auth_client, world, name, key):
    assert auth_client.get(_url(world, name, key)).status_code == 405


GET_ONLY = {"core:project-detail", "core:item-detail", "core:attachment-download"}
POST_ONLY_NAMES = {name for name, _ in POST_ONLY}


@pytest.mark.parametrize(
    "name",
    [n for n, k in PAGES + POST_ONLY if k] + ["core:attachment-download"],
)
def test_unknown_ids_are_404_not_500(auth_client, world, name):
    url = reverse(name, args=[987654])
    methods = (
        ["get"] if name in GET_ONLY else ["post"] if name in POST_ONLY_NAMES else ["get", "post"]
    )
    for method in methods:
        response = getattr(auth_client, method)(url, {"title": "x"})
        assert response.status_code == 404, method


def test_non_numeric_ids_do_not_match_any_page(auth_client):
    assert auth_client.get("/items/abc/").status_code == 404
    assert auth_client.get("/projects/1e3/").status_code == 404


def test_login_page_is_public_and_logs_in(client, user):
    assert client.get(reverse("login")).status_code == 200
    response = client.post(reverse("login"), {"username": "tester", "password": "s3cret-pass"})
    assert response.status_code == 302
    assert response.url == reverse("core:project-list")


def test_a_wrong_password_says_so(client, user):
    response = client.post(reverse("login"), {"username": "tester", "password": "nope"})
    assert response.status_code == 200
    assert b"Please enter a correct username and password" in response.content


def test_logout_is_a_post(auth_client):
    assert auth_client.get(reverse("logout")).status_code == 405
    assert auth_client.post(reverse("logout")).status_code == 302
    assert auth_client.get(reverse("core:project-list")).status_code == 302
