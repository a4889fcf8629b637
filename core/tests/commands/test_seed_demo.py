from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

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
