import hashlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from core.models import Attachment
from core.services.attachments import attachment_create, attachment_delete
from core.tests import factories

pytestmark = pytest.mark.django_db(transaction=True)


def test_upload_stores_size_hash_and_type_and_the_exact_bytes():
    item = factories.make_item()
    content = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 10
    upload = SimpleUploadedFile("shot.png", content, content_type="application/octet-stream")

    attachment = attachment_create(item=item, upload=upload, uploaded_by=None)

    assert attachment.size_bytes == len(content)
    assert attachment.sha256 == hashlib.sha256(content).hexdigest()
    assert attachment.content_type == "image/png"  # guessed: the browser sent octet-stream
    assert attachment.original_filename == "shot.png"
    with attachment.file.open("rb") as handle:
        assert handle.read() == content


def test_stored_name_ignores_path_tricks_in_the_uploaded_name():
    item = factories.make_item()
    upload = SimpleUploadedFile("../../etc/passwd", b"x", content_type="text/plain")
    attachment = attachment_create(item=item, upload=upload, uploaded_by=None)
    assert ".." not in attachment.file.name
    assert attachment.file.name.startswith(f"attachments/{item.pk}/")


def test_deleting_removes_the_stored_file_and_cascades_do_too(settings):
    item = factories.make_item()
    kept = attachment_create(item=item, upload=SimpleUploadedFile("a.txt", b"a"), uploaded_by=None)
    removed = attachment_create(
        item=item, upload=SimpleUploadedFile("b.txt", b"b"), uploaded_by=None
    )
    kept_path, removed_path = kept.file.path, removed.file.path

    attachment_delete(attachment=removed)
    assert not Attachment.objects.filter(pk=removed.pk).exists()
    assert not _exists(removed_path)
    assert _exists(kept_path)

    item.delete()  # the cascade takes the other file with it
    assert not _exists(kept_path)


def _exists(path: str) -> bool:
    import os

    return os.path.exists(path)
