import hashlib
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from core.forms import MAX_TEXT_CHARS
from core.models import Attachment, ExternalIssueMapping, ItemComment
from core.tests import factories

pytestmark = pytest.mark.django_db


# -- comments -----------------------------------------------------------------
def test_adding_a_comment_returns_to_the_comments_tab(auth_client, item, user):
    response = auth_client.post(reverse("core:comment-create", args=[item.pk]), {"body": "On it"})
    assert response.url == f"{item.get_absolute_url()}#comments"
    comment = ItemComment.objects.get()
    assert (comment.body, comment.author, comment.item) == ("On it", user, item)


def test_adding_a_comment_with_htmx_returns_only_the_comment_list(auth_client, item):
    response = auth_client.post(
        reverse("core:comment-create", args=[item.pk]), {"body": "Done"}, HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="comments">')
    assert "Done" in html
    assert "<!doctype html>" not in html
    assert 'id="comment-count" hx-swap-oob="true">1<' in html


def test_an_empty_comment_is_a_form_error(auth_client, item):
    response = auth_client.post(reverse("core:comment-create", args=[item.pk]), {"body": "   "})
    assert response.status_code == 400
    assert b"A comment cannot be empty." in response.content
    assert b'data-active-tab="comments"' in response.content
    htmx = auth_client.post(
        reverse("core:comment-create", args=[item.pk]), {"body": ""}, HTTP_HX_REQUEST="true"
    )
    assert b"A comment cannot be empty." in htmx.content
    assert not ItemComment.objects.exists()


def test_an_over_long_comment_is_a_form_error_that_keeps_the_text(auth_client, item, user):
    text = "z" * (MAX_TEXT_CHARS + 1)
    url = reverse("core:comment-create", args=[item.pk])
    response = auth_client.post(url, {"body": text})
    assert response.status_code == 400
    html = response.content.decode()
    assert f"is {MAX_TEXT_CHARS + 1:,} characters long; the limit is {MAX_TEXT_CHARS:,}" in html
    assert text in html
    assert f"Up to {MAX_TEXT_CHARS:,} characters" in html
    htmx = auth_client.post(url, {"body": text}, HTTP_HX_REQUEST="true").content.decode()
    assert "the limit is" in htmx
    assert text in htmx
    comment = factories.make_comment(item=item, author=user, body="Short")
    edit = auth_client.post(reverse("core:comment-edit", args=[comment.pk]), {"body": text})
    assert "the limit is" in edit.content.decode()
    assert list(ItemComment.objects.values_list("body", flat=True)) == ["Short"]


def test_edit_and_delete_comment(auth_client, item, user):
    comment = factories.make_comment(item=item, body="typo", author=user)
    auth_client.post(reverse("core:comment-edit", args=[comment.pk]), {"body": "fixed"})
    comment.refresh_from_db()
    assert comment.body == "fixed"
    response = auth_client.post(reverse("core:comment-delete", args=[comment.pk]))
    assert response.url == f"{item.get_absolute_url()}#comments"
    assert not ItemComment.objects.exists()


# -- attachments ----------------------------------------------------------------
def test_upload_and_download_give_back_the_same_bytes(auth_client, item, user):
    content = bytes(range(256)) * 40  # binary, not valid UTF-8
    upload = SimpleUploadedFile("dump.bin", content, content_type="application/octet-stream")
    response = auth_client.post(reverse("core:attachment-create", args=[item.pk]), {"file": upload})
    assert response.url == f"{item.get_absolute_url()}#attachments"
    attachment = Attachment.objects.get()
    assert attachment.size_bytes == len(content)
    assert attachment.sha256 == hashlib.sha256(content).hexdigest()
    assert attachment.uploaded_by == user

    download = auth_client.get(reverse("core:attachment-download", args=[attachment.pk]))
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == content
    assert download["Content-Disposition"] == 'attachment; filename="dump.bin"'

    page = auth_client.get(item.get_absolute_url()).content.decode()
    assert "dump.bin" in page
    assert "10.0\xa0KB" in page


def test_an_over_limit_upload_is_refused_with_a_clear_message(auth_client, item, settings):
    settings.AGIRA_MAX_UPLOAD_BYTES = 1024
    upload = SimpleUploadedFile("big.log", b"x" * 2048, content_type="text/plain")
    response = auth_client.post(reverse("core:attachment-create", args=[item.pk]), {"file": upload})
    assert response.status_code == 400
    html = response.content.decode()
    assert "big.log is 2.0\xa0KB; attachments may be at most 1.0\xa0KB." in html
    assert 'data-active-tab="attachments"' in html
    assert not Attachment.objects.exists()
    # Nothing half-saved: no stray file in storage either.
    assert not [p for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()]


def test_an_upload_without_a_file_is_a_form_error(auth_client, item):
    response = auth_client.post(reverse("core:attachment-create", args=[item.pk]), {})
    assert response.status_code == 400
    assert b"This field is required." in response.content


def test_a_file_missing_from_storage_is_reported_not_a_500(auth_client, item):
    upload = SimpleUploadedFile("notes.md", b"# notes", content_type="text/markdown")
    auth_client.post(reverse("core:attachment-create", args=[item.pk]), {"file": upload})
    attachment = Attachment.objects.get()
    attachment.file.storage.delete(attachment.file.name)
    response = auth_client.get(
        reverse("core:attachment-download", args=[attachment.pk]), follow=True
    )
    assert response.status_code == 200
    assert "The file of notes.md is missing from storage." in response.content.decode()


def test_delete_attachment_removes_row_and_file(
    auth_client, item, django_capture_on_commit_callbacks
):
    upload = SimpleUploadedFile("a.txt", b"hello", content_type="text/plain")
    auth_client.post(reverse("core:attachment-create", args=[item.pk]), {"file": upload})
    attachment = Attachment.objects.get()
    path = Path(attachment.file.path)
    assert path.read_bytes() == b"hello"
    # The file goes when the deletion commits; the test runs in a transaction,
    # so the commit hooks are captured and run here.
    with django_capture_on_commit_callbacks(execute=True) as hooks:
        auth_client.post(reverse("core:attachment-delete", args=[attachment.pk]))
    assert len(hooks) == 1
    assert not Attachment.objects.exists()
    assert not path.exists()


# -- GitHub links -------------------------------------------------------------------
def test_link_a_github_issue_and_refuse_a_duplicate(auth_client, item):
    url = reverse("core:github-link-create", args=[item.pk])
    response = auth_client.post(url, {"repository": "Acme/Shop", "number": 42, "kind": "issue"})
    assert response.url == f"{item.get_absolute_url()}#github"
    mapping = ExternalIssueMapping.objects.get()
    assert (mapping.repository, mapping.number) == ("acme/shop", 42)
    assert mapping.url == "https://github.com/acme/shop/issues/42"

    again = auth_client.post(url, {"repository": "acme/shop", "number": 42, "kind": "issue"})
    assert again.status_code == 400
    assert b"already exists" in again.content
    assert ExternalIssueMapping.objects.count() == 1


@pytest.mark.parametrize("repository", ["acme", "acme/", "/shop", "a/b/c", ""])
def test_a_malformed_repository_is_a_form_error(auth_client, item, repository):
    response = auth_client.post(
        reverse("core:github-link-create", args=[item.pk]),
        {"repository": repository, "number": 1, "kind": "issue"},
    )
    assert response.status_code == 400
    assert not ExternalIssueMapping.objects.exists()


def test_remove_github_link(auth_client, item):
    mapping = factories.make_mapping(item=item)
    auth_client.post(reverse("core:github-link-delete", args=[mapping.pk]))
    assert not ExternalIssueMapping.objects.exists()
