"""Shared by the GitHub worker's tests: the token, the repository, a link maker."""

from core.models import ExternalIssueMapping, GitHubConfiguration, ItemStatus
from core.tests import factories

TOKEN = "ghp_test0123456789abcdef"
REPO = "acme/widgets"
ISSUE_PATH = r"^/repos/acme/widgets/issues/\d+$"


def configure_github(server, settings) -> None:
    """Point Agira's GitHub worker at the GitHub-shaped test server."""
    server.token = TOKEN
    settings.AGIRA_GITHUB_SECONDS_BETWEEN_REQUESTS = 0
    settings.AGIRA_GITHUB_RETRY_BACKOFF = 0
    settings.AGIRA_GITHUB_BACKOFF_SECONDS = 0
    GitHubConfiguration.objects.update_or_create(
        pk=GitHubConfiguration.SINGLETON_PK,
        defaults={
            "enabled": True,
            "base_url": server.base_url,
            "token": TOKEN,
            "timeout": 5,
            "max_rate_limit_wait": 5,
            "batch_size": 100,
        },
    )


def link(number, *, status=ItemStatus.WORKING, repository=REPO, **fields) -> ExternalIssueMapping:
    """A new item in `status` linked to issue `number`."""
    item = factories.make_item(status=status)
    return factories.make_mapping(item=item, repository=repository, number=number, **fields)
