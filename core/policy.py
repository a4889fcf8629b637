"""Who may see and do what: the one place that decides.

A user belongs to organisations (`Membership`), each with a role; each role
may do all that the one before it may:

- viewer: reads everything of the organisation;
- member: creates and edits items; comments, attaches files, links GitHub
  issues; edits and deletes their own comments and attachments; pushes an
  object to the index;
- maintainer: creates, edits and deletes projects, nodes, releases and
  changes; deletes items, and anybody's comments and attachments;
- owner: manages the organisation's members and their roles.

Superusers may do everything everywhere. Staff keep the admin and the sync
internals (the dashboard, target names, hosts, raw errors); what they see of
the tracker is what their memberships give them.

Views, the API, the htmx endpoints, the index queries and the templates all
ask here. What lies outside a user's organisations does not exist for them:
it is a 404, never a 403, and search, related objects and duplicate hints
filter on `org_id` inside the index query. Inside an organisation, an action
the role does not allow is refused with 403 (the object is no secret there).

Nobody edits another person's comment: it would keep its author's name over
words they did not write.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404

from core.models import (
    Attachment,
    Change,
    ExternalIssueMapping,
    Item,
    ItemComment,
    Membership,
    Node,
    Organisation,
    Project,
    Release,
    Role,
)

# The least role each action needs.
ACTIONS: dict[str, str] = {
    "view": Role.VIEWER,
    "create_item": Role.MEMBER,
    "edit_item": Role.MEMBER,
    "comment": Role.MEMBER,
    "attach": Role.MEMBER,
    "link_github": Role.MEMBER,
    "unlink_github": Role.MEMBER,
    "push": Role.MEMBER,
    "edit_comment": Role.MEMBER,  # their own only
    "delete_comment": Role.MEMBER,  # their own; a maintainer's, anybody's
    "delete_attachment": Role.MEMBER,  # their own; a maintainer's, anybody's
    "delete_item": Role.MAINTAINER,
    "create_project": Role.MAINTAINER,
    "edit_project": Role.MAINTAINER,
    "delete_project": Role.MAINTAINER,
    "manage_planning": Role.MAINTAINER,  # nodes, releases, changes
    "manage_members": Role.OWNER,
}

# How each model reaches its organisation, for querysets.
_ORG_PATHS: dict[type[Model], str] = {
    Organisation: "pk",
    Membership: "organisation_id",
    Project: "organisation_id",
    Item: "project__organisation_id",
    Node: "project__organisation_id",
    Release: "project__organisation_id",
    Change: "project__organisation_id",
    ItemComment: "item__project__organisation_id",
    Attachment: "item__project__organisation_id",
    ExternalIssueMapping: "item__project__organisation_id",
}


# -- roles -----------------------------------------------------------------------
def roles(user) -> dict[int, str]:
    """The user's role in each organisation they belong to, read once per
    user object (a request's user lives as long as the request)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return {}
    cached = getattr(user, "_agira_roles", None)
    if cached is None:
        cached = dict(Membership.objects.filter(user=user).values_list("organisation_id", "role"))
        user._agira_roles = cached
    return cached


def is_superuser(user) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_superuser)


def role_in(user, organisation_id: int | None) -> str | None:
    if is_superuser(user):
        return Role.OWNER
    if organisation_id is None:
        return None
    return roles(user).get(int(organisation_id))


def organisation_ids(user) -> set[int] | None:
    """The organisations whose objects the user may see; None: all of them."""
    if is_superuser(user):
        return None
    return set(roles(user))


def organisation_of(obj) -> int | None:
    """The organisation an object belongs to (its id)."""
    if isinstance(obj, Organisation):
        return obj.pk
    if isinstance(obj, (Project, Membership)):
        return obj.organisation_id
    if isinstance(obj, (Item, Node, Release, Change)):
        return obj.project.organisation_id
    if isinstance(obj, (ItemComment, Attachment, ExternalIssueMapping)):
        return obj.item.project.organisation_id
    raise TypeError(f"No organisation for {type(obj).__name__}")


def _author(obj) -> int | None:
    if isinstance(obj, ItemComment):
        return obj.author_id
    if isinstance(obj, Attachment):
        return obj.uploaded_by_id
    return None


# -- decisions ---------------------------------------------------------------------
def can(user, action: str, obj) -> bool:
    """Whether `user` may do `action` to `obj` (for "create_project" and
    "manage_members", `obj` is the organisation)."""
    needed = ACTIONS[action]
    role = role_in(user, organisation_of(obj))
    if role is None or Role.rank(role) < Role.rank(needed):
        return False
    if action == "edit_comment":
        return _author(obj) == user.pk
    if action in ("delete_comment", "delete_attachment"):
        return _author(obj) == user.pk or Role.rank(role) >= Role.rank(Role.MAINTAINER)
    return True


def abilities(user, obj, actions: tuple[str, ...]) -> dict[str, bool]:
    """`can` for several actions on one object, for a template to show only
    what the user may do (the views refuse the rest anyway)."""
    return {action: can(user, action, obj) for action in actions}


def require(user, action: str, obj) -> None:
    """Refuse what `can` does not allow: 404 when the object is outside the
    user's organisations, 403 when their role there does not allow it."""
    if not can(user, "view", obj):
        raise Http404("No such object.")
    if not can(user, action, obj):
        raise PermissionDenied(f"Your role does not allow this ({action.replace('_', ' ')}).")


def scoped(user, queryset: QuerySet) -> QuerySet:
    """Only the rows of the user's organisations."""
    ids = organisation_ids(user)
    if ids is None:
        return queryset
    path = _ORG_PATHS[queryset.model]
    return queryset.filter(**{f"{path}__in": ids})


def get_visible(user, queryset: QuerySet, **lookup):
    """The one row matching `lookup` among those the user may see, else 404."""
    try:
        return scoped(user, queryset).get(**lookup)
    except queryset.model.DoesNotExist as exc:
        raise Http404(f"No {queryset.model._meta.verbose_name} matches.") from exc


def organisations_where(user, action: str) -> QuerySet[Organisation]:
    """The organisations in which the user may do `action`."""
    organisations = Organisation.objects.all()
    if is_superuser(user):
        return organisations
    needed = Role.rank(ACTIONS[action])
    allowed = [org for org, role in roles(user).items() if Role.rank(role) >= needed]
    return organisations.filter(pk__in=allowed)


def sees_internals(user) -> bool:
    """Target names, hosts, ports and raw errors of the index: staff only."""
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_staff)


def index_error(user, exc: Exception) -> str:
    """An index failure as this user may read it: the message (which names the
    target and the cause) for staff, plain words for everyone else."""
    if sees_internals(user) or getattr(exc, "reason", "") == "disabled":
        return str(exc)  # "sync is switched off" names nothing internal
    return "the index cannot answer now; your administrator can see why."


# -- the index's view of it ----------------------------------------------------------
@dataclass(frozen=True)
class Visibility:
    """What a user may see, in the terms the index filters on: `org_ids` (as
    the documents hold them: strings), or None for every organisation."""

    org_ids: frozenset[str] | None

    @property
    def everything(self) -> bool:
        return self.org_ids is None

    @property
    def nothing(self) -> bool:
        return self.org_ids is not None and not self.org_ids

    def allows(self, document: dict) -> bool:
        if self.org_ids is None:
            return True
        return str(document.get("org_id") or "") in self.org_ids

    def index_filter(self) -> dict[str, list[str]]:
        """The filter to add to an index query: {"org_id": [...]} or nothing."""
        if self.org_ids is None:
            return {}
        return {"org_id": sorted(self.org_ids)}


EVERYTHING = Visibility(org_ids=None)


def visibility(user) -> Visibility:
    ids = organisation_ids(user)
    if ids is None:
        return EVERYTHING
    return Visibility(org_ids=frozenset(str(pk) for pk in ids))


def obtain(user, action: str, queryset: QuerySet, **lookup):
    """The row matching `lookup` if the user may see it (else 404) and may do
    `action` to it (else 403)."""
    obj = get_visible(user, queryset, **lookup)
    if action != "view":
        require(user, action, obj)
    return obj
