"""The user's personal API tokens: list, create (shown once), revoke."""

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.http import require_http_methods, require_POST

from core.forms import BootstrapMixin
from core.models import ApiToken
from core.services.tokens import api_token_create, api_token_revoke


class ApiTokenForm(BootstrapMixin, forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What the token is for, so that you know which to revoke, e.g. “CI bot”.",
    )


@require_http_methods(["GET", "POST"])
def api_tokens(request: HttpRequest) -> HttpResponse:
    """The list and the form; a valid POST makes a token and shows it on the
    page it answers with, the only time it is ever shown."""
    form = ApiTokenForm(request.POST or None)
    new_token = ""
    if request.method == "POST" and form.is_valid():
        _, new_token = api_token_create(user=request.user, name=form.cleaned_data["name"])
        form = ApiTokenForm()
    response = render(
        request,
        "core/api_tokens.html",
        {
            "form": form,
            "new_token": new_token,
            "tokens": ApiToken.objects.filter(user=request.user),
        },
    )
    # A page with a token on it must not stay in any cache.
    add_never_cache_headers(response)
    return response


@require_POST
def api_token_revoke_view(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        token = api_token_revoke(user=request.user, token_id=pk)
    except ApiToken.DoesNotExist:
        # Someone else's token is answered like one that does not exist.
        raise Http404("No such token.") from None
    messages.success(request, f"Revoked the token “{token.name}” ({token.prefix}…).")
    return redirect("core:api-tokens")
