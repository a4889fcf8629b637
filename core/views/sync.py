"""The sync-status endpoints (seed 000's routes): a button per object, a modal
with the stored document, and a push. Views call the index services only."""

import json
import logging

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import trigger_client_event

from core import policy
from core.services.index.documents import is_object_id
from core.services.index.engine import write_now
from core.services.index.status import object_status, plain_status, resolve

logger = logging.getLogger("agira.index")


def _object(request: HttpRequest, object_type: str, object_id: str, action: str = "view"):
    """The object behind the URL if the user may see it (else 404) and may do
    `action` to it (else 403)."""
    instance = resolve(object_type, object_id) if is_object_id(object_id) else None
    if instance is None or not policy.can(request.user, "view", instance):
        raise Http404(f"No {object_type} with id {object_id}")
    policy.require(request.user, action, instance)
    return instance


def _status_for(request: HttpRequest, instance, **kwargs):
    status = object_status(instance, **kwargs)
    return status if policy.sees_internals(request.user) else plain_status(status)


def _modal_context(
    request: HttpRequest, instance, object_type: str, message: str = "", error: str = ""
) -> dict:
    status = _status_for(request, instance, with_document=True)
    for state in status.targets:
        state.pretty = (
            json.dumps(state.document, indent=2, ensure_ascii=False, sort_keys=True)
            if state.document is not None
            else ""
        )
    return {
        "object": instance,
        "object_type": object_type,
        "status": status,
        "message": message,
        "error": error,
        "may_push": policy.can(request.user, "push", instance),
    }


@require_GET
def weaviate_status(request: HttpRequest, object_type: str, object_id: str) -> HttpResponse:
    instance = _object(request, object_type, object_id)
    return render(
        request,
        "partials/weaviate_button.html",
        {
            "status": _status_for(request, instance),
            "object_type": object_type,
            "object": instance,
        },
    )


@require_GET
def weaviate_object(request: HttpRequest, object_type: str, object_id: str) -> HttpResponse:
    instance = _object(request, object_type, object_id)
    context = _modal_context(request, instance, object_type)
    # htmx loads the fragment into the modal; without JavaScript the same
    # content comes as a page of its own.
    template = "partials/weaviate_modal_content.html" if request.htmx else "core/sync_object.html"
    return render(request, template, context)


@require_POST
def weaviate_push(request: HttpRequest, object_type: str, object_id: str) -> HttpResponse:
    instance = _object(request, object_type, object_id, "push")
    reports = write_now([instance])
    written = [name for name, report in reports.items() if report.written]
    problems = [
        report.error or "the index refused it" for report in reports.values() if not report.written
    ]
    message = "Written to the index now." if written and not problems else ""
    error = "; ".join(problems) if problems else ""
    if not reports:
        error = "Sync is off: no index is enabled."
    if error and not policy.sees_internals(request.user):
        logger.warning("A push of %s %s failed: %s", object_type, instance.pk, error)
        error = "The index did not take it: your administrator can see why."
    context = _modal_context(request, instance, object_type, message=message, error=error)
    template = "partials/weaviate_modal_content.html" if request.htmx else "core/sync_object.html"
    response = render(request, template, context)
    return trigger_client_event(response, "objectSynced", {"key": f"{object_type}:{instance.pk}"})
