"""The sync dashboard (staff only): per target reachability, counts, lag,
failures with retry, and a chart of the pending count over the last hour."""

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from core.services.github.status import github_panel, retry_failed_links
from core.services.index.dashboard import dashboard, retry_failed


@staff_member_required
@require_GET
def sync_dashboard(request: HttpRequest) -> HttpResponse:
    context = {"panels": dashboard(), "github": github_panel()}
    # The page polls itself for the body; one template, whole or the part.
    template = "partials/sync_dashboard_body.html" if request.htmx else "core/sync_dashboard.html"
    return render(request, template, context)


@staff_member_required
@require_POST
def sync_retry(request: HttpRequest) -> HttpResponse:
    target = request.POST.get("target", "")
    object_type = request.POST.get("object_type") or None
    object_id = request.POST.get("object_id") or None
    count = retry_failed(target=target, object_type=object_type, object_id=object_id)
    if count:
        messages.success(request, f"Queued {count} failed object{'s' * (count != 1)} again.")
    else:
        messages.info(request, "Nothing to retry: no matching failed object.")
    return redirect("core:sync-dashboard")


@staff_member_required
@require_POST
def sync_github_retry(request: HttpRequest) -> HttpResponse:
    count = retry_failed_links()
    if count:
        messages.success(
            request,
            f"Queued {count} failed GitHub link{'s' * (count != 1)} or repositor"
            f"{'ies' if count != 1 else 'y'} for the next sync_github run.",
        )
    else:
        messages.info(request, "Nothing to retry: no failed GitHub link or repository.")
    return redirect("core:sync-dashboard")
