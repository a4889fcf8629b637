"""Reads: functions that return QuerySets for the pages."""

from django.db.models import Count, Q, QuerySet

from core.models import Item, ItemStatus, Project

# The project cards count the open part of the workflow; Closed is left out.
CARD_STATUSES = [
    (ItemStatus.INBOX, "inbox", "bi-inbox"),
    (ItemStatus.BACKLOG, "backlog", "bi-stack"),
    (ItemStatus.WORKING, "working", "bi-hammer"),
    (ItemStatus.TESTING, "testing", "bi-clipboard-check"),
    (ItemStatus.READY_FOR_RELEASE, "ready", "bi-rocket-takeoff"),
]


def project_list(*, organisation_id: int | None = None, status: str = "") -> QuerySet[Project]:
    """Projects with one `count_<key>` annotation per card status, in one query."""
    counts = {
        f"count_{key}": Count("items", filter=Q(items__status=status_value))
        for status_value, key, _icon in CARD_STATUSES
    }
    projects = Project.objects.select_related("organisation").annotate(**counts)
    if organisation_id:
        projects = projects.filter(organisation_id=organisation_id)
    if status:
        projects = projects.filter(status=status)
    return projects


def item_list(
    *, project_id: int | None = None, status: str = "", type: str = "", q: str = ""
) -> QuerySet[Item]:
    items = Item.objects.select_related("project", "assignee")
    if project_id:
        items = items.filter(project_id=project_id)
    if status:
        items = items.filter(status=status)
    if type:
        items = items.filter(type=type)
    if q:
        items = items.filter(Q(title__icontains=q) | Q(description__icontains=q))
    return items
