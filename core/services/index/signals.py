"""Signal receivers: thin. They record the change in the outbox and return.

Connected in `CoreConfig.ready()`. Cascades are covered because Django sends
`post_delete` for every row a cascade removes (deleting an item records the
deletion of its comments, attachments and GitHub links).
"""

from django.db.models.signals import post_delete, post_save, pre_save

from core.models import ExternalIssueMapping, Item, Project, SyncOperation

from .documents import SYNCED_MODELS, get_weaviate_type
from .engine import mark_for_sync, record_change

# Children whose documents carry their parent's project or organisation.
_ITEM_CHILDREN = ("comments", "attachments", "external_mappings")


def on_save(sender, instance, created, raw=False, **kwargs):
    if raw:  # loaddata: fixtures are synced by the reconcile command
        return
    old_type = getattr(instance, "_agira_old_index_type", None)
    if old_type and old_type != get_weaviate_type(instance):
        # An issue link turned into a PR link: the old document goes.
        from core.models import SyncOutbox

        SyncOutbox.objects.create(
            object_type=old_type, object_id=str(instance.pk), operation=SyncOperation.DELETE
        )
    record_change(instance, operation=SyncOperation.UPSERT, created=created)
    if getattr(instance, "_agira_children_moved", False):
        instance._agira_children_moved = False
        if isinstance(instance, Item):
            for name in _ITEM_CHILDREN:
                mark_for_sync(getattr(instance, name).all())
        elif isinstance(instance, Project):
            for queryset in _project_descendants(instance):
                mark_for_sync(queryset)


def _project_descendants(project: Project):
    from core.models import Attachment, Change, ItemComment, Node, Release

    yield project.items.all()
    yield ItemComment.objects.filter(item__project=project)
    yield Attachment.objects.filter(item__project=project)
    yield ExternalIssueMapping.objects.filter(item__project=project)
    yield Change.objects.filter(project=project)
    yield Node.objects.filter(project=project)
    yield Release.objects.filter(project=project)


def before_save(sender, instance, raw=False, **kwargs):
    """Notice the parent moves that change children's documents (one small query)."""
    if raw or instance.pk is None:
        return
    if isinstance(instance, Item):
        old = Item.objects.filter(pk=instance.pk).values_list("project_id", flat=True).first()
        instance._agira_children_moved = old is not None and old != instance.project_id
    elif isinstance(instance, Project):
        old = (
            Project.objects.filter(pk=instance.pk).values_list("organisation_id", flat=True).first()
        )
        instance._agira_children_moved = old is not None and old != instance.organisation_id
    elif isinstance(instance, ExternalIssueMapping):
        old_kind = (
            ExternalIssueMapping.objects.filter(pk=instance.pk)
            .values_list("kind", flat=True)
            .first()
        )
        if old_kind and old_kind != instance.kind:
            instance._agira_old_index_type = "github_issue" if old_kind == "issue" else "github_pr"


def on_delete(sender, instance, **kwargs):
    record_change(instance, operation=SyncOperation.DELETE)


def connect() -> None:
    for model in SYNCED_MODELS:
        uid = f"agira.index.{model.__name__}"
        post_save.connect(on_save, sender=model, dispatch_uid=f"{uid}.save")
        post_delete.connect(on_delete, sender=model, dispatch_uid=f"{uid}.delete")
    for model in (Item, Project, ExternalIssueMapping):
        pre_save.connect(
            before_save, sender=model, dispatch_uid=f"agira.index.{model.__name__}.pre"
        )
