"""The API's URLs: ninja's, made to answer like an API.

Django's LoginRequiredMiddleware would send an anonymous caller to the login
page; every API URL is marked `login_not_required` instead, and ninja's auth
answers 401 JSON (the schema too, by the same rules). Only the docs page, a
page for people, keeps the login redirect. Whatever Django would answer in
HTML (a 405, an unknown path) comes as `{"detail": ...}` as well.
"""

from functools import wraps

from django.contrib.auth.decorators import login_not_required, login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.urls import URLPattern, re_path
from django.views.decorators.csrf import csrf_exempt
from ninja.errors import AuthenticationError

from .api import api, error, unauthenticated
from .auth import authenticate_request

app_name = "api"


def _json_errors(view):
    """`view`, with Django's non-JSON error answers turned into JSON."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            response = view(request, *args, **kwargs)
        except Http404:
            # Only ninja's root view raises it (the API's own 404s are JSON).
            return _unknown(request)
        if response.status_code >= 400 and "json" not in response.get("Content-Type", ""):
            json_response = error(request, response.status_code, response.reason_phrase + ".")
            if response.has_header("Allow"):
                json_response["Allow"] = response["Allow"]
            return json_response
        return response

    return wrapper


def _api_auth_required(view):
    """The schema needs a caller, like every endpoint (ninja does not check it)."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            response = error(request, 405, "Method Not Allowed.")
            response["Allow"] = "GET, HEAD"
            return response
        try:
            user = authenticate_request(request)
        except AuthenticationError as exc:
            return unauthenticated(request, exc)
        if user is None:
            return unauthenticated(request, AuthenticationError())
        return view(request, *args, **kwargs)

    return wrapper


def _unknown(request: HttpRequest, path: str = "") -> HttpResponse:
    return error(request, 404, "No such endpoint: see /api/docs or /api/openapi.json.")


def _api_view(view):
    """An API URL: its own auth instead of the login redirect, JSON errors,
    and no CSRF middleware, whose refusal of a POST would be an HTML 403.
    Nothing here changes state; ninja's session auth still checks CSRF on any
    operation that is not a GET."""
    return csrf_exempt(login_not_required(_json_errors(view)))


def _patterns() -> list[URLPattern]:
    patterns = []
    for pattern in api.urls[0]:
        view = pattern.callback
        if pattern.name == "openapi-view":
            view = login_required(view)
        else:
            if pattern.name == "openapi-json":
                view = _api_auth_required(view)
            view = _api_view(view)
        pattern.callback = view
        patterns.append(pattern)
    # Last: anything else under /api/ (also a missing trailing slash).
    patterns.append(re_path(r"^(?P<path>.*)$", _api_view(_unknown)))
    return patterns


urlpatterns = _patterns()
