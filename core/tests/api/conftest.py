import pytest
from django.test import Client

from core.services.tokens import api_token_create
from core.tests import factories


@pytest.fixture
def token(user) -> str:
    """A live token of `user` (the token itself, as its owner saw it once)."""
    return api_token_create(user=user, name="script")[1]


@pytest.fixture
def bearer(token) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api_client(bearer) -> Client:
    """A client that signs in with the token alone, no session."""
    return Client(headers=bearer)


@pytest.fixture
def catalogue(sync, user):
    """Two projects with items and a comment, synced to the index under test."""
    shop = factories.make_project(name="Webshop")
    portal = factories.make_project(name="Portal")
    basket = factories.make_item(
        project=shop,
        title="Checkout loses the basket",
        status="Working",
        description="After login the basket is empty; customers complain.",
    )
    invoice = factories.make_item(
        project=portal,
        title="Invoice export",
        status="Backlog",
        description="Export invoices as CSV for the basket report.",
    )
    comment = factories.make_comment(item=invoice, body="Customers want the basket total too.")
    return {
        "shop": shop,
        "portal": portal,
        "basket": basket,
        "invoice": invoice,
        "comment": comment,
    }
