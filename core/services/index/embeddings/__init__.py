"""Embeddings: which model turns an object's text into a vector, and the
cache that makes sure unchanged text is never embedded twice.

The configuration is the admin's `EmbedderConfiguration` (a singleton) with
`AGIRA_EMBEDDER_*` environment overrides, like the Weaviate connection. One
embedder per process and configuration; the local model is loaded on its
first use, never at import.
"""

import hashlib
import threading
from dataclasses import dataclass, field, replace

from django.conf import settings

from core.models import EmbedderConfiguration

from ..config import with_env_overrides
from .base import Embedder, EmbedderUnavailable, ModelInfo, normalise_rows

__all__ = [
    "Embedder",
    "EmbedderSettings",
    "EmbedderUnavailable",
    "ModelInfo",
    "check_embedder",
    "close_embedder",
    "current_embedder",
    "embedder_settings",
    "normalise_rows",
]

ENV_OVERRIDES: dict[str, tuple[str, type]] = {
    "AGIRA_EMBEDDER_PROVIDER": ("provider", str),
    "AGIRA_EMBEDDER_MODEL_PATH": ("local_model_path", str),
    "AGIRA_EMBEDDER_URL": ("http_url", str),
    "AGIRA_EMBEDDER_MODEL": ("http_model", str),
    "AGIRA_EMBEDDER_API_KEY": ("http_api_key", str),
    "AGIRA_EMBEDDER_DIMENSION": ("http_dimension", int),
    "AGIRA_EMBEDDER_BATCH_SIZE": ("batch_size", int),
    "AGIRA_EMBEDDER_TIMEOUT": ("timeout", float),
}
PROVIDERS = ("local", "http", "none")


@dataclass(frozen=True)
class EmbedderSettings:
    provider: str
    local_model_path: str
    http_url: str
    http_model: str
    http_api_key: str = field(repr=False)
    http_dimension: int | None
    batch_size: int
    timeout: float
    overridden: frozenset[str] = frozenset()

    @property
    def fingerprint(self) -> str:
        key_hash = hashlib.sha256(self.http_api_key.encode()).hexdigest()[:12]
        return "|".join(
            map(
                str,
                (
                    self.provider,
                    self.local_model_path,
                    self.http_url,
                    self.http_model,
                    key_hash,
                    self.http_dimension,
                    self.batch_size,
                    self.timeout,
                ),
            )
        )

    def describe(self) -> str:
        if self.provider == "local":
            return f"the local model {self.local_model_path or 'all-MiniLM-L6-v2'}"
        if self.provider == "http":
            return f"{self.http_model or 'the model'} at {self.http_url}"
        return "no embedder (keyword search only)"


def embedder_settings(config: EmbedderConfiguration | None = None) -> EmbedderSettings:
    values, overridden = with_env_overrides(config or EmbedderConfiguration.load(), ENV_OVERRIDES)
    values["provider"] = (values["provider"] or "local").strip().lower()
    if values["provider"] not in PROVIDERS:
        raise ValueError(
            f"The embedder provider must be one of {', '.join(PROVIDERS)}, "
            f"not {values['provider']!r}."
        )
    return EmbedderSettings(**values, overridden=overridden)


def build_embedder(config: EmbedderSettings) -> Embedder | None:
    """A new embedder for `config` (None for provider "none"); nothing loads yet."""
    if config.provider == "none":
        return None
    if config.provider == "http":
        from .http import HttpEmbedder

        if not config.http_url or not config.http_model:
            raise EmbedderUnavailable(
                "The HTTP embedder needs an endpoint URL and a model name (Admin → Embedder "
                "configuration, or AGIRA_EMBEDDER_URL and AGIRA_EMBEDDER_MODEL)."
            )
        return HttpEmbedder(
            url=config.http_url,
            model=config.http_model,
            api_key=config.http_api_key,
            dimension=config.http_dimension,
            timeout=config.timeout,
            batch_size=config.batch_size,
        )
    from .local import LocalEmbedder, folder_files

    files = folder_files(config.local_model_path) if config.local_model_path else None
    return LocalEmbedder(
        files=files, threads=settings.AGIRA_EMBEDDER_THREADS, batch_size=config.batch_size
    )


_current: tuple[str, Embedder | None] | None = None
_current_lock = threading.Lock()


def current_embedder(config: EmbedderSettings | None = None) -> Embedder | None:
    """The process's embedder for the current configuration (None: keyword only).

    An edit in the admin changes the fingerprint: the next call builds a new
    one. The local model itself stays cached by its files (see local.py).
    """
    global _current
    config = config or embedder_settings()
    with _current_lock:
        if _current is not None and _current[0] == config.fingerprint:
            return _current[1]
        old = _current[1] if _current else None
        embedder = build_embedder(config)
        _current = (config.fingerprint, embedder)
    if old is not None:
        old.close()
    return embedder


def close_embedder() -> None:
    global _current
    with _current_lock:
        old, _current = (_current[1] if _current else None), None
    if old is not None:
        old.close()


def check_embedder(config: EmbedderSettings | None = None) -> tuple[bool, str]:
    """The admin's "Test" action: embed one sentence with a fresh embedder."""
    config = config or embedder_settings()
    if config.provider == "none":
        return True, "No embedder: search is keyword only and no vectors are stored."
    embedder = None
    try:
        embedder = build_embedder(replace(config))
        vectors = embedder.embed(["Agira embedder test"])
        info = embedder.info
    except EmbedderUnavailable as exc:
        return False, str(exc)
    finally:
        if embedder is not None:
            embedder.close()
    return True, (
        f"{config.describe()} answered: {info.model}, {info.dimension} dimensions "
        f"(vector length {float((vectors[0] ** 2).sum()) ** 0.5:.3f})."
    )
