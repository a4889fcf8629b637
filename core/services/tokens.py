"""Personal API tokens: made, revoked and checked here, and nowhere else.

A token is `agira_` followed by 43 URL-safe characters (32 random bytes from
`secrets`). The database keeps its SHA-256 and its first characters; the
token itself is returned once, by `api_token_create`. A fast hash is enough:
the secret is random and long, so there is nothing to guess from the hash.
"""

import hashlib
import secrets
from datetime import timedelta

from django.utils import timezone

from core.models import ApiToken

TOKEN_PREFIX = "agira_"  # noqa: S105  (a marker, not a secret)
TOKEN_BYTES = 32
# Shown beside the name: the scheme and six characters of the secret.
DISPLAY_CHARS = len(TOKEN_PREFIX) + 6
# Longer than any token this module makes: refused before hashing.
MAX_TOKEN_CHARS = 200
# `last_used_at` is written at most this often per token, so that a busy
# script does not turn every read into a write.
LAST_USED_PRECISION = timedelta(minutes=1)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def api_token_create(*, user, name: str) -> tuple[ApiToken, str]:
    """A new token for `user`: the stored row and the token itself, which
    exists nowhere else and must be shown to the user now."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    row = ApiToken.objects.create(
        user=user, name=name.strip(), prefix=token[:DISPLAY_CHARS], key_hash=hash_token(token)
    )
    return row, token


def api_token_revoke(*, user, token_id: int) -> ApiToken:
    """Revoke one of `user`'s tokens (again: no change). Raises
    ApiToken.DoesNotExist for a token that is not theirs."""
    row = ApiToken.objects.get(pk=token_id, user=user)
    if row.revoked_at is None:
        row.revoked_at = timezone.now()
        row.save(update_fields=["revoked_at"])
    return row


def api_token_authenticate(*, token: str) -> ApiToken | None:
    """The live token matching `token`, with its user, or None: unknown,
    revoked, or its user deactivated. Records when it was used."""
    if not token or len(token) > MAX_TOKEN_CHARS or not token.startswith(TOKEN_PREFIX):
        return None
    row = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=hash_token(token), revoked_at__isnull=True)
        .first()
    )
    if row is None or not row.user.is_active:
        return None
    now = timezone.now()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_PRECISION:
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
        row.last_used_at = now
    return row
