"""Admin pages of the sync engine: the Weaviate, Neo4j and embedder
configurations (singletons with a write-only secret and a "Test" button) and
the sync state."""

import os

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import path, reverse

from core.models import (
    EmbedderConfiguration,
    Neo4jConfiguration,
    ReconcileRun,
    SyncOutbox,
    SyncRecord,
    SyncTargetStatus,
    WeaviateConfiguration,
)
from core.services.index.config import ENV_OVERRIDES
from core.services.index.embeddings import ENV_OVERRIDES as EMBEDDER_ENV_OVERRIDES
from core.services.index.embeddings import check_embedder
from core.services.index.service import check_weaviate_connection
from core.services.index.targets.neo4j import ENV_OVERRIDES as NEO4J_ENV_OVERRIDES
from core.services.index.targets.neo4j import SCHEMES as NEO4J_SCHEMES
from core.services.index.targets.neo4j import check_neo4j_connection


def write_only_field(label: str) -> forms.CharField:
    """A secret's form field: the stored value is never rendered back into the page."""
    return forms.CharField(
        label=label,
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Write-only. Leave empty to keep the stored value.",
    )


class WriteOnlySecretForm(forms.ModelForm):
    """A model form whose `secret_field` (declared with `write_only_field`, next to a
    `clear_<secret_field>` box) keeps the stored value when left empty."""

    secret_field = ""

    def clean(self):
        cleaned = super().clean()
        for name in ("url", "base_url"):
            url = cleaned.get(name, "")
            if url and not url.lower().startswith(("http://", "https://")):
                self.add_error(name, "Start the URL with http:// or https://.")
        return cleaned

    def save(self, commit=True):
        instance = super().save(commit=False)
        name = self.secret_field
        if self.cleaned_data.get(f"clear_{name}"):
            setattr(instance, name, "")
        elif not self.cleaned_data.get(name):
            stored = type(instance).objects.filter(pk=instance.pk).values_list(name, flat=True)
            setattr(instance, name, stored.first() or "")
        if commit:
            instance.save()
        return instance


class WeaviateConfigurationForm(WriteOnlySecretForm):
    secret_field = "api_key"  # noqa: S105 - the field's name, not a secret
    api_key = write_only_field("API key")
    clear_api_key = forms.BooleanField(label="Remove the stored API key", required=False)

    class Meta:
        model = WeaviateConfiguration
        fields = [
            "enabled",
            "url",
            "http_port",
            "grpc_port",
            "api_key",
            "collection_name",
            "connect_timeout",
            "query_timeout",
            "insert_timeout",
            "vectorizer",
        ]


class EmbedderConfigurationForm(WriteOnlySecretForm):
    secret_field = "http_api_key"  # noqa: S105 - the field's name, not a secret
    http_api_key = write_only_field("API key")
    clear_http_api_key = forms.BooleanField(label="Remove the stored API key", required=False)

    class Meta:
        model = EmbedderConfiguration
        fields = [
            "provider",
            "local_model_path",
            "http_url",
            "http_model",
            "http_api_key",
            "http_dimension",
            "batch_size",
            "timeout",
        ]

    def clean(self):
        cleaned = super().clean()
        url = cleaned.get("http_url", "")
        if url and not url.lower().startswith(("http://", "https://")):
            self.add_error("http_url", "Start the URL with http:// or https://.")
        if cleaned.get("provider") == "http" and not (url and cleaned.get("http_model")):
            self.add_error("http_url", "The HTTP provider needs an endpoint URL and a model name.")
        return cleaned


class Neo4jConfigurationForm(WriteOnlySecretForm):
    secret_field = "password"  # noqa: S105 - the field's name, not a secret
    password = write_only_field("Password")
    clear_password = forms.BooleanField(label="Remove the stored password", required=False)

    class Meta:
        model = Neo4jConfiguration
        fields = [
            "enabled",
            "uri",
            "user",
            "password",
            "database",
            "connect_timeout",
            "query_timeout",
        ]

    def clean_uri(self) -> str:
        uri = self.cleaned_data["uri"].strip()
        scheme, found, host = uri.partition("://")
        if not found or scheme.lower() not in NEO4J_SCHEMES or not host.strip("/"):
            raise forms.ValidationError(
                "Start the URI with "
                + ", ".join(f"{s}://" for s in NEO4J_SCHEMES)
                + " and name the host, e.g. neo4j://graph.internal:7687."
            )
        return uri


def _first_upper(text: str) -> str:
    return text[:1].upper() + text[1:]


class ConnectionAdmin(admin.ModelAdmin):
    """The admin of a connection singleton (`load()`, `SINGLETON_PK`): no add or
    delete, the list goes straight to the one object, a "Test connection" button
    that calls the subclass's `check_connection() -> (ok, message)`, the environment's
    overrides listed, and a write-only `secret_field`."""

    change_form_template = "admin/core/connection_change_form.html"
    env_overrides: dict[str, tuple[str, type]] = {}

    def _name(self, view: str) -> str:
        return f"{self.opts.app_label}_{self.opts.model_name}_{view}"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        self.model.load()
        return redirect(reverse(f"admin:{self._name('change')}", args=[self.model.SINGLETON_PK]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        self.model.load()
        secret = self.form.secret_field
        stored = self.model.objects.values_list(secret, flat=True).first()
        extra_context = {
            **(extra_context or {}),
            "env_overrides": [
                (variable, name)
                for variable, (name, _kind) in self.env_overrides.items()
                if os.environ.get(variable)
            ],
            "secret_label": _first_upper(self.model._meta.get_field(secret).verbose_name),
            "secret_stored": bool(stored),
            "test_url": reverse(f"admin:{self._name('test')}"),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        return [
            path(
                "test-connection/",
                self.admin_site.admin_view(self.test_connection),
                name=self._name("test"),
            ),
            *super().get_urls(),
        ]

    def test_connection(self, request: HttpRequest):
        back = HttpResponseRedirect(reverse(f"admin:{self._name('changelist')}"))
        if request.method != "POST":
            return back
        if not self.has_change_permission(request):
            messages.error(request, f"You may not change the {self.opts.verbose_name}.")
        else:
            ok, message = self.check_connection()
            (messages.success if ok else messages.error)(request, message)
        return back


@admin.register(WeaviateConfiguration)
class WeaviateConfigurationAdmin(ConnectionAdmin):
    form = WeaviateConfigurationForm
    env_overrides = ENV_OVERRIDES
    fieldsets = [
        (None, {"fields": ["enabled"]}),
        ("Server", {"fields": ["url", "http_port", "grpc_port", "api_key", "clear_api_key"]}),
        (
            "Collection and timeouts",
            {"fields": ["collection_name", "connect_timeout", "query_timeout", "insert_timeout"]},
        ),
        ("Vectors", {"fields": ["vectorizer"]}),
    ]

    def check_connection(self) -> tuple[bool, str]:
        return check_weaviate_connection()


@admin.register(Neo4jConfiguration)
class Neo4jConfigurationAdmin(ConnectionAdmin):
    """The graph in Neo4j; "Test connection" logs in, makes the schema and counts."""

    form = Neo4jConfigurationForm
    env_overrides = NEO4J_ENV_OVERRIDES
    fieldsets = [
        (None, {"fields": ["enabled"]}),
        ("Server", {"fields": ["uri", "user", "password", "clear_password", "database"]}),
        ("Timeouts", {"fields": ["connect_timeout", "query_timeout"]}),
    ]

    def check_connection(self) -> tuple[bool, str]:
        return check_neo4j_connection()


@admin.register(EmbedderConfiguration)
class EmbedderConfigurationAdmin(ConnectionAdmin):
    """Which model makes the vectors; "Test" embeds one sentence with it."""

    form = EmbedderConfigurationForm
    env_overrides = EMBEDDER_ENV_OVERRIDES
    fieldsets = [
        (None, {"fields": ["provider", "batch_size"]}),
        ("Local model", {"fields": ["local_model_path"]}),
        (
            "OpenAI-compatible endpoint",
            {
                "fields": [
                    "http_url",
                    "http_model",
                    "http_api_key",
                    "clear_http_api_key",
                    "http_dimension",
                    "timeout",
                ]
            },
        ),
    ]

    def check_connection(self) -> tuple[bool, str]:
        try:
            return check_embedder()
        except ValueError as exc:  # e.g. an unknown provider in the environment
            return False, str(exc)


@admin.register(SyncRecord)
class SyncRecordAdmin(admin.ModelAdmin):
    list_display = [
        "object_type",
        "object_id",
        "target",
        "state",
        "attempts",
        "last_synced_at",
        "next_attempt_at",
        "short_error",
    ]
    list_filter = ["target", "state", "object_type"]
    search_fields = ["object_id", "last_error"]
    readonly_fields = [f.name for f in SyncRecord._meta.fields]

    @admin.display(description="Last error")
    def short_error(self, obj: SyncRecord) -> str:
        return obj.last_error[:120]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(SyncOutbox)
class SyncOutboxAdmin(admin.ModelAdmin):
    list_display = ["id", "object_type", "object_id", "operation", "created_at"]
    list_filter = ["object_type", "operation"]
    search_fields = ["object_id"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(SyncTargetStatus)
class SyncTargetStatusAdmin(admin.ModelAdmin):
    list_display = [
        "target",
        "reachable",
        "server_version",
        "last_checked_at",
        "last_success_at",
        "last_error",
    ]
    list_filter = ["reachable"]
    search_fields = ["target", "last_error"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(ReconcileRun)
class ReconcileRunAdmin(admin.ModelAdmin):
    """Runs of `manage.py sync_weaviate`: read-only, the command writes them."""

    list_display = [
        "id",
        "target",
        "status",
        "step",
        "summary",
        "started_at",
        "finished_at",
        "host",
        "pid",
        "short_error",
    ]
    list_filter = ["target", "status"]
    search_fields = ["host", "error", "step"]
    readonly_fields = [f.name for f in ReconcileRun._meta.fields]

    @admin.display(description="Created / updated / unchanged / deleted / failed")
    def summary(self, obj: ReconcileRun) -> str:
        return " / ".join(str(n) for n in obj.totals().values())

    @admin.display(description="Error")
    def short_error(self, obj: ReconcileRun) -> str:
        return obj.error[:120]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
