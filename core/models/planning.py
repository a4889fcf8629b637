from django.core.exceptions import ValidationError
from django.db import models
from django.urls import reverse

from .base import TimeStampedModel
from .organisations import Project


class ChangeStatus(models.TextChoices):
    DRAFT = "Draft", "Draft"
    PLANNED = "Planned", "Planned"
    IN_PROGRESS = "In Progress", "In progress"
    DONE = "Done", "Done"
    CANCELLED = "Cancelled", "Cancelled"


class ChangeRisk(models.TextChoices):
    LOW = "Low", "Low"
    MEDIUM = "Medium", "Medium"
    HIGH = "High", "High"
    CRITICAL = "Critical", "Critical"


class Change(TimeStampedModel):
    """A change-management record: what will change in production, and its risk."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="changes")
    title = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    status = models.CharField(
        max_length=20, choices=ChangeStatus.choices, default=ChangeStatus.DRAFT
    )
    risk = models.CharField(max_length=20, choices=ChangeRisk.choices, default=ChangeRisk.LOW)

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [models.Index(fields=["project", "status"])]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("core:project-detail", args=[self.project_id]) + "#changes"


class NodeType(models.TextChoices):
    SYSTEM = "system", "System"
    SERVICE = "service", "Service"
    COMPONENT = "component", "Component"
    MODULE = "module", "Module"
    DATABASE = "database", "Database"
    INTERFACE = "interface", "Interface"


class Node(TimeStampedModel):
    """A node of the project's architecture tree."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="nodes")
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=20, choices=NodeType.choices, default=NodeType.COMPONENT)
    description = models.TextField(blank=True)
    parent = models.ForeignKey(
        "self", on_delete=models.CASCADE, null=True, blank=True, related_name="children"
    )

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["project", "parent"])]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("core:project-detail", args=[self.project_id]) + "#nodes"

    def clean(self) -> None:
        if self.parent_id is None:
            return
        if self.parent.project_id != self.project_id:
            raise ValidationError({"parent": "The parent node must belong to the same project."})
        # Walk up from the parent: meeting ourselves means the tree would loop.
        seen: set[int] = set()
        node: Node | None = self.parent
        while node is not None and node.pk not in seen:
            if self.pk is not None and node.pk == self.pk:
                raise ValidationError({"parent": "A node cannot be its own ancestor."})
            seen.add(node.pk)
            node = node.parent


class ReleaseStatus(models.TextChoices):
    PLANNED = "Planned", "Planned"
    IN_PROGRESS = "In Progress", "In progress"
    RELEASED = "Released", "Released"
    CANCELLED = "Cancelled", "Cancelled"


class Release(TimeStampedModel):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="releases")
    version = models.CharField(max_length=50)
    status = models.CharField(
        max_length=20, choices=ReleaseStatus.choices, default=ReleaseStatus.PLANNED
    )
    planned_date = models.DateField(null=True, blank=True)
    released_date = models.DateField(null=True, blank=True)
    notes = models.TextField(blank=True)

    class Meta:
        ordering = ["-planned_date", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["project", "version"], name="release_unique_version_per_project"
            )
        ]

    def __str__(self) -> str:
        return f"{self.project} {self.version}"

    def get_absolute_url(self) -> str:
        return reverse("core:project-detail", args=[self.project_id]) + "#releases"
