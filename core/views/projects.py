from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from core import policy, selectors
from core.forms import ProjectFilterForm, ProjectForm
from core.models import ItemStatus, Project

from .common import confirm_delete, render_form_page


@require_GET
def project_list(request: HttpRequest) -> HttpResponse:
    filters = ProjectFilterForm(request.GET or None)
    filters.fields["organisation"].queryset = policy.scoped(
        request.user, filters.fields["organisation"].queryset
    )
    organisation_id, status = None, ""
    if filters.is_valid():
        organisation = filters.cleaned_data["organisation"]
        organisation_id = organisation.pk if organisation else None
        status = filters.cleaned_data["status"]
    projects = policy.scoped(
        request.user, selectors.project_list(organisation_id=organisation_id, status=status)
    )
    cards = [
        {
            "project": project,
            "counts": [
                {
                    "label": label,
                    "key": key,
                    "icon": icon,
                    "count": getattr(project, f"count_{key}"),
                }
                for label, key, icon in selectors.CARD_STATUSES
            ],
        }
        for project in projects
    ]
    return render(
        request,
        "core/project_list.html",
        {
            "filters": filters,
            "cards": cards,
            "may_create_project": policy.organisations_where(
                request.user, "create_project"
            ).exists(),
        },
    )


@require_http_methods(["GET", "POST"])
def project_create(request: HttpRequest) -> HttpResponse:
    organisations = policy.organisations_where(request.user, "create_project")
    if not organisations.exists():
        raise PermissionDenied("Creating projects needs the maintainer role in an organisation.")
    form = ProjectForm(request.POST or None)
    form.fields["organisation"].queryset = organisations
    if request.method == "POST" and form.is_valid():
        project = form.save()
        messages.success(request, f"Created project “{project}”.")
        return redirect(project)
    return render_form_page(
        request, form=form, title="New project", cancel_url=reverse("core:project-list")
    )


@require_GET
def project_detail(request: HttpRequest, pk: int) -> HttpResponse:
    project = policy.obtain(
        request.user, "view", Project.objects.select_related("organisation"), pk=pk
    )
    items = Paginator(
        project.items.select_related("assignee").order_by("-updated_at", "-id"),
        settings.AGIRA_ITEMS_PER_PAGE,
    ).get_page(request.GET.get("page"))
    nodes = list(project.nodes.all())
    context = {
        "project": project,
        "may": policy.abilities(
            request.user,
            project,
            ("edit_project", "delete_project", "manage_planning", "create_item"),
        ),
        "items": items,
        "status_counts": _status_counts(project),
        "node_tree": _node_tree(nodes),
        "releases": project.releases.all(),
        "changes": project.changes.all(),
    }
    return render(request, "core/project_detail.html", context)


def _status_counts(project: Project) -> list[tuple[str, int]]:
    rows = project.items.order_by().values("status").annotate(n=Count("id"))
    counted = {row["status"]: row["n"] for row in rows}
    return [(status.label, counted.get(status.value, 0)) for status in ItemStatus]


def _node_tree(nodes: list) -> list[tuple[int, object]]:
    """Depth-first (depth, node) pairs for rendering the architecture tree flat."""
    children: dict[int | None, list] = {}
    for node in nodes:
        children.setdefault(node.parent_id, []).append(node)
    ordered: list[tuple[int, object]] = []
    stack = [(0, node) for node in reversed(children.get(None, []))]
    while stack:
        depth, node = stack.pop()
        ordered.append((depth, node))
        stack.extend((depth + 1, child) for child in reversed(children.get(node.pk, [])))
    return ordered


@require_http_methods(["GET", "POST"])
def project_edit(request: HttpRequest, pk: int) -> HttpResponse:
    project = policy.obtain(request.user, "edit_project", Project.objects, pk=pk)
    form = ProjectForm(request.POST or None, instance=project)
    # Moving a project needs the maintainer role in the organisation it goes to.
    form.fields["organisation"].queryset = policy.organisations_where(
        request.user, "create_project"
    )
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Saved project “{project}”.")
        return redirect(project)
    return render_form_page(
        request, form=form, title=f"Edit {project}", cancel_url=project.get_absolute_url()
    )


@require_http_methods(["GET", "POST"])
def project_delete(request: HttpRequest, pk: int) -> HttpResponse:
    project = policy.obtain(request.user, "delete_project", Project.objects, pk=pk)
    return confirm_delete(
        request,
        obj=project,
        cancel_url=project.get_absolute_url(),
        success_url=reverse("core:project-list"),
        warning=f"This also deletes its {project.items.count()} items with their comments "
        "and attachments, and all its nodes, releases and changes.",
    )
