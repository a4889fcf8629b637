"""Agira's domain models, one module per area.

The models know nothing of the vector index: syncing is the business of
`core.services.index`, which listens for changes from the outside.
"""

from .github import (
    ExternalIssueMapping,
    ExternalKind,
    ExternalProvider,
    ExternalState,
    GitHubConfiguration,
    GitHubRepository,
    GitHubRunStatus,
    GitHubSyncRun,
    MappingAttention,
    MappingSyncState,
)
from .items import Attachment, Item, ItemComment, ItemStatus, ItemType
from .organisations import Membership, Organisation, Project, ProjectStatus, Role
from .planning import Change, ChangeRisk, ChangeStatus, Node, NodeType, Release, ReleaseStatus
from .sync import (
    EmbedderConfiguration,
    EmbedderProvider,
    EmbeddingCache,
    Neo4jConfiguration,
    ReconcileRun,
    ReconcileStatus,
    SyncOperation,
    SyncOutbox,
    SyncRecord,
    SyncSample,
    SyncState,
    SyncTargetStatus,
    WeaviateConfiguration,
)
from .tokens import ApiToken

__all__ = [
    "ApiToken",
    "Attachment",
    "Change",
    "ChangeRisk",
    "ChangeStatus",
    "EmbedderConfiguration",
    "EmbedderProvider",
    "EmbeddingCache",
    "ExternalIssueMapping",
    "ExternalKind",
    "ExternalProvider",
    "ExternalState",
    "GitHubConfiguration",
    "GitHubRepository",
    "GitHubRunStatus",
    "GitHubSyncRun",
    "Item",
    "ItemComment",
    "ItemStatus",
    "ItemType",
    "MappingAttention",
    "MappingSyncState",
    "Membership",
    "Neo4jConfiguration",
    "Node",
    "NodeType",
    "Organisation",
    "Project",
    "ProjectStatus",
    "ReconcileRun",
    "ReconcileStatus",
    "Release",
    "ReleaseStatus",
    "Role",
    "SyncOperation",
    "SyncOutbox",
    "SyncRecord",
    "SyncSample",
    "SyncState",
    "SyncTargetStatus",
    "WeaviateConfiguration",
]
