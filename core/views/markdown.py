"""The Preview tab of the item and comment forms."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from core.markdown import MAX_MARKDOWN_CHARS


@require_POST
def markdown_preview(request: HttpRequest) -> HttpResponse:
    """Render posted Markdown as the page would show it.

    The tab posts its form's own textarea, whose name differs from form to
    form (``description``, ``body``); ``field`` says which one it is.
    """
    text = request.POST.get(request.POST.get("field", "text"), "")
    if len(text) > MAX_MARKDOWN_CHARS:
        error = (
            f"Too long to preview: {len(text):,} characters, "
            f"and Markdown is rendered up to {MAX_MARKDOWN_CHARS:,}."
        )
        return render(request, "core/partials/markdown_preview.html", {"error": error}, status=400)
    return render(request, "core/partials/markdown_preview.html", {"text": text})
