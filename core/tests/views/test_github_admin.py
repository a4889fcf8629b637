"""The GitHub configuration in the admin: a singleton with a write-only token and a
"Test connection" that reports the rate limit or exactly what went wrong."""

from django.urls import reverse

from core.models import GitHubConfiguration
from core.tests.github_helpers import TOKEN

CHANGE_URL = reverse("admin:core_githubconfiguration_change", args=[1])
TEST_URL = reverse("admin:core_githubconfiguration_test")


def _form(**overrides) -> dict:
    data = {
        "enabled": "on",
        "base_url": "https://api.github.com",
        "token": "",
        "timeout": 15,
        "max_rate_limit_wait": 60,
        "batch_size": 200,
    }
    data.update(overrides)
    return data


def test_the_token_is_write_only(admin_client):
    assert admin_client.get(reverse("admin:core_githubconfiguration_changelist")).url == CHANGE_URL
    admin_client.post(CHANGE_URL, _form(token=TOKEN))
    assert GitHubConfiguration.load().token == TOKEN
    page = admin_client.get(CHANGE_URL).content.decode()
    assert TOKEN not in page
    assert "Token: one is stored (it is never shown)" in page

    admin_client.post(CHANGE_URL, _form(batch_size=50))
    config = GitHubConfiguration.load()
    assert (config.batch_size, config.token) == (50, TOKEN)

    admin_client.post(CHANGE_URL, _form(clear_token="on"))
    assert GitHubConfiguration.load().token == ""


def test_a_base_url_without_scheme_is_refused(admin_client):
    response = admin_client.post(CHANGE_URL, _form(base_url="github.example.com/api/v3"))
    assert "Start the URL with http:// or https://." in response.content.decode()


def test_environment_overrides_are_listed(admin_client, monkeypatch):
    monkeypatch.setenv("AGIRA_GITHUB_TOKEN", "from-the-environment")
    page = admin_client.get(CHANGE_URL).content.decode()
    assert "<code>AGIRA_GITHUB_TOKEN</code> (token)" in page
    assert "from-the-environment" not in page


def test_test_connection_reports_the_rate_limit(admin_client, github):
    page = admin_client.post(TEST_URL, follow=True).content.decode()
    assert f"Connected to {github.base_url}" in page
    assert "requests left this hour" in page
    assert TOKEN not in page


def test_test_connection_with_a_wrong_token_says_so(admin_client, github):
    github.token = "another-token"
    page = admin_client.post(TEST_URL, follow=True).content.decode()
    assert "GitHub refused the token (401 Bad credentials)" in page
    assert TOKEN not in page


def test_test_connection_needs_post(admin_client):
    assert admin_client.get(TEST_URL).status_code == 302
