"""Who may see and change what, for every URL of the project.

The matrix is built from the URL configuration: a URL pattern missing from
RULES fails `test_every_url_has_a_rule`, so a new view cannot arrive without
saying who may use it. For each URL, method and person (anonymous, the four
roles of the organisation that owns the object, the owner of another
organisation, staff with no membership) the expected answer follows from the
rule: anonymous is sent to the login (the API answers 401), an object of
another organisation is a 404, a role that is not enough is a 403, and
anything else is served (never a 403, 404 or 5xx).
"""

from dataclasses import dataclass

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from core.models import Organisation, Role
from core.services.attachments import attachment_create
from core.services.tokens import api_token_create
from core.tests import factories

pytestmark = pytest.mark.django_db

PEOPLE = ("anonymous", "viewer", "member", "maintainer", "owner", "outsider", "staff")
RANK = {"viewer": 0, "member": 1, "maintainer": 2, "owner": 3}


@dataclass(frozen=True)
class Rule:
    """`needs`: the least role in the object's organisation ("" = any signed-in
    person; "staff"; "author": nobody but the author, who is not in PEOPLE).
    `args`: the world's objects that fill the URL. `methods`: those served."""

    needs: str
    args: tuple[str, ...] = ()
    methods: tuple[str, ...] = ("GET",)
    scoped: bool = True  # the object belongs to an organisation


def _p(needs, *args, methods=("GET",), scoped=True) -> Rule:
    return Rule(needs, args, methods, scoped)


RULES: dict[str, Rule] = {
    "core:home": _p("", scoped=False),
    "core:project-list": _p("", scoped=False),
    "core:item-list": _p("", scoped=False),
    "core:item-inbox": _p("", scoped=False),
    "core:search": _p("", scoped=False),
    "core:possible-duplicates": _p("", methods=("POST",), scoped=False),
    "core:markdown-preview": _p("", methods=("POST",), scoped=False),
    "core:api-tokens": _p("", methods=("GET", "POST"), scoped=False),
    "core:api-token-revoke": _p("", "token", methods=("POST",), scoped=False),
    "core:organisation-members": _p("viewer", "organisation"),
    "core:organisation-member-add": _p("owner", "organisation", methods=("POST",)),
    "core:organisation-member-role": _p("owner", "organisation", "membership", methods=("POST",)),
    "core:organisation-member-remove": _p("owner", "organisation", "membership", methods=("POST",)),
    "core:project-create": _p("maintainer", methods=("GET", "POST"), scoped=False),
    "core:project-detail": _p("viewer", "project"),
    "core:project-edit": _p("maintainer", "project", methods=("GET", "POST")),
    "core:project-delete": _p("maintainer", "project", methods=("GET", "POST")),
    "core:node-create": _p("maintainer", "project", methods=("GET", "POST")),
    "core:node-edit": _p("maintainer", "node", methods=("GET", "POST")),
    "core:node-delete": _p("maintainer", "node", methods=("GET", "POST")),
    "core:release-create": _p("maintainer", "project", methods=("GET", "POST")),
    "core:release-edit": _p("maintainer", "release", methods=("GET", "POST")),
    "core:release-delete": _p("maintainer", "release", methods=("GET", "POST")),
    "core:change-create": _p("maintainer", "project", methods=("GET", "POST")),
    "core:change-edit": _p("maintainer", "change", methods=("GET", "POST")),
    "core:change-delete": _p("maintainer", "change", methods=("GET", "POST")),
    "core:item-create": _p("member", methods=("GET", "POST"), scoped=False),
    "core:item-detail": _p("viewer", "item"),
    "core:item-edit": _p("member", "item", methods=("GET", "POST")),
    "core:item-links": _p("viewer", "item"),
    "core:item-delete": _p("maintainer", "item", methods=("GET", "POST")),
    "core:comment-create": _p("member", "item", methods=("POST",)),
    "core:comment-edit": _p("author", "comment", methods=("GET", "POST")),
    "core:comment-delete": _p("maintainer", "comment", methods=("GET", "POST")),
    "core:attachment-create": _p("member", "item", methods=("POST",)),
    "core:attachment-download": _p("viewer", "attachment"),
    "core:attachment-delete": _p("maintainer", "attachment", methods=("GET", "POST")),
    "core:github-link-create": _p("member", "item", methods=("POST",)),
    "core:github-link-delete": _p("member", "mapping", methods=("GET", "POST")),
    "core:related": _p("viewer", "type:item", "item"),
    "core:weaviate-status": _p("viewer", "type:item", "item"),
    "core:weaviate-object": _p("viewer", "type:item", "item"),
    "core:weaviate-push": _p("member", "type:item", "item", methods=("POST",)),
    "core:sync-dashboard": _p("staff", scoped=False),
    "core:sync-retry": _p("staff", methods=("POST",), scoped=False),
    "core:sync-github-retry": _p("staff", methods=("POST",), scoped=False),
    "api:search": _p("", scoped=False),
    "api:openapi-json": _p("", scoped=False),
    "api:openapi-view": _p("", scoped=False),
    "api:related": _p("viewer", "type:item", "item"),
    "api:object_detail": _p("viewer", "type:item", "item"),
}
# Not the project's own access rules: Django's login and logout, the admin
# (staff, Django's permissions), the API's JSON 404 for unknown paths.
UNRULED = {"login", "logout", "api:api-root", "api:?"}


def _url_names() -> set[str]:
    def walk(patterns, namespace=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = ":".join(filter(None, [namespace, pattern.namespace or ""]))
                if inner != "admin":
                    yield from walk(pattern.url_patterns, inner)
            elif isinstance(pattern, URLPattern):
                yield ":".join(filter(None, [namespace, pattern.name or "?"]))

    return set(walk(get_resolver().url_patterns))


def test_every_url_has_a_rule():
    names = _url_names() - UNRULED
    assert names - set(RULES) == set(), "URLs without a rule in the permission matrix"
    assert set(RULES) - names == set(), "rules for URLs that no longer exist"


@pytest.fixture
def world(db):
    """Organisation A holds one of everything; B is another organisation."""
    a = Organisation.objects.create(name="A")
    b = Organisation.objects.create(name="B")
    people = {name: factories.make_user(name) for name in PEOPLE if name != "anonymous"}
    for role in RANK:
        factories.make_membership(user=people[role], organisation=a, role=role)
    factories.make_membership(user=people["outsider"], organisation=b, role=Role.OWNER)
    factories.make_project(organisation=b, name="Elsewhere")
    people["staff"].is_staff = True
    people["staff"].save()
    author = factories.make_user("author")
    factories.make_membership(user=author, organisation=a, role=Role.MEMBER)
    project = factories.make_project(organisation=a, name="Shop")
    item = factories.make_item(project=project, title="Checkout breaks")
    objects = {
        "organisation": a,
        "project": project,
        "item": item,
        "comment": factories.make_comment(item=item, author=author, body="Seen it"),
        "attachment": attachment_create(
            item=item,
            upload=SimpleUploadedFile("a.txt", b"hello", content_type="text/plain"),
            uploaded_by=author,
        ),
        "node": factories.make_node(project=project, name="API"),
        "release": factories.make_release(project=project, version="1.0"),
        "change": factories.make_change(project=project, title="Rotate keys"),
        "mapping": factories.make_mapping(item=item, repository="acme/shop", number=3),
        "membership": author.memberships.get(organisation=a),
    }
    return {"people": people, "objects": objects, "author": author}


def _url(world, name: str, rule: Rule, person) -> str:
    args = []
    for arg in rule.args:
        if arg.startswith("type:"):
            args.append(arg[5:])
        elif arg == "token":
            owner = person if person is not None else world["author"]
            args.append(api_token_create(user=owner, name="t")[0].pk)
        else:
            args.append(world["objects"][arg].pk)
    return reverse(name, args=args)


def _expected(rule: Rule, person: str) -> str:
    """ "login", "404", "403" or "ok"."""
    if person == "anonymous":
        return "login"
    if rule.needs == "staff":
        return "ok" if person == "staff" else "login"  # the admin's login page
    if rule.needs == "":
        return "ok"
    if not rule.scoped:
        # Creating: a role that is enough in any organisation of one's own.
        if person == "outsider":
            return "ok"
        return "ok" if person in RANK and RANK[person] >= RANK[rule.needs] else "403"
    if person in ("outsider", "staff"):
        return "404"
    if rule.needs == "author":
        return "403"
    return "ok" if RANK[person] >= RANK[rule.needs] else "403"


CASES = [
    (name, method, person)
    for name, rule in sorted(RULES.items())
    for method in rule.methods
    for person in PEOPLE
]


@pytest.mark.parametrize(("name", "method", "person"), CASES)
def test_the_permission_matrix(world, name, method, person):
    rule = RULES[name]
    client = Client()
    user = world["people"].get(person)
    if user is not None:
        client.force_login(user)
    url = _url(world, name, rule, user)
    response = getattr(client, method.lower())(url, HTTP_HX_REQUEST="true")
    response.close()  # a download's file
    status = response.status_code
    expected = _expected(rule, person)
    where = f"{method} {url} as {person}: {status}"
    if expected == "login":
        if name.startswith("api:") and name != "api:openapi-view":  # docs: a page
            assert status == 401, where
        else:
            assert status == 302, where
            assert "login" in response["Location"], where
    elif expected == "404":
        assert status == 404, where
    elif expected == "403":
        assert status == 403, where
    else:
        assert status < 500, where
        assert status not in (401, 403, 404, 405), where


@pytest.mark.parametrize("name", sorted(n for n, r in RULES.items() if "GET" not in r.methods))
def test_state_changes_refuse_get(world, name):
    person = world["people"]["staff" if RULES[name].needs == "staff" else "owner"]
    client = Client()
    client.force_login(person)
    url = _url(world, name, RULES[name], person)
    assert client.get(url).status_code == 405
