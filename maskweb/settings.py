"""Django settings, all from environment variables with safe defaults for one machine.

Every variable is listed in README.md ("Configuration"). A bad value raises
ImproperlyConfigured naming the variable, at start-up rather than at the first request.
No secret lives in the repository: without ``SECRET_KEY`` a key is generated once and kept
in the data directory (outside the tree).
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from maskweb import redis_retry
from maskweb.config import (
    data_dir,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    persistent_secret_key,
)
from maskweb.segment.interactive import engine_variant

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = data_dir()

DEBUG = env_bool("MASKWEB_DEBUG", False)
SECRET_KEY = env_str("SECRET_KEY", "") or persistent_secret_key(DATA_DIR)
ALLOWED_HOSTS = env_list("MASKWEB_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("MASKWEB_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
    "channels",
    "maskweb.photos",
    "maskweb.masking",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # The API's answers are JSON, its errors included (Django's own 404/405/500 pages too).
    "maskweb.masking.api.errors.ApiErrorMiddleware",
    "django.middleware.common.CommonMiddleware",
    # No view relies on a cookie (the token in the path is the credential) and every API view
    # is exempt; the middleware still guards any form a later view adds.
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# --- response headers (see maskweb.headers, which adds them to static files too) -------------
# Tokens live in URLs: no Referer may carry them to another site.
SECURE_REFERRER_POLICY = "no-referrer"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# The page loads nothing from elsewhere: its scripts, styles, images and socket are the app's.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; "
                           "img-src 'self'; connect-src 'self'; font-src 'self'; "
                           "object-src 'none'; base-uri 'none'; form-action 'self'; "
                           "frame-ancestors 'none'")
# Served over HTTPS by a reverse proxy that terminates TLS and sets X-Forwarded-Proto: plain
# HTTP is redirected, browsers are told to use HTTPS only (HSTS), cookies are marked secure.
HTTPS = env_bool("MASKWEB_HTTPS", False)
_HSTS_SECONDS = env_int("MASKWEB_HSTS_SECONDS", 365 * 24 * 3600, minimum=0)
_HSTS_SUBDOMAINS = env_bool("MASKWEB_HSTS_INCLUDE_SUBDOMAINS", True)
_HSTS_PRELOAD = env_bool("MASKWEB_HSTS_PRELOAD", True)
if HTTPS:
    SECURE_SSL_REDIRECT = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = _HSTS_SECONDS
    SECURE_HSTS_INCLUDE_SUBDOMAINS = _HSTS_SUBDOMAINS
    SECURE_HSTS_PRELOAD = _HSTS_PRELOAD
    CSRF_COOKIE_SECURE = True
    SESSION_COOKIE_SECURE = True
# The header a reverse proxy sets to the client's address (e.g. X-Real-IP; empty: the TCP
# peer is the client). Per-client limits count against it, so it must be one the proxy
# always overwrites, never X-Forwarded-For's first entry, which the client writes.
PROXY_HEADER = env_str("MASKWEB_PROXY_HEADER", "")
if PROXY_HEADER and not PROXY_HEADER.replace("-", "").isalnum():
    raise ImproperlyConfigured(f"MASKWEB_PROXY_HEADER={PROXY_HEADER!r}: expected a header "
                               "name such as X-Real-IP")

ROOT_URLCONF = "maskweb.urls"
WSGI_APPLICATION = "maskweb.wsgi.application"
ASGI_APPLICATION = "maskweb.asgi.application"
TEMPLATES: list[dict[str, object]] = []

try:
    DATABASES = {
        "default": dj_database_url.parse(
            env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'maskweb.sqlite3'}"),
            # Kept open between calls: a click's path (log the prompt, read the log, check the
            # revision) runs in three worker threads, and opening a connection for each (with
            # its PRAGMAs) cost milliseconds of every click. 0 closes after every call.
            conn_max_age=env_int("MASKWEB_DB_CONN_MAX_AGE", 600, minimum=0),
            # A kept connection is checked before a request reuses it, so a database server
            # restarted under the app costs that request a reconnect, not an error.
            conn_health_checks=True,
        )
    }
except ValueError as exc:  # dj-database-url raises ValueError for unknown schemes
    raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from exc
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Daphne's threads and the worker write the same file: WAL lets readers go on while one
    # writes, IMMEDIATE takes the write lock up front (no upgrade deadlock), and the timeout
    # waits for a busy writer instead of failing with "database is locked". synchronous=NORMAL
    # is SQLite's advice for WAL: no fsync per commit (every click writes the prompt log), and
    # still no corruption and no loss when a process crashes (only a power cut can lose the
    # last commits).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
         "transaction_mode": "IMMEDIATE",
         "timeout": 30}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# One Redis for everything: Celery broker and results, the channel layer, the embedding cache.
REDIS_URL = env_str("REDIS_URL", "")  # empty: `manage.py serve` starts an embedded one
# How long a Redis command keeps trying again while Redis is unreachable (a restart) before
# it fails: a restart this short loses no click and closes no socket (maskweb.redis_retry).
REDIS_RETRY_SECONDS = env_float("MASKWEB_REDIS_RETRY_SECONDS", 10.0, minimum=0.0,
                                maximum=300.0)


def channel_layer_config(url: str) -> dict[str, object]:
    # socket_timeout above channels_redis's 5 s blocking BZPOPMIN: redis-py 8 defaults to a
    # 5 s read timeout, which races the server's empty reply and kills the consumer.
    # The layer's receive waits out a Redis that is down instead of ending the sockets.
    return {
        "BACKEND": "maskweb.channel_layer.PatientRedisChannelLayer",
        "CONFIG": {"hosts": [{"address": url, "socket_timeout": 30,
                              "socket_connect_timeout": 5,
                              **redis_retry.async_options(REDIS_RETRY_SECONDS)}],
                   "capacity": 500, "expiry": 30},
    }


CHANNEL_LAYERS = {"default": channel_layer_config(REDIS_URL or "redis://127.0.0.1:6379/0")}

CELERY_BROKER_URL = REDIS_URL or "redis://127.0.0.1:6379/0"
CELERY_RESULT_BACKEND = None  # the database holds every result the app needs
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = False
# A task of a worker that died unacked comes back after this long (Redis transport). The
# worker also resumes unfinished encodes when it starts, so this is only the last resort.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env_int("MASKWEB_TASK_VISIBILITY_TIMEOUT", 600, minimum=30)
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
FRONTEND_DIR = BASE_DIR / "frontend"
STATICFILES_DIRS = [FRONTEND_DIR] if FRONTEND_DIR.is_dir() else []

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en"
USE_I18N = False

# Uploads. Files above FILE_UPLOAD_MAX_MEMORY_SIZE spool to a temp file, not RAM.
MAX_UPLOAD_BYTES = env_int("MASKWEB_MAX_UPLOAD_BYTES", 300 * 1024 * 1024, minimum=1024)
MAX_IMAGE_PIXELS = env_int("MASKWEB_MAX_IMAGE_PIXELS", 60_000_000, minimum=1)
# The working picture's short side at least this many pixels: an encoder cannot read a strip.
MIN_IMAGE_SIDE = env_int("MASKWEB_MIN_IMAGE_SIDE", 16, minimum=1, maximum=1024)
# Every other request body (JSON, a sidecar) at most this many bytes. Both limits are checked
# against the declared length before the body is read (maskweb.daphne_http).
MAX_REQUEST_BYTES = env_int("MASKWEB_MAX_REQUEST_BYTES", 8 * 1024 * 1024, minimum=65536)
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 4 * 1024 * 1024
FILE_UPLOAD_TEMP_DIR = None
# Local folder of the photos' files with the default storage, and of uploads while they are
# checked (always local: a file is stored only once it is sound).
MEDIA_ROOT = DATA_DIR / "photos"

# Where the photos' files (original, preview) and uploaded darktable sidecars are kept:
# Django's storage API (maskweb.photos.storage). By default the local folder MEDIA_ROOT, as
# before (FileSystemStorage reads MEDIA_ROOT itself; the same names, so photos stored by
# earlier versions are found). With MASKWEB_S3_BUCKET, an S3-compatible object store through
# django-storages and boto3, so web and worker hosts share no folder; the credentials are
# boto3's own (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or an instance role).
S3_BUCKET = env_str("MASKWEB_S3_BUCKET", "")
S3_ENDPOINT_URL = env_str("MASKWEB_S3_ENDPOINT_URL", "")
S3_REGION = env_str("MASKWEB_S3_REGION", "")
S3_PREFIX = env_str("MASKWEB_S3_PREFIX", "").strip("/")
if S3_ENDPOINT_URL and not S3_ENDPOINT_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(f"MASKWEB_S3_ENDPOINT_URL={S3_ENDPOINT_URL!r}: expected an "
                               "http:// or https:// URL")
if (S3_ENDPOINT_URL or S3_REGION or S3_PREFIX) and not S3_BUCKET:
    raise ImproperlyConfigured("MASKWEB_S3_ENDPOINT_URL, MASKWEB_S3_REGION and "
                               "MASKWEB_S3_PREFIX need MASKWEB_S3_BUCKET")
if S3_BUCKET:
    _files: dict[str, object] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": S3_ENDPOINT_URL or None,
            "region_name": S3_REGION or None,
            "location": S3_PREFIX,
            # A name is a photo's content hash (or a sidecar's): writing it again writes the
            # same bytes, so overwrite instead of inventing another name.
            "file_overwrite": True,
            "default_acl": None,  # the bucket's own policy; nothing is made public
            # Own servers (MinIO, SeaweedFS, Ceph) answer on one host name, not per bucket.
            "addressing_style": "path" if S3_ENDPOINT_URL else None,
        },
    }
else:
    _files = {"BACKEND": "django.core.files.storage.FileSystemStorage",
              "OPTIONS": {"allow_overwrite": True}}
STORAGES = {
    "default": _files,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# The picture the engine encodes and the page shows: the upright photo scaled so its long
# side is at most this many pixels. Masks are computed at this size and scaled up to the
# stored grid for downloads.
WORK_MAX_SIDE = env_int("MASKWEB_WORK_MAX_SIDE", 2048, minimum=256, maximum=8192)
DEFAULT_MODEL = env_str("MASKWEB_DEFAULT_MODEL", "")  # empty: the engine's default
# Read by maskweb.segment.interactive when a model is built; checked here so a typo stops the
# start instead of the first click.
try:
    ENGINE_VARIANT = engine_variant()
except ValueError as exc:
    raise ImproperlyConfigured(str(exc)) from None
# The web process runs the default model's decoder twice in the background when it starts, and
# a worker its encoder, so the first click and photo do not wait for onnxruntime's slow first
# runs (see maskweb.asgi and maskweb.masking.worker.tasks).
WARM_UP = env_bool("MASKWEB_WARM_UP", True)
# The web process decodes in child processes, one per core (maskweb.masking.decode_procs):
# decodes in its threads took turns on the GIL. 0: in its threads, as before.
DECODE_PROCESSES = env_bool("MASKWEB_DECODE_PROCESSES", True)
EMBEDDING_TTL_SECONDS = env_int("MASKWEB_EMBEDDING_TTL", 7 * 24 * 3600, minimum=60)
# Per process, in memory: the embeddings and the predictions of the sessions being clicked
# in (a float32 SAM-class embedding is ~4 MB; a prediction is its masks at the work size).
EMBEDDING_CACHE_BYTES = env_int("MASKWEB_EMBEDDING_CACHE_MB", 256, minimum=0) * 2**20
PREDICTION_CACHE_BYTES = env_int("MASKWEB_PREDICTION_CACHE_MB", 256, minimum=0) * 2**20

# --- one anonymous client's share (README "Limits"; maskweb.masking.editing.limits) ---
# Uploads per client (address; an IPv6 /64): a sustained rate per hour, with bursts.
UPLOAD_RATE_PER_HOUR = env_float("MASKWEB_UPLOAD_RATE", 60.0, minimum=0.1)
UPLOAD_BURST = env_int("MASKWEB_UPLOAD_BURST", 10, minimum=1)
# Disk a client's kept photos may take (original, working picture, preview), in MB.
CLIENT_QUOTA_BYTES = env_int("MASKWEB_CLIENT_QUOTA_MB", 2048, minimum=1) * 2**20
# Uploads stop (507) while the data directory's disk has less free space than this.
MIN_FREE_DISK_BYTES = env_int("MASKWEB_MIN_FREE_DISK_MB", 1024, minimum=0) * 2**20
# A session nobody opened for this long is deleted with its files and embeddings (0: kept).
SESSION_IDLE_DAYS = env_float("MASKWEB_SESSION_IDLE_DAYS", 30.0, minimum=0.0)
# How often the clean-up job runs (seconds): expired sessions, orphaned files, lost encodes.
CLEANUP_INTERVAL_SECONDS = env_int("MASKWEB_CLEANUP_INTERVAL", 3600, minimum=10)
# The periodic clean-up (maskweb.masking.editing.retention), run by Celery beat: `manage.py serve`
# runs beat inside its worker; several workers need one `celery beat` of their own.
CELERY_BEAT_SCHEDULE = {
    "maskweb-cleanup": {"task": "maskweb.cleanup", "schedule": float(CLEANUP_INTERVAL_SECONDS)},
}
MAX_OBJECTS = env_int("MASKWEB_MAX_OBJECTS", 200, minimum=1)
# Downloads (PNG, SVG, XMP at full resolution): at most this many made at once per web
# process, at most DOWNLOAD_QUEUE more waiting (then 503 with Retry-After); made ones are
# kept in Redis for DOWNLOAD_CACHE_TTL seconds if they are at most DOWNLOAD_CACHE_MAX_MB.
DOWNLOAD_CONCURRENCY = env_int("MASKWEB_DOWNLOAD_CONCURRENCY", 1, minimum=1)
DOWNLOAD_QUEUE = env_int("MASKWEB_DOWNLOAD_QUEUE", 8, minimum=0)
DOWNLOAD_CACHE_TTL = env_int("MASKWEB_DOWNLOAD_CACHE_TTL", 3600, minimum=0)
DOWNLOAD_CACHE_MAX_BYTES = env_int("MASKWEB_DOWNLOAD_CACHE_MAX_MB", 16, minimum=0) * 2**20

# --- slow clients (maskweb.daphne_http) ------------------------------------------------------
# A request's line and headers must arrive within this many seconds.
HTTP_HEADER_TIMEOUT = env_float("MASKWEB_HTTP_HEADER_TIMEOUT", 10.0, minimum=1.0)
# A connection that sends nothing for this long (between requests, or within a body) is closed.
HTTP_IDLE_TIMEOUT = env_float("MASKWEB_HTTP_IDLE_TIMEOUT", 30.0, minimum=1.0)
# A body must come at this many bytes a second on average (after HTTP_IDLE_TIMEOUT seconds).
HTTP_MIN_BODY_RATE = env_int("MASKWEB_HTTP_MIN_BODY_RATE", 10240, minimum=1)

# Socket input limits (see docs/protocol.md).
WS_MAX_MESSAGE_BYTES = env_int("MASKWEB_WS_MAX_MESSAGE_BYTES", 65536, minimum=1024)
WS_MAX_STROKE_POINTS = env_int("MASKWEB_WS_MAX_STROKE_POINTS", 2000, minimum=2)
WS_MAX_PROMPTS = env_int("MASKWEB_WS_MAX_PROMPTS", 500, minimum=1)
# Unread messages of one socket before Daphne stops reading from it (TCP back-pressure).
WS_QUEUE = env_int("MASKWEB_WS_QUEUE", 64, minimum=4)
# Per socket, and per session for the HTTP API's writes (prompts, undo, apply...).
WS_RATE_PER_SECOND = env_float("MASKWEB_WS_RATE", 30.0, minimum=0.1)
WS_RATE_BURST = env_int("MASKWEB_WS_BURST", 60, minimum=1)
# A page is told it is behind (a `behind` frame) when its oldest prompt without a mask has
# waited this long; its next mask covers every prompt it sent (docs/protocol.md).
WS_BEHIND_AFTER_SECONDS = env_float("MASKWEB_WS_BEHIND_AFTER", 1.0, minimum=0.05)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("MASKWEB_LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}
