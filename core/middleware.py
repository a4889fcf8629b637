from collections.abc import Callable

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse

HEALTH_PATH = "/health/"


class HealthCheckMiddleware:
    """Answers `GET /health/` before any other middleware.

    The container's health check calls http://127.0.0.1:8000 from inside: no proxy
    says the request came over HTTPS and its Host is not the public name, so the
    HTTPS redirect and ALLOWED_HOSTS would turn it away. The answer depends on
    neither (it never reads the Host), and says only whether the database answers.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info != HEALTH_PATH or request.method not in ("GET", "HEAD"):
            return self.get_response(request)
        try:
            connection.ensure_connection()
        except DatabaseError:
            return HttpResponse("database unavailable\n", status=503, content_type="text/plain")
        return HttpResponse("ok\n", content_type="text/plain")
