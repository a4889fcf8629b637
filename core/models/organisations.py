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
