"""Create, edit and delete the records that hang off a project: nodes,
releases and changes. One set of views serves all three; the URLconf says
which kind each route is for."""

from dataclasses import dataclass

from django.contrib import messages
from django.db import models
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods

from core import policy
from core.forms import ChangeForm, NodeForm, ReleaseForm
from core.models import Change, Node, Project, Release

from .common import confirm_delete, render_form_page


@dataclass(frozen=True)
class ChildKind:
    model: type[models.Model]
    form: type[ModelForm]
    noun: str


KINDS = {
    "node": ChildKind(Node, NodeForm, "node"),
    "release": ChildKind(Release, ReleaseForm, "release"),
    "change": ChildKind(Change, ChangeForm, "change"),
}


@require_http_methods(["GET", "POST"])
def child_create(request: HttpRequest, project_id: int, kind: str) -> HttpResponse:
    spec = KINDS[kind]
    project = policy.obtain(request.user, "manage_planning", Project.objects, pk=project_id)
    form = spec.form(request.POST or None, project=project)
    if request.method == "POST" and form.is_valid():
        obj = form.save()
        messages.success(request, f"Created {spec.noun} “{obj}”.")
        return redirect(obj)
    return render_form_page(
        request,
        form=form,
        title=f"New {spec.noun} in {project}",
        cancel_url=f"{project.get_absolute_url()}#{kind}s",
    )


@require_http_methods(["GET", "POST"])
def child_edit(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    spec = KINDS[kind]
    obj = policy.obtain(
        request.user, "manage_planning", spec.model.objects.select_related("project"), pk=pk
    )
    form = spec.form(request.POST or None, instance=obj, project=obj.project)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, f"Saved {spec.noun} “{obj}”.")
        return redirect(obj)
    return render_form_page(
        request, form=form, title=f"Edit {spec.noun} “{obj}”", cancel_url=obj.get_absolute_url()
    )


@require_http_methods(["GET", "POST"])
def child_delete(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    spec = KINDS[kind]
    obj = policy.obtain(
        request.user, "manage_planning", spec.model.objects.select_related("project"), pk=pk
    )
    warning = ""
    if kind == "node" and obj.children.exists():
        warning = "Its child nodes are deleted with it."
    return confirm_delete(
        request,
        obj=obj,
        cancel_url=obj.get_absolute_url(),
        success_url=obj.get_absolute_url(),
        warning=warning,
    )
