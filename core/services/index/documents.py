"""What goes into the index: one AgiraObject document per Agira object.

Every type has a serializer producing exactly the AgiraObject fields, and a
deterministic id::

    object_uuid(type, object_id) == uuid5(AGIRA_NAMESPACE, f"{type}:{object_id}")

with the fixed namespace below, so a write is an idempotent upsert and a
lookup needs no database. Changing the namespace would orphan every object in
every index: it is a constant, never configuration.
"""

import functools
import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePosixPath

from django.conf import settings
from django.db.models import Model, QuerySet
from django.urls import get_script_prefix, reverse

from core.models import (
    Attachment,
    Change,
    ExternalIssueMapping,
    ExternalKind,
    Item,
    ItemComment,
    Node,
    Project,
    Release,
)

logger = logging.getLogger("agira.index")

AGIRA_NAMESPACE = uuid.UUID("6f1c1a54-3b0e-5d8e-9a57-2b9d0c4e7a11")

FIELDS = (
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
    "size_bytes",
    "sha256",
    "created_at",
    "updated_at",
)
DATE_FIELDS = ("created_at", "updated_at")
INT_FIELDS = ("size_bytes",)
# Left out of the content hash: a save that changes nothing else still bumps
# updated_at, and must not cause a write.
UNHASHED_FIELDS = ("updated_at",)

TEXT_EXTENSIONS = {
    ".txt",
    ".md",
    ".markdown",
    ".rst",
    ".csv",
    ".tsv",
    ".json",
    ".yaml",
    ".yml",
    ".toml",
    ".ini",
    ".cfg",
    ".conf",
    ".log",
    ".xml",
    ".html",
    ".htm",
    ".css",
    ".sql",
    ".sh",
    ".py",
    ".js",
    ".ts",
    ".tsx",
    ".jsx",
    ".java",
    ".kt",
    ".go",
    ".rs",
    ".c",
    ".h",
    ".cpp",
    ".hpp",
    ".cs",
    ".rb",
    ".php",
    ".swift",
    ".scala",
    ".pl",
    ".r",
    ".lua",
    ".diff",
    ".patch",
}
TEXT_MIME_TYPES = {
    "application/json",
    "application/xml",
    "application/x-yaml",
    "application/yaml",
    "application/javascript",
    "application/x-sh",
    "application/sql",
    "application/toml",
}


# Primary keys are 64-bit integers: a longer run of digits is no object's id.
MAX_ID_DIGITS = 18


def is_object_id(value: str) -> bool:
    """Whether a text from a URL can be an object's id: ASCII digits that fit
    a 64-bit primary key ("²" is a digit to str.isdigit, not to int)."""
    return 0 < len(value) <= MAX_ID_DIGITS and value.isascii() and value.isdigit()


def object_uuid(object_type: str, object_id: str | int) -> uuid.UUID:
    """The index id of an object: stable for ever, the same in every target."""
    return uuid.uuid5(AGIRA_NAMESPACE, f"{object_type}:{object_id}")


def truncate(text: str, limit: int | None = None) -> str:
    """Cap a text, saying visibly how much was cut."""
    limit = settings.AGIRA_INDEX_MAX_TEXT_CHARS if limit is None else limit
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n\n[truncated: {limit:,} of {len(text):,} characters shown]"


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


@functools.lru_cache(maxsize=64)
def _url_pattern(name: str, prefix: str) -> str:
    marker = 987654321
    return reverse(name, args=[marker]).replace(str(marker), "{}")


def _url(name: str, pk) -> str:
    """The page of an object, like get_absolute_url() but reversing each URL
    name once (reverse() is a third of serializing 100,000 objects)."""
    return _url_pattern(name, get_script_prefix()).format(pk)


def _id(value) -> str | None:
    return None if value is None else str(value)


def _base(obj_type: str, obj: Model, **fields) -> dict:
    doc = dict.fromkeys(FIELDS)
    doc.update(
        object_id=str(obj.pk),
        type=obj_type,
        source_system="agira",
        created_at=_iso(getattr(obj, "created_at", None)),
        updated_at=_iso(getattr(obj, "updated_at", None)),
    )
    doc.update(fields)
    doc["title"] = doc["title"] or ""
    doc["text"] = doc["text"] or ""
    return doc


def serialize_item(item: Item) -> dict:
    return _base(
        "item",
        item,
        title=item.title,
        text=truncate(f"Status: {item.status}\n\n{item.description}"),
        status=item.status,
        project_id=_id(item.project_id),
        org_id=_id(item.project.organisation_id),
        url=_url("core:item-detail", item.pk),
    )


def serialize_comment(comment: ItemComment) -> dict:
    item = comment.item
    author = comment.author.get_username() if comment.author_id else "unknown"
    return _base(
        "comment",
        comment,
        # Children carry only their item's id and project, never its title or
        # status: editing an item then changes no child document.
        title=f"Comment by {author} on #{item.pk}",
        text=truncate(comment.body),
        project_id=_id(item.project_id),
        org_id=_id(item.project.organisation_id),
        parent_object_id=_id(item.pk),
        url=f"{_url('core:item-detail', item.pk)}#comment-{comment.pk}",
    )


def is_text_like(filename: str, content_type: str) -> bool:
    content_type = (content_type or "").split(";")[0].strip().lower()
    if content_type.startswith("text/") or content_type in TEXT_MIME_TYPES:
        return True
    return PurePosixPath(filename.lower()).suffix in TEXT_EXTENSIONS


def attachment_text(attachment: Attachment) -> str:
    """The text of a text-like file (UTF-8, bad bytes replaced), else ''.

    Binaries are indexed by their metadata only. Only as much of the file is
    read as the cap can keep, plus one byte to know whether to say it was cut.
    """
    if not is_text_like(attachment.original_filename, attachment.content_type):
        return ""
    limit = settings.AGIRA_INDEX_MAX_TEXT_CHARS
    try:
        with attachment.file.open("rb") as handle:
            raw = handle.read(limit * 4 + 1)
    except (FileNotFoundError, OSError) as exc:
        logger.warning(
            "Attachment %s: file unreadable (%s); indexing metadata only", attachment.pk, exc
        )
        return ""
    if b"\x00" in raw[:8192]:
        # Declared as text, but NUL bytes say binary: metadata only.
        return ""
    text = raw.decode("utf-8", errors="replace")
    if len(text) > limit or attachment.size_bytes > len(raw):
        shown = text[:limit]
        return f"{shown}\n\n[truncated: {len(shown):,} characters of a {attachment.size_bytes:,}-byte file shown]"  # noqa: E501
    return text


def serialize_attachment(attachment: Attachment) -> dict:
    item = attachment.item
    return _base(
        "attachment",
        attachment,
        title=attachment.original_filename,
        text=attachment_text(attachment),
        project_id=_id(item.project_id),
        org_id=_id(item.project.organisation_id),
        parent_object_id=_id(item.pk),
        url=_url("core:attachment-download", attachment.pk),
        mime_type=attachment.content_type,
        size_bytes=attachment.size_bytes,
        sha256=attachment.sha256,
    )


def serialize_project(project: Project) -> dict:
    return _base(
        "project",
        project,
        title=project.name,
        text=truncate(project.description),
        status=project.status,
        project_id=_id(project.pk),
        org_id=_id(project.organisation_id),
        url=_url("core:project-detail", project.pk),
    )


def serialize_change(change: Change) -> dict:
    return _base(
        "change",
        change,
        title=change.title,
        text=truncate(f"Status: {change.status}\nRisk: {change.risk}\n\n{change.description}"),
        status=change.status,
        project_id=_id(change.project_id),
        org_id=_id(change.project.organisation_id),
        url=_url("core:project-detail", change.project_id) + "#changes",
    )


def serialize_node(node: Node) -> dict:
    return _base(
        "node",
        node,
        title=node.name,
        text=truncate(f"Type: {node.get_type_display()}\n\n{node.description}"),
        project_id=_id(node.project_id),
        org_id=_id(node.project.organisation_id),
        parent_object_id=_id(node.parent_id),
        url=_url("core:project-detail", node.project_id) + "#nodes",
    )


def serialize_release(release: Release) -> dict:
    return _base(
        "release",
        release,
        title=f"{release.project.name} {release.version}",
        text=truncate(
            f"Version {release.version}\nStatus: {release.status}\n"
            f"Planned: {release.planned_date or '-'}\nReleased: {release.released_date or '-'}"
            f"\n\n{release.notes}"
        ),
        status=release.status,
        project_id=_id(release.project_id),
        org_id=_id(release.project.organisation_id),
        url=_url("core:project-detail", release.project_id) + "#releases",
    )


# The line of a pull request's state paragraph that says it closed the item's
# issue (the graph reads it: CLOSES, else REFERENCES).
PR_CLOSED_THE_ISSUE = "Closed the linked issue"


def serialize_mapping(mapping: ExternalIssueMapping) -> dict:
    """A GitHub issue or pull request as the worker last stored it (seed 002)."""
    item = mapping.item
    is_pr = mapping.kind == ExternalKind.PR
    state = mapping.state or "unknown"
    lines = [f"State: {state}" + (f" ({mapping.state_reason})" if mapping.state_reason else "")]
    if is_pr and mapping.merged is not None:
        lines.append(f"Merged: {'yes' if mapping.merged else 'no'}")
    if is_pr and mapping.closes_issue:
        lines.append(PR_CLOSED_THE_ISSUE)
    if mapping.labels:
        lines.append("Labels: " + ", ".join(map(str, mapping.labels)))
    lines.append(f"Linked item: #{item.pk}")
    parts = ["\n".join(lines)]
    if mapping.body:
        parts.append(mapping.body)
    if mapping.changed_files:
        parts.append("Changed files:\n" + "\n".join(map(str, mapping.changed_files)))
    if mapping.commit_messages:
        parts.append("Commits:\n" + "\n---\n".join(map(str, mapping.commit_messages)))
    return _base(
        "github_pr" if is_pr else "github_issue",
        mapping,
        title=mapping.title or str(mapping),
        text=truncate("\n\n".join(parts)),
        status=mapping.state or None,
        project_id=_id(item.project_id),
        org_id=_id(item.project.organisation_id),
        parent_object_id=_id(item.pk),
        url=mapping.url or _url("core:item-detail", item.pk),
        source_system=mapping.provider,
        external_key=f"{mapping.repository}#{mapping.number}",
        created_at=_iso(mapping.external_created_at or mapping.created_at),
        updated_at=_iso(mapping.external_updated_at or mapping.updated_at),
    )


@dataclass(frozen=True)
class ObjectType:
    """One kind of object in the index: its model, how to load and serialize it."""

    name: str
    model: type[Model]
    serialize: Callable[[Model], dict]
    related: tuple[str, ...]
    filters: tuple[tuple[str, object], ...] = ()

    def queryset(self) -> QuerySet:
        qs = self.model._default_manager.select_related(*self.related)
        return qs.filter(**dict(self.filters)) if self.filters else qs

    def load(self, object_ids: Iterable[str]) -> dict[str, Model]:
        """Instances by their object id, in one query; missing ids are absent."""
        pks = [int(oid) for oid in map(str, object_ids) if is_object_id(oid)]
        return {str(obj.pk): obj for obj in self.queryset().filter(pk__in=pks)}


OBJECT_TYPES: dict[str, ObjectType] = {
    t.name: t
    for t in (
        ObjectType("item", Item, serialize_item, ("project",)),
        ObjectType("comment", ItemComment, serialize_comment, ("item__project", "author")),
        ObjectType("attachment", Attachment, serialize_attachment, ("item__project",)),
        ObjectType("project", Project, serialize_project, ()),
        ObjectType("change", Change, serialize_change, ("project",)),
        ObjectType("node", Node, serialize_node, ("project",)),
        ObjectType("release", Release, serialize_release, ("project",)),
        ObjectType(
            "github_issue",
            ExternalIssueMapping,
            serialize_mapping,
            ("item__project",),
            (("kind", ExternalKind.ISSUE),),
        ),
        ObjectType(
            "github_pr",
            ExternalIssueMapping,
            serialize_mapping,
            ("item__project",),
            (("kind", ExternalKind.PR),),
        ),
    )
}
TYPE_NAMES = tuple(OBJECT_TYPES)
_BY_MODEL = {
    Item: "item",
    ItemComment: "comment",
    Attachment: "attachment",
    Project: "project",
    Change: "change",
    Node: "node",
    Release: "release",
}
SYNCED_MODELS = (*_BY_MODEL, ExternalIssueMapping)


def get_weaviate_type(instance: Model) -> str | None:
    """The index type of a model instance, or None for a model not indexed."""
    if isinstance(instance, ExternalIssueMapping):
        return "github_issue" if instance.kind == ExternalKind.ISSUE else "github_pr"
    return _BY_MODEL.get(type(instance))


def document_for(instance: Model) -> dict:
    object_type = get_weaviate_type(instance)
    if object_type is None:
        raise ValueError(f"{type(instance).__name__} is not synced to the index")
    return OBJECT_TYPES[object_type].serialize(instance)


# Types whose `text` opens with a paragraph of state (status, risk, labels ...)
# before the object's own words. That paragraph is left out of the embedded
# text, so a change of status alone needs no new vector.
_HEADED_TYPES = frozenset({"item", "change", "node", "release", "github_issue", "github_pr"})


def embedding_text(doc: dict) -> str:
    """What an object's vector is computed from: its title and its own words.

    The model sees the first 256 tokens (about 1,000 characters of English);
    the title goes first so that it is always among them. The state header of
    `text` (see `_HEADED_TYPES`) and a comment's generated title ("Comment by
    ... on #12") are left out: they say nothing about the content and would
    make every status change a model call.
    """
    object_type = doc.get("type")
    title = doc.get("title") or ""
    text = doc.get("text") or ""
    if object_type in _HEADED_TYPES:
        _header, _sep, text = text.partition("\n\n")
    if object_type == "comment":
        title = ""
    # More than the model can read is never sent to it.
    # An empty input is refused by some endpoints: say at least what it is.
    return f"{title}\n\n{text}".strip()[:EMBED_MAX_CHARS] or str(object_type or "object")


EMBED_MAX_CHARS = 4000


def normalise(doc: dict) -> dict:
    """A document in one canonical form, whichever side it came from.

    Dates become UTC ISO strings with microseconds, sizes ints, and absent
    fields None: a document read back from an index hashes the same as the
    one that was written.
    """
    out = {}
    for name in FIELDS:
        value = doc.get(name)
        if name in DATE_FIELDS and value is not None:
            if isinstance(value, str):
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            value = _iso(value)
        elif name in INT_FIELDS and value is not None:
            value = int(value)
        elif value == "" and name not in ("title", "text"):
            value = None
        out[name] = value
    return out


def content_hash(doc: dict, *, normalised: bool = False) -> str:
    """SHA-256 of the canonical document (`normalised=True`: `doc` already is)."""
    source = doc if normalised else normalise(doc)
    canonical = {k: v for k, v in source.items() if k not in UNHASHED_FIELDS}
    payload = json.dumps(canonical, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8", errors="surrogatepass")).hexdigest()
