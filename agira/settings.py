"""Django settings for Agira.

Every setting can be overridden from the environment (or a `.env` file beside
`manage.py`); `.env.example` lists them all. Defaults are safe for local use.
`AGIRA_ENV=production` turns on the production checks: the process refuses to
start without `SECRET_KEY` and `ALLOWED_HOSTS`.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A .env file is a convenience for local runs; real environments set variables.
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env")

AGIRA_ENV = env.str("AGIRA_ENV", default="development")
if AGIRA_ENV not in {"development", "production", "test"}:
    raise ImproperlyConfigured(
        f"AGIRA_ENV must be development, production or test, not {AGIRA_ENV!r}."
    )
PRODUCTION = AGIRA_ENV == "production"

DEBUG = env.bool("DEBUG", default=not PRODUCTION)

if PRODUCTION:
    SECRET_KEY = env.str("SECRET_KEY", default="")
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])
    missing = [
        name
        for name, value in (("SECRET_KEY", SECRET_KEY), ("ALLOWED_HOSTS", ALLOWED_HOSTS))
        if not value
    ]
    if missing:
        raise ImproperlyConfigured(
            f"AGIRA_ENV=production needs {' and '.join(missing)} in the environment."
        )
else:
    # Development only: a fixed key keeps sessions valid across restarts.
    SECRET_KEY = env.str("SECRET_KEY", default="agira-development-key-not-for-production")
    ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])

CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    # Before django_tasks_db: Agira's `db_worker` (the same worker, with the
    # sync upkeep beside it) is the one `manage.py db_worker` runs.
    "core",
    "django_tasks",
    "django_tasks_db",
    "ninja",  # only for its vendored Swagger UI files: /api/docs works offline
]

MIDDLEWARE = [
    # First: the container's health check has no proxy in front and no public Host.
    "core.middleware.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # gunicorn serves no files itself: static files come from STATIC_ROOT, right
    # after the HTTPS redirect and before sessions, so they cost no database query.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page needs a login unless its view is marked @login_not_required.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "agira.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "agira.wsgi.application"
ASGI_APPLICATION = "agira.asgi.application"

VAR_DIR = Path(env.str("AGIRA_VAR_DIR", default=str(BASE_DIR / "var")))
# var/ is not in git; a fresh clone creates it on first use (SQLite needs it).
VAR_DIR.mkdir(parents=True, exist_ok=True)

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'agira.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web process and the task worker share the file: wait for locks
    # instead of failing, and take the write lock up front (no upgrade deadlocks).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "core:project-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Outside AGIRA_VAR_DIR: the image collects its files at build time, and var/ is a volume.
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
if not PRODUCTION:
    # WhiteNoise warns about a missing folder; nothing may have been collected yet.
    STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Production serves `collectstatic`'s output: names carry a hash of the content
    # (cached for a year) and gzip copies sit beside them. It needs the manifest that
    # collectstatic writes, so development and tests keep the plain storage.
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage",
    },
}

MEDIA_URL = "media/"
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))

# Attachments larger than this are refused with a form error (bytes).
AGIRA_MAX_UPLOAD_BYTES = env.int("AGIRA_MAX_UPLOAD_BYTES", default=10 * 1024 * 1024)
# The form fields of a request (files not counted), read into memory. Kept far
# above the longest form (core.forms.MAX_TEXT_CHARS: 100,000 characters, at most
# 1.2 MB URL-encoded) so that an over-long text up to this size reaches the form
# and comes back with an error; past it Django answers with a bare 400.
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

AGIRA_ITEMS_PER_PAGE = env.int("AGIRA_ITEMS_PER_PAGE", default=25)

# Django's Tasks API. The immediate backend runs a task inline after enqueue
# (development and tests); production uses the database queue and `db_worker`.
TASKS = {
    "default": {
        "BACKEND": env.str(
            "AGIRA_TASKS_BACKEND",
            default="django_tasks_db.DatabaseBackend"
            if PRODUCTION
            else "django_tasks.backends.immediate.ImmediateBackend",
        ),
        "QUEUES": ["default"],
    }
}

# HTTPS (docs/operations.md, "Production settings"): on by default in production.
if PRODUCTION:
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=PRODUCTION)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31_536_000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=PRODUCTION)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
if not SECURE_HSTS_PRELOAD:
    # Asking browsers to preload the domain is its owner's choice, hard to undo, and
    # only possible for a registrable domain: the deploy check need not nag about it.
    SILENCED_SYSTEM_CHECKS = ["security.W021"]
# Trusting X-Forwarded-Proto (or the like) is safe only behind a proxy that always
# sets it; otherwise any client could claim HTTPS. Off unless named, e.g.
# AGIRA_PROXY_SSL_HEADER=X-Forwarded-Proto (or HTTP_X_FORWARDED_PROTO).
_proxy_ssl_header = env.str("AGIRA_PROXY_SSL_HEADER", default="").strip().upper().replace("-", "_")
if _proxy_ssl_header:
    SECURE_PROXY_SSL_HEADER = (
        _proxy_ssl_header if _proxy_ssl_header.startswith("HTTP_") else f"HTTP_{_proxy_ssl_header}",
        "https",
    )

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "agira": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "django": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}

# Password of the `demo` user that `manage.py seed_demo` creates (local use only).
AGIRA_DEMO_PASSWORD = env.str("AGIRA_DEMO_PASSWORD", default="agira-demo")

# -- The sync engine (core.services.index) --------------------------------------
# Global switch: off records nothing (`manage.py sync_weaviate` catches up later).
AGIRA_SYNC_ENABLED = env.bool("AGIRA_SYNC_ENABLED", default=True)
# Which object types sync (empty: all of item, comment, attachment, project,
# change, node, release, github_issue, github_pr).
AGIRA_SYNC_TYPES = env.list("AGIRA_SYNC_TYPES", default=[])
# Which operations sync: any of create, update, delete.
AGIRA_SYNC_OPERATIONS = env.list("AGIRA_SYNC_OPERATIONS", default=["create", "update", "delete"])
# queued: after commit a task drains the outbox (the task backend decides where
# it runs); immediate: the committing process drains it itself, right away.
AGIRA_SYNC_MODE = env.str("AGIRA_SYNC_MODE", default="queued")
# With a task backend that runs tasks inline (development without a worker),
# queued drains run in a background thread of the saving process; true runs
# them in the committing thread itself (the test suite, to assert right after
# a save).
AGIRA_SYNC_INLINE = env.bool("AGIRA_SYNC_INLINE", default=False)
AGIRA_SYNC_BATCH_SIZE = env.int("AGIRA_SYNC_BATCH_SIZE", default=500)
# Per-object failures retry with exponential backoff (base * 2^n seconds,
# jittered, capped) and stay failed after this many attempts.
AGIRA_SYNC_MAX_ATTEMPTS = env.int("AGIRA_SYNC_MAX_ATTEMPTS", default=6)
AGIRA_SYNC_BACKOFF_SECONDS = env.float("AGIRA_SYNC_BACKOFF_SECONDS", default=5.0)
AGIRA_SYNC_BACKOFF_MAX_SECONDS = env.float("AGIRA_SYNC_BACKOFF_MAX_SECONDS", default=3600.0)
# How long a drain holds the records of a batch before another drain may take
# them over; renewed every third of it while the batch is in flight, so a
# drain that died gives its batch up within this many seconds.
AGIRA_SYNC_LEASE_SECONDS = env.int("AGIRA_SYNC_LEASE_SECONDS", default=30)
# How often the worker (`manage.py db_worker`) looks after the sync on its own:
# frees the leases of dead drains, marks task rows whose worker died, checks
# that each index still holds what the records say, and queues a drain for
# what is due (a retry's backoff over, a lease expired) without waiting for a save.
AGIRA_SYNC_UPKEEP_SECONDS = env.float("AGIRA_SYNC_UPKEEP_SECONDS", default=10.0)
# How often a process compares what each index holds with what its records say
# is synced (an index that came back empty is written again).
AGIRA_SYNC_INDEX_CHECK_SECONDS = env.float("AGIRA_SYNC_INDEX_CHECK_SECONDS", default=60.0)
# Texts in the index are capped at this many characters, with a visible marker.
AGIRA_INDEX_MAX_TEXT_CHARS = env.int("AGIRA_INDEX_MAX_TEXT_CHARS", default=100_000)

# -- The embedded index ----------------------------------------------------------
# On by default so that a laptop syncs, embeds and searches for real with nothing
# installed: one SQLite file (FTS5 + sqlite-vec) that the web server, the task
# worker and the commands read and write at once (docs/sync.md).
AGIRA_EMBEDDED_ENABLED = env.bool("AGIRA_EMBEDDED_ENABLED", default=True)
AGIRA_EMBEDDED_PATH = env.str("AGIRA_EMBEDDED_PATH", default=str(VAR_DIR / "index" / "agira.db"))
# The embedded graph (seed 004's objects and relationships, LadybugDB), fed by
# the same outbox as the indexes; its database is one file of its own.
AGIRA_GRAPH_ENABLED = env.bool("AGIRA_GRAPH_ENABLED", default=True)
AGIRA_GRAPH_PATH = env.str("AGIRA_GRAPH_PATH", default=str(VAR_DIR / "graph" / "agira.lbug"))
# One process writes the embedded graph at a time: how long another waits for it.
AGIRA_GRAPH_LOCK_TIMEOUT = env.float("AGIRA_GRAPH_LOCK_TIMEOUT", default=10.0)
# How long a writer waits for another process's write transaction.
AGIRA_EMBEDDED_BUSY_TIMEOUT = env.float("AGIRA_EMBEDDED_BUSY_TIMEOUT", default=10.0)
# How much of the index file is read through a memory map (0: none).
AGIRA_EMBEDDED_MMAP_MB = env.int("AGIRA_EMBEDDED_MMAP_MB", default=1024)

# The local embedding model's CPU threads (the rest of the embedder is set in
# the admin, Embedder configuration, or by AGIRA_EMBEDDER_*).
AGIRA_EMBEDDER_THREADS = env.int("AGIRA_EMBEDDER_THREADS", default=2)

# -- Qdrant (seed 004's store) -----------------------------------------------------
# A Qdrant server at AGIRA_QDRANT_URL; without a URL, qdrant-client's local mode
# in AGIRA_QDRANT_PATH (one process at a time: for trials, not for a team).
AGIRA_QDRANT_ENABLED = env.bool("AGIRA_QDRANT_ENABLED", default=False)
AGIRA_QDRANT_PATH = env.str("AGIRA_QDRANT_PATH", default=str(VAR_DIR / "qdrant"))
AGIRA_QDRANT_URL = env.str("AGIRA_QDRANT_URL", default="")
AGIRA_QDRANT_API_KEY = env.str("AGIRA_QDRANT_API_KEY", default="")
AGIRA_QDRANT_COLLECTION = env.str("AGIRA_QDRANT_COLLECTION", default="AgiraObject")
AGIRA_QDRANT_TIMEOUT = env.float("AGIRA_QDRANT_TIMEOUT", default=10.0)
# How long a process waits for another to finish with the local folder.
AGIRA_QDRANT_LOCK_TIMEOUT = env.float("AGIRA_QDRANT_LOCK_TIMEOUT", default=15.0)

# -- The reconcile command (`manage.py sync_weaviate`, docs/operations.md) -------
# A run whose holder sent no heartbeat for this long is taken over.
AGIRA_RECONCILE_STALE_SECONDS = env.int("AGIRA_RECONCILE_STALE_SECONDS", default=300)
# How long before the last run's start a row still counts as changed (open
# transactions, clocks a little apart).
AGIRA_RECONCILE_MARGIN_SECONDS = env.int("AGIRA_RECONCILE_MARGIN_SECONDS", default=600)
# Where the runs keep their mirror of each index (ids, versions, hashes); a cache.
AGIRA_RECONCILE_CACHE_DIR = env.str("AGIRA_RECONCILE_CACHE_DIR", default=str(VAR_DIR / "reconcile"))

# -- The GitHub worker (core.services.github, `manage.py sync_github`) -----------
# The connection itself (token, base URL, enabled) is in the admin or in
# AGIRA_GITHUB_ENABLED / _BASE_URL / _TOKEN / _TIMEOUT / _MAX_RATE_LIMIT_WAIT / _BATCH_SIZE.
AGIRA_GITHUB_RETRIES = env.int("AGIRA_GITHUB_RETRIES", default=3)
AGIRA_GITHUB_RETRY_BACKOFF = env.float("AGIRA_GITHUB_RETRY_BACKOFF", default=1.0)
# Pause between requests (PyGithub's default; GitHub asks integrations to be serial).
AGIRA_GITHUB_SECONDS_BETWEEN_REQUESTS = env.float(
    "AGIRA_GITHUB_SECONDS_BETWEEN_REQUESTS", default=0.25
)
# A mapping that keeps failing with transient errors is given up after this many runs.
AGIRA_GITHUB_MAX_ATTEMPTS = env.int("AGIRA_GITHUB_MAX_ATTEMPTS", default=6)
AGIRA_GITHUB_BACKOFF_SECONDS = env.float("AGIRA_GITHUB_BACKOFF_SECONDS", default=300.0)
AGIRA_GITHUB_BACKOFF_MAX_SECONDS = env.float("AGIRA_GITHUB_BACKOFF_MAX_SECONDS", default=86400.0)
# A run whose holder sent no heartbeat for this long is taken over.
AGIRA_GITHUB_STALE_SECONDS = env.int("AGIRA_GITHUB_STALE_SECONDS", default=900)
# Most changed files and commit messages kept per pull request.
AGIRA_GITHUB_MAX_FILES = env.int("AGIRA_GITHUB_MAX_FILES", default=300)
AGIRA_GITHUB_MAX_COMMITS = env.int("AGIRA_GITHUB_MAX_COMMITS", default=100)
