from django.db import models

from .base import SingletonModel, TimeStampedModel
from .items import Item


class ExternalProvider(models.TextChoices):
    GITHUB = "github", "GitHub"


class ExternalKind(models.TextChoices):
    ISSUE = "issue", "Issue"
    PR = "pr", "Pull request"


class ExternalState(models.TextChoices):
    OPEN = "open", "Open"
    CLOSED = "closed", "Closed"


class MappingSyncState(models.TextChoices):
    """Where the GitHub worker stands with one mapping."""

    PENDING = "pending", "Not yet synced"
    OK = "ok", "Synced"
    BACKOFF = "backoff", "Retrying after an error"
    FAILED = "failed", "Failed (not retried automatically)"


class MappingAttention(models.TextChoices):
    """Why a mapping needs a human: the worker saw something it does not act on."""

    NONE = "", "-"
    NOT_PLANNED = "not_planned", "Closed as not planned: status left alone"
    DUPLICATE = "duplicate", "Closed as duplicate: status left alone"
    REOPENED = "reopened", "Reopened after the item reached Testing"


class ExternalIssueMapping(TimeStampedModel):
    """Links an item to a GitHub issue or pull request."""

    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="external_mappings")
    provider = models.CharField(
        max_length=20, choices=ExternalProvider.choices, default=ExternalProvider.GITHUB
    )
    repository = models.CharField(max_length=200, help_text="owner/name")
    number = models.PositiveIntegerField()
    kind = models.CharField(max_length=10, choices=ExternalKind.choices, default=ExternalKind.ISSUE)
    url = models.URLField(max_length=500, blank=True)
    state = models.CharField(max_length=10, choices=ExternalState.choices, blank=True)
    state_reason = models.CharField(max_length=30, blank=True)
    title = models.CharField(max_length=500, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)

    # Bookkeeping for the GitHub worker.
    external_id = models.BigIntegerField(null=True, blank=True, help_text="GitHub's numeric id")
    external_updated_at = models.DateTimeField(null=True, blank=True)
    merged = models.BooleanField(null=True, blank=True, help_text="Pull requests only")
    sync_state = models.CharField(
        max_length=10, choices=MappingSyncState.choices, default=MappingSyncState.PENDING
    )
    sync_error = models.TextField(blank=True)
    sync_attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    # What GitHub said, kept for the index document (refreshed when the state changes).
    body = models.TextField(blank=True)
    labels = models.JSONField(default=list, blank=True)
    changed_files = models.JSONField(default=list, blank=True, help_text="Pull requests only")
    commit_messages = models.JSONField(default=list, blank=True, help_text="Pull requests only")
    external_created_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closes_issue = models.BooleanField(
        default=False, help_text="Pull requests only: this one closed the item's issue."
    )
    attention = models.CharField(
        max_length=20, choices=MappingAttention.choices, blank=True, default=""
    )

    class Meta:
        ordering = ["repository", "number"]
        constraints = [
            models.UniqueConstraint(
                fields=["item", "provider", "repository", "number"],
                name="mapping_unique_per_item",
            )
        ]
        indexes = [
            models.Index(fields=["provider", "repository", "number"]),
            models.Index(fields=["sync_state", "next_attempt_at"]),
        ]

    def __str__(self) -> str:
        marker = "#" if self.kind == ExternalKind.ISSUE else "!"
        return f"{self.repository}{marker}{self.number}"

    def get_absolute_url(self) -> str:
        return self.url or self.item.get_absolute_url()


class GitHubConfiguration(SingletonModel):
    """The GitHub connection, edited in the admin. A singleton (pk=1).

    Environment variables (`AGIRA_GITHUB_*`, see `.env.example`) override every
    field; the admin shows which ones are overridden. The token is write-only.
    """

    enabled = models.BooleanField(default=False)
    base_url = models.CharField(
        "API base URL",
        max_length=300,
        default="https://api.github.com",
        help_text="https://api.github.com, or https://HOST/api/v3 for GitHub Enterprise Server.",
    )
    token = models.CharField(
        max_length=500,
        blank=True,
        help_text="Write-only: never shown again. A fine-grained token with read access "
        "to issues and pull requests is enough.",
    )
    timeout = models.FloatField(default=15.0, help_text="Seconds to wait for one response.")
    max_rate_limit_wait = models.PositiveIntegerField(
        default=60,
        help_text="Longest wait for a rate-limit reset, in seconds. A longer one stops the "
        "run cleanly; the next run continues.",
    )
    batch_size = models.PositiveIntegerField(
        default=200, help_text="Most mappings looked at in one run; the rest wait for the next."
    )
    pr_repository_minutes = models.PositiveIntegerField(
        "list repositories of pull requests only every",
        default=60,
        help_text="Minutes. A repository where items link pull requests but no issue (a "
        "fork, say) is listed at most this often; its pull requests are also refreshed "
        "whenever the issue they reference changes.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "GitHub configuration"
        verbose_name_plural = "GitHub configuration"

    def __str__(self) -> str:
        return "GitHub configuration"


class GitHubRepository(models.Model):
    """What the worker knows of one tracked repository between runs: where its
    incremental listing stands (`checkpoint`, `etag`) and where it moved."""

    full_name = models.CharField(max_length=200, unique=True, help_text="owner/name")
    github_id = models.BigIntegerField(null=True, blank=True)
    checkpoint = models.DateTimeField(
        null=True, blank=True, help_text="Issues updated at or after this are listed next run."
    )
    etag = models.CharField(max_length=200, blank=True)
    previous_names = models.JSONField(default=list, blank=True)
    last_checked_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When a listing last found changes (for a repository of pull requests "
        "only: when it was last listed).",
    )
    last_error = models.TextField(
        blank=True, help_text="What GitHub said the last time it failed; cleared by a listing."
    )
    # A repository GitHub does not answer for (deleted, renamed away, no access) backs off
    # like a failing link instead of costing a request every run.
    failures = models.PositiveIntegerField(default=0, help_text="Failed runs in a row.")
    next_attempt_at = models.DateTimeField(
        null=True, blank=True, help_text="Backing off after a failure: not listed before this."
    )

    class Meta:
        ordering = ["full_name"]
        verbose_name = "GitHub repository"
        verbose_name_plural = "GitHub repositories"

    def __str__(self) -> str:
        return self.full_name


class GitHubRunStatus(models.TextChoices):
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    PARTIAL = "partial", "Completed with failures"
    RATE_LIMITED = "rate_limited", "Stopped by the rate limit"
    FAILED = "failed", "Failed"


class GitHubSyncRun(models.Model):
    """One run of `manage.py sync_github`; `lock` works as in `ReconcileRun`."""

    lock = models.CharField(max_length=20, null=True, blank=True, unique=True)
    status = models.CharField(
        max_length=12, choices=GitHubRunStatus.choices, default=GitHubRunStatus.IN_PROGRESS
    )
    dry_run = models.BooleanField(default=False)
    options = models.JSONField(default=dict, blank=True)
    # {"repositories": n, "unchanged_repositories": n, "mappings": n, "items_moved": n, ...}
    counts = models.JSONField(default=dict, blank=True)
    requests = models.PositiveIntegerField(default=0, help_text="Requests sent to GitHub")
    rate_limit_remaining = models.IntegerField(null=True, blank=True)
    rate_limit_reset = models.DateTimeField(null=True, blank=True)
    next_run_after = models.DateTimeField(
        null=True, blank=True, help_text="Set when the rate limit stopped the run."
    )
    errors = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField()
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-started_at", "-id"]
        verbose_name = "GitHub sync run"

    def __str__(self) -> str:
        return f"GitHub sync #{self.pk}: {self.status}"
