"""The graph in Neo4j 5 (production), through the official `neo4j` driver.

The same batches and reads as the embedded graph (`GraphTarget`): only how a
statement runs differs. Writes run in managed write transactions (the driver
retries a transient error such as a deadlock, or a cluster's leader gone, for
`RETRY_SECONDS`); reads in auto-commit read transactions, not retried, so that
a page whose graph is out of reach says so at once.

Neo4j's own schema statements (`NEO4J_SCHEMA`): a uniqueness constraint on
`uuid` per label, which is also the index every `MERGE` and `MATCH` by uuid
uses, and an index on `parent_object_id` for the pull requests and GitHub
issues, which are joined on it.

Configured in the admin (`Neo4jConfiguration`), every field overridable by an
`AGIRA_NEO4J_*` variable. The password is write-only and appears in no
message: errors name the URI and the database.
"""

import contextlib
import hashlib
import logging
import threading
from dataclasses import dataclass, field, replace

from core.models import Neo4jConfiguration

from ..config import with_env_overrides
from .base import ServerInfo, TargetUnavailable, probe
from .graph import LABELS, GraphTarget, StatementFailed

logger = logging.getLogger("agira.index.neo4j")

ENV_OVERRIDES: dict[str, tuple[str, type]] = {
    "AGIRA_NEO4J_ENABLED": ("enabled", bool),
    "AGIRA_NEO4J_URI": ("uri", str),
    "AGIRA_NEO4J_USER": ("user", str),
    "AGIRA_NEO4J_PASSWORD": ("password", str),
    "AGIRA_NEO4J_DATABASE": ("database", str),
    "AGIRA_NEO4J_CONNECT_TIMEOUT": ("connect_timeout", float),
    "AGIRA_NEO4J_QUERY_TIMEOUT": ("query_timeout", float),
}
SCHEMES = ("neo4j", "neo4j+s", "neo4j+ssc", "bolt", "bolt+s", "bolt+ssc")
RETRY_SECONDS = 5.0  # how long a managed transaction retries a transient error

NEO4J_SCHEMA = [
    f"CREATE CONSTRAINT agira_{label.lower()}_uuid IF NOT EXISTS "
    f"FOR (n:{label}) REQUIRE n.uuid IS UNIQUE"
    for label in [*LABELS.values(), "Organisation"]
] + [
    f"CREATE INDEX agira_{label.lower()}_parent IF NOT EXISTS FOR (n:{label}) "
    "ON (n.parent_object_id)"
    for label in ("GithubIssue", "GithubPr")
]


@dataclass(frozen=True)
class Neo4jSettings:
    enabled: bool
    uri: str
    user: str
    password: str = field(repr=False)
    database: str
    connect_timeout: float
    query_timeout: float
    overridden: frozenset[str] = frozenset()

    @property
    def configured(self) -> bool:
        return self.uri.split("://", 1)[0].lower() in SCHEMES and "://" in self.uri

    @property
    def fingerprint(self) -> str:
        """Changes whenever a connection setting does (the password only as a hash)."""
        secret = hashlib.sha256(self.password.encode()).hexdigest()[:12]
        parts = (self.uri, self.user, secret, self.database, self.connect_timeout)
        return "|".join(map(str, (*parts, self.query_timeout)))

    def describe(self) -> str:
        """Where it points, for messages: never the password."""
        return f"{self.uri} (database {self.database})"


def neo4j_settings(config: Neo4jConfiguration | None = None) -> Neo4jSettings:
    """The admin's configuration with the environment's overrides applied."""
    values, overridden = with_env_overrides(config or Neo4jConfiguration.current(), ENV_OVERRIDES)
    return Neo4jSettings(**values, overridden=overridden)


class Neo4jGraphTarget(GraphTarget):
    """The graph in a Neo4j database. The driver (its pool) lives as long as
    the target; a `session()` holds one driver session."""

    name = "neo4j"
    label = "Neo4j"

    def __init__(self, config: Neo4jSettings):
        self.config = config
        self._lock = threading.RLock()
        self._depth = 0
        self._driver = None
        self._session = None
        self._tx = None
        self._schema_ready = False

    # -- the driver --------------------------------------------------------------------
    def _get_driver(self):
        if self._driver is None:
            if not self.config.configured:
                raise TargetUnavailable(
                    f"The Neo4j URI {self.config.uri!r} is not one the driver takes: start it "
                    f"with one of {', '.join(s + '://' for s in SCHEMES)}.",
                    reason="misconfigured",
                )
            import neo4j

            self._driver = neo4j.GraphDatabase.driver(
                self.config.uri,
                auth=(self.config.user, self.config.password),
                connection_timeout=self.config.connect_timeout,
                connection_acquisition_timeout=self.config.connect_timeout * 2,
                max_transaction_retry_time=RETRY_SECONDS,
                user_agent="agira",
            )
        return self._driver

    @contextlib.contextmanager
    def _errors(self, *, reading: bool):
        """The driver's errors as the sync engine's: the server or the login
        (TargetUnavailable, nothing counted against any object), or one write
        that failed (StatementFailed, its objects fail)."""
        from neo4j import exceptions as errors

        where = self.config.describe()
        try:
            yield
        except errors.AuthError as exc:
            raise TargetUnavailable(
                f"Neo4j at {where} refused the user {self.config.user!r}: "
                "check the user name and password.",
                reason="auth",
            ) from exc
        except (errors.ServiceUnavailable, errors.SessionExpired) as exc:
            raise TargetUnavailable(
                f"Neo4j at {where} cannot be reached: {exc}", reason="unreachable"
            ) from exc
        except (errors.ConfigurationError, ValueError) as exc:
            raise TargetUnavailable(
                f"The Neo4j configuration is not valid: {exc}", reason="misconfigured"
            ) from exc
        except errors.Neo4jError as exc:
            if exc.code == "Neo.ClientError.Database.DatabaseNotFound":
                raise TargetUnavailable(
                    f"Neo4j at {self.config.uri} has no database {self.config.database!r}.",
                    reason="misconfigured",
                ) from exc
            if reading:
                raise TargetUnavailable(
                    f"Neo4j at {where} cannot be read: {exc.message or exc}", reason="misconfigured"
                ) from exc
            raise StatementFailed(f"{exc.code}: {exc.message or exc}") from exc
        except errors.DriverError as exc:
            raise TargetUnavailable(
                f"Neo4j at {where} cannot be used: {exc}", reason="unreachable"
            ) from exc

    # -- holding a session (HeldSessions) ------------------------------------------------
    def _open(self) -> None:
        with self._errors(reading=True):
            self._session = self._get_driver().session(
                database=self.config.database, default_access_mode="READ"
            )  # reads: `execute_write` asks for a writer itself

    def _let_go(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            try:
                session.close()
            except Exception as exc:  # a dead connection: nothing to give back
                logger.info("Closing a Neo4j session of %s failed: %s", self.config.uri, exc)

    def _timed(self, work):
        """`work` as a transaction function the server ends after `query_timeout`."""
        import neo4j

        return neo4j.unit_of_work(timeout=self.config.query_timeout)(work)

    def _run(self, query: str, parameters: dict | None = None) -> list[list]:
        """A write statement, inside `_in_transaction`."""
        return self._tx.run(query, parameters or {}).values()

    def _read(self, query: str, parameters: dict | None = None) -> list[list]:
        """A read in a transaction of its own, not retried: a page that cannot
        read the graph says so at once."""
        import neo4j

        with self._errors(reading=True):
            statement = neo4j.Query(query, timeout=self.config.query_timeout)
            return self._session.run(statement, parameters or {}).values()

    def _in_transaction(self, fn, *args) -> None:
        self._ensure_schema()

        def work(tx) -> None:
            self._tx = tx
            try:
                fn(*args)
            finally:
                self._tx = None

        with self._errors(reading=False):
            self._session.execute_write(self._timed(work))

    def _ensure_schema(self) -> None:
        if self._schema_ready:
            return
        with self._errors(reading=False):
            for statement in NEO4J_SCHEMA:
                self._session.run(statement).consume()
        self._schema_ready = True

    @staticmethod
    def _properties(node) -> dict:
        return dict(node.items())

    @staticmethod
    def _relationship_type(relationship) -> str:
        return relationship.type

    @staticmethod
    def _node_label(node) -> str:
        return min(node.labels)

    # -- the Target protocol -------------------------------------------------------------
    def ping(self) -> ServerInfo:
        """The server's name and Bolt version; and its database answers."""
        with self._errors(reading=True):
            info = self._get_driver().get_server_info()
        with self.session():
            self._read("RETURN 1")  # an unknown database says so here
        major, minor = info.protocol_version[:2]
        return ServerInfo(version=f"{info.agent} (Bolt {major}.{minor})", ready=True)

    def ensure_collection(self) -> None:
        with self.session():
            self._ensure_schema()

    def close(self) -> None:
        with self._lock:
            self._let_go()
            self._depth = 0
            driver, self._driver = self._driver, None
        if driver is not None:
            driver.close()


_current: Neo4jGraphTarget | None = None
_current_lock = threading.Lock()


def neo4j_target(config: Neo4jSettings | None = None) -> Neo4jGraphTarget:
    """The process's Neo4j target for the current configuration; an edit in
    the admin closes the old driver and the next call connects anew."""
    global _current
    config = config or neo4j_settings()
    with _current_lock:
        if _current is not None and _current.config.fingerprint == config.fingerprint:
            _current.config = config
            return _current
        old, _current = _current, Neo4jGraphTarget(config)
    if old is not None:
        old.close()
    return _current


def close_neo4j() -> None:
    global _current
    with _current_lock:
        old, _current = _current, None
    if old is not None:
        old.close()


def check_neo4j_connection() -> tuple[bool, str]:
    """Connect with the saved settings (even if disabled), make the schema, and
    say what happened. A target of its own, closed afterwards."""
    try:
        config = neo4j_settings()
    except ValueError as exc:
        return False, str(exc)
    try:
        info, count = probe(Neo4jGraphTarget(replace(config, enabled=True)))
    except TargetUnavailable as exc:
        return False, str(exc)
    return True, (
        f"Connected to {info.version} at {config.describe()}: the graph holds {count} objects."
    )
