"""`manage.py db_worker`: django-tasks-db's worker, with the sync upkeep beside it.

Every option of django-tasks-db's command works as before. Two things differ:

* a thread runs `core.services.index.upkeep.upkeep()` every
  `--upkeep-interval` seconds (default `AGIRA_SYNC_UPKEEP_SECONDS`; 0 turns it
  off; a `--batch` run does one round before it starts): the worker drains
  what is due on its own schedule, without waiting for a save, and recovers
  from a worker that was killed;
* the worker id names the host and process (`host:pid:name`), so that a task
  whose worker died can be told from one that is still running.

`core` comes before `django_tasks_db` in `INSTALLED_APPS`, so this command is
the one `manage.py db_worker` runs.
"""

import logging
import os
import threading

from django.conf import settings
from django.core.management.base import CommandError
from django.db import connections
from django.utils.autoreload import DJANGO_AUTORELOAD_ENV, run_with_reloader
from django_tasks_db.management.commands import db_worker as base

from core.services.index import upkeep as sync_upkeep

logger = logging.getLogger("agira.index")


class Worker(base.Worker):
    def __init__(self, *, upkeep_interval: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.upkeep_interval = upkeep_interval
        self._stopped = threading.Event()

    def run(self) -> None:
        if not self.upkeep_interval:
            return super().run()
        if self.batch:
            self._upkeep_round()
            return super().run()
        thread = threading.Thread(target=self._upkeep_loop, name="agira-sync-upkeep", daemon=True)
        thread.start()
        try:
            return super().run()
        finally:
            self._stopped.set()
            thread.join(timeout=5)

    def _upkeep_loop(self) -> None:
        while True:
            self._upkeep_round()
            if self._stopped.wait(self.upkeep_interval):
                return

    def _upkeep_round(self) -> None:
        try:
            report = sync_upkeep.upkeep()
            if report.drain_queued:
                logger.debug("Sync upkeep queued a drain")
        except Exception:
            logger.exception("The sync upkeep failed; it runs again in %s s", self.upkeep_interval)
        finally:
            if threading.current_thread() is not threading.main_thread():
                connections.close_all()  # the upkeep thread's own connections


class Command(base.Command):
    help = (
        "Run a database background worker, with the sync upkeep: drains what is due "
        "without waiting for a save and recovers from killed workers."
    )

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--upkeep-interval",
            type=base.valid_interval,
            default=None,
            help="Seconds between two rounds of the sync upkeep; 0 turns it off "
            "(default: AGIRA_SYNC_UPKEEP_SECONDS).",
        )

    def handle(
        self,
        *,
        verbosity: int,
        queue_name: str,
        interval: float,
        batch: bool,
        backend_name: str,
        startup_delay: bool,
        reload: bool,
        max_tasks: int | None,
        worker_id: str,
        exclude_queues: str,
        upkeep_interval: float | None,
        **options,
    ) -> None:
        self.configure_logging(verbosity)
        if reload and batch:
            base.logger.warning(
                "Warning: --reload and --batch cannot be specified together. Disabling autoreload."
            )
            reload = False
        queue_names = queue_name.split(",")
        excluded = exclude_queues.split(",") if exclude_queues else []
        if excluded and "*" not in queue_names:
            raise CommandError("--exclude-queues can only be used with --queue-name=*")
        if upkeep_interval is None:
            upkeep_interval = settings.AGIRA_SYNC_UPKEEP_SECONDS
        worker = Worker(
            queue_names=queue_names,
            interval=interval,
            batch=batch,
            backend_name=backend_name,
            startup_delay=startup_delay,
            max_tasks=max_tasks,
            worker_id=sync_upkeep.worker_id(worker_id, os.getpid()),
            excluded_queue_names=excluded,
            upkeep_interval=upkeep_interval,
        )
        if reload:
            if os.environ.get(DJANGO_AUTORELOAD_ENV) == "true":
                worker.configure_signals()  # only the child process
            run_with_reloader(worker.run)
        else:
            worker.configure_signals()
            worker.run()
