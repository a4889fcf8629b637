"""The API fuzzed from its own OpenAPI schema (schemathesis): valid and
invalid parameters for every operation, through the whole WSGI stack with a
token. No answer may be a server error, and every answer must be one the
schema declares (status, content type, body)."""

import pytest
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode, openapi
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from core.tests import factories

OPERATIONS = [
    "/api/search",
    "/api/objects/{object_type}/{object_id}/related",
    "/api/objects/{object_type}/{object_id}/",
]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# A handful of examples per operation and mode: seconds, not minutes.
FAST = settings(
    max_examples=25,
    deadline=None,
    database=None,  # no .hypothesis/ folder in the work tree
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def wsgi_app():
    """Django's WSGI application, keeping the test's database connection
    across requests as Django's test client does."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def indexed(transactional_db, user):
    """A few objects, synced to the embedded index (the default target)."""
    item = factories.make_item(title="Checkout loses the basket", status="Working")
    comment = factories.make_comment(item=item, body="The basket is empty after login.")
    factories.make_item(project=item.project, title="Basket total is wrong")
    return {"item": item, "comment": comment}


@pytest.fixture
def api_schema(wsgi_app, bearer, indexed):
    return openapi.from_wsgi("/api/openapi.json", wsgi_app, headers=bearer)


@pytest.mark.parametrize("path", OPERATIONS)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_api_survives_its_own_schema(api_schema, bearer, indexed, path, mode):
    operation = api_schema[path]["GET"]
    strategies = [operation.as_strategy(generation_mode=mode)]
    if "{object_id}" in path:
        # Random ids find nothing; real ones reach the index too.
        real = [
            {"object_type": "item", "object_id": str(indexed["item"].pk)},
            {"object_type": "comment", "object_id": str(indexed["comment"].pk)},
        ]
        strategies += [
            operation.as_strategy(generation_mode=mode, path_parameters=params) for params in real
        ]
    checks = [*CHECKS, negative_data_rejection] if mode == GenerationMode.NEGATIVE else CHECKS

    @FAST
    @given(case=st.one_of(strategies))
    def run(case):
        response = case.call(headers=bearer)
        case.validate_response(response, checks=checks)

    run()
