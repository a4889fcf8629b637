import uuid

from django.conf import settings
from django.db import models
from django.urls import reverse

from .base import TimeStampedModel
from .organisations import Project


class ItemStatus(models.TextChoices):
    """The workflow, in order. The GitHub worker moves closed issues to Testing."""

    INBOX = "Inbox", "Inbox"
    BACKLOG = "Backlog", "Backlog"
    WORKING = "Working", "Working"
    TESTING = "Testing", "Testing"
    READY_FOR_RELEASE = "Ready for Release", "Ready for Release"
    CLOSED = "Closed", "Closed"

    @classmethod
    def rank(cls, status: str) -> int:
        """Position in the workflow, so code can ask "is this at or past Testing?"."""
        return cls.values.index(status)


class ItemType(models.TextChoices):
    BUG = "bug", "Bug"
    FEATURE = "feature", "Feature"
    TASK = "task", "Task"


class Item(TimeStampedModel):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items")
    title = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    type = models.CharField(max_length=20, choices=ItemType.choices, default=ItemType.TASK)
    status = models.CharField(max_length=20, choices=ItemStatus.choices, default=ItemStatus.INBOX)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_items",
    )

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [
            models.Index(fields=["project", "status"]),
            models.Index(fields=["status", "-updated_at"]),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"

    def get_absolute_url(self) -> str:
        return reverse("core:item-detail", args=[self.pk])


class ItemComment(TimeStampedModel):
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="item_comments",
    )
    body = models.TextField()

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"Comment {self.pk} on #{self.item_id}"

    def get_absolute_url(self) -> str:
        return reverse("core:item-detail", args=[self.item_id]) + "#comments"


def attachment_upload_to(instance: "Attachment", filename: str) -> str:
    # The stored name is ours, not the uploader's: no path tricks, no clashes.
    # The original name is kept in `original_filename` for the download.
    return f"attachments/{instance.item_id}/{uuid.uuid4().hex}"


class Attachment(TimeStampedModel):
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="attachments")
    file = models.FileField(upload_to=attachment_upload_to, max_length=255)
    original_filename = models.CharField(max_length=255)
    content_type = models.CharField(max_length=255, default="application/octet-stream")
    size_bytes = models.BigIntegerField()
    sha256 = models.CharField(max_length=64, db_index=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="attachments",
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.original_filename

    def get_absolute_url(self) -> str:
        return reverse("core:attachment-download", args=[self.pk])
