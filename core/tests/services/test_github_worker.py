"""The GitHub worker against a local server that answers like GitHub's REST API,
through the real PyGithub; documents land in the in-process Weaviate-compatible
server through the sync engine."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.models import (
    ExternalIssueMapping,
    ExternalKind,
    GitHubConfiguration,
    GitHubRepository,
    GitHubRunStatus,
    GitHubSyncRun,
    ItemStatus,
    MappingAttention,
    MappingSyncState,
)
from core.services.github import worker
from core.tests.github_helpers import ISSUE_PATH, REPO, TOKEN, link


def closed_issue_with_merged_pr(server, *, repo=REPO):
    issue = server.add_issue(repo, title="Crash on save", body="Steps: click save.", labels=["bug"])
    pr = server.add_pull(
        repo,
        title="Fix the crash on save",
        body=f"Fixes #{issue}",
        merged=True,
        files=["core/save.py", "core/tests/test_save.py"],
        commits=["Guard against an empty title", "Test the empty title"],
        merge_commit_sha="a1b2c3d4",
    )
    server.cross_reference(issue=(repo, issue), pr=(repo, pr))
    server.add_commit(repo, "a1b2c3d4", pulls=[pr])
    server.close_issue(repo, issue, state_reason="completed", commit_id="a1b2c3d4")
    return issue, pr


def test_closed_completed_moves_the_item_to_testing_links_the_pr_and_indexes_both(github, index):
    issue, pr = closed_issue_with_merged_pr(github)
    mapping = link(issue)

    report = worker.run()

    assert (report.exit_code, report.status) == (worker.EXIT_OK, GitHubRunStatus.COMPLETED)
    mapping.refresh_from_db()
    assert mapping.item.status == ItemStatus.TESTING
    assert (mapping.state, mapping.state_reason, mapping.sync_state) == (
        "closed",
        "completed",
        "ok",
    )
    assert mapping.labels == ["bug"]
    assert mapping.body == "Steps: click save."
    pull = ExternalIssueMapping.objects.get(item=mapping.item, kind=ExternalKind.PR)
    assert (pull.repository, pull.number, pull.state, pull.merged, pull.closes_issue) == (
        REPO,
        pr,
        "closed",
        True,
        True,
    )
    assert pull.title == "Fix the crash on save"
    assert pull.url.endswith(f"/pull/{pr}")

    issue_doc = index.get("github_issue", mapping.pk)
    assert issue_doc is not None
    assert issue_doc["title"] == "Crash on save"
    assert "Steps: click save." in issue_doc["text"]
    assert issue_doc["status"] == "closed"
    pr_doc = index.get("github_pr", pull.pk)
    assert "core/save.py" in pr_doc["text"]
    assert "Guard against an empty title" in pr_doc["text"]
    assert "Fixes #" in pr_doc["text"]
    assert index.get("item", mapping.item_id)["status"] == ItemStatus.TESTING

    run = GitHubSyncRun.objects.get(pk=report.run_id)
    assert run.status == GitHubRunStatus.COMPLETED
    assert run.lock is None
    assert run.counts["items_moved"] == 1
    assert run.counts["prs_linked"] == 1
    assert run.requests == github.request_count()


def test_not_planned_and_duplicate_leave_the_item_alone_and_say_why(github):
    not_planned = github.add_issue(REPO, title="Wish")
    duplicate = github.add_issue(REPO, title="Same again")
    github.close_issue(REPO, not_planned, state_reason="not_planned")
    github.close_issue(REPO, duplicate, state_reason="duplicate")
    first, second = link(not_planned), link(duplicate)

    assert worker.run().exit_code == worker.EXIT_OK

    for mapping, attention in (
        (first, MappingAttention.NOT_PLANNED),
        (second, MappingAttention.DUPLICATE),
    ):
        mapping.refresh_from_db()
        assert mapping.item.status == ItemStatus.WORKING
        assert mapping.attention == attention


def test_reopened_after_testing_is_flagged_and_the_status_kept(github, auth_client):
    number = github.add_issue(REPO, title="Flaky")
    github.close_issue(REPO, number, state_reason="completed")
    mapping = link(number)
    worker.run()
    mapping.refresh_from_db()
    assert mapping.item.status == ItemStatus.TESTING

    github.update_issue(REPO, number, state="open", state_reason="reopened")
    assert worker.run().exit_code == worker.EXIT_OK

    mapping.refresh_from_db()
    assert mapping.item.status == ItemStatus.TESTING
    assert mapping.attention == MappingAttention.REOPENED
    page = auth_client.get(mapping.item.get_absolute_url()).content.decode()
    assert 'data-attention="reopened"' in page
    assert "was reopened on GitHub" in page


def test_an_item_past_testing_never_moves_back(github):
    number = github.add_issue(REPO)
    github.close_issue(REPO, number)
    mapping = link(number, status=ItemStatus.READY_FOR_RELEASE)

    worker.run()

    mapping.refresh_from_db()
    assert mapping.item.status == ItemStatus.READY_FOR_RELEASE
    assert mapping.state == "closed"


def test_several_prs_one_merged_one_from_a_deleted_fork_one_in_another_repository(github, index):
    github.add_repo("acme/lib")
    number = github.add_issue(REPO, title="Slow search")
    merged = github.add_pull(REPO, title="Index the title", merged=True, merge_commit_sha="feed01")
    abandoned = github.add_pull(REPO, title="Rewrite everything", state="closed", head_repo=None)
    elsewhere = github.add_pull("acme/lib", title="Faster tokenizer", state="open")
    for pr in ((REPO, merged), (REPO, abandoned), ("acme/lib", elsewhere)):
        github.cross_reference(issue=(REPO, number), pr=pr)
    github.add_commit(REPO, "feed01", pulls=[merged])
    github.close_issue(REPO, number, commit_id="feed01")
    mapping = link(number)

    worker.run()

    pulls = {
        (m.repository, m.number): m
        for m in ExternalIssueMapping.objects.filter(item=mapping.item, kind=ExternalKind.PR)
    }
    assert set(pulls) == {(REPO, merged), (REPO, abandoned), ("acme/lib", elsewhere)}
    assert (pulls[REPO, merged].merged, pulls[REPO, merged].closes_issue) == (True, True)
    assert (pulls[REPO, abandoned].merged, pulls[REPO, abandoned].state) == (False, "closed")
    assert pulls[REPO, abandoned].closes_issue is False
    assert pulls["acme/lib", elsewhere].state == "open"
    for pull in pulls.values():
        assert index.get("github_pr", pull.pk) is not None


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (404, "not found on GitHub (404)"),
        (410, "deleted on GitHub (410)"),
        (403, "not accessible (403)"),
    ],
)
def test_a_deleted_or_inaccessible_issue_fails_its_mapping_once(github, status, expected):
    broken, fine = github.add_issue(REPO), github.add_issue(REPO)
    github.close_issue(REPO, fine)
    if status == 403:
        github.forbid(rf"^/repos/acme/widgets/issues/{broken}$", times=100)
    else:
        github.delete_issue(REPO, broken, status=status)
    bad, good = link(broken), link(fine)

    report = worker.run()

    assert report.exit_code == worker.EXIT_FAILED
    assert report.status == GitHubRunStatus.PARTIAL
    bad.refresh_from_db()
    good.refresh_from_db()
    assert bad.sync_state == MappingSyncState.FAILED
    assert expected in bad.sync_error
    assert good.item.status == ItemStatus.TESTING
    assert any(expected in line for line in report.errors)

    # Not retried every run.
    before = github.request_count(rf"^/repos/acme/widgets/issues/{broken}$")
    worker.run()
    assert github.request_count(rf"^/repos/acme/widgets/issues/{broken}$") == before


def test_a_401_on_an_issue_fails_it_and_stops_the_run(github):
    first, second = github.add_issue(REPO), github.add_issue(REPO)
    github.fail(rf"^/repos/acme/widgets/issues/{first}$", 401, body={"message": "Bad credentials"})
    one, two = link(first), link(second)

    report = worker.run()

    assert report.exit_code == worker.EXIT_UNAVAILABLE
    one.refresh_from_db()
    two.refresh_from_db()
    assert one.sync_state == MappingSyncState.FAILED
    assert "401" in one.sync_error
    assert two.sync_state == MappingSyncState.PENDING  # untouched: the next run takes it
    assert TOKEN not in report.message
    assert TOKEN not in one.sync_error


def test_a_wrong_token_stops_the_run_without_showing_it(github, caplog):
    github.token = "ghp_the_real_one"
    mapping = link(github.add_issue(REPO))

    report = worker.run()

    assert report.exit_code == worker.EXIT_UNAVAILABLE
    assert "refused the token" in report.message
    mapping.refresh_from_db()
    assert mapping.sync_state == MappingSyncState.PENDING
    run = GitHubSyncRun.objects.get(pk=report.run_id)
    assert run.status == GitHubRunStatus.FAILED
    assert TOKEN not in caplog.text
    assert TOKEN not in run.error


@pytest.mark.parametrize("status", [403, 429])
def test_a_rate_limit_stops_the_run_cleanly_and_the_next_run_finishes(github, status):
    numbers = [github.add_issue(REPO) for _ in range(3)]
    for number in numbers:
        github.close_issue(REPO, number)
    mappings = [link(n) for n in numbers]
    worker.run(batch_size=1)  # the repository has a checkpoint now
    github.rate_limit(status, reset_in=3600, times=1, path_pattern=ISSUE_PATH)

    report = worker.run()

    assert (report.exit_code, report.status) == (
        worker.EXIT_RATE_LIMITED,
        GitHubRunStatus.RATE_LIMITED,
    )
    assert report.next_run_after is not None
    assert report.next_run_after > timezone.now() + timedelta(minutes=50)
    run = GitHubSyncRun.objects.get(pk=report.run_id)
    assert run.next_run_after == report.next_run_after
    assert "rate limit" in run.error
    assert GitHubRepository.objects.get(full_name=REPO).checkpoint is not None

    assert worker.run().exit_code == worker.EXIT_OK
    for mapping in mappings:
        mapping.refresh_from_db()
        assert mapping.item.status == ItemStatus.TESTING


def test_a_429_with_retry_after_beyond_the_limit_stops_the_run(github):
    mapping = link(github.add_issue(REPO))
    github.rate_limit(429, retry_after=600, times=1, path_pattern=ISSUE_PATH)

    report = worker.run()

    assert report.exit_code == worker.EXIT_RATE_LIMITED
    mapping.refresh_from_db()
    assert mapping.sync_state == MappingSyncState.PENDING


def test_a_500_is_retried_within_the_run(github):
    number = github.add_issue(REPO)
    github.close_issue(REPO, number)
    mapping = link(number)
    github.fail(ISSUE_PATH, 500, times=1)

    assert worker.run().exit_code == worker.EXIT_OK

    mapping.refresh_from_db()
    assert mapping.item.status == ItemStatus.TESTING


def test_a_lasting_5xx_backs_the_mapping_off_then_it_succeeds(github, settings):
    settings.AGIRA_GITHUB_RETRIES = 1
    number = github.add_issue(REPO)
    github.close_issue(REPO, number)
    mapping = link(number)
    github.fail(ISSUE_PATH, 502, times=2)

    report = worker.run()

    assert report.exit_code == worker.EXIT_FAILED
    mapping.refresh_from_db()
    assert (mapping.sync_state, mapping.sync_attempts) == (MappingSyncState.BACKOFF, 1)
    assert "502" in mapping.sync_error

    assert worker.run().exit_code == worker.EXIT_OK
    mapping.refresh_from_db()
    assert (mapping.sync_state, mapping.sync_attempts) == (MappingSyncState.OK, 0)
    assert mapping.item.status == ItemStatus.TESTING


def test_transient_failures_give_up_after_the_attempt_cap(github, settings):
    settings.AGIRA_GITHUB_RETRIES = 0
    settings.AGIRA_GITHUB_MAX_ATTEMPTS = 3
    mapping = link(github.add_issue(REPO))
    github.fail(ISSUE_PATH, 503, times=100)

    for _ in range(5):
        worker.run()

    mapping.refresh_from_db()
    assert mapping.sync_state == MappingSyncState.FAILED
    assert "gave up after 3 attempts" in mapping.sync_error
    assert github.request_count(ISSUE_PATH) == 3


def test_a_renamed_repository_is_followed_and_recorded(github):
    number = github.add_issue(REPO)
    mapping = link(number)
    worker.run()
    github.rename_repo(REPO, "acme/gadgets")
    github.close_issue("acme/gadgets", number)

    assert worker.run().exit_code == worker.EXIT_OK

    mapping.refresh_from_db()
    assert mapping.repository == "acme/gadgets"
    assert mapping.item.status == ItemStatus.TESTING
    state = GitHubRepository.objects.get(full_name="acme/gadgets")
    assert state.previous_names == [REPO]
    assert not GitHubRepository.objects.filter(full_name=REPO).exists()


def test_an_unchanged_second_run_costs_one_request_per_repository_and_writes_nothing(github, index):
    github.add_repo("acme/lib")
    issue, _pr = closed_issue_with_merged_pr(github)
    other = github.add_issue("acme/lib")
    link(issue)
    link(other, repository="acme/lib")
    worker.run()
    github.requests.clear()
    index.reset_counts()
    snapshot = list(ExternalIssueMapping.objects.values().order_by("pk"))
    repositories = list(GitHubRepository.objects.values().order_by("pk"))

    with CaptureQueriesContext(connection) as queries:
        report = worker.run()

    assert report.exit_code == worker.EXIT_OK
    assert [r.status for r in github.requests] == [304, 304]
    assert report.requests == 2
    assert report.counts["repositories_unchanged"] == 2
    assert index.writes() == 0
    assert list(ExternalIssueMapping.objects.values().order_by("pk")) == snapshot
    assert list(GitHubRepository.objects.values().order_by("pk")) == repositories
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
        and "core_githubsyncrun" not in q["sql"]
    ]
    assert writes == []


def test_seed_rule_a_document_changes_only_when_the_status_does(github, index):
    number = github.add_issue(REPO, title="Typo", body="first words")
    github.close_issue(REPO, number)
    mapping = link(number)
    worker.run()
    index.reset_counts()

    github.update_issue(REPO, number, body="edited words")  # same status
    worker.run()

    assert index.writes() == 0
    assert "first words" in index.get("github_issue", mapping.pk)["text"]
    mapping.refresh_from_db()
    assert mapping.body == "first words"

    github.update_issue(REPO, number, state="open", state_reason="reopened")
    worker.run()
    assert "edited words" in index.get("github_issue", mapping.pk)["text"]
    assert index.get("github_issue", mapping.pk)["status"] == "open"


def test_a_missing_document_is_created_even_without_a_status_change(github, index):
    number = github.add_issue(REPO, title="Gone from the index")
    github.close_issue(REPO, number)
    mapping = link(number)
    worker.run()
    index.remove("github_issue", mapping.pk)
    mapping.refresh_from_db()
    from core.models import SyncRecord

    SyncRecord.objects.filter(object_type="github_issue", object_id=str(mapping.pk)).delete()
    github.update_issue(REPO, number, title="Gone from the index (edited)")

    worker.run()

    assert index.get("github_issue", mapping.pk)["title"] == ("Gone from the index (edited)")


def test_batch_size_is_respected_across_runs(github):
    numbers = [github.add_issue(REPO) for _ in range(5)]
    for number in numbers:
        github.close_issue(REPO, number)
    mappings = [link(n) for n in numbers]

    looked_at = []
    for _ in range(3):
        report = worker.run(batch_size=2)
        looked_at.append(report.counts["mappings"])
    assert looked_at == [2, 2, 1]
    for mapping in mappings:
        mapping.refresh_from_db()
        assert mapping.item.status == ItemStatus.TESTING
    for number in numbers:
        assert github.request_count(rf"^/repos/acme/widgets/issues/{number}$") == 1
    assert worker.run(batch_size=2).counts["mappings"] == 0


def test_dry_run_reports_and_writes_nothing(github, index):
    issue, _pr = closed_issue_with_merged_pr(github)
    mapping = link(issue)
    index.reset_counts()

    report = worker.run(dry_run=True)

    assert report.counts["items_moved"] == 1
    assert report.counts["prs_linked"] == 1
    mapping.refresh_from_db()
    assert mapping.item.status == ItemStatus.WORKING
    assert mapping.sync_state == MappingSyncState.PENDING
    assert not ExternalIssueMapping.objects.filter(kind=ExternalKind.PR).exists()
    assert not GitHubSyncRun.objects.exists()
    assert not GitHubRepository.objects.exists()
    assert index.writes() == 0


def test_a_second_run_while_one_holds_the_lock_exits_2(github):
    now = timezone.now()
    GitHubSyncRun.objects.create(lock=worker.LOCK_NAME, started_at=now, heartbeat_at=now, pid=1)

    report = worker.run()

    assert report.exit_code == worker.EXIT_LOCKED
    assert "Another GitHub sync is running" in report.message


def test_disabled_or_tokenless_configuration_exits_3(github):
    GitHubConfiguration.objects.update(enabled=False)
    assert worker.run().exit_code == worker.EXIT_UNAVAILABLE
    GitHubConfiguration.objects.update(enabled=True, token="")
    report = worker.run()
    assert report.exit_code == worker.EXIT_UNAVAILABLE
    assert "No GitHub token" in report.message
    assert github.request_count() == 0


def test_large_pull_requests_are_cut_visibly(github, index, settings):
    settings.AGIRA_GITHUB_MAX_FILES = 2
    settings.AGIRA_GITHUB_MAX_COMMITS = 1
    number = github.add_issue(REPO)
    pr = github.add_pull(
        REPO,
        title="Big change",
        merged=True,
        merge_commit_sha="beef00",
        files=["a.py", "b.py", "c.py"],
        commits=["x" * 1500, "second"],
    )
    github.cross_reference(issue=(REPO, number), pr=(REPO, pr))
    github.close_issue(REPO, number, commit_id="beef00")
    mapping = link(number)

    worker.run()

    pull = ExternalIssueMapping.objects.get(item=mapping.item, kind=ExternalKind.PR)
    assert pull.changed_files == ["a.py", "b.py", "[more files not listed]"]
    assert len(pull.commit_messages) == 2
    assert pull.commit_messages[0].endswith("[truncated: 1,000 of 1,500 characters]")
    assert pull.commit_messages[1] == "[more commits not listed]"
    text = index.get("github_pr", pull.pk)["text"]
    assert "[more files not listed]" in text
    assert "[truncated: 1,000 of 1,500 characters]" in text


def test_a_closing_pr_queued_in_the_same_run_keeps_its_closing_flag(github):
    issue, pr = closed_issue_with_merged_pr(github)
    mapping = link(issue)
    worker.run()
    pull = ExternalIssueMapping.objects.get(item=mapping.item, kind=ExternalKind.PR)
    # Both change on GitHub: the issue is reopened and closed again, the PR edited.
    github.update_issue(REPO, issue, state="open", state_reason="reopened")
    github.close_issue(REPO, issue, commit_id="a1b2c3d4")
    github.update_pull(REPO, pr, title="Fix the crash on save (final)")

    assert worker.run().exit_code == worker.EXIT_OK

    pull.refresh_from_db()
    assert pull.closes_issue is True
    assert ExternalIssueMapping.objects.filter(item=mapping.item, kind=ExternalKind.PR).count() == 1


def test_a_failed_link_is_not_revived_by_other_activity_in_its_repository(github):
    deleted, other = github.add_issue(REPO), github.add_issue(REPO)
    github.delete_issue(REPO, deleted, status=404)
    link(deleted)
    link(other)
    worker.run()
    before = github.request_count(rf"^/repos/acme/widgets/issues/{deleted}$")

    github.close_issue(REPO, other)
    worker.run()

    assert github.request_count(rf"^/repos/acme/widgets/issues/{deleted}$") == before


def test_pull_request_names_differing_in_case_are_one_link(github):
    number = github.add_issue(REPO)
    pr = github.add_pull(REPO, title="Fix", merged=True, merge_commit_sha="c0ffee")
    github.cross_reference(issue=(REPO, number), pr=(REPO, pr))
    github.close_issue(REPO, number, commit_id="c0ffee")
    mapping = link(number)
    link_by_hand = ExternalIssueMapping.objects.create(
        item=mapping.item, repository=REPO, number=pr, kind=ExternalKind.PR
    )

    worker.run()

    pulls = ExternalIssueMapping.objects.filter(item=mapping.item, kind=ExternalKind.PR)
    assert list(pulls.values_list("pk", flat=True)) == [link_by_hand.pk]
    assert pulls.get().closes_issue is True


def test_a_rename_onto_a_link_the_item_already_has_keeps_one(github):
    number = github.add_issue(REPO)
    mapping = link(number)
    worker.run()
    twin = ExternalIssueMapping.objects.create(
        item=mapping.item, repository="acme/gadgets", number=number
    )
    github.rename_repo(REPO, "acme/gadgets")
    github.close_issue("acme/gadgets", number)

    assert worker.run().exit_code in (worker.EXIT_OK, worker.EXIT_FAILED)

    links = ExternalIssueMapping.objects.filter(item=mapping.item)
    assert list(links.values_list("pk", "repository")) == [(twin.pk, "acme/gadgets")]


def test_an_unreachable_github_stops_the_run_and_charges_no_link(github):
    GitHubConfiguration.objects.update(base_url="http://127.0.0.1:9")  # nothing listens
    mapping = link(github.add_issue(REPO))

    report = worker.run()

    assert report.exit_code == worker.EXIT_UNAVAILABLE
    assert "cannot reach GitHub" in report.message
    mapping.refresh_from_db()
    assert (mapping.sync_state, mapping.sync_attempts) == (MappingSyncState.PENDING, 0)


# -- repositories that fail, PyGithub errors, counting, dry runs, other repositories -----
FORKS = ("bob/widgets", "carol/widgets", "dave/widgets")


def issue_with_prs_in_forks(server, forks=FORKS):
    """An issue in REPO cross-referenced by one open pull request in each fork."""
    number = server.add_issue(REPO, title="Needs a fix")
    pulls = {}
    for fork in forks:
        server.add_repo(fork, fork_of=REPO)
        pulls[fork] = server.add_pull(fork, title=f"Fix from {fork}")
        server.cross_reference(issue=(REPO, number), pr=(fork, pulls[fork]))
    return number, pulls


def age_links(repository, *, hours=25):
    """As if the links in `repository` were last looked at `hours` ago."""
    then = timezone.now() - timedelta(hours=hours)
    ExternalIssueMapping.objects.filter(repository=repository).update(last_synced_at=then)
    GitHubRepository.objects.filter(full_name=repository).update(last_checked_at=then)


def test_a_repository_answering_404_is_recorded_backed_off_and_shown(github, settings):
    from django.test import Client
    from django.urls import reverse

    from core.tests import factories

    settings.AGIRA_GITHUB_BACKOFF_SECONDS = 300
    number, _pulls = issue_with_prs_in_forks(github, forks=["bob/widgets"])
    link(number)
    assert worker.run().exit_code == worker.EXIT_OK
    assert ExternalIssueMapping.objects.filter(repository="bob/widgets").exists()
    github.delete_repo("bob/widgets")
    age_links("bob/widgets")
    fork_path = r"^/repos/bob/widgets$|^/repositories/\d+/issues$"

    report = worker.run()

    assert report.exit_code == worker.EXIT_FAILED
    assert report.counts["repositories_failed"] == 1
    assert any("bob/widgets" in line and "404" in line for line in report.errors)
    state = GitHubRepository.objects.get(full_name="bob/widgets")
    assert "not found on GitHub (404)" in state.last_error
    assert state.failures == 1
    assert state.next_attempt_at > timezone.now() + timedelta(minutes=2)
    first_wait = state.next_attempt_at - timezone.now()

    # Not asked again while it backs off.
    before = github.request_count(r"^/repos/bob/widgets")
    assert worker.run().counts["repositories_waiting"] == 1
    assert github.request_count(r"^/repos/bob/widgets") == before

    # Asked again once due, and backed off longer.
    GitHubRepository.objects.filter(pk=state.pk).update(next_attempt_at=timezone.now())
    assert worker.run().exit_code == worker.EXIT_FAILED
    assert github.request_count(r"^/repos/bob/widgets") == before + 1
    state.refresh_from_db()
    assert state.failures == 2
    assert state.next_attempt_at - timezone.now() > first_wait * 0.5
    assert github.request_count(fork_path) >= 2

    staff = Client()
    staff.force_login(factories.make_user("ops", is_staff=True))
    page = staff.get(reverse("core:sync-dashboard")).content.decode()
    assert 'data-failed-repository="bob/widgets"' in page
    assert "not found on GitHub (404)" in page

    # "Retry" on the dashboard asks again at the next run.
    staff.post(reverse("core:sync-github-retry"))
    state.refresh_from_db()
    assert (state.failures, state.next_attempt_at) == (0, None)
    assert "not found" in state.last_error  # still the last thing GitHub said


def test_a_repository_that_answers_again_is_cleared(github, settings):
    settings.AGIRA_GITHUB_BACKOFF_SECONDS = 300
    link(github.add_issue(REPO))
    github.fail(r"^/repos/acme/widgets$", 404, times=1)
    assert worker.run().exit_code == worker.EXIT_FAILED
    GitHubRepository.objects.filter(full_name=REPO).update(next_attempt_at=timezone.now())

    assert worker.run().exit_code == worker.EXIT_OK

    state = GitHubRepository.objects.get(full_name=REPO)
    assert (state.failures, state.next_attempt_at, state.last_error) == (0, None, "")


def test_a_pygithub_error_stops_the_run_with_exit_3_and_is_recorded(github):
    # GitHub Enterprise reached through an alias: GitHub's URLs name another host, and
    # PyGithub refuses to follow a redirect there.
    GitHubConfiguration.objects.update(base_url=github.enterprise_url)
    github.public_host = "ghe.example.test"
    mapping = link(github.add_issue(REPO))
    github.rename_repo(REPO, "acme/gadgets")

    report = worker.run()

    assert (report.exit_code, report.status) == (worker.EXIT_UNAVAILABLE, GitHubRunStatus.FAILED)
    assert "ghe.example.test" in report.message
    assert TOKEN not in report.message
    run = GitHubSyncRun.objects.get(pk=report.run_id)
    assert (run.status, run.lock) == (GitHubRunStatus.FAILED, None)
    assert "ghe.example.test" in run.error
    mapping.refresh_from_db()
    assert (mapping.sync_state, mapping.sync_attempts) == (MappingSyncState.PENDING, 0)


def test_requests_are_counted_at_the_transport_with_redirects_and_retries(github, settings):
    settings.AGIRA_GITHUB_RETRIES = 3
    number = github.add_issue(REPO)
    mapping = link(number)
    worker.run()
    github.rename_repo(REPO, "acme/gadgets")  # a 301 PyGithub follows
    github.close_issue("acme/gadgets", number)
    github.fail(r"^/repos/acme/gadgets/issues/\d+$", 500, times=2)  # urllib3 retries
    github.fail(r"^/repos/acme/gadgets/issues/\d+/timeline$", 502, times=2)
    github.requests.clear()

    report = worker.run()

    assert report.exit_code == worker.EXIT_OK
    mapping.refresh_from_db()
    assert mapping.item.status == ItemStatus.TESTING
    assert report.requests == github.request_count()
    assert GitHubSyncRun.objects.get(pk=report.run_id).requests == github.request_count()


def test_a_rate_limit_stop_shows_the_remaining_count_of_the_last_response(github):
    numbers = [github.add_issue(REPO) for _ in range(2)]
    for number in numbers:
        link(number)
    github.rate_limit(403, reset_in=3600, times=1, path_pattern=ISSUE_PATH)

    report = worker.run()

    assert report.exit_code == worker.EXIT_RATE_LIMITED
    assert report.rate_limit_remaining == 0
    run = GitHubSyncRun.objects.get(pk=report.run_id)
    assert run.rate_limit_remaining == 0
    assert run.rate_limit_reset > timezone.now() + timedelta(minutes=50)
    assert report.requests == github.request_count()


def test_a_dry_run_on_a_new_database_writes_nothing(github, monkeypatch):
    from django.apps import apps

    monkeypatch.setenv("AGIRA_GITHUB_ENABLED", "true")
    monkeypatch.setenv("AGIRA_GITHUB_TOKEN", TOKEN)
    monkeypatch.setenv("AGIRA_GITHUB_BASE_URL", github.base_url)
    GitHubConfiguration.objects.all().delete()  # a new database: the admin was never opened
    issue, _pr = closed_issue_with_merged_pr(github)
    link(issue)
    models = list(apps.get_app_config("core").get_models())
    before = {model.__name__: model.objects.count() for model in models}

    report = worker.run(dry_run=True)

    assert report.exit_code == worker.EXIT_OK
    assert report.counts["items_moved"] == 1
    assert not GitHubConfiguration.objects.exists()
    after = {model.__name__: model.objects.count() for model in models}
    assert after == before


def test_prs_in_other_repositories_cost_no_request_on_an_idle_run(github):
    number, pulls = issue_with_prs_in_forks(github)
    mapping = link(number)
    assert worker.run().exit_code == worker.EXIT_OK
    assert ExternalIssueMapping.objects.filter(item=mapping.item, kind=ExternalKind.PR).count() == 3

    for _ in range(2):
        github.requests.clear()
        report = worker.run()
        assert report.exit_code == worker.EXIT_OK
        # REPO's listing, a 304; no request to any fork.
        assert [r.status for r in github.requests] == [304]
        assert report.requests == 1

    # A PR elsewhere is refreshed when its issue changes...
    github.update_pull("bob/widgets", pulls["bob/widgets"], state="closed")
    github.close_issue(REPO, number)
    worker.run()
    bob = ExternalIssueMapping.objects.get(repository="bob/widgets")
    assert bob.state == "closed"

    # ...and on the slower schedule when only the PR changed.
    github.update_pull("carol/widgets", pulls["carol/widgets"], merged=True)
    worker.run()
    carol = ExternalIssueMapping.objects.get(repository="carol/widgets")
    assert carol.merged is False  # not yet: its repository is not due
    for fork in FORKS:
        age_links(fork)
    worker.run()
    carol.refresh_from_db()
    assert carol.merged is True

    # Listed, the forks wait for their next turn again.
    github.requests.clear()
    assert worker.run().counts["repositories_later"] == 3
    assert [r.status for r in github.requests] == [304]


def test_a_pr_elsewhere_that_changed_before_its_repository_was_first_listed_is_refreshed(github):
    number = github.add_issue(REPO)
    github.add_repo("bob/widgets", fork_of=REPO)
    older = github.add_pull("bob/widgets", title="First try")
    newer = github.add_pull("bob/widgets", title="Second try")
    for pr in (older, newer):
        github.cross_reference(issue=(REPO, number), pr=("bob/widgets", pr))
    link(number)
    worker.run()
    github.update_pull("bob/widgets", older, merged=True)
    github.update_pull("bob/widgets", newer, title="Second try (edited)")  # the newest now

    # --repo lists a repository of pull requests only without waiting for its turn.
    report = worker.run(repository="bob/widgets")

    assert report.counts["repositories"] == 1
    assert ExternalIssueMapping.objects.get(repository="bob/widgets", number=older).merged
