from django.contrib import messages
from django.db import models
from django.forms import Form
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render


def render_form_page(
    request: HttpRequest,
    *,
    form: Form,
    title: str,
    cancel_url: str,
    submit_label: str = "Save",
    multipart: bool = False,
    extra: dict | None = None,
) -> HttpResponse:
    return render(
        request,
        "core/form_page.html",
        {
            "form": form,
            "title": title,
            "cancel_url": cancel_url,
            "submit_label": submit_label,
            "multipart": multipart,
            **(extra or {}),
        },
    )


def confirm_delete(
    request: HttpRequest,
    *,
    obj: models.Model,
    cancel_url: str,
    success_url: str,
    delete=None,
    warning: str = "",
) -> HttpResponse:
    """GET asks for confirmation; POST deletes and redirects with a message."""
    label = f"{obj._meta.verbose_name} “{obj}”"
    if request.method == "POST":
        (delete or (lambda: obj.delete()))()
        messages.success(request, f"Deleted {label}.")
        return redirect(success_url)
    return render(
        request,
        "core/confirm_delete.html",
        {"object": obj, "label": label, "cancel_url": cancel_url, "warning": warning},
    )
