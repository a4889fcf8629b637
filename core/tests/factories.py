"""Small factories: each makes one valid object, with overridable fields."""

import itertools

from django.contrib.auth import get_user_model

from core.models import (
    Change,
    ExternalIssueMapping,
    Item,
    ItemComment,
    Membership,
    Node,
    Organisation,
    Project,
    Release,
)

_seq = itertools.count(1)


def make_user(username: str | None = None, *, password: str = "s3cret-pass", **fields):  # noqa: S107
    username = username or f"user{next(_seq)}"
    return get_user_model().objects.create_user(username=username, password=password, **fields)


# Users that every organisation made here takes as members, with their role:
# the `user` fixture (and the browser's user) is an owner of every organisation
# a test makes, so tests of what one person does need no membership set-up.
# Tests of roles make their own users and memberships.
default_members: list[tuple[object, str]] = []


def make_organisation(**fields) -> Organisation:
    fields.setdefault("name", f"Organisation {next(_seq)}")
    organisation = Organisation.objects.create(**fields)
    for user, role in default_members:
        make_membership(user=user, organisation=organisation, role=role)
    return organisation


def make_membership(*, user, organisation, role: str = "member") -> Membership:
    return Membership.objects.create(user=user, organisation=organisation, role=role)


def make_project(**fields) -> Project:
    if "organisation" not in fields:
        fields["organisation"] = make_organisation()
    fields.setdefault("name", f"Project {next(_seq)}")
    return Project.objects.create(**fields)


def make_item(**fields) -> Item:
    if "project" not in fields:
        fields["project"] = make_project()
    fields.setdefault("title", f"Item {next(_seq)}")
    fields.setdefault("description", "Something to do.")
    return Item.objects.create(**fields)


def make_comment(**fields) -> ItemComment:
    if "item" not in fields:
        fields["item"] = make_item()
    fields.setdefault("body", "A comment.")
    return ItemComment.objects.create(**fields)


def make_node(**fields) -> Node:
    if "project" not in fields:
        fields["project"] = make_project()
    fields.setdefault("name", f"Node {next(_seq)}")
    return Node.objects.create(**fields)


def make_release(**fields) -> Release:
    if "project" not in fields:
        fields["project"] = make_project()
    fields.setdefault("version", f"1.{next(_seq)}.0")
    return Release.objects.create(**fields)


def make_change(**fields) -> Change:
    if "project" not in fields:
        fields["project"] = make_project()
    fields.setdefault("title", f"Change {next(_seq)}")
    return Change.objects.create(**fields)


def make_mapping(**fields) -> ExternalIssueMapping:
    if "item" not in fields:
        fields["item"] = make_item()
    fields.setdefault("repository", "acme/widgets")
    fields.setdefault("number", next(_seq))
    return ExternalIssueMapping.objects.create(**fields)
