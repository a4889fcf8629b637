"""What the sync engine needs from an embedding model.

An embedder turns texts into L2-normalised float32 vectors of a fixed
dimension. Providers: `local` (an ONNX sentence model on the CPU), `http` (an
OpenAI-compatible `/v1/embeddings` endpoint) and `none` (keyword search only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import numpy as np


class EmbedderUnavailable(Exception):
    """The embedder cannot be used now (model missing, endpoint down, key
    rejected, wrong dimension). No object is to blame: like a target that is
    down, the changes wait and no attempt is counted.

    The message is safe to show: it never contains a secret.
    """


@dataclass(frozen=True)
class ModelInfo:
    provider: str  # "local", "http"
    model: str  # the model's name, e.g. "all-MiniLM-L6-v2"
    dimension: int

    @property
    def key(self) -> str:
        """Recorded with each sync record and cached vector: a change of model
        (or of its dimension) is seen by comparing keys."""
        return f"{self.provider}:{self.model}:{self.dimension}"


class Embedder(Protocol):
    info: ModelInfo

    def embed(self, texts: list[str]) -> np.ndarray:
        """One row per text: shape (len(texts), info.dimension), float32,
        each row of unit length. Raises EmbedderUnavailable."""
        ...

    def close(self) -> None: ...


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero), as float32."""
    import numpy as np

    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
