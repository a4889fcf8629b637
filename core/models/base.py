from django.db import models, router, transaction


class TimeStampedModel(models.Model):
    """Adds `created_at` and `updated_at`, and saves in a transaction.

    In autocommit Django commits a row before it sends `post_save`; saving
    inside `atomic()` keeps whatever the receivers write (the sync outbox row)
    in the same transaction as the row itself: both commit, or neither.
    """

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
        with transaction.atomic(using=using):
            super().save(*args, **kwargs)

    save.alters_data = True
