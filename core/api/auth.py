"""Who is calling the API: a personal token, or the browser's session.

A token is sent as `Authorization: Bearer <token>`. The header is never
logged or echoed: ninja's own HttpBearer logs a malformed header in DEBUG,
so this class reads the header itself.
"""

from django.http import HttpRequest
from ninja.errors import AuthenticationError
from ninja.security import HttpBearer, SessionAuth

from core.services.tokens import api_token_authenticate

REFUSED = "The token is unknown or revoked."


class TokenAuth(HttpBearer):
    def __call__(self, request: HttpRequest):
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self.authenticate(request, token.strip())

    def authenticate(self, request: HttpRequest, token: str):
        row = api_token_authenticate(token=token)
        if row is None:
            # A wrong token is refused even with a session beside it: the
            # caller meant the token, and should hear that it failed.
            raise AuthenticationError(message=REFUSED)
        # Services take the user from the request, as for a page.
        request.user = row.user
        return row.user


class SessionUser(SessionAuth):
    """The signed-in browser user (GET only, so CSRF never comes into it)."""

    def authenticate(self, request: HttpRequest, key: str | None):
        user = request.user
        return user if user.is_authenticated and user.is_active else None


# The order matters: a Bearer header decides before any session cookie.
API_AUTH = [TokenAuth(), SessionUser()]


def authenticate_request(request: HttpRequest):
    """The user behind a request by the API's rules, or None; raises
    AuthenticationError for a bad token. For views outside ninja's operations
    (the schema)."""
    for auth in API_AUTH:
        user = auth(request)
        if user:
            return user
    return None
