"""Personal API tokens: how scripts and coding agents sign in to `/api/`.

Only a SHA-256 hash of a token is stored. The token itself is shown to its
owner once, when it is made (`core.services.tokens`); a lost token is revoked
and replaced, never recovered.
"""

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, help_text="What the token is for, e.g. “CI bot”.")
    # The token's first characters: enough to tell tokens apart, useless to sign in.
    prefix = models.CharField(max_length=16, editable=False)
    key_hash = models.CharField("SHA-256 of the token", max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None
