"""What the sync dashboard shows of the GitHub worker."""

from dataclasses import dataclass, field

from django.db.models import Count

from core.models import ExternalIssueMapping, GitHubRepository, GitHubSyncRun, MappingSyncState

from .config import github_settings

RUNS_SHOWN = 5
FAILED_SHOWN = 10


@dataclass
class GitHubPanel:
    problem: str | None  # why the worker cannot run, or None
    runs: list[GitHubSyncRun] = field(default_factory=list)
    by_state: dict[str, int] = field(default_factory=dict)
    failed: list[ExternalIssueMapping] = field(default_factory=list)
    failed_total: int = 0
    # Repositories GitHub did not answer for at their last listing (deleted, no access).
    failed_repositories: list[GitHubRepository] = field(default_factory=list)


def github_panel() -> GitHubPanel:
    try:
        problem = github_settings().problem
    except ValueError as exc:  # an environment override that does not parse
        problem = str(exc)
    rows = ExternalIssueMapping.objects.order_by().values_list("sync_state").annotate(n=Count("pk"))
    by_state = dict.fromkeys(MappingSyncState.values, 0) | dict(rows)
    failed = ExternalIssueMapping.objects.filter(
        sync_state__in=[MappingSyncState.FAILED, MappingSyncState.BACKOFF]
    ).order_by("-last_synced_at", "pk")
    return GitHubPanel(
        problem=problem,
        runs=list(GitHubSyncRun.objects.order_by("-started_at", "-id")[:RUNS_SHOWN]),
        by_state=by_state,
        failed=list(failed.select_related("item")[:FAILED_SHOWN]),
        failed_total=by_state[MappingSyncState.FAILED] + by_state[MappingSyncState.BACKOFF],
        failed_repositories=list(
            GitHubRepository.objects.exclude(last_error="").order_by("full_name")[:FAILED_SHOWN]
        ),
    )


def retry_failed_links() -> int:
    """Queue every failed or backing-off link, and every backing-off repository, for
    the next run; returns how many."""
    links = ExternalIssueMapping.objects.filter(
        sync_state__in=[MappingSyncState.FAILED, MappingSyncState.BACKOFF]
    ).update(sync_state=MappingSyncState.PENDING, sync_attempts=0, next_attempt_at=None)
    # The error stays shown until a listing succeeds.
    repositories = GitHubRepository.objects.exclude(failures=0, next_attempt_at=None).update(
        failures=0, next_attempt_at=None
    )
    return links + repositories
