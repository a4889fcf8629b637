"""Admin pages of the sync engine: the Weaviate configuration (a singleton
with a write-only API key and a "Test connection" button) and the sync state."""

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import path, reverse

from core.models import (
    ReconcileRun,
    SyncOutbox,
    SyncRecord,
    SyncTargetStatus,
    WeaviateConfiguration,
)
from core.services.index.config import ENV_OVERRIDES
from core.services.index.service import check_weaviate_connection


class WeaviateConfigurationForm(forms.ModelForm):
    # Write-only: the stored key is never rendered back into the page.
    api_key = forms.CharField(
        label="API key",
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave empty to keep the stored key.",
    )
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
        ]

    def clean(self):
        cleaned = super().clean()
        url = cleaned.get("url", "")
        if url and not url.lower().startswith(("http://", "https://")):
            self.add_error("url", "Start the URL with http:// or https://.")
        return cleaned

    def save(self, commit=True):
        instance = super().save(commit=False)
        new_key = self.cleaned_data.get("api_key")
        if self.cleaned_data.get("clear_api_key"):
            instance.api_key = ""
        elif not new_key:
            instance.api_key = (
                WeaviateConfiguration.objects.filter(pk=instance.pk)
                .values_list("api_key", flat=True)
                .first()
                or ""
            )
        if commit:
            instance.save()
        return instance


@admin.register(WeaviateConfiguration)
class WeaviateConfigurationAdmin(admin.ModelAdmin):
    form = WeaviateConfigurationForm
    change_form_template = "admin/core/weaviateconfiguration/change_form.html"
    fieldsets = [
        (None, {"fields": ["enabled"]}),
        ("Server", {"fields": ["url", "http_port", "grpc_port", "api_key", "clear_api_key"]}),
        (
            "Collection and timeouts",
            {"fields": ["collection_name", "connect_timeout", "query_timeout", "insert_timeout"]},
        ),
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        WeaviateConfiguration.load()
        return redirect(
            reverse(
                "admin:core_weaviateconfiguration_change", args=[WeaviateConfiguration.SINGLETON_PK]
            )
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        WeaviateConfiguration.load()
        import os

        overridden = [
            (variable, name)
            for variable, (name, _kind) in ENV_OVERRIDES.items()
            if os.environ.get(variable)
        ]
        stored = WeaviateConfiguration.objects.values_list("api_key", flat=True).first()
        extra_context = {
            **(extra_context or {}),
            "env_overrides": overridden,
            "api_key_stored": bool(stored),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def get_urls(self):
        return [
            path(
                "test-connection/",
                self.admin_site.admin_view(self.test_connection),
                name="core_weaviateconfiguration_test",
            ),
            *super().get_urls(),
        ]

    def test_connection(self, request: HttpRequest):
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:core_weaviateconfiguration_changelist"))
        if not self.has_change_permission(request):
            messages.error(request, "You may not change the Weaviate configuration.")
        else:
            ok, message = check_weaviate_connection()
            (messages.success if ok else messages.error)(request, message)
        return HttpResponseRedirect(reverse("admin:core_weaviateconfiguration_changelist"))


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
