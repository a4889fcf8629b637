"""An index that lost what its records say it holds, and the dashboard's
figures on how far behind the index is: the oldest pending change and the
p95 from save to index over the last hour."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from core.models import ReconcileRun, SyncOutbox, SyncRecord, SyncState, SyncTargetStatus
from core.services.index.engine import drain, fold_outbox
from core.services.index.upkeep import check_indexes
from core.tests import factories

ITEMS = 24  # with their project, above the count below which the check proves nothing


def synced_items(sync) -> list:
    project = factories.make_project()
    items = [factories.make_item(project=project, title=f"kept {n}") for n in range(ITEMS)]
    drain()
    assert sync.count() == ITEMS + 1
    return [project, *items]


def test_an_index_that_lost_its_objects_is_written_again(sync, caplog):
    objects = synced_items(sync)
    for obj in objects:  # the index comes back empty
        sync.remove("project" if obj is objects[0] else "item", obj.pk)
    assert sync.count() == 0
    assert check_indexes(force=True) == [sync.name]

    status = SyncTargetStatus.objects.get(target=sync.name)
    assert status.index_lost_at is not None
    said = (
        f"held 0 objects where {ITEMS + 1} were synced: it lost them (restarted without its "
        f"data, a dropped collection or a new server). {ITEMS + 1} objects were put back in "
        "the queue to be written again."
    )
    assert said in status.index_lost_note
    assert said in caplog.text
    # The records were made pending, and the drain that follows the check
    # (here at once, in this thread) wrote them all again.
    assert sync.count() == ITEMS + 1
    assert sync.get("item", objects[1].pk)["title"] == "kept 0"
    records = SyncRecord.objects.filter(target=sync.name)
    assert set(records.values_list("state", flat=True)) == {SyncState.SYNCED}
    assert check_indexes(force=True) == []  # whole again


def test_a_few_objects_missing_are_left_to_the_reconcile(sync):
    """Less than half gone is no lost index: the records stay as they are
    (`manage.py sync_weaviate` finds and writes the missing ones)."""
    objects = synced_items(sync)
    for item in objects[1:6]:
        sync.remove("item", item.pk)
    assert check_indexes(force=True) == []
    assert not SyncRecord.objects.exclude(state=SyncState.SYNCED).exists()


def test_the_check_leaves_a_target_alone_while_a_reconcile_holds_it(weaviate_sync):
    project = factories.make_project()
    for n in range(ITEMS):
        factories.make_item(project=project, title=f"kept {n}")
    weaviate_sync.store.reset()
    now = timezone.now()
    ReconcileRun.objects.create(
        target="weaviate", lock="weaviate", started_at=now, heartbeat_at=now, pid=1
    )
    assert check_indexes(force=True) == []
    assert not SyncRecord.objects.exclude(state=SyncState.SYNCED).exists()


def test_a_restarted_weaviate_without_its_data_is_found_by_the_periodic_check(
    weaviate_sync, settings
):
    """The check also runs from drain tasks (at most once a minute by
    default): the next save after Weaviate came back empty brings all back."""
    settings.AGIRA_SYNC_INDEX_CHECK_SECONDS = 0.01
    project = factories.make_project()
    for n in range(ITEMS):
        factories.make_item(project=project, title=f"kept {n}")
    weaviate_sync.down()
    weaviate_sync.store.reset()  # restarted without its volume
    weaviate_sync.up()
    from core.services.index.upkeep import _checked_at

    _checked_at.clear()
    factories.make_item(project=project, title="the next save")
    drain()  # the writes the check put back in the queue
    assert weaviate_sync.store.count("AgiraObject") == ITEMS + 2
    assert not SyncRecord.objects.exclude(state=SyncState.SYNCED).exists()


@pytest.mark.parametrize("lost", [False, True])
def test_the_dashboard_says_how_far_behind_the_index_is(weaviate_sync, settings, client, lost):
    from core.tests.services.test_sync_runtime import DB_TASKS

    settings.TASKS = DB_TASKS  # saves only record; the test drains
    project = factories.make_project()
    for n in range(20):
        factories.make_item(project=project, title=f"waiting {n}")
    now = timezone.now()
    SyncOutbox.objects.update(created_at=now - timedelta(seconds=100))
    first = SyncOutbox.objects.order_by("id").first()
    SyncOutbox.objects.filter(pk=first.pk).update(created_at=now - timedelta(seconds=300))
    if lost:
        SyncTargetStatus.objects.create(
            target="weaviate",
            index_lost_at=now - timedelta(minutes=3),
            index_lost_note="Weaviate held 0 objects where 21 were synced: it lost them.",
        )
    client.force_login(factories.make_user("boss", is_staff=True, is_superuser=True))

    def lines() -> tuple[str, str]:
        html = client.get(reverse("core:sync-dashboard")).content.decode()
        panel = html.split('data-target="weaviate"', 1)[1]
        lag = panel.split("data-lag>", 1)[1].split("</p>", 1)[0]
        p95 = panel.split("data-p95>", 1)[1].split("</p>", 1)[0]
        assert ("data-index-lost" in panel) is lost
        if lost:
            assert "it lost them." in panel
        return " ".join(lag.split()), " ".join(p95.split())

    # Not folded yet: the outbox's oldest save; folded: the record keeps it.
    assert lines() == (
        "Oldest pending change: <strong>5 min</strong> old",
        "Save to index, last hour: no change written by a drain",
    )
    fold_outbox(target_names=["weaviate"])
    assert lines()[0] == "Oldest pending change: <strong>5 min</strong> old"
    drain()
    lag, p95 = lines()
    assert lag == "Oldest pending change: none, all caught up"
    # 21 writes (20 items and the project), one of them 300 s after its save:
    # the 95th percentile (the 20th of 21) is one of the 100 s ones, give or
    # take the seconds this test took to get from its clock reading to the drain.
    shown = re.fullmatch(
        r"Save to index, last hour: p95 <strong>(\d+) s</strong> over 21 writes", p95
    )
    assert shown, p95
    assert 100 <= int(shown[1]) < 120
