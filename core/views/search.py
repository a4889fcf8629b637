from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from core import policy
from core.forms import SearchForm
from core.models import Project
from core.services.index import TargetUnavailable
from core.services.index.context import item_number, search_objects, snippet


@require_GET
def search(request: HttpRequest) -> HttpResponse:
    form = SearchForm(request.GET or None)
    form.fields["project"].queryset = policy.scoped(request.user, form.fields["project"].queryset)
    context: dict = {"form": form, "results": None, "error": ""}
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        project = data["project"]
        try:
            results = search_objects(
                query=data["q"],
                object_type=data["type"],
                project_id=str(project.pk) if project else "",
                status=data["status"],
                page=data["page"] or 1,
                mode=data["mode"] or "hybrid",
                user=request.user,
            )
        except TargetUnavailable as exc:
            context["error"] = policy.index_error(request.user, exc)
        else:
            staff = policy.sees_internals(request.user)
            context["answered_by"] = results.target_label if staff else "index"
            context["note"] = results.note if staff else results.plain_note
            # Project names for the results, in one query.
            ids = {str(h.document.get("project_id") or "") for h in results.hits}
            names = dict(
                Project.objects.filter(pk__in=[int(i) for i in ids if i.isdigit()]).values_list(
                    "pk", "name"
                )
            )
            context["results"] = results
            context["rows"] = [
                {
                    "doc": h.document,
                    "score": h.score,
                    "number": item_number(h.document),
                    "snippet": snippet(h.document.get("text") or "", data["q"]),
                    "project": names.get(int(h.document["project_id"]))
                    if str(h.document.get("project_id") or "").isdigit()
                    else None,
                }
                for h in results.hits
            ]
            query = request.GET.copy()
            query.pop("page", None)
            context["query"] = query.urlencode()
    return render(request, "core/search.html", context)
