"""The sync engine: keeps every Agira object in the vector index.

Public entry points (see `service.py` and `engine.py`)::

    from core.services.index import (
        upsert_instance, delete_instance, exists_instance, fetch_object,
        sync_project, mark_for_sync, drain, sync_paused, sync_disabled,
    )

Only the modules under `targets/` import an index client.
"""

from .config import sync_disabled, sync_paused, weaviate_settings
from .documents import content_hash, document_for, get_weaviate_type, object_uuid
from .engine import drain, mark_for_sync
from .service import (
    delete_instance,
    exists_instance,
    exists_object,
    fetch_object,
    fetch_object_by_type,
    primary_target,
    search_objects,
    sync_project,
    upsert_instance,
)
from .targets.base import TargetUnavailable

__all__ = [
    "TargetUnavailable",
    "content_hash",
    "delete_instance",
    "document_for",
    "drain",
    "exists_instance",
    "exists_object",
    "fetch_object",
    "fetch_object_by_type",
    "get_weaviate_type",
    "mark_for_sync",
    "object_uuid",
    "primary_target",
    "search_objects",
    "sync_disabled",
    "sync_paused",
    "sync_project",
    "upsert_instance",
    "weaviate_settings",
]
