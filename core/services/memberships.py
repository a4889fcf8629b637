"""Changing who belongs to an organisation, keeping at least one owner.

Every change runs in a transaction that locks the organisation's memberships
first, so two owners stepping down at once cannot both succeed and leave the
organisation with none.
"""

from django.contrib.auth import get_user_model
from django.db import transaction

from core.models import Membership, Organisation, Role


class MembershipError(ValueError):
    """A change refused, with a message fit to show."""


def _owners(organisation: Organisation) -> list[int]:
    # Locks every membership row of the organisation until the commit.
    rows = Membership.objects.select_for_update().filter(organisation=organisation)
    return [m.pk for m in rows if m.role == Role.OWNER]


@transaction.atomic
def add_member(*, organisation: Organisation, username: str, role: str) -> Membership:
    if role not in Role.values:
        raise MembershipError(f"Unknown role {role!r}.")
    user = get_user_model().objects.filter(username=username.strip(), is_active=True).first()
    if user is None:
        raise MembershipError(f"No active user is called {username.strip()!r}.")
    membership, created = Membership.objects.get_or_create(
        user=user, organisation=organisation, defaults={"role": role}
    )
    if not created:
        raise MembershipError(f"{user} already belongs to {organisation}.")
    return membership


@transaction.atomic
def set_role(*, membership: Membership, role: str) -> Membership:
    if role not in Role.values:
        raise MembershipError(f"Unknown role {role!r}.")
    owners = _owners(membership.organisation)
    if membership.role == Role.OWNER and role != Role.OWNER and owners == [membership.pk]:
        raise MembershipError(
            f"{membership.user} is the last owner of {membership.organisation}: make someone "
            "else an owner first."
        )
    membership.role = role
    membership.save(update_fields=["role", "updated_at"])
    return membership


@transaction.atomic
def remove_member(*, membership: Membership) -> None:
    owners = _owners(membership.organisation)
    if owners == [membership.pk]:
        raise MembershipError(
            f"{membership.user} is the last owner of {membership.organisation}: an organisation "
            "cannot be left without an owner."
        )
    membership.delete()
