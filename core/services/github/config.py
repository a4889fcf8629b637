"""The effective GitHub configuration: the admin's values, overridden by the
environment (`AGIRA_GITHUB_*`)."""

from dataclasses import dataclass, field

from core.models import GitHubConfiguration
from core.services.index.config import with_env_overrides

ENV_OVERRIDES: dict[str, tuple[str, type]] = {
    "AGIRA_GITHUB_ENABLED": ("enabled", bool),
    "AGIRA_GITHUB_BASE_URL": ("base_url", str),
    "AGIRA_GITHUB_TOKEN": ("token", str),
    "AGIRA_GITHUB_TIMEOUT": ("timeout", float),
    "AGIRA_GITHUB_MAX_RATE_LIMIT_WAIT": ("max_rate_limit_wait", int),
    "AGIRA_GITHUB_BATCH_SIZE": ("batch_size", int),
    "AGIRA_GITHUB_PR_REPOSITORY_MINUTES": ("pr_repository_minutes", int),
}


@dataclass(frozen=True)
class GitHubSettings:
    enabled: bool
    base_url: str
    token: str = field(repr=False)
    timeout: float
    max_rate_limit_wait: int
    batch_size: int
    pr_repository_minutes: int
    overridden: frozenset[str] = frozenset()

    @property
    def problem(self) -> str | None:
        """Why the worker cannot run with these settings, or None."""
        if not self.enabled:
            return (
                "The GitHub worker is disabled "
                "(admin: GitHub configuration, or AGIRA_GITHUB_ENABLED)."
            )
        if not self.token:
            return (
                "No GitHub token is configured "
                "(admin: GitHub configuration, or AGIRA_GITHUB_TOKEN)."
            )
        if not self.base_url.lower().startswith(("http://", "https://")):
            return f"The GitHub base URL {self.base_url!r} must start with http:// or https://."
        return None


def github_settings(config: GitHubConfiguration | None = None) -> GitHubSettings:
    # Read, never create: a dry run (or the dashboard) on a new database writes nothing;
    # an unsaved row holds the defaults.
    if config is None:
        config = (
            GitHubConfiguration.objects.filter(pk=GitHubConfiguration.SINGLETON_PK).first()
            or GitHubConfiguration()
        )
    values, overridden = with_env_overrides(config, ENV_OVERRIDES)
    values["base_url"] = values["base_url"].rstrip("/")
    return GitHubSettings(**values, overridden=overridden)
