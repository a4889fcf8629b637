from django.conf import settings
from django.db import models
from django.urls import reverse

from .base import TimeStampedModel


class Organisation(TimeStampedModel):
    name = models.CharField(max_length=200, unique=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    """What a member of an organisation may do there, each role all that the
    one before it may (see core/policy.py)."""

    VIEWER = "viewer", "Viewer"
    MEMBER = "member", "Member"
    MAINTAINER = "maintainer", "Maintainer"
    OWNER = "owner", "Owner"

    @classmethod
    def rank(cls, role: str) -> int:
        return [r.value for r in cls].index(role) if role in cls.values else -1


class Membership(TimeStampedModel):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    organisation = models.ForeignKey(
        Organisation, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.MEMBER)

    class Meta:
        ordering = ["organisation__name", "user__username"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "organisation"], name="membership_unique_user_organisation"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organisation} ({self.get_role_display()})"


class ProjectStatus(models.TextChoices):
    PLANNED = "Planned", "Planned"
    ACTIVE = "Active", "Active"
    ON_HOLD = "On Hold", "On hold"
    COMPLETED = "Completed", "Completed"
    ARCHIVED = "Archived", "Archived"


class Project(TimeStampedModel):
    organisation = models.ForeignKey(
        Organisation, on_delete=models.PROTECT, related_name="projects"
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(
        max_length=20, choices=ProjectStatus.choices, default=ProjectStatus.ACTIVE
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organisation", "name"], name="project_unique_name_per_organisation"
            )
        ]
        indexes = [models.Index(fields=["status", "name"])]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("core:project-detail", args=[self.pk])
