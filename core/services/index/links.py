"""The Links view of an item: its neighbourhood, read from the graph.

One hop: its project, the GitHub issues that track it, its comments and
attachments. Two hops: the pull requests that closed or reference those
issues, and through its project the project's other items, its releases,
nodes and changes (the most recently updated first). Only what the
person may see is listed: a neighbour in an organisation they are not in
(the graph a moment behind a move, say) is left out.
"""

from dataclasses import dataclass, field

from core import policy

from .documents import object_uuid
from .engine import graph_target
from .targets.base import TargetUnavailable

# (hops, relationship, the neighbour's type) -> the group it is listed in, in this order.
GROUPS = (
    ((1, "IN_PROJECT", "project"), "Project"),
    ((1, "TRACKS", "github_issue"), "GitHub issues tracking it"),
    ((1, "ON", "comment"), "Comments"),
    ((1, "ATTACHED_TO", "attachment"), "Attachments"),
    ((2, "CLOSES", "github_pr"), "Pull requests that closed its issues"),
    ((2, "REFERENCES", "github_pr"), "Pull requests referencing its issues"),
    ((2, "IN_PROJECT", "item"), "Other items in the project"),
    ((2, "IN_PROJECT", "release"), "Releases of the project"),
    ((2, "IN_PROJECT", "node"), "Nodes of the project"),
    ((2, "IN_PROJECT", "change"), "Changes in the project"),
)
PER_GROUP = 10


@dataclass(frozen=True)
class Link:
    type: str
    object_id: str
    title: str
    status: str
    url: str


@dataclass
class Links:
    groups: list[tuple[str, int, list[Link]]] = field(default_factory=list)  # (name, hops, links)

    @property
    def empty(self) -> bool:
        return not any(links for _name, _hops, links in self.groups)


def item_links(item, user) -> Links:
    """The neighbourhood of `item`, which `user` may see. Raises
    TargetUnavailable when the graph is off or cannot be read."""
    graph = graph_target()
    if graph is None:
        raise TargetUnavailable(
            "No graph is on: the embedded graph is switched off (AGIRA_GRAPH_ENABLED) "
            "and Neo4j is not enabled.",
            reason="disabled",
        )
    rows = graph.neighbourhood("item", object_uuid("item", item.pk), limit=PER_GROUP)
    allowed = policy.visibility(user)
    grouped: dict[tuple[int, str, str], list[Link]] = {key: [] for key, _name in GROUPS}
    for hops, relationship, doc in rows:
        key = (hops, relationship, doc.get("type"))
        if key not in grouped or not allowed.allows(doc):
            continue
        grouped[key].append(
            Link(
                type=doc["type"],
                object_id=str(doc.get("object_id") or ""),
                title=doc.get("title") or "(untitled)",
                status=doc.get("status") or "",
                url=doc.get("url") or "",
            )
        )
    links = Links()
    for key, name in GROUPS:
        found = grouped[key]  # two hops away: the most recently updated first
        if key[0] == 1:
            found = sorted(found, key=lambda link: link.title.lower())
        links.groups.append((name, key[0], found[:PER_GROUP]))
    return links
