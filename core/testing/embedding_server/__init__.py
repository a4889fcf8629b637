"""A local OpenAI-compatible embeddings endpoint (``POST /v1/embeddings``) with
deterministic vectors, for the HTTP embedder's tests and ``make run`` demos.

Fixtures for pytest are in ``core.testing.embedding_server.pytest_plugin``; ``python -m
core.testing.embedding_server --port N --dimension D`` serves it by hand.
"""

from core.testing.embedding_server.server import EmbeddingRequest, EmbeddingTestServer, embed_text

__all__ = ["EmbeddingRequest", "EmbeddingTestServer", "embed_text"]
