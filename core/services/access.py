"""Who may see what: the one place that answers it.

Pages, search, related objects and the API all ask here, so that narrowing
what a user sees (organisation membership) changes one function, not every
caller. Today every active, signed-in user sees every project.

An object a user may not see is answered as if it did not exist (404), never
as "forbidden": its existence is not told either.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import QuerySet

from core.models import Project


@dataclass(frozen=True)
class Visibility:
    """What a user may see, in the terms the index filters on.

    `project_ids` is None when every project is visible; otherwise the ids
    (as the index stores them: strings) of the projects that are.
    """

    project_ids: frozenset[str] | None

    @property
    def everything(self) -> bool:
        return self.project_ids is None

    def allows(self, document: dict) -> bool:
        """Whether a stored document may be shown. A document outside any
        project (none today) is shown only to a user who sees everything."""
        if self.project_ids is None:
            return True
        return str(document.get("project_id") or "") in self.project_ids


NOTHING = Visibility(project_ids=frozenset())
EVERYTHING = Visibility(project_ids=None)


def visibility(user) -> Visibility:
    if user is None or not user.is_authenticated or not user.is_active:
        return NOTHING
    return EVERYTHING


def visible_projects(user) -> QuerySet[Project]:
    projects = Project.objects.all()
    scope = visibility(user)
    if scope.project_ids is None:
        return projects
    return projects.filter(pk__in=[int(pk) for pk in scope.project_ids if pk.isdigit()])


def visible_documents(user, documents: Iterable[dict]) -> list[dict]:
    scope = visibility(user)
    return [doc for doc in documents if scope.allows(doc)]
