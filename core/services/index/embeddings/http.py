"""The HTTP embedder: any OpenAI-compatible `POST {base}/v1/embeddings` endpoint
(OpenAI, Ollama, vLLM, Hugging Face TEI).

One `httpx.Client` per embedder (keep-alive, thread-safe), closed by `close()`.
A connection error, a timeout, 408, 429 or 5xx is retried a few times with a
short exponential pause; anything else fails at once. Every failure is an
`EmbedderUnavailable` whose message names the endpoint and the cause and never
contains the API key, even when the server echoes it back.

The worst case for one request is `(max_retries + 1) * timeout` plus about
`backoff * 2 ** max_retries` of pauses (each pause is at most MAX_PAUSE).
"""

import base64
import logging
import threading
import time
from http import HTTPStatus
from typing import Any

import httpx
import numpy as np

from .base import EmbedderUnavailable, ModelInfo, normalise_rows

logger = logging.getLogger("agira.index.embeddings.http")

PROVIDER = "http"
PROBE_TEXT = "Agira dimension probe"
RETRY_STATUSES = frozenset({408, 429})
MAX_PAUSE = 2.0  # seconds: a longer Retry-After gives up instead; the sync retries later
EXCERPT = 200  # characters of a server's own error message kept in ours


def redact(message: str, secret: str) -> str:
    return message.replace(secret, "***") if secret else message


def endpoint_for(url: str) -> httpx.URL:
    """`{base}/v1/embeddings` from a base URL given with or without `/v1` (or
    even with the whole `/v1/embeddings` path)."""
    parsed = httpx.URL(url.strip())
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValueError("not an http(s) URL")
    path = parsed.path.rstrip("/")
    path = path.removesuffix("/embeddings").removesuffix("/v1")
    return parsed.copy_with(path=f"{path}/v1/embeddings")


def status_text(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


class HttpEmbedder:
    def __init__(
        self,
        *,
        url: str,
        model: str,
        api_key: str = "",
        dimension: int | None = None,
        timeout: float = 30.0,
        batch_size: int = 64,
        max_retries: int = 3,
        backoff: float = 0.2,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        if max_retries < 0:
            raise ValueError(f"max_retries must not be negative, not {max_retries}")
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        if dimension is not None and dimension < 0:
            raise ValueError(f"dimension must be positive, not {dimension}")
        self.api_key = api_key or ""
        try:
            self.endpoint = endpoint_for(url)
        except (ValueError, httpx.InvalidURL) as exc:
            raise EmbedderUnavailable(
                redact(f"The embedding endpoint URL {url!r} is not valid ({exc}).", self.api_key)
            ) from None
        self.model = model
        self.timeout = timeout
        self.batch_size = batch_size
        self.max_retries = max_retries
        self.backoff = backoff
        # 0 is what a blank form field gives: learn it too.
        self._dimension = dimension or None
        self._lock = threading.Lock()
        # Shown in messages: neither credentials in the URL nor its query string.
        self.display_url = str(self.endpoint.copy_with(username=None, password=None, query=None))
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._client = httpx.Client(
            headers=headers, timeout=httpx.Timeout(timeout), follow_redirects=False
        )

    # -- the protocol --------------------------------------------------------
    @property
    def info(self) -> ModelInfo:
        """The model's name and dimension. When no dimension was configured and
        none was learned yet, this asks the endpoint (see `probe`), so it may
        raise EmbedderUnavailable: a key recorded with `dimension=0` would
        later look like a change of model."""
        if self._dimension is None:
            self.embed([PROBE_TEXT])
        return ModelInfo(provider=PROVIDER, model=self.model, dimension=self._dimension or 0)

    def probe(self) -> ModelInfo:
        """Embed one short text (checking the endpoint, the key and the
        dimension) and return the model's info."""
        self.embed([PROBE_TEXT])
        return self.info

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dimension or 0), dtype=np.float32)
        chunks = [
            self._embed_batch(texts[start : start + self.batch_size])
            for start in range(0, len(texts), self.batch_size)
        ]
        return normalise_rows(np.concatenate(chunks))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> "HttpEmbedder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one request ---------------------------------------------------------
    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        response = self._post({"model": self.model, "input": texts, "encoding_format": "float"})
        vectors = self._parse(response, len(texts))
        with self._lock:
            if self._dimension is None:
                self._dimension = vectors.shape[1]
                logger.info("%s gives %d-dimensional vectors", self.display_url, self._dimension)
            expected = self._dimension
        if vectors.shape[1] != expected:
            raise self._unavailable(
                f"The embedding endpoint at {self.display_url} returned "
                f"{vectors.shape[1]}-dimensional vectors, the index expects {expected}. "
                "Nothing was written: check the model name, or change the configured dimension."
            )
        return vectors

    def _post(self, body: dict[str, Any]) -> httpx.Response:
        attempts = self.max_retries + 1
        failure = ""
        retry_after = 0.0
        for attempt in range(attempts):
            if attempt:
                pause = min(max(self.backoff * 2 ** (attempt - 1), retry_after), MAX_PAUSE)
                logger.info("Retrying %s in %.1f s: %s", self.display_url, pause, failure)
                time.sleep(pause)
            retry_after = 0.0
            try:
                response = self._client.post(self.endpoint, json=body)
            except httpx.TimeoutException:
                failure = f"did not answer within {self.timeout:g} s"
                continue
            except httpx.ConnectError as exc:
                failure = f"is unreachable ({type(exc).__name__}: {exc})"
                continue
            except httpx.RequestError as exc:
                # The connection dropped mid-answer, a garbled answer...
                failure = f"failed to answer ({type(exc).__name__}: {exc})"
                continue
            status = response.status_code
            if status == 401 and not self.api_key:
                raise self._unavailable(
                    f"The embedding endpoint at {self.display_url} requires an API key "
                    "(401 Unauthorized) and none is set."
                )
            if status in (401, 403):
                # The body is left out: a server may quote the key it was given.
                raise self._unavailable(
                    f"The embedding endpoint at {self.display_url} rejected the API key "
                    f"({status_text(status)})."
                )
            if 200 <= status < 300:
                return response
            failure = f"answered {status_text(status)}{self._server_says(response)}"
            if status in RETRY_STATUSES or status >= 500:
                retry_after = _retry_after(response)
                continue
            raise self._unavailable(f"The embedding endpoint at {self.display_url} {failure}.")
        tries = f" (after {attempts} attempts)" if attempts > 1 else ""
        raise self._unavailable(f"The embedding endpoint at {self.display_url} {failure}{tries}.")

    def _parse(self, response: httpx.Response, count: int) -> np.ndarray:
        where = f"The embedding endpoint at {self.display_url}"
        try:
            payload = response.json()
        except ValueError:
            raise self._unavailable(f"{where} answered with something that is not JSON.") from None
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise self._unavailable(f"{where} answered without a list of embeddings ('data').")
        if len(data) != count:
            raise self._unavailable(f"{where} returned {len(data)} embeddings for {count} texts.")
        # Rows may come in any order: each names the input it belongs to.
        indices = [item.get("index", position) for position, item in enumerate(data)]
        if sorted(indices) != list(range(count)):
            raise self._unavailable(f"{where} returned embeddings with wrong indices.")
        rows: list[Any] = [None] * count
        try:
            for index, item in zip(indices, data, strict=True):
                rows[index] = _vector(item["embedding"])
            vectors = np.array(rows, dtype=np.float32)
        except (KeyError, TypeError, ValueError):
            raise self._unavailable(f"{where} returned malformed embeddings.") from None
        if vectors.ndim != 2 or vectors.shape[1] == 0:
            raise self._unavailable(f"{where} returned embeddings of uneven or zero length.")
        if not np.isfinite(vectors).all():
            raise self._unavailable(f"{where} returned embeddings with NaN or infinite values.")
        return vectors

    # -- messages ------------------------------------------------------------
    def _server_says(self, response: httpx.Response) -> str:
        """The server's own error message, shortened, to add to ours."""
        try:
            payload = response.json()
            error = payload.get("error", payload) if isinstance(payload, dict) else payload
            text = error.get("message", error) if isinstance(error, dict) else error
            text = str(text)
        except ValueError:
            text = response.text
        text = " ".join(text.split())
        if not text:
            return ""
        if len(text) > EXCERPT:
            text = text[:EXCERPT] + "…"
        return f": {text}"

    def _unavailable(self, message: str) -> EmbedderUnavailable:
        return EmbedderUnavailable(redact(message, self.api_key)[:2000])


def _vector(value: Any) -> Any:
    if isinstance(value, str):
        # encoding_format "base64" (a server that ignored our "float"): little-endian float32.
        return np.frombuffer(base64.b64decode(value, validate=True), dtype="<f4")
    if not isinstance(value, list):
        raise TypeError("an embedding is a list of numbers")
    return value


def _retry_after(response: httpx.Response) -> float:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return 0.0
