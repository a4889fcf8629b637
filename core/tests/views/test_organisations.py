"""Organisations keep to themselves: what one holds never reaches another's
people, in pages, search of every mode, related objects, duplicate hints and
the API; roles decide who changes what; an organisation keeps an owner."""

import pytest
from django.test import Client
from django.urls import reverse

from core.models import Item, ItemComment, Membership, Organisation, Role
from core.services.tokens import api_token_create
from core.tests import factories

TWIN_TITLE = "Checkout page is blank after a declined credit card"
TWIN_TEXT = "The payment provider declines the card and the checkout shows a blank page."


@pytest.fixture
def two_organisations(sync):
    """Two organisations holding near-identical items; one person in each."""
    people = {}
    items = {}
    for name in ("north", "south"):
        organisation = Organisation.objects.create(name=name.title())
        person = factories.make_user(name)
        factories.make_membership(user=person, organisation=organisation, role=Role.MEMBER)
        project = factories.make_project(organisation=organisation, name=f"{name} shop")
        item = factories.make_item(project=project, title=TWIN_TITLE, description=TWIN_TEXT)
        factories.make_comment(item=item, author=person, body=f"{TWIN_TEXT} ({name})")
        people[name], items[name] = person, item
    return people, items


def _client(person) -> Client:
    client = Client()
    client.force_login(person)
    return client


def _orgs_of(documents) -> set[str]:
    return {str(doc.get("org_id")) for doc in documents}


def test_search_of_every_mode_keeps_to_the_users_organisations(two_organisations):
    people, items = two_organisations
    north_org = str(items["north"].project.organisation_id)
    client = _client(people["north"])
    for mode in ("keyword", "semantic", "hybrid"):
        response = client.get(reverse("core:search"), {"q": "declined card blank", "mode": mode})
        rows = response.context["rows"]
        assert rows, mode
        assert _orgs_of(row["doc"] for row in rows) == {north_org}, mode
        assert response.context["results"].total in (None, len(rows)), mode
        assert f"/items/{items['south'].pk}/" not in response.content.decode()
    # The count keyword search reports counts only what the user may see.
    keyword = client.get(reverse("core:search"), {"q": "declined", "mode": "keyword"})
    total = keyword.context["results"].total
    if total is not None:
        assert total == 1  # the north item ("declines" in the comments is another word)


def test_related_and_duplicates_keep_to_the_users_organisations(two_organisations):
    people, items = two_organisations
    client = _client(people["north"])
    related = client.get(
        reverse("core:related", args=["item", items["north"].pk]), HTTP_HX_REQUEST="true"
    )
    ids = {(h.type, h.object_id) for h in related.context["results"].hits}
    assert ("item", str(items["south"].pk)) not in ids
    assert "south" not in related.content.decode().lower()
    duplicates = client.post(reverse("core:possible-duplicates"), {"title": TWIN_TITLE})
    hits = duplicates.context["results"].hits
    assert [h.object_id for h in hits] == [str(items["north"].pk)]
    # Another organisation's object is no object at all.
    assert client.get(reverse("core:related", args=["item", items["south"].pk])).status_code == 404


def test_the_api_keeps_to_the_users_organisations(two_organisations):
    people, items = two_organisations
    token = api_token_create(user=people["north"], name="script")[1]
    client = Client(headers={"Authorization": f"Bearer {token}"})
    north, south = items["north"], items["south"]
    for mode in ("keyword", "semantic", "hybrid"):
        body = client.get("/api/search", {"q": "declined card", "mode": mode}).json()
        assert body["hits"], mode
        assert str(south.pk) not in {h["object_id"] for h in body["hits"] if h["type"] == "item"}
        assert all(h["project_id"] == str(north.project_id) for h in body["hits"]), mode
    related = client.get(f"/api/objects/item/{north.pk}/related").json()
    assert str(south.pk) not in {h["object_id"] for h in related["hits"]}
    assert client.get(f"/api/objects/item/{south.pk}/").status_code == 404
    assert client.get(f"/api/objects/item/{south.pk}/related").status_code == 404


def test_pages_and_lists_keep_to_the_users_organisations(two_organisations):
    people, items = two_organisations
    client = _client(people["north"])
    projects = client.get(reverse("core:project-list")).content.decode()
    assert "north shop" in projects
    assert "south shop" not in projects
    listed = client.get(reverse("core:item-list"))
    assert [item.pk for item in listed.context["page"]] == [items["north"].pk]
    for url in (
        items["south"].get_absolute_url(),
        reverse("core:weaviate-status", args=["item", items["south"].pk]),
        reverse("core:weaviate-object", args=["item", items["south"].pk]),
        reverse("core:organisation-members", args=[items["south"].project.organisation_id]),
    ):
        assert client.get(url).status_code == 404, url
    push = reverse("core:weaviate-push", args=["item", items["south"].pk])
    assert client.post(push).status_code == 404


@pytest.mark.django_db
def test_a_member_edits_their_own_comment_but_not_anothers():
    organisation = Organisation.objects.create(name="Team")
    me, other = factories.make_user("me"), factories.make_user("other")
    for person in (me, other):
        factories.make_membership(user=person, organisation=organisation, role=Role.MEMBER)
    item = factories.make_item(project=factories.make_project(organisation=organisation))
    mine = factories.make_comment(item=item, author=me, body="mine")
    theirs = factories.make_comment(item=item, author=other, body="theirs")
    client = _client(me)
    page = client.get(item.get_absolute_url()).content.decode()
    assert reverse("core:comment-edit", args=[mine.pk]) in page
    assert reverse("core:comment-edit", args=[theirs.pk]) not in page
    assert reverse("core:comment-delete", args=[theirs.pk]) not in page
    ok = client.post(reverse("core:comment-edit", args=[mine.pk]), {"body": "mine, fixed"})
    assert ok.status_code == 302
    refused = client.post(reverse("core:comment-edit", args=[theirs.pk]), {"body": "hijacked"})
    assert refused.status_code == 403
    assert client.post(reverse("core:comment-delete", args=[theirs.pk])).status_code == 403
    assert ItemComment.objects.get(pk=theirs.pk).body == "theirs"
    assert ItemComment.objects.get(pk=mine.pk).body == "mine, fixed"


@pytest.mark.django_db
def test_a_viewer_reads_and_cannot_write():
    organisation = Organisation.objects.create(name="Team")
    viewer = factories.make_user("viewer")
    factories.make_membership(user=viewer, organisation=organisation, role=Role.VIEWER)
    project = factories.make_project(organisation=organisation)
    item = factories.make_item(project=project, title="Readable")
    client = _client(viewer)
    page = client.get(item.get_absolute_url())
    assert page.status_code == 200
    html = page.content.decode()
    for action in ("item-edit", "item-delete"):
        assert reverse(f"core:{action}", args=[item.pk]) not in html
    assert reverse("core:comment-create", args=[item.pk]) not in html
    assert 'id="weaviate-push"' not in html
    assert (
        client.post(reverse("core:item-edit", args=[item.pk]), {"title": "Changed"}).status_code
        == 403
    )
    assert (
        client.post(reverse("core:comment-create", args=[item.pk]), {"body": "hi"}).status_code
        == 403
    )
    assert client.get(reverse("core:item-create")).status_code == 403
    assert Item.objects.get(pk=item.pk).title == "Readable"
    assert not ItemComment.objects.exists()


@pytest.mark.django_db
def test_the_last_owner_cannot_leave_or_step_down():
    organisation = Organisation.objects.create(name="Team")
    owner, member = factories.make_user("owner"), factories.make_user("member")
    mine = factories.make_membership(user=owner, organisation=organisation, role=Role.OWNER)
    theirs = factories.make_membership(user=member, organisation=organisation, role=Role.MEMBER)
    client = _client(owner)
    members = reverse("core:organisation-members", args=[organisation.pk])
    leave = reverse("core:organisation-member-remove", args=[organisation.pk, mine.pk])
    step_down = reverse("core:organisation-member-role", args=[organisation.pk, mine.pk])
    response = client.post(leave, follow=True)
    assert "last owner" in response.content.decode()
    response = client.post(step_down, {"role": Role.MEMBER}, follow=True)
    assert "last owner" in response.content.decode()
    assert Membership.objects.get(pk=mine.pk).role == Role.OWNER
    # With a second owner, the first may go.
    promote = reverse("core:organisation-member-role", args=[organisation.pk, theirs.pk])
    assert client.post(promote, {"role": Role.OWNER}).status_code == 302
    assert client.post(leave).status_code == 302
    assert not Membership.objects.filter(pk=mine.pk).exists()
    assert client.get(members).status_code == 404  # no longer theirs to see


@pytest.mark.django_db
def test_owners_add_people_and_others_cannot():
    organisation = Organisation.objects.create(name="Team")
    owner, member = factories.make_user("owner"), factories.make_user("member")
    newcomer = factories.make_user("newcomer")
    factories.make_membership(user=owner, organisation=organisation, role=Role.OWNER)
    factories.make_membership(user=member, organisation=organisation, role=Role.MEMBER)
    add = reverse("core:organisation-member-add", args=[organisation.pk])
    assert _client(member).post(add, {"username": "newcomer"}).status_code == 403
    assert _client(owner).post(add, {"username": "newcomer", "role": "viewer"}).status_code == 302
    assert Membership.objects.get(user=newcomer).role == Role.VIEWER
    page = _client(owner).get(reverse("core:organisation-members", args=[organisation.pk]))
    assert 'data-member="newcomer" data-role="viewer"' in page.content.decode()
