"""Bookkeeping of the sync engine: its configuration, the outbox of pending
changes, and one record per object and index target.

These are plain tables; the engine in `core.services.index` reads and writes
them. Nothing here talks to an index.
"""

from django.db import models

from .base import SingletonModel


class WeaviateConfiguration(SingletonModel):
    """The Weaviate connection, edited in the admin. A singleton (pk=1).

    Environment variables (`AGIRA_WEAVIATE_*`, see `.env.example`) override
    every field; the admin shows which ones are overridden.
    """

    enabled = models.BooleanField(default=False)
    url = models.CharField(
        "URL",
        max_length=300,
        default="http://localhost",
        help_text="Scheme and host, e.g. http://weaviate.internal or https://x.weaviate.cloud",
    )
    http_port = models.PositiveIntegerField("HTTP port", default=8080)
    grpc_port = models.PositiveIntegerField("gRPC port", default=50051)
    api_key = models.CharField(
        "API key",
        max_length=500,
        blank=True,
        help_text="Write-only: never shown again. Leave empty for a server without auth.",
    )
    collection_name = models.CharField(max_length=100, default="AgiraObject")
    connect_timeout = models.FloatField(
        default=3.0, help_text="Seconds to wait for the server at connection time."
    )
    query_timeout = models.FloatField(default=10.0, help_text="Seconds for a read.")
    insert_timeout = models.FloatField(default=30.0, help_text="Seconds for a batch write.")
    vectorizer = models.CharField(
        max_length=30,
        choices=[
            ("agira", "Agira's embedder (vectors sent with every write)"),
            ("text2vec-transformers", "Weaviate's text2vec-transformers module (server-side)"),
        ],
        default="agira",
        help_text="Who computes the vectors. The server-side module must serve the same model "
        "as Agira's embedder (docker-compose.yml runs all-MiniLM-L6-v2) so that query vectors "
        "agree; a change needs a new collection and `manage.py sync_weaviate --full`.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "Weaviate configuration"
        verbose_name_plural = "Weaviate configuration"

    def __str__(self) -> str:
        return "Weaviate configuration"


class Neo4jConfiguration(SingletonModel):
    """The Neo4j connection of the graph target, edited in the admin. A singleton.

    Environment variables (`AGIRA_NEO4J_*`, see `.env.example`) override every
    field; the admin shows which ones are overridden.
    """

    enabled = models.BooleanField(default=False)
    uri = models.CharField(
        "URI",
        max_length=300,
        default="neo4j://localhost:7687",
        help_text="neo4j://host:7687 (routing, for a cluster or Aura: neo4j+s://...) or "
        "bolt://host:7687 (one server).",
    )
    user = models.CharField(max_length=200, default="neo4j")
    password = models.CharField(
        max_length=500,
        blank=True,
        help_text="Write-only: never shown again.",
    )
    database = models.CharField(
        max_length=100, default="neo4j", help_text="The database the graph is written to."
    )
    connect_timeout = models.FloatField(
        default=3.0, help_text="Seconds to wait for the server at connection time."
    )
    query_timeout = models.FloatField(
        default=30.0, help_text="Seconds a transaction may take before the server ends it."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "Neo4j configuration"
        verbose_name_plural = "Neo4j configuration"

    def __str__(self) -> str:
        return "Neo4j configuration"


class EmbedderProvider(models.TextChoices):
    LOCAL = "local", "Local model (ONNX on the CPU)"
    HTTP = "http", "OpenAI-compatible endpoint (/v1/embeddings)"
    NONE = "none", "None (keyword search only)"


class EmbedderConfiguration(SingletonModel):
    """Which model turns texts into vectors, edited in the admin. A singleton.

    Environment variables (`AGIRA_EMBEDDER_*`) override every field.
    """

    provider = models.CharField(
        max_length=10, choices=EmbedderProvider.choices, default=EmbedderProvider.LOCAL
    )
    local_model_path = models.CharField(
        "local model folder",
        max_length=500,
        blank=True,
        help_text="A folder holding another ONNX sentence model (model.onnx and tokenizer.json). "
        "Empty: all-MiniLM-L6-v2, shipped with Agira.",
    )
    http_url = models.CharField(
        "endpoint URL",
        max_length=300,
        blank=True,
        help_text="Base URL of an OpenAI-compatible API, e.g. http://localhost:11434 (Ollama).",
    )
    http_model = models.CharField("model name", max_length=200, blank=True)
    http_api_key = models.CharField(
        "API key",
        max_length=500,
        blank=True,
        help_text="Write-only: never shown again. Leave empty to keep it, or for no key.",
    )
    http_dimension = models.PositiveIntegerField(
        "dimension",
        null=True,
        blank=True,
        help_text="The model's vector length; empty: learnt from the endpoint.",
    )
    batch_size = models.PositiveIntegerField(default=32, help_text="Texts per model call.")
    timeout = models.FloatField(default=30.0, help_text="Seconds for one endpoint request.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "Embedder configuration"
        verbose_name_plural = "Embedder configuration"

    def __str__(self) -> str:
        return "Embedder configuration"


class EmbeddingCache(models.Model):
    """A vector by the text it was computed from and the model that computed
    it: unchanged text is never embedded twice, whichever target or command
    asks. `key` is sha256(model key + text); the vector is float32 bytes."""

    key = models.CharField(max_length=64, primary_key=True)
    model = models.CharField(max_length=300)
    vector = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "cached embedding"

    def __str__(self) -> str:
        return f"{self.model}: {self.key[:12]}"


class SyncOperation(models.TextChoices):
    UPSERT = "upsert", "Upsert"
    DELETE = "delete", "Delete"


class SyncOutbox(models.Model):
    """A change waiting to be synced. Inserted in the transaction of the save,
    so it exists exactly when the change does; the drain deletes it."""

    object_type = models.CharField(max_length=20)
    object_id = models.CharField(max_length=64)
    operation = models.CharField(max_length=10, choices=SyncOperation.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["object_type", "object_id"])]
        verbose_name = "pending change"

    def __str__(self) -> str:
        return f"{self.operation} {self.object_type}:{self.object_id}"


class SyncState(models.TextChoices):
    PENDING = "pending", "Pending"
    SYNCED = "synced", "Synced"
    FAILED = "failed", "Failed"
    DELETED = "deleted", "Deleted"


class SyncRecord(models.Model):
    """Where one object stands in one index target."""

    target = models.CharField(max_length=20)
    object_type = models.CharField(max_length=20)
    object_id = models.CharField(max_length=64)
    operation = models.CharField(
        max_length=10, choices=SyncOperation.choices, default=SyncOperation.UPSERT
    )
    state = models.CharField(max_length=10, choices=SyncState.choices, default=SyncState.PENDING)
    # Hash of the document last written successfully: a write of the same
    # content is skipped.
    content_hash = models.CharField(max_length=64, blank=True)
    # The embedding model (ModelInfo.key) of the vector last written, "" for
    # none: a change of model makes every record due for a new vector.
    embedding_model = models.CharField(max_length=300, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    # While pending: when the oldest change not yet in the index was saved.
    pending_since = models.DateTimeField(null=True, blank=True)
    # Of the last write by a drain: milliseconds from that save to the index
    # holding it (the dashboard's p95 over the last hour).
    index_latency_ms = models.PositiveIntegerField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    changed_at = models.DateTimeField(auto_now=True)
    # The id of the newest outbox row folded into this record. A drain only
    # marks the record synced if it is unchanged, so a change that arrives
    # while a write is in flight is never lost.
    version = models.BigIntegerField(default=0)
    # A drain leases the records it works on, for a short while it renews as
    # long as the batch is in flight. The token names the holder
    # (host:pid:claim): an expired lease, or one whose process died on this
    # host, frees the records for the next drain.
    claim_token = models.CharField(max_length=100, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["target", "object_type", "object_id"], name="sync_record_unique"
            )
        ]
        indexes = [
            models.Index(fields=["target", "state", "next_attempt_at"]),
            models.Index(fields=["object_type", "object_id"]),
        ]

    def __str__(self) -> str:
        return f"{self.object_type}:{self.object_id} in {self.target}: {self.state}"


class SyncTargetStatus(models.Model):
    """The last thing learnt about a target's health, for pages to show."""

    target = models.CharField(max_length=20, unique=True)
    reachable = models.BooleanField(default=False)
    last_error = models.TextField(blank=True)
    # TargetUnavailable.reason of the last error: unreachable, auth, misconfigured ...
    reason = models.CharField(max_length=20, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    server_version = models.CharField(max_length=50, blank=True)
    # The last time the index was found to have lost what its records say it
    # holds (restarted without its data, a dropped collection, a new server),
    # and what was done about it.
    index_lost_at = models.DateTimeField(null=True, blank=True)
    index_lost_note = models.TextField(blank=True)

    class Meta:
        verbose_name_plural = "sync target status"

    def __str__(self) -> str:
        return f"{self.target}: {'reachable' if self.reachable else 'unreachable'}"


class SyncSample(models.Model):
    """The pending and failed counts of a target at a moment, for the
    dashboard's chart. Taken by drains and dashboard views, at most one per
    target every 30 seconds; samples older than a day are pruned."""

    at = models.DateTimeField(db_index=True)
    target = models.CharField(max_length=20)
    pending = models.PositiveIntegerField()
    failed = models.PositiveIntegerField()

    class Meta:
        ordering = ["at"]
        indexes = [models.Index(fields=["target", "at"])]

    def __str__(self) -> str:
        return f"{self.target} at {self.at:%H:%M:%S}: {self.pending} pending"


class ReconcileStatus(models.TextChoices):
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"


class ReconcileRun(models.Model):
    """One run of `manage.py sync_weaviate` against one target.

    `lock` holds the target's name while the run is in progress and is
    cleared when it ends: the unique constraint makes claiming a target an
    atomic insert on every database, so only one run per target can hold it.
    A holder that died (its pid is gone, or its heartbeat is old) is found
    stale by the next run, marked failed and its lock taken over.
    """

    target = models.CharField(max_length=20)
    lock = models.CharField(max_length=20, null=True, blank=True, unique=True)
    status = models.CharField(
        max_length=12, choices=ReconcileStatus.choices, default=ReconcileStatus.IN_PROGRESS
    )
    step = models.CharField(max_length=100, blank=True)
    # {type: {"created": n, "updated": n, "unchanged": n, "deleted": n, "failed": n}}
    counts = models.JSONField(default=dict, blank=True)
    # {type: last primary key compared}: how far the run got.
    progress = models.JSONField(default=dict, blank=True)
    options = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField()
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["target", "started_at"])]
        verbose_name = "reconcile run"

    def __str__(self) -> str:
        return f"Reconcile #{self.pk} of {self.target}: {self.status}"

    def totals(self) -> dict[str, int]:
        out = dict.fromkeys(("created", "updated", "unchanged", "deleted", "failed"), 0)
        for row in (self.counts or {}).values():
            for action, n in row.items():
                out[action] = out.get(action, 0) + n
        return out
