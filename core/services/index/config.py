"""The effective sync configuration: the admin's values, overridden by the
environment, and the switches that decide what is recorded and when it drains."""

import contextvars
import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings

from core.models import WeaviateConfiguration

# Environment variable → (field, parser). Every field can be overridden.
_BOOL_TRUE = {"1", "true", "yes", "on"}
ENV_OVERRIDES: dict[str, tuple[str, type]] = {
    "AGIRA_WEAVIATE_ENABLED": ("enabled", bool),
    "AGIRA_WEAVIATE_URL": ("url", str),
    "AGIRA_WEAVIATE_HTTP_PORT": ("http_port", int),
    "AGIRA_WEAVIATE_GRPC_PORT": ("grpc_port", int),
    "AGIRA_WEAVIATE_API_KEY": ("api_key", str),
    "AGIRA_WEAVIATE_COLLECTION": ("collection_name", str),
    "AGIRA_WEAVIATE_CONNECT_TIMEOUT": ("connect_timeout", float),
    "AGIRA_WEAVIATE_QUERY_TIMEOUT": ("query_timeout", float),
    "AGIRA_WEAVIATE_INSERT_TIMEOUT": ("insert_timeout", float),
    "AGIRA_WEAVIATE_VECTORIZER": ("vectorizer", str),
}


@dataclass(frozen=True)
class WeaviateSettings:
    enabled: bool
    url: str
    http_port: int
    grpc_port: int
    api_key: str = field(repr=False)
    collection_name: str
    connect_timeout: float
    query_timeout: float
    insert_timeout: float
    vectorizer: str = "agira"
    overridden: frozenset[str] = frozenset()

    @property
    def host(self) -> str:
        parts = urlsplit(self.url if "://" in self.url else f"http://{self.url}")
        return parts.hostname or ""

    @property
    def secure(self) -> bool:
        return self.url.lower().startswith("https://")

    @property
    def configured(self) -> bool:
        return bool(self.host) and bool(self.collection_name)

    @property
    def fingerprint(self) -> str:
        """Changes whenever a connection setting does (the key only as a hash),
        so a process notices an edit in the admin and reconnects."""
        key_hash = hashlib.sha256(self.api_key.encode()).hexdigest()[:12]
        parts = (
            self.url,
            self.http_port,
            self.grpc_port,
            key_hash,
            self.collection_name,
            self.connect_timeout,
            self.query_timeout,
            self.insert_timeout,
            self.vectorizer,
        )
        return "|".join(map(str, parts))

    def describe(self) -> str:
        """Where it points, for messages: never the key."""
        return f"{self.url}:{self.http_port} (gRPC {self.grpc_port})"


def parse_env(raw: str, kind: type):
    """An environment variable's text as `kind` (bool: 1/true/yes/on)."""
    if kind is bool:
        return raw.strip().lower() in _BOOL_TRUE
    return kind(raw.strip())


def weaviate_settings(config: WeaviateConfiguration | None = None) -> WeaviateSettings:
    """The admin's configuration with the environment's overrides applied."""
    values, overridden = with_env_overrides(config or WeaviateConfiguration.load(), ENV_OVERRIDES)
    return WeaviateSettings(**values, overridden=overridden)


def with_env_overrides(config, overrides: dict[str, tuple[str, type]]):
    """The fields named in `overrides` from `config`, each replaced by its
    environment variable when that is set; and the names replaced."""
    values = {name: getattr(config, name) for name, _ in overrides.values()}
    overridden = set()
    for variable, (name, kind) in overrides.items():
        raw = os.environ.get(variable)
        if raw is None or raw == "":
            continue
        try:
            values[name] = parse_env(raw, kind)
        except ValueError as exc:
            raise ValueError(f"{variable} is not a valid {kind.__name__}") from exc
        overridden.add(name)
    return values, frozenset(overridden)


# -- Switches ------------------------------------------------------------------
_paused: contextvars.ContextVar[int] = contextvars.ContextVar("agira_sync_paused", default=0)
_disabled: contextvars.ContextVar[int] = contextvars.ContextVar("agira_sync_disabled", default=0)

OPERATIONS = ("create", "update", "delete")


def sync_enabled() -> bool:
    return settings.AGIRA_SYNC_ENABLED and not _disabled.get()


def type_enabled(object_type: str) -> bool:
    allowed = settings.AGIRA_SYNC_TYPES
    return not allowed or object_type in allowed


def operation_enabled(operation: str) -> bool:
    return operation in settings.AGIRA_SYNC_OPERATIONS


def is_paused() -> bool:
    return bool(_paused.get())


def immediate_mode() -> bool:
    return settings.AGIRA_SYNC_MODE == "immediate"


@contextmanager
def sync_disabled() -> Iterator[None]:
    """Record nothing inside the block: for bulk jobs whose result the
    reconcile command (`manage.py sync_weaviate`) will bring into the index."""
    token = _disabled.set(_disabled.get() + 1)
    try:
        yield
    finally:
        _disabled.reset(token)


@contextmanager
def sync_paused() -> Iterator[None]:
    """Record every change inside the block but hold the drain until it ends,
    then drain once, in batches. For imports and migrations that save many
    objects: one drain instead of one per transaction."""
    token = _paused.set(_paused.get() + 1)
    try:
        yield
    finally:
        _paused.reset(token)
    if not _paused.get():
        from .engine import schedule_drain

        schedule_drain()
