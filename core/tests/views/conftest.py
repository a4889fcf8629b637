import pytest

from core.tests import factories


@pytest.fixture
def world(db, user):
    """One of everything, so every page has something to show."""
    project = factories.make_project(name="Webshop")
    item = factories.make_item(project=project, title="Checkout breaks", status="Working")
    return {
        "project": project,
        "item": item,
        "comment": factories.make_comment(item=item, author=user, body="Seen on staging"),
        "node": factories.make_node(project=project, name="API"),
        "release": factories.make_release(project=project, version="1.0.0"),
        "change": factories.make_change(project=project, title="Rotate keys"),
        "mapping": factories.make_mapping(item=item, repository="acme/shop", number=12),
    }


@pytest.fixture
def admin_client(client, db):
    """Logged in as a superuser (the admin's pages)."""
    client.force_login(factories.make_user("boss", is_staff=True, is_superuser=True))
    return client
