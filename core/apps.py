from django.apps import AppConfig
from django.db.models.signals import post_delete


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Agira"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from core.models import Attachment
        from core.services.attachments import remove_stored_file

        post_delete.connect(
            remove_stored_file, sender=Attachment, dispatch_uid="core.attachment.remove_file"
        )

        from core.services.index import signals as index_signals

        index_signals.connect()
