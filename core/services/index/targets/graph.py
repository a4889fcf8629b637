"""The graph target (seed 004): every object as a node, its links as relationships.

Nodes carry the AgiraObject fields (no vectors) under the object's uuid, one
label per type. Relationships come from the documents themselves, so a graph
write needs nothing but the documents the drain already builds:

    item IN_PROJECT project        comment ON item           attachment ATTACHED_TO item
    node CHILD_OF node             node IN_PROJECT project   release IN_PROJECT project
    change IN_PROJECT project      github_issue TRACKS item  project OWNED_BY organisation
    github_pr CLOSES or REFERENCES the github_issues of the same item (CLOSES when
    its document says it closed the item's issue)

The other end of a relationship is merged by its uuid (a bare node until its own
document arrives), so the order in which objects reach the graph does not
matter. A write first removes the node's relationships of each kind it has,
then merges the current ones: a changed foreign key moves the relationship.
A delete removes the node and its relationships (`DETACH DELETE`).

The Cypher here is the part Neo4j and the embedded engine both accept:
`UNWIND $rows` with `MERGE` and one `SET` per property, `MATCH ... DELETE`,
`DETACH DELETE`; no `SET n += $map`, no `CALL {}`. The schema statements are
each engine's own (`LADYBUG_SCHEMA` here).

The embedded engine is LadybugDB, in a folder under `var/`. It takes one
writer process at a time (a file lock) and any number of read-only readers:
this target holds the database only for a session (a drain), opens it for
writing at the first write, waiting up to `AGIRA_GRAPH_LOCK_TIMEOUT` seconds for
another process to let it go, and then gives up with `TargetUnavailable`
("busy"): its changes wait and no attempt is counted, as with any target that
cannot be used now.
"""

import contextlib
import logging
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from ..documents import FIELDS, INT_FIELDS, PR_CLOSED_THE_ISSUE, object_uuid
from .base import HeldSessions, ServerInfo, TargetUnavailable

logger = logging.getLogger("agira.index.graph")

LABELS = {
    "item": "Item",
    "comment": "Comment",
    "attachment": "Attachment",
    "project": "Project",
    "change": "Change",
    "node": "Node",
    "release": "Release",
    "github_issue": "GithubIssue",
    "github_pr": "GithubPr",
}
ORGANISATION = "Organisation"


@dataclass(frozen=True)
class Edge:
    """A relationship from a node of `source` type to the object whose id is in
    the source document's `field`, of type `target` ("organisation" for the
    project's owner, which is no index object and has a node of its own)."""

    name: str
    source: str
    target: str
    field: str

    @property
    def key(self) -> str:
        """The row key holding the other end's uuid."""
        return f"to_{self.name.lower()}"

    @property
    def target_label(self) -> str:
        return ORGANISATION if self.target == "organisation" else LABELS[self.target]


EDGES = (
    Edge("IN_PROJECT", "item", "project", "project_id"),
    Edge("ON", "comment", "item", "parent_object_id"),
    Edge("ATTACHED_TO", "attachment", "item", "parent_object_id"),
    Edge("CHILD_OF", "node", "node", "parent_object_id"),
    Edge("IN_PROJECT", "node", "project", "project_id"),
    Edge("IN_PROJECT", "release", "project", "project_id"),
    Edge("IN_PROJECT", "change", "project", "project_id"),
    Edge("TRACKS", "github_issue", "item", "parent_object_id"),
    Edge("OWNED_BY", "project", "organisation", "org_id"),
)
EDGES_BY_TYPE: dict[str, list[Edge]] = defaultdict(list)
for _edge in EDGES:
    EDGES_BY_TYPE[_edge.source].append(_edge)


# A pull request and the GitHub issues of the same item: CLOSES when its
# document says it closed the item's issue, REFERENCES otherwise. Made from
# whichever of the two is written last.
PR_EDGES = ("CLOSES", "REFERENCES")


def other_end(edge: Edge, doc: dict) -> str | None:
    """The uuid of the node `edge` leads to from `doc`, None if it leads nowhere."""
    value = doc.get(edge.field)
    if value in (None, ""):
        return None
    return str(object_uuid(edge.target, value))


# -- the Cypher both engines accept ---------------------------------------------------
def upsert_nodes(label: str, rows: list[dict]) -> str:
    """Merge the nodes of `rows` and set every field. A number field that is
    empty in every row is set to a plain NULL: LadybugDB would take a column of
    nulls for text and refuse it (and neither engine casts the same way)."""
    empty = {name for name in INT_FIELDS if all(row.get(name) is None for row in rows)}
    sets = ", ".join(f"n.{name} = {'NULL' if name in empty else f'r.{name}'}" for name in FIELDS)
    return f"UNWIND $rows AS r MERGE (n:{label} {{uuid: r.uuid}}) SET {sets}"


def clear_edges(edge: Edge) -> str:
    source = LABELS[edge.source]
    return (
        f"UNWIND $rows AS r MATCH (n:{source} {{uuid: r.uuid}})-[e:`{edge.name}`]->"
        f"(:{edge.target_label}) DELETE e"
    )


def merge_ends(edge: Edge) -> str:
    """The other ends, made where missing (bare until their own documents come).
    A statement of its own: LadybugDB merges a relationship once per distinct
    end when the end is merged in the same statement, however many rows share it."""
    end = f"UNWIND $rows AS r MERGE (m:{edge.target_label} {{uuid: r.{edge.key}}})"
    if edge.target == "organisation":
        end += " SET m.org_id = r.org_id"
    return end


def link(edge: Edge) -> str:
    return (
        f"UNWIND $rows AS r MATCH (n:{LABELS[edge.source]} {{uuid: r.uuid}}), "
        f"(m:{edge.target_label} {{uuid: r.{edge.key}}}) MERGE (n)-[:`{edge.name}`]->(m)"
    )


def clear_pr_edges(label: str) -> str:
    """The CLOSES and REFERENCES of the pull requests (or to the issues) in $rows."""
    pattern = (
        "(n:GithubPr {uuid: r.uuid})-[e]->(:GithubIssue)"
        if label == "GithubPr"
        else "(:GithubPr)-[e]->(n:GithubIssue {uuid: r.uuid})"
    )
    return f"UNWIND $rows AS r MATCH {pattern} DELETE e"


def link_prs(label: str, name: str) -> str:
    """CLOSES (or REFERENCES) between the pull requests and the issues of one
    item, from the side of the nodes in $rows."""
    closing = "" if name == "CLOSES" else "NOT "
    if label == "GithubPr":
        match = (
            "MATCH (n:GithubPr {uuid: r.uuid}), (i:GithubIssue) "
            "WHERE i.parent_object_id = r.parent_object_id AND i.type IS NOT NULL "
            f"AND {closing}r.text CONTAINS $closed"
        )
        return f"UNWIND $rows AS r {match} MERGE (n)-[:`{name}`]->(i)"
    match = (
        "MATCH (i:GithubIssue {uuid: r.uuid}), (n:GithubPr) "
        "WHERE n.parent_object_id = r.parent_object_id AND n.type IS NOT NULL "
        f"AND {closing}n.text CONTAINS $closed"
    )
    return f"UNWIND $rows AS r {match} MERGE (n)-[:`{name}`]->(i)"


def delete_nodes(label: str) -> str:
    return f"UNWIND $ids AS id MATCH (n:{label} {{uuid: id}}) DETACH DELETE n"


# -- LadybugDB's schema ---------------------------------------------------------------
def _ladybug_schema() -> list[str]:
    columns = ", ".join(f"{name} {'INT64' if name in INT_FIELDS else 'STRING'}" for name in FIELDS)
    statements = [
        f"CREATE NODE TABLE IF NOT EXISTS {label}(uuid STRING PRIMARY KEY, {columns})"
        for label in LABELS.values()
    ]
    statements.append(
        f"CREATE NODE TABLE IF NOT EXISTS {ORGANISATION}(uuid STRING PRIMARY KEY, org_id STRING)"
    )
    pairs: dict[str, list[str]] = defaultdict(list)
    for edge in EDGES:
        pairs[edge.name].append(f"FROM {LABELS[edge.source]} TO {edge.target_label}")
    for name in PR_EDGES:
        pairs[name].append("FROM GithubPr TO GithubIssue")
    statements += [
        f"CREATE REL TABLE IF NOT EXISTS `{name}`({', '.join(p)})" for name, p in pairs.items()
    ]
    return statements


LADYBUG_SCHEMA = _ladybug_schema()


def graph_rows(documents: list[tuple[uuid.UUID, dict]]) -> dict[str, list[tuple[int, dict]]]:
    """Rows per object type: (the document's index in the batch, its row)."""
    grouped: dict[str, list[tuple[int, dict]]] = defaultdict(list)
    for index, (oid, doc) in enumerate(documents):
        row = {name: doc.get(name) for name in FIELDS}
        row["uuid"] = str(oid)
        for edge in EDGES_BY_TYPE[doc["type"]]:
            row[edge.key] = other_end(edge, doc)
        grouped[doc["type"]].append((index, row))
    return grouped


class StatementFailed(Exception):
    """One statement failed on a graph that is there (a bad value, a
    constraint): its batch's objects fail, the others stand."""


# -- what both engines share ---------------------------------------------------------
class GraphTarget(HeldSessions, ABC):
    """The graph's batches and reads, the same Cypher for every engine. An
    engine defines how it holds its database for a session (`_open`,
    `_let_go`), how a write runs inside a transaction (`_in_transaction`,
    `_run`) and a read outside one (`_read`), and how its values read
    (`_properties`, `_relationship_type`, `_node_label`)."""

    name = "graph"
    label = "graph"
    needs_vectors = False
    searchable = False
    PAGE = 1000  # nodes per read of the reconcile

    @abstractmethod
    def _run(self, query: str, parameters: dict | None = None) -> list[list]:
        """A write statement, inside `_in_transaction`: its rows."""

    @abstractmethod
    def _read(self, query: str, parameters: dict | None = None) -> list[list]:
        """A read, in a transaction of its own: its rows."""

    @abstractmethod
    def _in_transaction(self, fn, *args) -> None:
        """`fn(*args)` in one write transaction; StatementFailed if it fails."""

    @staticmethod
    @abstractmethod
    def _properties(node) -> dict:
        """A returned node's properties."""

    @staticmethod
    @abstractmethod
    def _relationship_type(relationship) -> str:
        """A returned relationship's type."""

    @staticmethod
    @abstractmethod
    def _node_label(node) -> str:
        """A returned node's label."""

    def _document(self, node) -> dict:
        properties = self._properties(node)
        return {name: properties.get(name) for name in FIELDS}

    # -- writes ------------------------------------------------------------------------
    def upsert_many(self, documents: list[tuple[uuid.UUID, dict]], **_vectors) -> dict[int, str]:
        """Write nodes and move their relationships, one transaction per type:
        a type whose statements fail fails its documents, the others stand."""
        errors: dict[int, str] = {}
        with self.session():
            for object_type, entries in graph_rows(documents).items():
                label = LABELS.get(object_type)
                if label is None:
                    errors.update((i, f"Unknown type {object_type}") for i, _row in entries)
                    continue
                rows = [row for _i, row in entries]
                try:
                    self._in_transaction(self._write_type, object_type, label, rows)
                except StatementFailed as exc:
                    logger.warning("Writing %d %s nodes failed: %s", len(rows), label, exc)
                    errors.update((i, f"Graph write failed: {exc}") for i, _row in entries)
        return errors

    def _write_type(self, object_type: str, label: str, rows: list[dict]) -> None:
        self._run(upsert_nodes(label, rows), {"rows": rows})
        if label in ("GithubPr", "GithubIssue"):
            self._run(clear_pr_edges(label), {"rows": rows})
            with_item = [row for row in rows if row["parent_object_id"]]
            if with_item:
                for name in PR_EDGES:
                    self._run(
                        link_prs(label, name), {"rows": with_item, "closed": PR_CLOSED_THE_ISSUE}
                    )
        for edge in EDGES_BY_TYPE[object_type]:
            self._run(clear_edges(edge), {"rows": rows})
            linked = [row for row in rows if row[edge.key]]
            if linked:
                # Each end once (the comments of one item share it).
                ends = {row[edge.key]: row for row in linked}
                self._run(merge_ends(edge), {"rows": list(ends.values())})
                self._run(link(edge), {"rows": linked})

    def delete_many(self, uuids: list[uuid.UUID]) -> dict[int, str]:
        ids = [str(u) for u in uuids]
        if not ids:
            return {}
        with self.session():
            try:
                self._in_transaction(self._delete, ids)
            except StatementFailed as exc:
                logger.warning("Deleting %d graph nodes failed: %s", len(ids), exc)
                return dict.fromkeys(range(len(ids)), f"Graph delete failed: {exc}")
        return {}

    def _delete(self, ids: list[str]) -> None:
        for label in LABELS.values():
            self._run(delete_nodes(label), {"ids": ids})

    # -- reads -------------------------------------------------------------------------
    def fetch(self, object_uuid: uuid.UUID) -> dict | None:
        with self.session():
            for label in LABELS.values():
                found = self._read(
                    f"MATCH (n:{label} {{uuid: $id}}) WHERE n.type IS NOT NULL RETURN n",
                    {"id": str(object_uuid)},
                )
                if found:
                    return self._document(found[0][0])
        return None

    def count(self) -> int:
        """Object nodes (not the bare ends of relationships whose own document
        has not arrived)."""
        with self.session():
            return sum(
                row[0]
                for label in LABELS.values()
                for row in self._read(f"MATCH (n:{label}) WHERE n.type IS NOT NULL RETURN count(n)")
            )

    def iter_documents(self) -> Iterator[tuple[uuid.UUID, dict]]:
        """Every object node as the document the graph holds, for the
        reconcile, a page of `PAGE` nodes at a time. A foreign key whose
        relationship is missing, or leads to another node, reads as empty: the
        document then differs from the database's, and the reconcile writes it
        again, relationships and all."""
        with self.session():
            for object_type, label in LABELS.items():
                after = ""
                while True:
                    nodes = self._read(
                        f"MATCH (n:{label}) WHERE n.type IS NOT NULL AND n.uuid > $after "
                        "RETURN n ORDER BY n.uuid LIMIT $page",
                        {"after": after, "page": self.PAGE},
                    )
                    if not nodes:
                        break
                    docs = [self._properties(node) for (node,) in nodes]
                    held = self._held_links(object_type, [d["uuid"] for d in docs])
                    for properties in docs:
                        doc = {name: properties.get(name) for name in FIELDS}
                        for edge in EDGES_BY_TYPE[object_type]:
                            expected = other_end(edge, doc)
                            found = held[edge.name].get(properties["uuid"], set())
                            if found != ({expected} if expected else set()):
                                doc[edge.field] = None
                        yield uuid.UUID(properties["uuid"]), doc
                    after = docs[-1]["uuid"]

    def _held_links(self, object_type: str, ids: list[str]) -> dict[str, dict[str, set[str]]]:
        """Relationship name → node uuid → the uuids it leads to, for `ids`."""
        held: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for edge in EDGES_BY_TYPE[object_type]:
            for oid, other in self._read(
                f"MATCH (n:{LABELS[object_type]})-[:`{edge.name}`]->(m:{edge.target_label}) "
                "WHERE n.uuid IN $ids RETURN n.uuid, m.uuid",
                {"ids": ids},
            ):
                held[edge.name][oid].add(other)
        return held

    def neighbourhood(
        self, object_type: str, object_uuid: uuid.UUID, *, limit: int = 10
    ) -> list[tuple[int, str, dict]]:
        """(hops, relationship, document) of the objects around a node: one hop
        either way (its project, its comments, attachments and GitHub issues),
        and two hops: the pull requests that close or reference an item's
        issues, and through its project the project's other objects of each
        type, the most recently updated first, up to `limit` per type."""
        oid, label = str(object_uuid), LABELS[object_type]
        one_hop = [  # (relationship, the pattern from n to m)
            (edge.name, f"(n)-[:`{edge.name}`]->(m:{edge.target_label})")
            for edge in EDGES_BY_TYPE[object_type]
            if edge.target != "organisation"  # no object: no document to show
        ]
        one_hop += [
            (edge.name, f"(n)<-[:`{edge.name}`]-(m:{LABELS[edge.source]})")
            for edge in EDGES
            if edge.target == object_type
        ]
        if label == "GithubPr":
            one_hop += [(name, f"(n)-[:`{name}`]->(m:GithubIssue)") for name in PR_EDGES]
        if label == "GithubIssue":
            one_hop += [(name, f"(n)<-[:`{name}`]-(m:GithubPr)") for name in PR_EDGES]
        two_hops = []
        if label == "Item":  # the pull requests of its GitHub issues
            two_hops += [
                (name, f"(n)<-[:TRACKS]-(:GithubIssue)<-[:`{name}`]-(m:GithubPr)")
                for name in PR_EDGES
            ]
        around = []
        with self.session():
            for hops, patterns in ((1, one_hop), (2, two_hops)):
                for name, pattern in patterns:
                    around += [
                        (hops, name, self._document(node))
                        for (node,) in self._read(
                            f"MATCH (n:{label} {{uuid: $id}}) MATCH {pattern} "
                            "WHERE m.type IS NOT NULL RETURN DISTINCT m",
                            {"id": oid},
                        )
                    ]
            for other in ("Item", "Release", "Node", "Change"):
                around += [
                    (2, "IN_PROJECT", self._document(node))
                    for (node,) in self._read(
                        f"MATCH (n:{label} {{uuid: $id}})-[:IN_PROJECT]->(:Project)<-[:IN_PROJECT]-"
                        f"(m:{other}) WHERE m.uuid <> $id AND m.type IS NOT NULL "
                        "RETURN m ORDER BY m.updated_at DESC LIMIT $limit",
                        {"id": oid, "limit": limit},
                    )
                ]
        return around

    def relationships(self, object_uuid: uuid.UUID) -> list[tuple[str, str, str]]:
        """(relationship, label, uuid) of every relationship leaving the node."""
        with self.session():
            rows = self._read(
                "MATCH (n {uuid: $id})-[e]->(m) RETURN e, m", {"id": str(object_uuid)}
            )
        return sorted(
            (self._relationship_type(e), self._node_label(m), self._properties(m)["uuid"])
            for e, m in rows
        )


# -- the embedded engine ---------------------------------------------------------------
class EmbeddedGraphTarget(GraphTarget):
    """The graph in LadybugDB, in one folder. The database is held (and its
    write lock with it) only inside `session()`."""

    label = "graph (embedded)"

    def __init__(self, path: str | Path, *, lock_timeout: float | None = None):
        self.path = Path(path)
        self.lock_timeout = (
            settings.AGIRA_GRAPH_LOCK_TIMEOUT if lock_timeout is None else lock_timeout
        )
        self._lock = threading.RLock()
        self._db = None
        self._conn = None
        self._writable = False
        self._depth = 0
        self._schema_ready = False

    # -- holding the database (HeldSessions) ---------------------------------------------
    def _let_go(self) -> None:
        self._close()  # and with it the write lock, for the other processes

    def _open(self) -> None:
        """Nothing yet: a session opens the database on first use, read-only
        for reads (beside another process's writer) and for writing, with its
        lock, at the first write."""

    def _hold(self, *, write: bool):
        """The connection for one use inside the session."""
        if self._conn is not None and (self._writable or not write):
            return self._conn
        self._close()  # read-only so far, and now a write: reopened for writing
        import ladybug

        try:
            if write:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = self._open_for_writing(ladybug)
            elif self.path.exists():
                self._db = ladybug.Database(str(self.path), read_only=True)
            else:
                return None  # nothing written yet: an empty graph
            self._conn = ladybug.Connection(self._db)
        except RuntimeError as exc:
            self._close()
            if _locked(exc):
                raise TargetUnavailable(
                    f"The embedded graph at {self.path} is busy: another process has written "
                    f"it for more than {self.lock_timeout:g} s (the changes here wait for the "
                    "next drain).",
                    reason="unreachable",
                ) from exc
            raise TargetUnavailable(
                f"The embedded graph at {self.path} cannot be opened: {exc}",
                reason="misconfigured",
            ) from exc
        self._writable = write
        if write and not self._schema_ready:
            for statement in LADYBUG_SCHEMA:
                self._conn.execute(statement)
            self._schema_ready = True
        return self._conn

    def _open_for_writing(self, ladybug):
        """The database with its write lock, waiting up to `lock_timeout` for
        another process's drain or reconcile to let it go."""
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                return ladybug.Database(str(self.path))
            except RuntimeError as exc:
                if not _locked(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def _close(self) -> None:
        conn, db, self._conn, self._db = self._conn, self._db, None, None
        self._writable = False
        for handle in (conn, db):
            if handle is not None:
                handle.close()

    def _run(self, query: str, parameters: dict | None = None) -> list[list]:
        """A write statement (inside a session)."""
        try:
            return _rows(self._hold(write=True).execute(query, parameters or {}))
        except RuntimeError as exc:
            raise StatementFailed(str(exc)) from exc

    def _read(self, query: str, parameters: dict | None = None) -> list[list]:
        """A read; nothing when nothing was ever written (no database or no tables)."""
        conn = self._hold(write=False)
        if conn is None:
            return []
        try:
            return _rows(conn.execute(query, parameters or {}))
        except RuntimeError as exc:
            if "does not exist" in str(exc):
                return []
            # A page or the modal says so (grey) instead of failing.
            raise TargetUnavailable(
                f"The embedded graph at {self.path} cannot be read: {exc}",
                reason="misconfigured",
            ) from exc

    def _in_transaction(self, fn, *args) -> None:
        self._run("BEGIN TRANSACTION")
        conn = self._conn
        try:
            fn(*args)
        except BaseException:
            # A failed statement has already ended LadybugDB's transaction.
            with contextlib.suppress(RuntimeError):
                conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except RuntimeError as exc:
            raise StatementFailed(str(exc)) from exc

    @staticmethod
    def _properties(node) -> dict:
        return node

    @staticmethod
    def _relationship_type(relationship) -> str:
        return relationship["_LABEL"]

    @staticmethod
    def _node_label(node) -> str:
        return node["_LABEL"]

    def close(self) -> None:
        with self._lock:
            self._close()
            self._depth = 0

    def ping(self) -> ServerInfo:
        import ladybug

        with self.session():
            self._read("RETURN 1")
        return ServerInfo(version=f"LadybugDB {ladybug.__version__}", ready=True)

    def ensure_collection(self) -> None:
        with self.session():
            self._hold(write=True)  # the schema is made when it is opened for writing


def _locked(exc: Exception) -> bool:
    return "lock" in str(exc).lower()


def _rows(result) -> list[list]:
    rows = []
    while result.has_next():
        rows.append(result.get_next())
    return rows


_targets: dict[str, EmbeddedGraphTarget] = {}
_targets_lock = threading.Lock()


def embedded_graph_target(path: str | None = None) -> EmbeddedGraphTarget:
    """One target per process and folder."""
    path = str(path or settings.AGIRA_GRAPH_PATH)
    with _targets_lock:
        if path not in _targets:
            _targets[path] = EmbeddedGraphTarget(path)
        return _targets[path]


def close_graph() -> None:
    with _targets_lock:
        targets = list(_targets.values())
        _targets.clear()
    for target in targets:
        target.close()
