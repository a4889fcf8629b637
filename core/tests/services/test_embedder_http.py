"""The HTTP embedder against the local OpenAI-compatible server: real HTTP, real
httpx, faults injected on the server side."""

import socket
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from core.services.index.embeddings.base import EmbedderUnavailable, ModelInfo
from core.services.index.embeddings.http import HttpEmbedder
from core.testing.embedding_server import embed_text

DIMENSION = 8
MODEL = "test-embedder"
SECRET = "sk-test-SECRET-9c1e77"

MakeEmbedder = Callable[..., HttpEmbedder]


@pytest.fixture
def make_embedder(embedding_server) -> Iterator[MakeEmbedder]:
    """Embedders pointed at the server, with short pauses; all closed after the test."""
    made: list[HttpEmbedder] = []

    def make(**options) -> HttpEmbedder:
        options.setdefault("url", embedding_server.url)
        options.setdefault("model", MODEL)
        options.setdefault("dimension", DIMENSION)
        options.setdefault("timeout", 5)
        options.setdefault("backoff", 0.01)
        embedder = HttpEmbedder(**options)
        made.append(embedder)
        return embedder

    yield make
    for embedder in made:
        embedder.close()


def embedding_calls(server) -> list[int]:
    """Texts per request to the embeddings endpoint, in order."""
    return [r.inputs for r in server.requests if r.path == "/v1/embeddings"]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_batch_comes_back_as_unit_vectors_deterministically(embedding_server, make_embedder):
    embedder = make_embedder()
    texts = ["Crash on save", "crash on save", "Save crashes the editor", "Dark mode"]

    vectors = embedder.embed(texts)

    assert vectors.shape == (4, DIMENSION)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(embedder.embed(texts), vectors)
    # Same words, same vector; shared words closer than none.
    np.testing.assert_allclose(vectors[0], vectors[1])
    assert vectors[0] @ vectors[2] > vectors[0] @ vectors[3]
    # The server's own (unnormalised) vector, scaled: nothing else was done to it.
    raw = np.array(embed_text("Dark mode", DIMENSION), dtype=np.float32)
    np.testing.assert_allclose(vectors[3], raw / np.linalg.norm(raw), rtol=1e-5)
    request = embedding_server.requests[0]
    assert (request.method, request.model, request.inputs) == ("POST", MODEL, 4)
    assert request.has_auth is False
    assert embedder.info == ModelInfo(provider="http", model=MODEL, dimension=DIMENSION)


def test_150_texts_go_in_requests_of_batch_size_and_keep_their_order(
    embedding_server, make_embedder
):
    texts = [f"issue number {n} about topic {n % 7}" for n in range(150)]
    embedder = make_embedder(batch_size=64)

    vectors = embedder.embed(texts)

    assert embedding_calls(embedding_server) == [64, 64, 22]
    assert vectors.shape == (150, DIMENSION)
    np.testing.assert_allclose(vectors[149], embedder.embed([texts[149]])[0], rtol=1e-6)


def test_rows_are_put_back_in_input_order_by_their_index(embedding_server, make_embedder):
    embedder = make_embedder()
    texts = ["alpha", "beta", "gamma"]
    in_order = embedder.embed(texts)
    embedding_server.reverse_order()

    np.testing.assert_array_equal(embedder.embed(texts), in_order)


def test_the_base_url_may_end_in_v1(embedding_server, make_embedder):
    embedder = make_embedder(url=f"{embedding_server.url}/v1/")

    assert embedder.embed(["hello"]).shape == (1, DIMENSION)
    assert embedding_calls(embedding_server) == [1]


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_passing_server_error_is_retried(embedding_server, make_embedder, status):
    embedding_server.fail_next(1, status=status)

    vectors = make_embedder().embed(["retry me"])

    assert vectors.shape == (1, DIMENSION)
    assert [r.status for r in embedding_server.requests] == [status, 200]


def test_a_server_that_keeps_failing_is_given_up_on(embedding_server, make_embedder):
    embedding_server.fail_next(100, status=500)

    with pytest.raises(EmbedderUnavailable) as caught:
        make_embedder(max_retries=3).embed(["doomed"])

    message = str(caught.value)
    assert embedding_server.url in message
    assert "500 Internal Server Error" in message
    assert "after 4 attempts" in message
    assert len(embedding_server.requests) == 4


@pytest.mark.parametrize("status", [400, 404])
def test_a_client_error_is_not_retried(embedding_server, make_embedder, status):
    embedding_server.fail_next(1, status=status)

    with pytest.raises(EmbedderUnavailable, match=str(status)):
        make_embedder().embed(["bad request"])

    assert len(embedding_server.requests) == 1


def test_a_server_that_does_not_answer_in_time(embedding_server, make_embedder):
    # Ended by the fixture's reset: nothing here waits for it.
    embedding_server.delay(30)

    with pytest.raises(EmbedderUnavailable) as caught:
        make_embedder(timeout=0.3, max_retries=1).embed(["slow"])

    message = str(caught.value)
    assert "did not answer within 0.3 s" in message
    assert embedding_server.url in message
    assert len(embedding_server.requests) == 2


def test_a_wrong_key_is_reported_and_never_shown(embedding_server, make_embedder):
    embedding_server.set_api_keys(["the-right-key"])
    embedding_server.echo_key_in_errors(True)

    with pytest.raises(EmbedderUnavailable) as caught:
        make_embedder(api_key=SECRET).embed(["let me in"])

    message = str(caught.value)
    assert "rejected the API key" in message
    assert "401" in message
    assert SECRET not in message
    assert SECRET not in repr(caught.value)
    assert [(r.has_auth, r.status) for r in embedding_server.requests] == [(True, 401)]


def test_the_right_key_is_sent_as_a_bearer_token(embedding_server, make_embedder):
    embedding_server.set_api_keys([SECRET])

    assert make_embedder(api_key=SECRET).embed(["hello"]).shape == (1, DIMENSION)
    assert embedding_server.requests[0].has_auth is True


def test_a_missing_key_is_named_as_such(embedding_server, make_embedder):
    embedding_server.set_api_keys([SECRET])

    with pytest.raises(EmbedderUnavailable, match="requires an API key"):
        make_embedder(api_key="").embed(["hello"])

    assert embedding_server.requests[0].has_auth is False


def test_a_key_echoed_in_a_server_error_is_redacted(embedding_server, make_embedder):
    # A 400 is reported with the server's own words: the key must not come with them.
    embedding_server.set_api_keys(["the-right-key"])
    embedding_server.echo_key_in_errors(True)
    embedder = make_embedder(api_key=SECRET)
    embedding_server.set_api_keys([])
    embedding_server.fail_next(1, status=400)

    with pytest.raises(EmbedderUnavailable) as caught:
        embedder.embed(["hello"])

    assert SECRET not in str(caught.value)


def test_an_unreachable_endpoint(make_embedder):
    url = f"http://127.0.0.1:{closed_port()}"

    with pytest.raises(EmbedderUnavailable) as caught:
        make_embedder(url=url, max_retries=1).embed(["anyone there?"])

    message = str(caught.value)
    assert "is unreachable" in message
    assert url in message
    assert "after 2 attempts" in message


def test_vectors_of_another_dimension_are_refused(embedding_server, make_embedder):
    embedding_server.set_dimension(4)

    with pytest.raises(EmbedderUnavailable) as caught:
        make_embedder(dimension=DIMENSION).embed(["hello"])

    assert "returned 4-dimensional vectors, the index expects 8" in str(caught.value)


def test_a_change_of_dimension_in_a_later_batch_refuses_the_whole_call(
    embedding_server, make_embedder
):
    embedder = make_embedder(dimension=None, batch_size=2)
    embedder.embed(["learn", "it"])
    embedding_server.set_dimension(16)

    with pytest.raises(EmbedderUnavailable, match="returned 16-dimensional vectors"):
        embedder.embed(["a", "b", "c"])


def test_the_dimension_is_learned_when_not_configured(embedding_server, make_embedder):
    embedding_server.set_dimension(12)
    embedder = make_embedder(dimension=None)

    assert embedder.embed(["hello"]).shape == (1, 12)
    assert embedder.info == ModelInfo(provider="http", model=MODEL, dimension=12)
    assert embedder.info.key == f"http:{MODEL}:12"
    assert len(embedding_server.requests) == 1


def test_probe_and_info_ask_the_endpoint_for_an_unknown_dimension(embedding_server, make_embedder):
    embedding_server.set_dimension(12)

    assert make_embedder(dimension=None).probe().dimension == 12
    assert make_embedder(dimension=None).info.dimension == 12
    assert embedding_calls(embedding_server) == [1, 1]


@pytest.mark.parametrize(
    ("how", "expected"),
    [("invalid-json", "not JSON"), ("missing-row", "returned 1 embeddings for 2 texts")],
)
def test_a_malformed_answer_is_refused(embedding_server, make_embedder, how, expected):
    embedding_server.corrupt_next(1, how=how)

    with pytest.raises(EmbedderUnavailable, match=expected):
        make_embedder().embed(["one", "two"])

    assert len(embedding_server.requests) == 1


def test_no_texts_no_request(embedding_server, make_embedder):
    vectors = make_embedder().embed([])

    assert vectors.shape == (0, DIMENSION)
    assert vectors.dtype == np.float32
    assert embedding_server.requests == []


def test_a_url_that_is_not_http_is_refused(make_embedder):
    with pytest.raises(EmbedderUnavailable, match="is not valid"):
        make_embedder(url="localhost:11434")
