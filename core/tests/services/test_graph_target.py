"""The graph targets, embedded (LadybugDB) and Neo4j (through the real driver
and the Bolt test server): nodes for objects, relationships from their
documents, moved when a foreign key changes, gone with the node. The embedded
graph: one writer process at a time, readers beside it. Neo4j: a server gone,
a wrong password, a failing statement."""

import subprocess
import sys
import textwrap

import pytest

from core.services.index.documents import document_for, get_weaviate_type, normalise, object_uuid
from core.services.index.targets.base import TargetUnavailable
from core.services.index.targets.graph import EmbeddedGraphTarget
from core.services.index.targets.graph import link as link_statement
from core.services.index.targets.neo4j import NEO4J_SCHEMA, Neo4jGraphTarget, Neo4jSettings
from core.tests import factories

pytestmark = pytest.mark.django_db


def neo4j_settings_for(server, **overrides) -> Neo4jSettings:
    """Settings that point at the Bolt test server."""
    values = {
        "enabled": True,
        "uri": server.uri,
        "user": server.user,
        "password": server.password,
        "database": server.database,
        "connect_timeout": 2.0,
        "query_timeout": 10.0,
    }
    return Neo4jSettings(**{**values, **overrides})


@pytest.fixture
def embedded_graph(tmp_path):
    target = EmbeddedGraphTarget(tmp_path / "graph" / "agira.lbug", lock_timeout=0.3)
    yield target
    target.close()


@pytest.fixture(params=["embedded", "neo4j"])
def graph(request, tmp_path):
    """Each engine in turn: the scenarios hold for both."""
    if request.param == "embedded":
        target = EmbeddedGraphTarget(tmp_path / "graph" / "agira.lbug", lock_timeout=0.3)
    else:
        target = Neo4jGraphTarget(neo4j_settings_for(request.getfixturevalue("bolt_server")))
    yield target
    target.close()


@pytest.fixture
def neo4j_graph(bolt_server):
    target = Neo4jGraphTarget(neo4j_settings_for(bolt_server))
    yield target
    target.close()


def write(graph, *instances) -> dict[int, str]:
    return graph.upsert_many(
        [(object_uuid(get_weaviate_type(i), i.pk), normalise(document_for(i))) for i in instances]
    )


def uid(instance) -> str:
    return str(object_uuid(get_weaviate_type(instance), instance.pk))


def test_every_object_and_its_relationships(graph):
    organisation = factories.make_organisation(name="Acme")
    project = factories.make_project(organisation=organisation)
    item = factories.make_item(project=project, title="Login fails")
    comment = factories.make_comment(item=item)
    parent = factories.make_node(project=project, name="Backend")
    child = factories.make_node(project=project, name="Auth", parent=parent)
    release = factories.make_release(project=project)
    change = factories.make_change(project=project)
    issue = factories.make_mapping(item=item, kind="issue", number=7)
    objects = [project, item, comment, parent, child, release, change, issue]
    assert write(graph, *objects) == {}

    assert graph.count() == len(objects)
    owner = str(object_uuid("organisation", organisation.pk))
    assert graph.relationships(object_uuid("project", project.pk)) == [
        ("OWNED_BY", "Organisation", owner)
    ]
    assert graph.relationships(object_uuid("item", item.pk)) == [
        ("IN_PROJECT", "Project", uid(project))
    ]
    assert graph.relationships(object_uuid("comment", comment.pk)) == [("ON", "Item", uid(item))]
    assert graph.relationships(object_uuid("node", child.pk)) == sorted(
        [("CHILD_OF", "Node", uid(parent)), ("IN_PROJECT", "Project", uid(project))]
    )
    assert graph.relationships(object_uuid("node", parent.pk)) == [
        ("IN_PROJECT", "Project", uid(project))
    ]
    for other in (release, change):
        assert graph.relationships(object_uuid(get_weaviate_type(other), other.pk)) == [
            ("IN_PROJECT", "Project", uid(project))
        ]
    assert graph.relationships(object_uuid("github_issue", issue.pk)) == [
        ("TRACKS", "Item", uid(item))
    ]
    stored = graph.fetch(object_uuid("item", item.pk))
    assert stored["title"] == "Login fails"
    assert stored["project_id"] == str(project.pk)
    assert stored["org_id"] == str(organisation.pk)


def test_many_children_of_one_parent_in_one_batch_each_get_their_relationship(graph):
    project = factories.make_project()
    item = factories.make_item(project=project)
    comments = [factories.make_comment(item=item) for _ in range(5)]
    changes = [factories.make_change(project=project) for _ in range(4)]
    assert write(graph, project, item, *comments, *changes) == {}
    for comment in comments:
        assert graph.relationships(object_uuid("comment", comment.pk)) == [
            ("ON", "Item", uid(item))
        ]
    for change in changes:
        assert graph.relationships(object_uuid("change", change.pk)) == [
            ("IN_PROJECT", "Project", uid(project))
        ]


def test_pull_requests_close_or_reference_the_issues_of_their_item(graph):
    item = factories.make_item()
    issue = factories.make_mapping(item=item, kind="issue", number=1)
    # Written before the issue: linked when the issue arrives.
    closing = factories.make_mapping(item=item, kind="pr", number=2, closes_issue=True)
    write(graph, item, closing)
    assert graph.relationships(object_uuid("github_pr", closing.pk)) == []
    write(graph, issue)
    referencing = factories.make_mapping(item=item, kind="pr", number=3)
    write(graph, referencing)
    other_item = factories.make_item(project=item.project)
    elsewhere = factories.make_mapping(item=other_item, kind="pr", number=4)
    write(graph, other_item, elsewhere)

    issue_uid = uid(issue)
    assert graph.relationships(object_uuid("github_pr", closing.pk)) == [
        ("CLOSES", "GithubIssue", issue_uid)
    ]
    assert graph.relationships(object_uuid("github_pr", referencing.pk)) == [
        ("REFERENCES", "GithubIssue", issue_uid)
    ]
    assert graph.relationships(object_uuid("github_pr", elsewhere.pk)) == []

    referencing.closes_issue = True  # the worker learnt that it closed the issue
    referencing.save()
    write(graph, referencing, issue)  # each side rewritten: one relationship, the new one
    assert graph.relationships(object_uuid("github_pr", referencing.pk)) == [
        ("CLOSES", "GithubIssue", issue_uid)
    ]


def test_a_child_before_its_parent_is_linked_all_the_same(graph):
    project = factories.make_project()
    item = factories.make_item(project=project)
    write(graph, item)  # the project's own document comes later
    assert graph.count() == 1  # the project's node is a bare end, not an object yet
    assert graph.fetch(object_uuid("project", project.pk)) is None
    write(graph, project)
    assert graph.count() == 2
    assert graph.fetch(object_uuid("project", project.pk))["title"] == project.name
    assert graph.relationships(object_uuid("item", item.pk)) == [
        ("IN_PROJECT", "Project", uid(project))
    ]


def test_a_changed_foreign_key_moves_the_relationship(graph):
    first, second = factories.make_project(), factories.make_project()
    item = factories.make_item(project=first, title="Before")
    write(graph, first, second, item)
    item.project = second
    item.title = "After"
    item.save()
    write(graph, item)
    assert graph.relationships(object_uuid("item", item.pk)) == [
        ("IN_PROJECT", "Project", uid(second))
    ]
    assert graph.fetch(object_uuid("item", item.pk))["title"] == "After"
    assert graph.count() == 3  # written twice, one node


def test_a_node_that_loses_its_parent_loses_the_relationship(graph):
    project = factories.make_project()
    parent = factories.make_node(project=project)
    child = factories.make_node(project=project, parent=parent)
    write(graph, project, parent, child)
    child.parent = None
    child.save()
    write(graph, child)
    assert graph.relationships(object_uuid("node", child.pk)) == [
        ("IN_PROJECT", "Project", uid(project))
    ]


def test_a_delete_removes_the_node_and_its_relationships(graph):
    project = factories.make_project()
    item = factories.make_item(project=project)
    comment = factories.make_comment(item=item)
    write(graph, project, item, comment)
    assert graph.delete_many([object_uuid("item", item.pk)]) == {}
    assert graph.fetch(object_uuid("item", item.pk)) is None
    assert graph.count() == 2
    # The comment's relationship went with the node it led to.
    assert graph.relationships(object_uuid("comment", comment.pk)) == []
    assert graph.delete_many([]) == {}


def test_the_statements_are_plain_cypher_without_what_the_embedded_engine_refuses():
    from core.services.index.targets.graph import EDGES, delete_nodes, merge_ends, upsert_nodes

    sized = upsert_nodes("Attachment", [{"size_bytes": 10}, {"size_bytes": None}])
    unsized = upsert_nodes("Item", [{"size_bytes": None}])
    assert "n.size_bytes = r.size_bytes" in sized
    assert "n.size_bytes = NULL" in unsized  # a column of nulls is no text column
    statements = [sized, unsized, delete_nodes("Item")]
    statements += [link_statement(e) for e in EDGES] + [merge_ends(e) for e in EDGES]
    for statement in statements:
        assert statement.startswith("UNWIND $")
        # What one engine or the other refuses: a map merged in, subqueries,
        # casts and functions of one engine only.
        for refused in ("+=", "CALL {", "CAST(", "toInteger(", "label(", "type("):
            assert refused not in statement


HOLD_THE_GRAPH = """
import sys, time, ladybug
db = ladybug.Database(sys.argv[1])
conn = ladybug.Connection(db)
conn.execute("RETURN 1")
print("holding", flush=True)
sys.stdin.readline()
"""


def hold_the_graph(path) -> subprocess.Popen:
    """Another process that holds the graph to write it until it reads a line."""
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(HOLD_THE_GRAPH), str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "holding"
    return holder


READ_THE_GRAPH = """
import sys, ladybug
db = ladybug.Database(sys.argv[1], read_only=True)
conn = ladybug.Connection(db)
result = conn.execute("MATCH (n:Item) WHERE n.type IS NOT NULL RETURN n.title")
titles = []
while result.has_next():
    titles.append(result.get_next()[0])
print(sorted(titles))
"""


def test_one_writer_process_at_a_time_and_readers_beside_it(embedded_graph):
    item = factories.make_item(title="Written here")
    write(embedded_graph, item)
    holder = hold_the_graph(embedded_graph.path)
    try:
        # Another process writes: this one's changes wait (no attempt counted),
        # but it reads the embedded_graph (the web server beside the worker).
        with pytest.raises(TargetUnavailable, match="busy: another process has written it"):
            write(embedded_graph, item)
        assert embedded_graph.fetch(object_uuid("item", item.pk))["title"] == "Written here"
        assert embedded_graph.count() == 1
    finally:
        holder.communicate("done\n", timeout=30)
    assert write(embedded_graph, item) == {}  # its turn now

    # While this process holds the embedded_graph to write, another reads it.
    with embedded_graph.session():
        read = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(READ_THE_GRAPH), str(embedded_graph.path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert read.returncode == 0, read.stderr
    assert read.stdout.strip() == "['Written here']"


def test_a_writer_waits_a_moment_for_another_to_let_the_graph_go(tmp_path):
    """A reconcile beside the worker's drain: the second writer waits for the
    first instead of failing, up to its lock timeout."""
    import threading

    graph = EmbeddedGraphTarget(tmp_path / "graph" / "agira.lbug", lock_timeout=30)
    item = factories.make_item(title="Waited for")
    write(graph, item)
    graph.close()
    holder = hold_the_graph(graph.path)
    letting_go = threading.Timer(0.5, lambda: holder.communicate("done\n", timeout=30))
    letting_go.start()
    try:
        assert write(graph, item) == {}  # after the holder let go
    finally:
        letting_go.join()
        graph.close()
    assert holder.returncode == 0


def test_a_file_that_is_no_graph_is_reported_not_crashed_on(embedded_graph):
    """A wrong AGIRA_GRAPH_PATH (some other file): reads and writes say so
    clearly, as an unavailable target (the changes wait), and nothing raises
    anything else."""
    embedded_graph.path.parent.mkdir(parents=True)
    embedded_graph.path.write_bytes(b"not a embedded_graph" * 100)
    item = factories.make_item()
    with pytest.raises(TargetUnavailable, match=r"cannot be opened.*not a valid"):
        embedded_graph.fetch(object_uuid("item", item.pk))
    with pytest.raises(TargetUnavailable, match="cannot be opened"):
        write(embedded_graph, item)
    assert embedded_graph.path.read_bytes() == b"not a embedded_graph" * 100  # left as it was


# -- Neo4j: the schema and what goes wrong ------------------------------------------------
def test_neo4j_gets_its_constraints_once_before_the_first_write(neo4j_graph, bolt_server):
    item = factories.make_item()
    write(neo4j_graph, item)
    write(neo4j_graph, item)
    assert len(bolt_server.constraints) == 10  # uuid, one per label and the organisation
    assert set(bolt_server.indexes) == {"agira_githubissue_parent", "agira_githubpr_parent"}
    schema_runs = [s for s in bolt_server.statements if s.startswith("CREATE CONSTRAINT")]
    assert len(schema_runs) == len(NEO4J_SCHEMA) - 2  # not again at the second write


def test_neo4j_gone_is_an_unavailable_target_and_loses_nothing(neo4j_graph, bolt_server):
    item = factories.make_item(title="Kept for later")
    bolt_server.down()
    with pytest.raises(TargetUnavailable, match="cannot be reached") as gone:
        write(neo4j_graph, item)
    assert gone.value.reason == "unreachable"
    bolt_server.up()
    assert write(neo4j_graph, item) == {}
    assert neo4j_graph.fetch(object_uuid("item", item.pk))["title"] == "Kept for later"


def test_a_wrong_neo4j_password_is_an_auth_failure_that_never_shows_it(bolt_server):
    target = Neo4jGraphTarget(neo4j_settings_for(bolt_server, password="not-the-password-123"))
    try:
        with pytest.raises(TargetUnavailable) as refused:
            write(target, factories.make_item())
    finally:
        target.close()
    assert refused.value.reason == "auth"
    assert "check the user name and password" in str(refused.value)
    assert "not-the-password-123" not in str(refused.value)


def test_an_unknown_neo4j_database_or_uri_is_misconfigured(bolt_server):
    for overrides, message in [
        ({"database": "nowhere"}, "has no database 'nowhere'"),
        ({"uri": "http://127.0.0.1:7474"}, "is not one the driver takes"),
    ]:
        target = Neo4jGraphTarget(neo4j_settings_for(bolt_server, **overrides))
        try:
            with pytest.raises(TargetUnavailable, match=message) as wrong:
                target.count()
        finally:
            target.close()
        assert wrong.value.reason == "misconfigured"


def test_a_failing_neo4j_statement_fails_its_type_and_the_others_stand(neo4j_graph, bolt_server):
    project = factories.make_project()
    item = factories.make_item(project=project)
    bolt_server.fail_statements("MERGE (n:Item ")
    documents = [
        (object_uuid(get_weaviate_type(i), i.pk), normalise(document_for(i)))
        for i in (project, item)
    ]
    errors = neo4j_graph.upsert_many(documents)
    assert list(errors) == [1]  # the item, not the project
    assert "a fault of the test server" in errors[1]
    assert neo4j_graph.fetch(object_uuid("project", project.pk)) is not None
    assert neo4j_graph.fetch(object_uuid("item", item.pk)) is None  # rolled back whole


def test_a_transient_neo4j_error_is_retried_by_the_driver(neo4j_graph, bolt_server):
    item = factories.make_item(title="Second time lucky")
    bolt_server.fail_statements(
        "MERGE (n:Item ",
        code="Neo.TransientError.Transaction.DeadlockDetected",
        message="A deadlock (a fault of the test server).",
        times=1,
    )
    assert write(neo4j_graph, item) == {}
    assert neo4j_graph.fetch(object_uuid("item", item.pk))["title"] == "Second time lucky"
