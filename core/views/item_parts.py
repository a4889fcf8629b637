"""Comments, attachments and GitHub links on an item.

The forms post normally (the page works without JavaScript); with htmx the
comment form swaps only the comment list.
"""

from django.contrib import messages
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from core import policy
from core.forms import AttachmentForm, CommentForm, GitHubLinkForm
from core.models import Attachment, ExternalIssueMapping, ItemComment
from core.services.attachments import attachment_create, attachment_delete

from .common import confirm_delete, render_form_page
from .items import get_item, item_detail_context


def _item_tab_url(item, tab: str) -> str:
    return f"{item.get_absolute_url()}#{tab}"


@require_POST
def comment_create(request: HttpRequest, item_id: int) -> HttpResponse:
    item = get_item(request.user, item_id, "comment")
    form = CommentForm(request.POST)
    if form.is_valid():
        comment = form.save(commit=False)
        comment.item = item
        comment.author = request.user
        comment.save()
        if not request.htmx:
            messages.success(request, "Comment added.")
            return redirect(_item_tab_url(item, "comments"))
        form = CommentForm()
    context = item_detail_context(item, request.user, comment_form=form)
    context["active_tab"] = "comments"
    if request.htmx:
        return render(request, "core/partials/item_comments.html", context)
    return render(request, "core/item_detail.html", context, status=400)


@require_http_methods(["GET", "POST"])
def comment_edit(request: HttpRequest, pk: int) -> HttpResponse:
    comment = policy.obtain(
        request.user, "edit_comment", ItemComment.objects.select_related("item__project"), pk=pk
    )
    form = CommentForm(request.POST or None, instance=comment)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, "Comment saved.")
        return redirect(_item_tab_url(comment.item, "comments"))
    return render_form_page(
        request,
        form=form,
        title=f"Edit comment on {comment.item}",
        cancel_url=_item_tab_url(comment.item, "comments"),
    )


@require_http_methods(["GET", "POST"])
def comment_delete(request: HttpRequest, pk: int) -> HttpResponse:
    comment = policy.obtain(
        request.user, "delete_comment", ItemComment.objects.select_related("item__project"), pk=pk
    )
    url = _item_tab_url(comment.item, "comments")
    return confirm_delete(request, obj=comment, cancel_url=url, success_url=url)


@require_POST
def attachment_upload(request: HttpRequest, item_id: int) -> HttpResponse:
    item = get_item(request.user, item_id, "attach")
    form = AttachmentForm(request.POST, request.FILES)
    if form.is_valid():
        attachment = attachment_create(
            item=item, upload=form.cleaned_data["file"], uploaded_by=request.user
        )
        messages.success(request, f"Uploaded {attachment.original_filename}.")
        return redirect(_item_tab_url(item, "attachments"))
    context = item_detail_context(item, request.user, attachment_form=form)
    context["active_tab"] = "attachments"
    return render(request, "core/item_detail.html", context, status=400)


@require_GET
def attachment_download(request: HttpRequest, pk: int) -> HttpResponse:
    attachment = policy.obtain(request.user, "view", Attachment.objects, pk=pk)
    try:
        handle = attachment.file.open("rb")
    except FileNotFoundError:
        messages.error(
            request,
            f"The file of {attachment.original_filename} is missing from storage.",
        )
        return redirect(_item_tab_url(attachment.item, "attachments"))
    return FileResponse(
        handle,
        as_attachment=True,
        filename=attachment.original_filename,
        content_type=attachment.content_type,
    )


@require_http_methods(["GET", "POST"])
def attachment_remove(request: HttpRequest, pk: int) -> HttpResponse:
    attachment = policy.obtain(
        request.user,
        "delete_attachment",
        Attachment.objects.select_related("item__project"),
        pk=pk,
    )
    url = _item_tab_url(attachment.item, "attachments")
    return confirm_delete(
        request,
        obj=attachment,
        cancel_url=url,
        success_url=url,
        delete=lambda: attachment_delete(attachment=attachment),
    )


@require_POST
def github_link_create(request: HttpRequest, item_id: int) -> HttpResponse:
    item = get_item(request.user, item_id, "link_github")
    form = GitHubLinkForm(request.POST, item=item)
    if form.is_valid():
        mapping = form.save()
        messages.success(request, f"Linked {mapping}.")
        return redirect(_item_tab_url(item, "github"))
    context = item_detail_context(item, request.user, link_form=form)
    context["active_tab"] = "github"
    return render(request, "core/item_detail.html", context, status=400)


@require_http_methods(["GET", "POST"])
def github_link_delete(request: HttpRequest, pk: int) -> HttpResponse:
    mapping = policy.obtain(
        request.user,
        "unlink_github",
        ExternalIssueMapping.objects.select_related("item__project"),
        pk=pk,
    )
    url = _item_tab_url(mapping.item, "github")
    return confirm_delete(request, obj=mapping, cancel_url=url, success_url=url)
