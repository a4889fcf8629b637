import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError

from core.models import ItemStatus
from core.tests import factories

pytestmark = pytest.mark.django_db


def test_str_of_every_model_reads_like_the_ui():
    project = factories.make_project(name="Webshop")
    item = factories.make_item(project=project, title="Checkout breaks")
    assert str(project) == "Webshop"
    assert str(item) == f"#{item.pk} Checkout breaks"
    assert (
        str(factories.make_comment(item=item)) == f"Comment {item.comments.get().pk} on #{item.pk}"
    )
    assert str(factories.make_node(project=project, name="API")) == "API"
    assert str(factories.make_release(project=project, version="2.0.0")) == "Webshop 2.0.0"
    assert str(factories.make_change(project=project, title="Rotate keys")) == "Rotate keys"
    assert str(factories.make_mapping(item=item, repository="acme/shop", number=7)) == "acme/shop#7"
    assert str(factories.make_mapping(item=item, repository="acme/shop", number=8, kind="pr")) == (
        "acme/shop!8"
    )


def test_item_statuses_are_the_workflow_in_order():
    assert ItemStatus.values == [
        "Inbox",
        "Backlog",
        "Working",
        "Testing",
        "Ready for Release",
        "Closed",
    ]
    assert ItemStatus.rank("Ready for Release") > ItemStatus.rank("Testing")
    assert ItemStatus.rank("Working") < ItemStatus.rank("Testing")


def test_items_are_listed_most_recently_updated_first():
    project = factories.make_project()
    first = factories.make_item(project=project, title="first")
    second = factories.make_item(project=project, title="second")
    first.title = "first, edited"
    first.save()
    assert list(project.items.all()) == [first, second]


def test_project_names_are_unique_within_an_organisation_only():
    organisation = factories.make_organisation()
    factories.make_project(organisation=organisation, name="Portal")
    factories.make_project(name="Portal")  # another organisation: fine
    with pytest.raises(IntegrityError):
        factories.make_project(organisation=organisation, name="Portal")


def test_a_node_cannot_become_its_own_ancestor():
    root = factories.make_node(name="root")
    child = factories.make_node(project=root.project, name="child", parent=root)
    root.parent = child
    with pytest.raises(ValidationError, match="own ancestor"):
        root.full_clean()


def test_a_node_parent_must_be_in_the_same_project():
    parent = factories.make_node()
    stray = factories.make_node(parent=None)
    stray.parent = parent
    with pytest.raises(ValidationError, match="same project"):
        stray.full_clean()


def test_deleting_an_item_deletes_its_comments_attachments_and_links():
    item = factories.make_item()
    factories.make_comment(item=item)
    factories.make_mapping(item=item)
    item.delete()
    from core.models import ExternalIssueMapping, ItemComment

    assert ItemComment.objects.count() == 0
    assert ExternalIssueMapping.objects.count() == 0
