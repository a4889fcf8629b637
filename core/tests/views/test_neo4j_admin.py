"""The Neo4j configuration in the admin: a singleton, a write-only password,
the URI checked, environment overrides shown, and a "Test connection" that
logs in to the server (the Bolt test server), makes the schema and says what
happened, never the password."""

import pytest
from django.urls import reverse

from core.models import Neo4jConfiguration
from core.services.index.targets.neo4j import neo4j_settings
from core.tests import factories

pytestmark = pytest.mark.django_db

CHANGE_URL = reverse("admin:core_neo4jconfiguration_change", args=[1])
TEST_URL = reverse("admin:core_neo4jconfiguration_test")
SECRET = "neo4j-very-secret-4711"


def _form(**overrides) -> dict:
    data = {
        "enabled": "on",
        "uri": "neo4j://graph.internal:7687",
        "user": "neo4j",
        "password": "",
        "database": "neo4j",
        "connect_timeout": 2,
        "query_timeout": 10,
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_the_list_goes_straight_to_the_one_configuration(admin_client):
    response = admin_client.get(reverse("admin:core_neo4jconfiguration_changelist"))
    assert response.status_code == 302
    assert response.url == CHANGE_URL
    assert admin_client.get(CHANGE_URL).status_code == 200


def test_the_password_is_write_only(admin_client):
    admin_client.post(CHANGE_URL, _form(password=SECRET))
    assert Neo4jConfiguration.load().password == SECRET
    page = admin_client.get(CHANGE_URL).content.decode()
    assert SECRET not in page
    assert "Password: one is stored (it is never shown)" in page

    admin_client.post(CHANGE_URL, _form(database="graph"))  # the password left empty: kept
    config = Neo4jConfiguration.load()
    assert (config.database, config.password) == ("graph", SECRET)

    admin_client.post(CHANGE_URL, _form(clear_password="on"))
    assert Neo4jConfiguration.load().password == ""


@pytest.mark.parametrize("uri", ["graph.internal:7687", "http://graph.internal:7474", "bolt://"])
def test_a_uri_the_driver_does_not_take_is_a_form_error(admin_client, uri):
    response = admin_client.post(CHANGE_URL, _form(uri=uri))
    assert "Start the URI with neo4j://" in response.content.decode()
    assert Neo4jConfiguration.load().uri == "neo4j://localhost:7687"  # unchanged


def test_environment_overrides_are_shown_and_win(admin_client, monkeypatch):
    monkeypatch.setenv("AGIRA_NEO4J_DATABASE", "agira")
    monkeypatch.setenv("AGIRA_NEO4J_PASSWORD", SECRET)
    effective = neo4j_settings()
    assert effective.database == "agira"
    assert effective.overridden == {"database", "password"}
    assert SECRET not in repr(effective)
    page = admin_client.get(CHANGE_URL).content.decode()
    assert "AGIRA_NEO4J_DATABASE" in page
    assert SECRET not in page


def _save_for(server, **fields) -> None:
    values = {
        "uri": server.uri,
        "user": server.user,
        "password": server.password,
        "database": server.database,
        "connect_timeout": 2.0,
        **fields,
    }
    Neo4jConfiguration.objects.update_or_create(pk=1, defaults=values)


def test_test_connection_logs_in_makes_the_schema_and_counts(admin_client, bolt_server):
    _save_for(bolt_server)  # disabled: the test works all the same
    response = admin_client.post(TEST_URL, follow=True)
    page = response.content.decode()
    assert "Connected to Neo4j/5.26.0 (Bolt 5.4) at" in page
    assert "the graph holds 0 objects" in page
    assert len(bolt_server.constraints) == 10
    assert bolt_server.password not in page


def test_test_connection_says_what_went_wrong_and_never_the_password(admin_client, bolt_server):
    _save_for(bolt_server, password=SECRET)
    page = admin_client.post(TEST_URL, follow=True).content.decode()
    assert "refused the user &#x27;neo4j&#x27;: check the user name and password" in page
    assert SECRET not in page

    _save_for(bolt_server, database="elsewhere")
    page = admin_client.post(TEST_URL, follow=True).content.decode()
    assert "has no database &#x27;elsewhere&#x27;" in page

    bolt_server.down()
    _save_for(bolt_server)
    page = admin_client.post(TEST_URL, follow=True).content.decode()
    assert "cannot be reached" in page


def test_test_connection_is_a_post_for_staff_who_may_change_it(client, bolt_server):
    _save_for(bolt_server)
    client.force_login(factories.make_user("viewer", is_staff=True))  # no permissions
    client.post(TEST_URL)
    assert bolt_server.messages["HELLO"] == 0
    client.force_login(factories.make_user("boss", is_staff=True, is_superuser=True))
    client.get(TEST_URL)  # a GET does nothing
    assert bolt_server.messages["HELLO"] == 0
