from django.contrib import admin
from django.utils import timezone

from core.models import (
    ApiToken,
    Attachment,
    Change,
    ExternalIssueMapping,
    Item,
    ItemComment,
    Membership,
    Node,
    Organisation,
    Project,
    Release,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Organisation)
class OrganisationAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name", "description"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "organisation", "role", "updated_at"]
    list_filter = ["role", "organisation"]
    search_fields = ["user__username", "organisation__name"]
    list_select_related = ["user", "organisation"]
    autocomplete_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "organisation", "status", "updated_at"]
    list_filter = ["status", "organisation"]
    search_fields = ["name", "description"]
    list_select_related = ["organisation"]


class ItemCommentInline(admin.TabularInline):
    model = ItemComment
    extra = 0
    fields = ["author", "body", "created_at"]
    readonly_fields = ["created_at"]
    raw_id_fields = ["author"]


class AttachmentInline(admin.TabularInline):
    model = Attachment
    extra = 0
    fields = ["original_filename", "content_type", "size_bytes", "sha256", "uploaded_by"]
    readonly_fields = fields
    can_delete = True
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        # Uploads go through the item page, which hashes and measures the file.
        return False


class ExternalIssueMappingInline(admin.TabularInline):
    model = ExternalIssueMapping
    extra = 0
    fields = ["provider", "repository", "number", "kind", "state", "state_reason", "sync_state"]
    readonly_fields = ["state", "state_reason", "sync_state"]


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["id", "title", "project", "type", "status", "assignee", "updated_at"]
    list_filter = ["status", "type", "project__organisation", "project"]
    search_fields = ["title", "description"]
    list_select_related = ["project", "assignee"]
    raw_id_fields = ["assignee"]
    date_hierarchy = "created_at"
    inlines = [ItemCommentInline, AttachmentInline, ExternalIssueMappingInline]


@admin.register(ItemComment)
class ItemCommentAdmin(admin.ModelAdmin):
    list_display = ["id", "item", "author", "created_at"]
    list_filter = ["item__project"]
    search_fields = ["body", "item__title"]
    list_select_related = ["item", "author"]
    raw_id_fields = ["item", "author"]


@admin.register(Attachment)
class AttachmentAdmin(admin.ModelAdmin):
    list_display = ["original_filename", "item", "content_type", "size_bytes", "created_at"]
    list_filter = ["content_type", "item__project"]
    search_fields = ["original_filename", "sha256", "item__title"]
    list_select_related = ["item"]
    raw_id_fields = ["item", "uploaded_by"]
    readonly_fields = ["size_bytes", "sha256", "content_type", "file"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Change)
class ChangeAdmin(admin.ModelAdmin):
    list_display = ["title", "project", "status", "risk", "updated_at"]
    list_filter = ["status", "risk", "project"]
    search_fields = ["title", "description"]
    list_select_related = ["project"]


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "type", "parent"]
    list_filter = ["type", "project"]
    search_fields = ["name", "description"]
    list_select_related = ["project", "parent"]
    raw_id_fields = ["parent"]


@admin.register(Release)
class ReleaseAdmin(admin.ModelAdmin):
    list_display = ["version", "project", "status", "planned_date", "released_date"]
    list_filter = ["status", "project"]
    search_fields = ["version", "notes"]
    list_select_related = ["project"]


@admin.register(ExternalIssueMapping)
class ExternalIssueMappingAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "item",
        "kind",
        "state",
        "state_reason",
        "sync_state",
        "last_synced_at",
    ]
    list_filter = ["provider", "kind", "state", "sync_state", "repository"]
    search_fields = ["repository", "title", "item__title"]
    list_select_related = ["item"]
    raw_id_fields = ["item"]
    list_display = [*list_display, "attention"]
    list_filter = [*list_filter, "attention"]
    readonly_fields = [
        "last_synced_at",
        "external_id",
        "external_updated_at",
        "external_created_at",
        "closed_at",
        "sync_error",
        "sync_attempts",
        "next_attempt_at",
    ]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Owners make their tokens (API tokens page); the admin sees and revokes
    them. Only the token's hash is stored, so no secret can be shown here."""

    list_display = ["name", "user", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "user__username"]
    list_select_related = ["user"]
    fields = ["user", "name", "prefix", "key_hash", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["user", "prefix", "key_hash", "created_at", "last_used_at"]
    actions = ["revoke"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Revoke selected tokens")
    def revoke(self, request, queryset) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} token{'s' * (count != 1)}.")


from core import admin_github, admin_sync  # noqa: E402, F401  (registers their admin pages)
