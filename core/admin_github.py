"""Admin pages of the GitHub worker: its configuration (a singleton with a
write-only token), the tracked repositories, and the runs."""

from django import forms
from django.contrib import admin
from django.http import HttpRequest

from core.admin_sync import ConnectionAdmin, WriteOnlySecretForm, write_only_field
from core.models import GitHubConfiguration, GitHubRepository, GitHubSyncRun
from core.services.github.config import ENV_OVERRIDES, github_settings


class GitHubConfigurationForm(WriteOnlySecretForm):
    secret_field = "token"  # noqa: S105 - the field's name, not a secret
    token = write_only_field("Token")
    clear_token = forms.BooleanField(label="Remove the stored token", required=False)

    class Meta:
        model = GitHubConfiguration
        fields = [
            "enabled",
            "base_url",
            "token",
            "timeout",
            "max_rate_limit_wait",
            "batch_size",
            "pr_repository_minutes",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Left empty, or missing from a form posted before it existed: the stored value stays.
        self.fields["pr_repository_minutes"].required = False

    def clean_pr_repository_minutes(self) -> int:
        value = self.cleaned_data.get("pr_repository_minutes")
        return self.instance.pr_repository_minutes if value is None else value


@admin.register(GitHubConfiguration)
class GitHubConfigurationAdmin(ConnectionAdmin):
    form = GitHubConfigurationForm
    env_overrides = ENV_OVERRIDES
    fieldsets = [
        (None, {"fields": ["enabled"]}),
        ("Server", {"fields": ["base_url", "token", "clear_token", "timeout"]}),
        ("Runs", {"fields": ["max_rate_limit_wait", "batch_size", "pr_repository_minutes"]}),
    ]

    def check_connection(self) -> tuple[bool, str]:
        # PyGithub is imported when a connection is tested, not by every
        # command that loads the admin.
        from core.services.github.client import check_connection

        return check_connection(github_settings())


@admin.register(GitHubRepository)
class GitHubRepositoryAdmin(admin.ModelAdmin):
    list_display = [
        "full_name",
        "checkpoint",
        "last_checked_at",
        "previous_names",
        "failures",
        "next_attempt_at",
        "last_error",
    ]
    list_filter = ["last_checked_at"]
    search_fields = ["full_name", "last_error"]
    readonly_fields = [
        "github_id",
        "etag",
        "previous_names",
        "last_checked_at",
        "last_error",
        "failures",
        "next_attempt_at",
    ]
    fields = ["full_name", "checkpoint", *readonly_fields]


@admin.register(GitHubSyncRun)
class GitHubSyncRunAdmin(admin.ModelAdmin):
    """Runs of `manage.py sync_github`: read-only, the command writes them."""

    list_display = [
        "id",
        "status",
        "started_at",
        "finished_at",
        "requests",
        "rate_limit_remaining",
        "summary",
        "short_error",
    ]
    list_filter = ["status"]
    search_fields = ["error", "host"]
    readonly_fields = [f.name for f in GitHubSyncRun._meta.fields]

    @admin.display(description="Counts")
    def summary(self, obj: GitHubSyncRun) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted((obj.counts or {}).items()))

    @admin.display(description="Error")
    def short_error(self, obj: GitHubSyncRun) -> str:
        return obj.error[:120]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
