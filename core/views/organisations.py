"""An organisation's members: everyone in it sees who belongs; owners add
people, change roles and remove them; anyone may leave (but the last owner)."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from core import policy
from core.models import Membership, Organisation, Role
from core.services.memberships import MembershipError, add_member, remove_member, set_role


def _organisation(request: HttpRequest, pk: int) -> Organisation:
    return policy.obtain(request.user, "view", Organisation.objects, pk=pk)


def _membership(request: HttpRequest, organisation: Organisation, pk: int) -> Membership:
    return policy.get_visible(
        request.user,
        Membership.objects.select_related("user", "organisation"),
        pk=pk,
        organisation=organisation,
    )


@require_GET
def members(request: HttpRequest, pk: int) -> HttpResponse:
    organisation = _organisation(request, pk)
    return render(
        request,
        "core/organisation_members.html",
        {
            "organisation": organisation,
            "memberships": organisation.memberships.select_related("user"),
            "roles": Role.choices,
            "may_manage": policy.can(request.user, "manage_members", organisation),
            "projects": organisation.projects.all(),
        },
    )


@require_POST
def member_add(request: HttpRequest, pk: int) -> HttpResponse:
    organisation = _organisation(request, pk)
    policy.require(request.user, "manage_members", organisation)
    try:
        membership = add_member(
            organisation=organisation,
            username=request.POST.get("username", ""),
            role=request.POST.get("role", Role.MEMBER),
        )
    except MembershipError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Added {membership.user} as {membership.get_role_display()}.")
    return redirect("core:organisation-members", pk=organisation.pk)


@require_POST
def member_role(request: HttpRequest, pk: int, membership_id: int) -> HttpResponse:
    organisation = _organisation(request, pk)
    policy.require(request.user, "manage_members", organisation)
    membership = _membership(request, organisation, membership_id)
    try:
        set_role(membership=membership, role=request.POST.get("role", ""))
    except MembershipError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{membership.user} is now {membership.get_role_display()}.")
    return redirect("core:organisation-members", pk=organisation.pk)


@require_POST
def member_remove(request: HttpRequest, pk: int, membership_id: int) -> HttpResponse:
    organisation = _organisation(request, pk)
    membership = _membership(request, organisation, membership_id)
    leaving = membership.user_id == request.user.pk
    if not leaving:
        policy.require(request.user, "manage_members", organisation)
    try:
        remove_member(membership=membership)
    except MembershipError as exc:
        messages.error(request, str(exc))
        return redirect("core:organisation-members", pk=organisation.pk)
    if leaving:
        messages.success(request, f"You left {organisation}.")
        return redirect("core:project-list")
    messages.success(request, f"Removed {membership.user} from {organisation}.")
    return redirect("core:organisation-members", pk=organisation.pk)
