import pytest

from core.tests import factories


@pytest.fixture
def user(db):
    return factories.make_user("tester")


@pytest.fixture
def auth_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def csrf_client(user):
    """A client that enforces CSRF like a browser would see it."""
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


@pytest.fixture
def item(db):
    return factories.make_item()
