"""Writes for attachments: the upload is hashed while it is stored."""

import hashlib
import logging
import mimetypes

from django.contrib.auth.models import AbstractBaseUser
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from core.models import Attachment, Item

logger = logging.getLogger("agira.attachments")

GENERIC_CONTENT_TYPE = "application/octet-stream"


def _content_type(upload: UploadedFile) -> str:
    # Browsers send "application/octet-stream" for anything they do not know;
    # the file name is then the better guess.
    declared = (upload.content_type or "").split(";")[0].strip().lower()
    if declared and declared != GENERIC_CONTENT_TYPE:
        return declared[:255]
    guessed, _ = mimetypes.guess_type(upload.name or "")
    return guessed or GENERIC_CONTENT_TYPE


def attachment_create(
    *, item: Item, upload: UploadedFile, uploaded_by: AbstractBaseUser | None
) -> Attachment:
    """Store an uploaded file on an item, with its size and SHA-256."""
    digest = hashlib.sha256()
    size = 0
    for chunk in upload.chunks():
        digest.update(chunk)
        size += len(chunk)
    upload.seek(0)

    attachment = Attachment(
        item=item,
        original_filename=(upload.name or "upload")[:255],
        content_type=_content_type(upload),
        size_bytes=size,
        sha256=digest.hexdigest(),
        uploaded_by=uploaded_by if uploaded_by and uploaded_by.is_authenticated else None,
    )
    with transaction.atomic():
        # FileField.save writes the file, then the row; if the row fails the
        # file is removed again so nothing is half-saved.
        try:
            attachment.file.save(attachment.original_filename, upload, save=True)
        except Exception:
            if attachment.file.name:
                attachment.file.delete(save=False)
            raise
    logger.info("Attachment %s stored on item %s (%d bytes)", attachment.pk, item.pk, size)
    return attachment


def attachment_delete(*, attachment: Attachment) -> None:
    attachment.delete()


def remove_stored_file(sender, instance: Attachment, **kwargs) -> None:
    """post_delete receiver: remove the file once the deletion is committed.

    Connected for every deletion, so files of attachments that go with their
    item (a cascade) are removed too; a rollback keeps the file.
    """
    storage, name = instance.file.storage, instance.file.name
    if not name:
        return

    def remove() -> None:
        try:
            storage.delete(name)
        except OSError:
            logger.exception("Could not remove the file %s of a deleted attachment", name)

    transaction.on_commit(remove)
