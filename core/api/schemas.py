"""The API's parameters and answers, as pydantic models: the OpenAPI schema
at /api/openapi.json is generated from these."""

from datetime import datetime
from typing import Any, Literal

from ninja import Field, Schema

from core.services.index.context import (
    MAX_QUERY_CHARS,
    MAX_RELATED_LIMIT,
    MAX_SEARCH_LIMIT,
    MAX_SEARCH_PAGE,
    RELATED_LIMIT,
    SEARCH_PAGE_SIZE,
)
from core.services.index.documents import TYPE_NAMES

ObjectType = Literal[TYPE_NAMES]


def _absent_not_null(schema: dict) -> None:
    """An optional filter is absent from a query string or has a value: there
    is no null to send, so the schema offers none."""
    options = [option for option in schema.pop("anyOf", []) if option.get("type") != "null"]
    if options:
        schema.update(options[0])
    schema.pop("default", None)


class Error(Schema):
    detail: str = Field(description="What went wrong, in a sentence.")


class SearchParams(Schema):
    q: str = Field(
        max_length=MAX_QUERY_CHARS, description="The words to look for.", examples=["checkout"]
    )
    mode: Literal["hybrid", "keyword", "semantic"] = Field(
        "hybrid",
        description="keyword: BM25 over title and text; semantic: by meaning (vectors); "
        "hybrid: both, fused by reciprocal rank.",
    )
    type: ObjectType | None = Field(
        None, description="Only objects of this type.", json_schema_extra=_absent_not_null
    )
    project: int | None = Field(
        None,
        ge=1,
        description="Only objects of this project (its id).",
        json_schema_extra=_absent_not_null,
    )
    status: str | None = Field(
        None,
        max_length=50,
        description="Only objects with this status, e.g. Working.",
        json_schema_extra=_absent_not_null,
    )
    limit: int = Field(SEARCH_PAGE_SIZE, ge=1, le=MAX_SEARCH_LIMIT, description="Results per page.")
    page: int = Field(1, ge=1, le=MAX_SEARCH_PAGE, description="Which page, from 1.")


class SearchHit(Schema):
    type: str
    object_id: str
    item_number: str = Field(
        description="#<id> of the item the object is or belongs to; empty for a project, "
        "change, node or release."
    )
    title: str
    project_id: str
    status: str
    url: str = Field(description="The object's page (absolute URL).")
    score: float | None = Field(
        description="Hybrid: reciprocal rank fusion; keyword: BM25; semantic: cosine."
    )
    snippet: str = Field(description="Plain text around the first word of the query found.")


class SearchOut(Schema):
    hits: list[SearchHit]
    page: int
    has_next: bool
    total: int | None = Field(description="All matches, when the index can tell.")
    mode: str
    answered_by: str = Field(description="The index that answered, e.g. embedded index.")
    note: str = Field(description="Why the answer is not the usual one, or empty.")


class RelatedParams(Schema):
    limit: int = Field(RELATED_LIMIT, ge=1, le=MAX_RELATED_LIMIT, description="How many.")
    scope: Literal["all", "project"] = Field(
        "all", description="project: only objects of the same project."
    )
    open_only: bool = Field(
        False, description="Leave out what is closed, done, released or cancelled."
    )


class RelatedHit(Schema):
    type: str
    object_id: str
    title: str
    project_id: str
    project_name: str
    status: str
    url: str = Field(description="The object's page (absolute URL).")
    score: float = Field(
        description="Cosine similarity of the two objects' vectors. The list's order also "
        "counts the words an object shares with the title, so it is not always by score."
    )
    via: str = Field(
        description="comment or attachment when an item was found through one, else empty."
    )


class RelatedOut(Schema):
    hits: list[RelatedHit]
    answered_by: str
    note: str


class TargetStateOut(Schema):
    target: str = Field(description="weaviate, embedded or qdrant; empty when sync is off.")
    label: str
    state: Literal["green", "amber", "red", "grey"] = Field(
        description="green: stored and up to date; amber: a change is pending; red: missing "
        "or failed; grey: sync off or the index unreachable."
    )
    summary: str
    reason: str
    last_synced_at: datetime | None = Field(description="When Agira last wrote it.")
    document: dict[str, Any] | None = Field(
        description="The document as this index stores it, or null when it holds none "
        "(or could not be asked)."
    )


class ObjectOut(Schema):
    type: str
    object_id: str
    document: dict[str, Any] = Field(description="The document as Agira would write it now.")
    targets: list[TargetStateOut]
