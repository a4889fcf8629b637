"""The sync dashboard: staff only, every target's state, failures and retry."""

import pytest
from django.test import Client
from django.urls import reverse

from core.models import SyncRecord, SyncSample, SyncState
from core.services.index.documents import object_uuid
from core.tests import factories

URL = reverse("core:sync-dashboard")


@pytest.fixture
def staff(weaviate_sync):
    client = Client()
    client.force_login(factories.make_user("ops", is_staff=True))
    return client


def test_the_dashboard_is_for_staff_only(client, user):
    assert client.get(URL).status_code == 302  # anonymous
    client.force_login(user)  # logged in, not staff
    response = client.get(URL)
    assert response.status_code == 302
    assert "/admin/login/" in response.url
    assert client.post(reverse("core:sync-retry"), {"target": "weaviate"}).status_code == 302


def test_counts_per_state_and_type_and_reachability(staff, weaviate_sync):
    project = factories.make_project()
    factories.make_item(project=project)
    factories.make_item(project=project)
    html = staff.get(URL).content.decode()
    section = html.split('data-target="weaviate"', 1)[1]
    assert 'data-reachable="yes"' in section
    assert (
        '<tr data-type="item"><td>item</td><td>0</td><td>2</td><td>0</td><td>0</td></tr>' in section
    )
    assert '<tr data-type="project"><td>project</td><td>0</td><td>1</td>' in section
    assert "none, all caught up" in section


def test_an_unreachable_target_says_why_and_shows_the_lag(staff, weaviate_sync):
    factories.make_item()
    weaviate_sync.down()
    factories.make_item()
    html = staff.get(URL, HTTP_HX_REQUEST="true").content.decode()
    assert "<!doctype html>" not in html  # the polled part alone
    assert 'data-reachable="no"' in html
    assert "is not reachable" in html or "Could not connect" in html
    assert " s</strong> old" in html


def test_a_failed_object_is_listed_and_retry_fixes_it(staff, weaviate_sync, settings):
    settings.AGIRA_SYNC_MAX_ATTEMPTS = 1
    weaviate_sync.faults.fail_objects(where=lambda c, u, p: p.get("title") == "Flaky",
                                      message="temporarily refused")  # fmt: skip
    item = factories.make_item(title="Flaky")
    html = staff.get(URL).content.decode()
    assert f'data-failed="item:{item.pk}"' in html
    assert "temporarily refused" in html

    weaviate_sync.faults.clear()
    response = staff.post(
        reverse("core:sync-retry"),
        {"target": "weaviate", "object_type": "item", "object_id": item.pk},
        follow=True,
    )
    assert "Queued 1 failed object again." in response.content.decode()
    record = SyncRecord.objects.get(target="weaviate", object_type="item", object_id=item.pk)
    assert record.state == SyncState.SYNCED
    assert f'data-failed="item:{item.pk}"' not in staff.get(URL).content.decode()


def test_retry_all_failed(staff, weaviate_sync, settings):
    settings.AGIRA_SYNC_MAX_ATTEMPTS = 1
    weaviate_sync.faults.fail_objects(where=lambda c, u, p: p.get("title", "").startswith("x"))
    items = [factories.make_item(title=f"x{n}") for n in range(3)]
    assert SyncRecord.objects.filter(state=SyncState.FAILED).count() == 3
    weaviate_sync.faults.clear()
    response = staff.post(reverse("core:sync-retry"), {"target": "weaviate"}, follow=True)
    assert "Queued 3 failed objects again." in response.content.decode()
    assert not SyncRecord.objects.filter(state=SyncState.FAILED).exists()
    for item in items:
        assert weaviate_sync.store.get("AgiraObject", object_uuid("item", item.pk))


def test_the_chart_draws_the_pending_count_of_the_last_hour(staff, weaviate_sync):
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    for minutes, pending in [(50, 3), (30, 12), (10, 0)]:
        SyncSample.objects.create(
            at=now - timedelta(minutes=minutes), target="weaviate", pending=pending, failed=0
        )
    SyncSample.objects.create(at=now - timedelta(hours=3), target="weaviate", pending=99, failed=0)
    html = staff.get(URL).content.decode()
    section = html.split('data-target="weaviate"', 1)[1]
    assert "<polyline" in section
    assert "peak 12" in section  # the 3-hour-old 99 is outside the window
    assert section.count(",") >= 3


def test_the_chart_has_a_time_axis_and_a_count_axis_with_labels(staff, weaviate_sync):
    import re
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    for minutes, pending in [(50, 3), (30, 12), (10, 0)]:
        SyncSample.objects.create(
            at=now - timedelta(minutes=minutes), target="weaviate", pending=pending, failed=0
        )
    html = staff.get(URL).content.decode()
    chart = html.split('data-target="weaviate"', 1)[1].split("</svg>", 1)[0]

    def labels(axis: str) -> list[str]:
        return re.findall(rf'<text[^>]*data-axis="{axis}"[^>]*>([^<]*)</text>', chart)

    assert labels("time") == ["60 min ago", "45", "30", "15", "now"]
    assert labels("count") == ["0", "5", "10", "15"]  # a round top above the peak of 12
    assert labels("time-title") == ["Time (last hour)"]
    assert labels("count-title") == ["Pending changes"]
    # Every point lies inside the plot, above the time axis and right of the count axis.
    box = re.search(r'data-plot="([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+)"', chart)
    left, top, right, bottom = map(float, box.groups())
    for x, y in re.findall(r'<circle cx="([\d.]+)" cy="([\d.]+)"', chart):
        assert left <= float(x) <= right
        assert top <= float(y) <= bottom


def test_an_empty_chart_still_has_its_axes(staff):
    html = staff.get(URL).content.decode()
    chart = html.split('data-target="weaviate"', 1)[1].split("</svg>", 1)[0]
    assert 'data-axis="time"' in chart
    assert ">now</text>" in chart
    assert 'data-axis="count"' in chart
    assert ">0</text>" in chart


def test_polling_stops_when_the_tab_is_hidden(staff):
    html = staff.get(URL).content.decode()
    assert "every 5s [document.visibilityState === 'visible']" in html


def test_the_github_worker_runs_and_failed_links_are_shown_and_retried(staff, github):
    from core.models import ExternalIssueMapping, MappingSyncState
    from core.services.github import worker
    from core.tests.github_helpers import REPO, link

    closed = github.add_issue(REPO)
    github.close_issue(REPO, closed)
    deleted = github.add_issue(REPO)
    github.delete_issue(REPO, deleted, status=410)
    link(closed)
    broken = link(deleted)
    report = worker.run()

    page = staff.get(URL).content.decode()
    assert f'data-github-run="{report.run_id}" data-run-status="partial"' in page
    assert f'data-failed-link="{broken.pk}"' in page
    assert "deleted on GitHub (410)" in page
    assert 'data-github-state="on"' in page

    response = staff.post(reverse("core:sync-github-retry"))
    assert response.status_code == 302
    broken.refresh_from_db()
    assert broken.sync_state == MappingSyncState.PENDING
    assert ExternalIssueMapping.objects.filter(sync_state=MappingSyncState.FAILED).count() == 0


def test_the_github_section_says_why_the_worker_does_not_run(staff):
    page = staff.get(URL).content.decode()
    assert 'data-github-state="off"' in page
    assert "The GitHub worker is disabled" in page
    assert "data-no-github-runs" in page
