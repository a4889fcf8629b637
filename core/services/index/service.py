"""The public service functions, with the names seed 000 gives them.

Views and commands use these, never a target or a client. Reads ask the
primary target (the first active one) and raise `TargetUnavailable` when no
target can answer, with a message fit to show.
"""

from django.db.models import Model

from core.models import (
    Attachment,
    Change,
    ExternalIssueMapping,
    Item,
    ItemComment,
    Node,
    Project,
    Release,
)

from .context import (  # noqa: F401 - the search API lives in context.py
    MAX_SEARCH_LIMIT,
    MAX_SEARCH_PAGE,
    SEARCH_MODES,
    SEARCH_PAGE_SIZE,
    SearchResults,
    embed_query,
    search_objects,
)
from .documents import OBJECT_TYPES, get_weaviate_type, object_uuid
from .engine import TargetReport, active_targets, delete_now, index_targets, write_now
from .targets.base import Target, TargetUnavailable, probe

__all__ = [
    "check_weaviate_connection",
    "delete_instance",
    "exists_instance",
    "exists_object",
    "fetch_object",
    "fetch_object_by_type",
    "get_weaviate_type",
    "primary_target",
    "search_objects",
    "sync_project",
    "upsert_instance",
]


def primary_target() -> Target:
    targets = index_targets()
    if not targets:
        raise TargetUnavailable("No index is enabled: sync is switched off.", reason="disabled")
    return targets[0]


def _check_type(object_type: str) -> None:
    if object_type not in OBJECT_TYPES:
        raise ValueError(f"Unknown object type {object_type!r}")


def exists_object(object_type: str, object_id: str | int) -> bool:
    _check_type(object_type)
    oid = object_uuid(object_type, object_id)
    return oid in primary_target().exists_many([oid])


def exists_instance(instance: Model) -> bool:
    return exists_object(get_weaviate_type(instance), instance.pk)


def fetch_object_by_type(object_type: str, object_id: str | int) -> dict | None:
    """The stored document, or None if the index does not hold it."""
    _check_type(object_type)
    return primary_target().fetch(object_uuid(object_type, object_id))


def fetch_object(instance: Model) -> dict | None:
    return fetch_object_by_type(get_weaviate_type(instance), instance.pk)


def upsert_instance(instance: Model) -> dict[str, TargetReport]:
    """Write one object to every active target now (a manual push)."""
    return write_now([instance])


def delete_instance(instance: Model) -> dict[str, TargetReport]:
    return delete_now(get_weaviate_type(instance), str(instance.pk))


def sync_project(*, project_id: int | str, batch_size: int = 500) -> dict[str, int]:
    """Write a project and everything in it to every active target now.

    Returns how many objects of each type were written (to the primary target).
    """
    project = Project.objects.get(pk=project_id)
    querysets = {
        "project": Project.objects.filter(pk=project.pk),
        "item": Item.objects.filter(project=project),
        "comment": ItemComment.objects.filter(item__project=project),
        "attachment": Attachment.objects.filter(item__project=project),
        "change": Change.objects.filter(project=project),
        "node": Node.objects.filter(project=project),
        "release": Release.objects.filter(project=project),
        "github_issue": ExternalIssueMapping.objects.filter(item__project=project, kind="issue"),
        "github_pr": ExternalIssueMapping.objects.filter(item__project=project, kind="pr"),
    }
    targets = active_targets()
    if not targets:
        raise TargetUnavailable("No index is enabled: sync is switched off.", reason="disabled")
    counts: dict[str, int] = {}
    for object_type, queryset in querysets.items():
        spec = OBJECT_TYPES[object_type]
        queryset = queryset.select_related(*spec.related).order_by("pk")
        written = 0
        batch: list[Model] = []
        for instance in queryset.iterator(chunk_size=batch_size):
            batch.append(instance)
            if len(batch) >= batch_size:
                written += _write_batch(batch, targets)
                batch = []
        if batch:
            written += _write_batch(batch, targets)
        counts[object_type] = written
    return counts


def _write_batch(batch: list[Model], targets: list[Target]) -> int:
    reports = write_now(batch, targets=targets)
    primary = reports[targets[0].name]
    if primary.error:
        raise TargetUnavailable(primary.error)
    return primary.written


def check_weaviate_connection() -> tuple[bool, str]:
    """Connect with the current settings (even if disabled) and say what happened.

    A fresh client, closed afterwards: the answer reflects the settings as
    saved, not a connection made earlier.
    """
    from dataclasses import replace

    from .config import weaviate_settings
    from .targets.weaviate import WeaviateTarget

    try:
        config = weaviate_settings()
    except ValueError as exc:
        return False, str(exc)
    try:
        info, count = probe(WeaviateTarget(replace(config, enabled=True)))
    except TargetUnavailable as exc:
        return False, str(exc)
    readiness = "ready" if info.ready else "not ready"
    return True, (
        f"Connected to Weaviate {info.version} at {config.describe()}: {readiness}; "
        f"collection {config.collection_name} holds {count} objects."
    )
