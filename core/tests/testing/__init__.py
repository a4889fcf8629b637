"""Tests of ``core.testing``; helpers shared by the Weaviate test-server suites."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from weaviate.classes.config import Configure, DataType, Property

AGIRA_TEXT_FIELDS = (
    "object_id",
    "type",
    "title",
    "text",
    "status",
    "project_id",
    "org_id",
    "parent_object_id",
    "url",
    "source_system",
    "external_key",
    "mime_type",
    "sha256",
)
COLLECTION = "AgiraObject"
T0 = dt.datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC)


def agira_properties() -> list[Property]:
    """A collection shaped like Agira's: text fields, one int, two dates."""
    return [
        *(Property(name=name, data_type=DataType.TEXT) for name in AGIRA_TEXT_FIELDS),
        Property(name="size_bytes", data_type=DataType.INT),
        Property(name="created_at", data_type=DataType.DATE),
        Property(name="updated_at", data_type=DataType.DATE),
    ]


def create_agira_collection(client: Any, name: str = COLLECTION, **kwargs: Any) -> Any:
    kwargs.setdefault("vector_config", Configure.Vectors.self_provided())
    return client.collections.create(name, properties=agira_properties(), **kwargs)


def agira_object(i: int, **overrides: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "object_id": f"item-{i}",
        "type": "item",
        "title": f"Item number {i}",
        "text": f"Body of item {i}",
        "status": "open" if i % 2 == 0 else "closed",
        "project_id": f"project-{i % 3}",
        "org_id": "org-1",
        "parent_object_id": "",
        "url": f"/items/{i}",
        "source_system": "agira",
        "external_key": f"AG-{i}",
        "mime_type": "text/plain",
        "sha256": f"{i:064x}",
        "size_bytes": i * 10,
        "created_at": T0 + dt.timedelta(minutes=i),
        "updated_at": T0 + dt.timedelta(minutes=i, seconds=30),
    }
    props.update(overrides)
    return props


def uid(i: int) -> str:
    """A stable uuid per number, like Agira's uuid5 object ids."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"agira-test-{i}"))
