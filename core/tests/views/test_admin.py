import pytest
from django.contrib import admin
from django.urls import reverse

from core.tests import factories

pytestmark = pytest.mark.django_db

# The connection singletons are a form, not a list (tested on their own).
SINGLETONS = {
    "WeaviateConfiguration",
    "Neo4jConfiguration",
    "GitHubConfiguration",
    "EmbedderConfiguration",
}
CORE_MODELS = [
    m for m in admin.site._registry if m._meta.app_label == "core" and m.__name__ not in SINGLETONS
]


def test_every_core_model_is_in_the_admin():
    names = {m.__name__ for m in CORE_MODELS}
    assert names >= {
        "Organisation",
        "Project",
        "Item",
        "ItemComment",
        "Attachment",
        "Change",
        "Node",
        "Release",
        "ExternalIssueMapping",
    }


@pytest.mark.parametrize("model", CORE_MODELS, ids=lambda m: m.__name__)
def test_admin_lists_filter_and_search_every_model(client, world, model):
    admin_user = factories.make_user("boss", is_staff=True, is_superuser=True)
    client.force_login(admin_user)
    model_admin = admin.site._registry[model]
    assert model_admin.search_fields, f"{model.__name__} has no search"
    assert model_admin.list_filter or model.__name__ == "Organisation"
    url = reverse(f"admin:core_{model._meta.model_name}_changelist")
    assert client.get(url).status_code == 200
    assert client.get(url, {"q": "Webshop"}).status_code == 200


def test_item_admin_search_finds_by_title(client, world):
    client.force_login(factories.make_user("boss", is_staff=True, is_superuser=True))
    response = client.get(reverse("admin:core_item_changelist"), {"q": "Checkout"})
    assert "Checkout breaks" in response.content.decode()
    response = client.get(reverse("admin:core_item_changelist"), {"q": "nothing-like-this"})
    assert "Checkout breaks" not in response.content.decode()


def test_admin_is_closed_to_non_staff(auth_client):
    response = auth_client.get(reverse("admin:core_item_changelist"))
    assert response.status_code == 302
    assert "/admin/login/" in response.url
