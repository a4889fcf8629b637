"""Small factories: each makes one valid object, with overridable fields."""

import itertools

from django.contrib.auth import get_user_model

from core.models import (
    Change,
    ExternalIssueMapping,
    Item,
    ItemComment,
    Node,
    Organisation,
    Project,
    Release,
)

_seq = itertools.count(1)


def make_user(username: str | None = None, *, password: str = "s3cret-pass", **fields):  # noqa: S107
    username = username or f"user{next(_seq)}"
    return get_user_model().objects.create_user(username=username, password=password, **fields)


def make_organisation(**fields) -> Organisation:
    fields.setdefault("name", f"Organisation {next(_seq)}")
    return Organisation.objects.create(**fields)


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
