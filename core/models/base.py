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


class SingletonModel(models.Model):
    """A table of one row (pk=1), edited in the admin: `load()` returns it, created
    with the field defaults the first time."""

    SINGLETON_PK = 1

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        self.pk = self.SINGLETON_PK
        super().save(*args, **kwargs)

    save.alters_data = True

    @classmethod
    def load(cls):
        obj, _ = cls.objects.get_or_create(pk=cls.SINGLETON_PK)
        return obj

    @classmethod
    def current(cls):
        """The stored row, or one with the defaults, unsaved: for reads on
        every page (one query, never a write)."""
        return cls.objects.filter(pk=cls.SINGLETON_PK).first() or cls(pk=cls.SINGLETON_PK)
