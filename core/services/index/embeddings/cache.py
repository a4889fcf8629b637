"""Vectors for texts, computed once: a cache keyed by the model and the text.

A re-sync, `sync_weaviate --full`, a second target or a change that leaves an
object's embedded text alone finds its vector here and makes no model call.
The cache lives in the database (`EmbeddingCache`), so every process and
machine of an installation shares it.
"""

import hashlib
import logging

import numpy as np

from core.models import EmbeddingCache

from .base import Embedder, ModelInfo

logger = logging.getLogger("agira.index.embeddings")

LOOKUP_CHUNK = 500


def cache_key(info: ModelInfo, text: str) -> str:
    digest = hashlib.sha256(info.key.encode())
    digest.update(b"\0")
    digest.update(text.encode("utf-8", errors="surrogatepass"))
    return digest.hexdigest()


def embed_texts(embedder: Embedder, texts: list[str]) -> np.ndarray:
    """One unit vector per text, from the cache where it has them; the rest
    embedded in batches (each distinct text once) and stored."""
    info = embedder.info
    out = np.zeros((len(texts), info.dimension), dtype=np.float32)
    if not texts:
        return out
    keys = [cache_key(info, text) for text in texts]
    found: dict[str, bytes] = {}
    distinct = list(dict.fromkeys(keys))
    for start in range(0, len(distinct), LOOKUP_CHUNK):
        chunk = distinct[start : start + LOOKUP_CHUNK]
        found.update(EmbeddingCache.objects.filter(key__in=chunk).values_list("key", "vector"))
    missing: dict[str, str] = {}
    for key, text in zip(keys, texts, strict=True):
        if key not in found:
            missing.setdefault(key, text)
    if missing:
        vectors = embedder.embed(list(missing.values()))
        rows = []
        for key, vector in zip(missing, vectors, strict=True):
            raw = np.asarray(vector, dtype="<f4").tobytes()
            found[key] = raw
            rows.append(EmbeddingCache(key=key, model=info.key, vector=raw))
        # Another process may have embedded the same text meanwhile: same vector.
        EmbeddingCache.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
    for row, key in enumerate(keys):
        raw = found[key]
        if len(raw) != info.dimension * 4:
            logger.warning("A cached vector has the wrong length; embedding its text again")
            raw = np.asarray(embedder.embed([texts[row]])[0], dtype="<f4").tobytes()
        out[row] = np.frombuffer(raw, dtype="<f4")
    return out
