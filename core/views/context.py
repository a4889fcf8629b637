"""Context from the index for people: related objects and possible duplicates.

Both are htmx fragments loaded after the page (a slow or absent index never
holds up an item page or a form); without htmx, related objects come as a
page of their own and the duplicate hints are simply absent.
"""

from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from core import policy
from core.services.index import TargetUnavailable
from core.services.index.context import (
    DUPLICATES_MIN_CHARS,
    FALLBACK_NOTE,
    MAX_DUPLICATES_QUERY_CHARS,
    RELATED_SCOPES,
    ObjectNotFound,
    possible_duplicates,
    related_objects,
)
from core.services.index.documents import OBJECT_TYPES
from core.services.index.links import item_links
from core.services.index.status import resolve
from core.views.items import get_item


@require_GET
def related(request: HttpRequest, object_type: str, object_id: str) -> HttpResponse:
    if object_type not in OBJECT_TYPES:
        raise Http404(f"No objects of type {object_type}")
    scope = request.GET.get("scope", "all")
    scope = scope if scope in RELATED_SCOPES else "all"
    open_only = request.GET.get("open") == "1"
    context = {
        "object_type": object_type,
        "object_id": object_id,
        "scope": scope,
        "open_only": open_only,
        "results": None,
        "error": "",
    }
    try:
        results = related_objects(
            object_type, object_id, scope=scope, open_only=open_only, user=request.user
        )
    except ObjectNotFound as exc:
        raise Http404(str(exc)) from exc
    except TargetUnavailable as exc:
        context["error"] = policy.index_error(request.user, exc)
    else:
        context.update(results=results, **_presented(request, results))
    if request.htmx:
        return render(request, "core/partials/related_list.html", context)
    context["subject"] = resolve(object_type, object_id)
    return render(request, "core/related.html", context)


@require_GET
def links(request: HttpRequest, pk: int) -> HttpResponse:
    """An item's neighbourhood in the graph: an htmx fragment for the item
    page's Links tab, or a page of its own without JavaScript."""
    item = get_item(request.user, pk)
    context = {"item": item, "links": None, "error": ""}
    try:
        context["links"] = item_links(item, request.user)
    except TargetUnavailable as exc:
        context["error"] = policy.index_error(request.user, exc)
    if request.htmx:
        return render(request, "core/partials/item_links.html", context)
    return render(request, "core/item_links.html", context)


# What a draft may hold and still be compared: more is refused (400), so a
# request's cost is bounded whatever a client sends.
MAX_DRAFT_TITLE_CHARS = 255
MAX_DRAFT_DESCRIPTION_CHARS = 100_000


@require_POST
def duplicates(request: HttpRequest) -> HttpResponse:
    """Open items like the draft being typed (POST: a description can be
    longer than a URL may be; nothing is changed)."""
    title = request.POST.get("title", "").strip()
    description = request.POST.get("description", "").strip()
    if len(title) > MAX_DRAFT_TITLE_CHARS or len(description) > MAX_DRAFT_DESCRIPTION_CHARS:
        return HttpResponseBadRequest(
            f"The draft is too long to compare: at most {MAX_DRAFT_TITLE_CHARS} characters of "
            f"title and {MAX_DRAFT_DESCRIPTION_CHARS:,} of description."
        )
    # The model reads the first few hundred words: only they are compared.
    text = f"{title}\n\n{description}".strip()[:MAX_DUPLICATES_QUERY_CHARS]
    project = request.POST.get("project", "")
    item = request.GET.get("item", "")
    context = {"results": None, "error": "", "compared": len(text) >= DUPLICATES_MIN_CHARS}
    try:
        context["results"] = possible_duplicates(
            text,
            project_id=project if project.isdigit() else "",
            exclude_item=item if item.isdigit() else "",
            user=request.user,
        )
    except TargetUnavailable as exc:
        context["error"] = policy.index_error(request.user, exc)
    return render(request, "core/partials/duplicates_list.html", context)


def _presented(request: HttpRequest, results) -> dict:
    """Which index answered and why, in the words this user may read."""
    if policy.sees_internals(request.user):
        return {"answered_by": results.target_label, "note": results.note}
    return {"answered_by": "index", "note": FALLBACK_NOTE if results.fell_back else ""}
