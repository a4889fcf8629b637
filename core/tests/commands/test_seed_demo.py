from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from core.models import (
    Attachment,
    Change,
    ExternalIssueMapping,
    Item,
    ItemComment,
    Node,
    Organisation,
    Project,
    Release,
)

pytestmark = pytest.mark.django_db

MODELS = [
    Organisation,
    Project,
    Item,
    ItemComment,
    Attachment,
    Node,
    Release,
    Change,
    ExternalIssueMapping,
]


def _counts() -> dict[str, int]:
    return {model.__name__: model.objects.count() for model in MODELS}


def _seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def test_seed_demo_builds_a_realistic_data_set_and_prints_the_login():
    output = _seed()
    counts = _counts()
    assert counts["Organisation"] == 2
    assert counts["Project"] >= 3
    assert counts["Item"] == 200
    assert counts["ItemComment"] > 100
    assert counts["Node"] > 0
    assert counts["Release"] > 0
    assert counts["Change"] > 0
    assert counts["ExternalIssueMapping"] > 0
    # Text and binary attachments, each with real bytes matching size and hash.
    types = set(Attachment.objects.values_list("content_type", flat=True))
    assert {"image/png", "application/octet-stream"} & types
    assert {"text/markdown", "text/plain", "application/json", "text/csv"} & types
    for attachment in Attachment.objects.all()[:10]:
        with attachment.file.open("rb") as handle:
            assert len(handle.read()) == attachment.size_bytes
    # Every workflow status is present.
    assert set(Item.objects.values_list("status", flat=True)) == {
        "Inbox",
        "Backlog",
        "Working",
        "Testing",
        "Ready for Release",
        "Closed",
    }
    demo = get_user_model().objects.get(username="demo")
    assert demo.check_password("agira-demo")
    assert "Log in as 'demo' with password 'agira-demo'." in output


def test_seed_demo_twice_creates_no_duplicates():
    _seed("--items", "60")
    first = _counts()
    output = _seed("--items", "60")
    assert _counts() == first
    assert "nothing to create" in output
    assert get_user_model().objects.filter(username="demo").count() == 1


def test_seed_demo_tops_up_to_a_larger_count():
    _seed("--items", "30")
    _seed("--items", "50")
    assert Item.objects.count() == 50


def test_if_empty_leaves_an_existing_database_alone():
    Project.objects.create(organisation=Organisation.objects.create(name="Mine"), name="Mine")
    output = _seed("--if-empty")
    assert Item.objects.count() == 0
    assert "demo data not loaded again" in output


def test_seed_demo_refuses_production_without_force(settings):
    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="Refusing to load demo data in production"):
        _seed("--items", "5")
    assert Item.objects.count() == 0


def test_seed_demo_queues_every_demo_object_for_the_index():
    from core.models import SyncOutbox

    output = _seed("--items", "20")
    queued = {
        (object_type, object_id)
        for object_type, object_id in SyncOutbox.objects.values_list("object_type", "object_id")
    }
    assert {("item", str(pk)) for pk in Item.objects.values_list("pk", flat=True)} <= queued
    assert {
        ("comment", str(pk)) for pk in ItemComment.objects.values_list("pk", flat=True)
    } <= queued
    assert "objects for the index" in output


def test_seed_demo_no_index_queues_no_items():
    from core.models import SyncOutbox

    _seed("--items", "20", "--no-index")
    assert not SyncOutbox.objects.filter(object_type="item").exists()


def _signed_in(username: str) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    assert client.get(reverse("core:project-list")).status_code == 200
    return client


def test_a_second_run_leaves_existing_passwords_and_sessions_alone():
    _seed("--items", "5")
    users = get_user_model().objects
    for name in ("demo", "alice"):
        user = users.get(username=name)
        user.set_password(f"{name}-own-password")
        user.save()
    sessions = {name: _signed_in(name) for name in ("demo", "alice", "bob")}

    output = _seed("--items", "5")
    output_again = _seed("--items", "5")

    assert users.get(username="demo").check_password("demo-own-password")
    assert users.get(username="alice").check_password("alice-own-password")
    assert users.get(username="bob").check_password("agira-demo")
    for client in sessions.values():  # nobody was logged out
        assert client.get(reverse("core:project-list")).status_code == 200
    assert output.splitlines()[1:] == output_again.splitlines()[1:]  # the first says how long
    # Only the passwords that are true now are printed.
    assert "password 'agira-demo'" not in output.split("Log in as 'demo'", 1)[1].split("\n")[0]
    assert "Log in as 'demo' with the password already set (left unchanged" in output
    assert "(bob, carol, dmitri) signs in with password 'agira-demo'" in output
    assert "alice keeps the password already set." in output


def test_an_explicit_password_is_set_on_existing_users_where_it_differs():
    _seed("--items", "5")
    bob = _signed_in("bob")
    output = _seed("--items", "5", "--password", "agira-demo")  # bob's already: no logout
    assert bob.get(reverse("core:project-list")).status_code == 200
    assert "Log in as 'demo' with password 'agira-demo'." in output

    output = _seed("--items", "5", "--password", "new-demo-pass")
    for name in ("demo", "alice", "bob", "carol", "dmitri"):
        assert get_user_model().objects.get(username=name).check_password("new-demo-pass")
    assert "Log in as 'demo' with password 'new-demo-pass'." in output
    assert "(alice, bob, carol, dmitri) signs in with password 'new-demo-pass'" in output
    assert bob.get(reverse("core:project-list")).status_code == 302  # set anew: signed out
    with pytest.raises(CommandError, match="must not be empty"):
        _seed("--items", "5", "--password", "")


def test_if_empty_names_the_demo_password_only_while_it_is_true():
    _seed("--items", "5")
    assert "Log in as 'demo' with password 'agira-demo'." in _seed("--if-empty")
    demo = get_user_model().objects.get(username="demo")
    demo.set_password("changed-by-me")
    demo.save()
    output = _seed("--if-empty")
    assert "agira-demo" not in output.split("Log in as 'demo'", 1)[-1]
    assert "Log in as 'demo' with the password already set" in output
