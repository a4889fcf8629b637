from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from core import policy, selectors
from core.forms import AttachmentForm, CommentForm, GitHubLinkForm, ItemFilterForm, ItemForm
from core.models import Item, ItemStatus, Project
from core.services.index.status import badge_states

from .common import confirm_delete, render_form_page


@require_GET
def item_list(request: HttpRequest, inbox: bool = False) -> HttpResponse:
    data = request.GET.copy()
    if inbox and "status" not in data:
        data["status"] = ItemStatus.INBOX
    filters = ItemFilterForm(data)
    filters.fields["project"].queryset = policy.scoped(
        request.user, filters.fields["project"].queryset
    )
    criteria = {"project_id": None, "status": "", "type": "", "q": ""}
    if filters.is_valid():
        project = filters.cleaned_data["project"]
        criteria = {
            "project_id": project.pk if project else None,
            "status": filters.cleaned_data["status"],
            "type": filters.cleaned_data["type"],
            "q": filters.cleaned_data["q"].strip(),
        }
    items = policy.scoped(request.user, selectors.item_list(**criteria))
    page = Paginator(items, settings.AGIRA_ITEMS_PER_PAGE).get_page(request.GET.get("page"))
    # Sync badges for the whole page from the sync records: no index calls,
    # and the same few queries whatever the number of rows.
    colours = badge_states("item", [item.pk for item in page])
    for item in page:
        item.sync_colour = colours[str(item.pk)]
    # Pagination links keep the filters.
    query = data.copy()
    query.pop("page", None)
    return render(
        request,
        "core/item_list.html",
        {
            "filters": filters,
            "page": page,
            "query": query.urlencode(),
            "inbox": inbox,
            "may_create_item": policy.organisations_where(request.user, "create_item").exists(),
            "new_item_url": reverse("core:item-create")
            + (f"?project={criteria['project_id']}" if criteria["project_id"] else ""),
        },
    )


@require_http_methods(["GET", "POST"])
def item_create(request: HttpRequest) -> HttpResponse:
    projects = Project.objects.filter(
        organisation__in=policy.organisations_where(request.user, "create_item")
    )
    if not projects.exists():
        raise PermissionDenied("Creating items needs the member role in an organisation.")
    initial = {}
    project_id = request.GET.get("project", "")
    if project_id.isdigit() and projects.filter(pk=project_id).exists():
        initial["project"] = int(project_id)
    form = ItemForm(request.POST or None, initial=initial)
    limit_item_form(form, request.user, projects)
    if request.method == "POST" and form.is_valid():
        item = form.save()
        messages.success(request, f"Created item {item}.")
        return redirect(item)
    return render_form_page(
        request,
        form=form,
        title="New item",
        cancel_url=reverse("core:item-list"),
        extra={"duplicates_url": reverse("core:possible-duplicates")},
    )


ITEM_ACTIONS = ("edit_item", "delete_item", "comment", "attach", "link_github", "unlink_github")


def item_detail_context(item: Item, user, **forms) -> dict:
    mappings = list(item.external_mappings.order_by("kind", "repository", "number"))
    comments = list(item.comments.select_related("author"))
    attachments = list(item.attachments.select_related("uploaded_by"))
    for part, action in [(c, "comment") for c in comments] + [
        (a, "attachment") for a in attachments
    ]:
        part.item = item  # no query per row for its organisation
        part.may_delete = policy.can(user, f"delete_{action}", part)
        part.may_edit = action == "comment" and policy.can(user, "edit_comment", part)
    return {
        "item": item,
        "may": policy.abilities(user, item, ITEM_ACTIONS),
        "comments": comments,
        "attachments": attachments,
        "mappings": mappings,
        "attention": [m for m in mappings if m.attention],
        "comment_form": forms.get("comment_form") or CommentForm(),
        "attachment_form": forms.get("attachment_form") or AttachmentForm(),
        "link_form": forms.get("link_form") or GitHubLinkForm(item=item),
        "max_upload_bytes": settings.AGIRA_MAX_UPLOAD_BYTES,
    }


def limit_item_form(form: ItemForm, user, projects) -> None:
    """The projects the user may put items in, and the people of those
    organisations as assignees."""
    form.fields["project"].queryset = projects
    form.fields["assignee"].queryset = (
        form.fields["assignee"]
        .queryset.filter(memberships__organisation__projects__in=projects)
        .distinct()
    )


def get_item(user, pk: int, action: str = "view") -> Item:
    return policy.obtain(
        user, action, Item.objects.select_related("project__organisation", "assignee"), pk=pk
    )


@require_GET
def item_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return render(
        request,
        "core/item_detail.html",
        item_detail_context(get_item(request.user, pk), request.user),
    )


@require_http_methods(["GET", "POST"])
def item_edit(request: HttpRequest, pk: int) -> HttpResponse:
    item = get_item(request.user, pk, "edit_item")
    form = ItemForm(request.POST or None, instance=item)
    limit_item_form(
        form,
        request.user,
        Project.objects.filter(
            organisation__in=policy.organisations_where(request.user, "create_item")
        ),
    )
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Saved item {item}.")
        return redirect(item)
    return render_form_page(
        request,
        form=form,
        title=f"Edit {item}",
        cancel_url=item.get_absolute_url(),
        extra={"duplicates_url": f"{reverse('core:possible-duplicates')}?item={item.pk}"},
    )


@require_http_methods(["GET", "POST"])
def item_delete(request: HttpRequest, pk: int) -> HttpResponse:
    item = get_item(request.user, pk, "delete_item")
    return confirm_delete(
        request,
        obj=item,
        cancel_url=item.get_absolute_url(),
        success_url=reverse("core:item-list"),
        warning="Its comments, attachments and GitHub links are deleted with it.",
    )
