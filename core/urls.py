from django.urls import path
from django.views.generic import RedirectView

from core.views import (
    context,
    dashboard,
    item_parts,
    items,
    markdown,
    organisations,
    planning,
    projects,
    search,
    sync,
    tokens,
)

app_name = "core"


def _planning_routes(kind: str) -> list:
    return [
        path(
            f"projects/<int:project_id>/{kind}s/new/",
            planning.child_create,
            {"kind": kind},
            name=f"{kind}-create",
        ),
        path(f"{kind}s/<int:pk>/edit/", planning.child_edit, {"kind": kind}, name=f"{kind}-edit"),
        path(
            f"{kind}s/<int:pk>/delete/",
            planning.child_delete,
            {"kind": kind},
            name=f"{kind}-delete",
        ),
    ]


urlpatterns = [
    path("", RedirectView.as_view(pattern_name="core:project-list"), name="home"),
    path("projects/", projects.project_list, name="project-list"),
    path("organisations/<int:pk>/", organisations.members, name="organisation-members"),
    path(
        "organisations/<int:pk>/members/add/",
        organisations.member_add,
        name="organisation-member-add",
    ),
    path(
        "organisations/<int:pk>/members/<int:membership_id>/role/",
        organisations.member_role,
        name="organisation-member-role",
    ),
    path(
        "organisations/<int:pk>/members/<int:membership_id>/remove/",
        organisations.member_remove,
        name="organisation-member-remove",
    ),
    path("projects/new/", projects.project_create, name="project-create"),
    path("projects/<int:pk>/", projects.project_detail, name="project-detail"),
    path("projects/<int:pk>/edit/", projects.project_edit, name="project-edit"),
    path("projects/<int:pk>/delete/", projects.project_delete, name="project-delete"),
    *_planning_routes("node"),
    *_planning_routes("release"),
    *_planning_routes("change"),
    path("items/", items.item_list, name="item-list"),
    path("items/inbox/", items.item_list, {"inbox": True}, name="item-inbox"),
    path("items/new/", items.item_create, name="item-create"),
    path("items/<int:pk>/", items.item_detail, name="item-detail"),
    path("items/<int:pk>/edit/", items.item_edit, name="item-edit"),
    path("items/<int:pk>/delete/", items.item_delete, name="item-delete"),
    path("items/<int:pk>/links/", context.links, name="item-links"),
    path("items/<int:item_id>/comments/", item_parts.comment_create, name="comment-create"),
    path("comments/<int:pk>/edit/", item_parts.comment_edit, name="comment-edit"),
    path("comments/<int:pk>/delete/", item_parts.comment_delete, name="comment-delete"),
    path(
        "items/<int:item_id>/attachments/",
        item_parts.attachment_upload,
        name="attachment-create",
    ),
    path(
        "attachments/<int:pk>/download/",
        item_parts.attachment_download,
        name="attachment-download",
    ),
    path("attachments/<int:pk>/delete/", item_parts.attachment_remove, name="attachment-delete"),
    path("items/<int:item_id>/github/", item_parts.github_link_create, name="github-link-create"),
    path("search/", search.search, name="search"),
    path("markdown/preview/", markdown.markdown_preview, name="markdown-preview"),
    path(
        "related/<str:object_type>/<str:object_id>/",
        context.related,
        name="related",
    ),
    path("items/similar/", context.duplicates, name="possible-duplicates"),
    path("sync/", dashboard.sync_dashboard, name="sync-dashboard"),
    path("sync/retry/", dashboard.sync_retry, name="sync-retry"),
    path("sync/github/retry/", dashboard.sync_github_retry, name="sync-github-retry"),
    path(
        "weaviate/status/<str:object_type>/<str:object_id>/",
        sync.weaviate_status,
        name="weaviate-status",
    ),
    path(
        "weaviate/object/<str:object_type>/<str:object_id>/",
        sync.weaviate_object,
        name="weaviate-object",
    ),
    path(
        "weaviate/push/<str:object_type>/<str:object_id>/",
        sync.weaviate_push,
        name="weaviate-push",
    ),
    path("github-links/<int:pk>/delete/", item_parts.github_link_delete, name="github-link-delete"),
    path("account/tokens/", tokens.api_tokens, name="api-tokens"),
    path("account/tokens/<int:pk>/revoke/", tokens.api_token_revoke_view, name="api-token-revoke"),
]
