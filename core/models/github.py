from django.db import models

from .base import TimeStampedModel
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
