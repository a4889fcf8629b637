"""The endpoints: search, related objects, one object and its sync state.

Read-only (GET) by design: the session authenticates without CSRF only
because nothing here changes anything. What a user may see is decided by
`core.policy` (inside the index services, and here for the object
endpoint); an object they may not see is answered like one that does not exist.
"""

import logging

from django.http import Http404, HttpRequest
from ninja import NinjaAPI, Path, Query
from ninja.errors import AuthenticationError, HttpError, ValidationError

from core import policy
from core.policy import visibility
from core.services.index.context import (
    FALLBACK_NOTE,
    ObjectNotFound,
    item_number,
    related_objects,
    search_objects,
    snippet,
)
from core.services.index.documents import OBJECT_TYPES, document_for
from core.services.index.status import object_status, plain_status, resolve
from core.services.index.targets.base import TargetUnavailable

from . import schemas
from .auth import API_AUTH

logger = logging.getLogger("agira.api")

LOGIN_HINT = (
    "Authentication required: sign in, or send 'Authorization: Bearer <token>' "
    "(make a token at /account/tokens/)."
)

api = NinjaAPI(
    title="Agira API",
    version="1",
    description="Search, related objects and sync state of Agira's objects. See docs/api.md.",
    auth=API_AUTH,
    urls_namespace="api",
    docs_url="/docs",
    openapi_url="/openapi.json",
)

ERRORS = {400: schemas.Error, 401: schemas.Error, 503: schemas.Error}
# An unknown type is answered like a missing object (404). An id is a
# database key: up to 18 digits, which fit a 64-bit integer; anything else is
# refused (400) before it reaches a query.
OBJECT_TYPE = Path(
    ..., description=f"One of {', '.join(OBJECT_TYPES)}.", examples=["item", "comment"]
)
OBJECT_ID = Path(..., pattern=r"^[0-9]{1,18}$", description="The object's id.", examples=["42"])


def error(request: HttpRequest, status: int, detail: str):
    return api.create_response(request, {"detail": detail}, status=status)


@api.exception_handler(AuthenticationError)
def unauthenticated(request, exc: AuthenticationError):
    response = error(request, 401, LOGIN_HINT if exc.message == "Unauthorized" else exc.message)
    response["WWW-Authenticate"] = 'Bearer realm="agira"'
    return response


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    return error(request, exc.status_code, exc.message)


@api.exception_handler(ValidationError)
def _invalid(request, exc: ValidationError):
    """Bad parameters are 400, like every other refusal of a request: one
    sentence per problem, named by the parameter."""
    problems = []
    for problem in exc.errors:
        name = ".".join(str(part) for part in problem.get("loc", ())[1:]) or "request"
        problems.append(f"{name}: {problem.get('msg', 'invalid')}")
    return error(request, 400, "; ".join(problems) or "Invalid request.")


@api.exception_handler(Http404)
def _not_found(request, exc: Http404):
    return error(request, 404, str(exc) or "Not found.")


@api.exception_handler(TargetUnavailable)
def _unavailable(request, exc: TargetUnavailable):
    # Its message says which index and why: for staff; others read plain words.
    return error(request, 503, policy.index_error(request.user, exc))


@api.exception_handler(Exception)
def _server_error(request, exc: Exception):
    # The path only: never the headers, which may hold a token.
    logger.exception("API error on %s", request.path)
    return error(request, 500, "Internal server error.")


def _answered(request: HttpRequest, label: str, note: str, plain_note: str) -> dict:
    """Which index answered and why, in the words this caller may read (target
    names and errors are for staff)."""
    if policy.sees_internals(request.user):
        return {"answered_by": label, "note": note}
    return {"answered_by": "index" if label else "", "note": plain_note}


def _check_type(object_type: str) -> None:
    if object_type not in OBJECT_TYPES:
        raise Http404(f"Unknown type {object_type[:40]!r}: one of {', '.join(OBJECT_TYPES)}.")


def _instance(object_type: str, object_id: str, user):
    """The object behind a URL if `user` may see it; else 404, the same
    answer whether it is missing or hidden."""
    _check_type(object_type)
    instance = resolve(object_type, object_id)
    if instance is None or not visibility(user).allows(document_for(instance)):
        raise Http404(f"No {object_type} with id {object_id}.")
    return instance


@api.get(
    "/search",
    response={200: schemas.SearchOut, **ERRORS},
    summary="Search every object",
    tags=["search"],
)
def search(request: HttpRequest, params: Query[schemas.SearchParams]):
    """Objects matching the words, best first, filtered inside the index by
    type, project and status. Only what the caller may see."""
    try:
        results = search_objects(
            query=params.q,
            object_type=params.type or "",
            project_id=str(params.project or ""),
            status=params.status or "",
            page=params.page,
            per_page=params.limit,
            mode=params.mode,
            user=request.user,
        )
    except ValueError as exc:
        raise HttpError(400, str(exc)) from exc
    hits = []
    for hit in results.hits:
        doc = hit.document
        hits.append(
            {
                "type": str(doc.get("type") or ""),
                "object_id": str(doc.get("object_id") or ""),
                "item_number": item_number(doc),
                "title": str(doc.get("title") or ""),
                "project_id": str(doc.get("project_id") or ""),
                "status": str(doc.get("status") or ""),
                "url": request.build_absolute_uri(str(doc.get("url") or "/")),
                "score": hit.score,
                "snippet": "".join(part for part, _ in snippet(doc.get("text") or "", params.q)),
            }
        )
    return {
        "hits": hits,
        "page": results.page,
        "has_next": results.has_next,
        "total": results.total,
        "mode": results.mode,
        **_answered(request, results.target_label, results.note, results.plain_note),
    }


@api.get(
    "/objects/{object_type}/{object_id}/related",
    response={200: schemas.RelatedOut, 404: schemas.Error, **ERRORS},
    summary="Objects related to one object",
    tags=["objects"],
)
def related(
    request: HttpRequest,
    params: Query[schemas.RelatedParams],
    object_type: str = OBJECT_TYPE,
    object_id: str = OBJECT_ID,
):
    """The objects nearest in meaning to one object, across types; comments
    and attachments appear as their item (`via` says through which)."""
    _check_type(object_type)
    try:
        results = related_objects(
            object_type,
            object_id,
            limit=params.limit,
            scope=params.scope,
            open_only=params.open_only,
            user=request.user,
        )
    except ObjectNotFound as exc:
        raise Http404(str(exc)) from exc
    except ValueError as exc:
        raise HttpError(400, str(exc)) from exc
    return {
        "hits": [
            {
                "type": hit.type,
                "object_id": hit.object_id,
                "title": hit.title,
                "project_id": hit.project_id,
                "project_name": results.project_names.get(hit.project_id, ""),
                "status": hit.status,
                "url": request.build_absolute_uri(hit.url or "/"),
                "score": hit.score,
                "via": hit.via,
            }
            for hit in results.hits
        ],
        **_answered(
            request, results.target_label, results.note, FALLBACK_NOTE if results.fell_back else ""
        ),
    }


@api.get(
    "/objects/{object_type}/{object_id}/",
    response={200: schemas.ObjectOut, 400: schemas.Error, 401: schemas.Error, 404: schemas.Error},
    summary="One object: its document and its sync state",
    tags=["objects"],
)
def object_detail(request: HttpRequest, object_type: str = OBJECT_TYPE, object_id: str = OBJECT_ID):
    """The document as Agira would write it now and, per index, whether it
    holds it up to date and what it stores. Reads every index once."""
    instance = _instance(object_type, object_id, request.user)
    status = object_status(instance, with_document=True)
    if not policy.sees_internals(request.user):
        status = plain_status(status)
    return {
        "type": status.object_type,
        "object_id": status.object_id,
        "document": document_for(instance),
        "targets": [
            {
                "target": state.target,
                "label": state.label,
                "state": state.colour,
                "summary": state.summary,
                "reason": state.reason,
                "last_synced_at": state.record.last_synced_at if state.record else None,
                "document": state.document,
            }
            for state in status.targets
        ],
    }
