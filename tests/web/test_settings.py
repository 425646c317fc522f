"""Settings from the environment: safe defaults, a clear error naming a bad variable, and the
secret kept outside the repository."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from maskweb import config

REPO = Path(__file__).resolve().parents[2]


def defaults_env(tmp_path: Path, **env: str) -> dict[str, str]:
    """This environment with the defaults in place: no DATABASE_URL (scripts/test's
    PostgreSQL run sets one) and a data dir of the test's own."""
    full = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return {**full, "MASKWEB_DATA_DIR": str(tmp_path), **env}


def start_django(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full = defaults_env(tmp_path, **env)
    return subprocess.run([sys.executable, "-c", "import django, os;"
                           "os.environ['DJANGO_SETTINGS_MODULE'] = 'maskweb.settings';"
                           "django.setup(); from django.conf import settings;"
                           "print(settings.DATABASES['default']['ENGINE'])"],
                          cwd=REPO, env=full, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name,value,expected", [
    ("MASKWEB_WORK_MAX_SIDE", "big", "MASKWEB_WORK_MAX_SIDE='big': expected a whole number"),
    ("MASKWEB_WORK_MAX_SIDE", "99999", "must be at most 8192"),
    ("MASKWEB_DEBUG", "maybe", "MASKWEB_DEBUG='maybe'"),
    ("DATABASE_URL", "nosuchdb://x/y", "DATABASE_URL is not a database URL"),
    ("MASKWEB_ENGINE_VARIANT", "fast", "MASKWEB_ENGINE_VARIANT must be one of"),
    # The limits of issue 19: each one named when its value is wrong.
    ("MASKWEB_UPLOAD_RATE", "fast", "MASKWEB_UPLOAD_RATE='fast': expected a number"),
    ("MASKWEB_UPLOAD_BURST", "0", "MASKWEB_UPLOAD_BURST=0: must be at least 1"),
    ("MASKWEB_CLIENT_QUOTA_MB", "0", "MASKWEB_CLIENT_QUOTA_MB=0: must be at least 1"),
    ("MASKWEB_MIN_FREE_DISK_MB", "-5", "MASKWEB_MIN_FREE_DISK_MB=-5"),
    ("MASKWEB_SESSION_IDLE_DAYS", "-1", "MASKWEB_SESSION_IDLE_DAYS=-1.0"),
    ("MASKWEB_CLEANUP_INTERVAL", "1", "MASKWEB_CLEANUP_INTERVAL=1: must be at least 10"),
    ("MASKWEB_MAX_OBJECTS", "0", "MASKWEB_MAX_OBJECTS=0"),
    ("MASKWEB_MIN_IMAGE_SIDE", "0", "MASKWEB_MIN_IMAGE_SIDE=0"),
    ("MASKWEB_MAX_REQUEST_BYTES", "10", "MASKWEB_MAX_REQUEST_BYTES=10"),
    ("MASKWEB_DOWNLOAD_CONCURRENCY", "0", "MASKWEB_DOWNLOAD_CONCURRENCY=0"),
    ("MASKWEB_DOWNLOAD_QUEUE", "many", "MASKWEB_DOWNLOAD_QUEUE='many'"),
    ("MASKWEB_DOWNLOAD_CACHE_TTL", "-1", "MASKWEB_DOWNLOAD_CACHE_TTL=-1"),
    ("MASKWEB_DOWNLOAD_CACHE_MAX_MB", "x", "MASKWEB_DOWNLOAD_CACHE_MAX_MB='x'"),
    ("MASKWEB_HTTP_HEADER_TIMEOUT", "0.1", "MASKWEB_HTTP_HEADER_TIMEOUT=0.1"),
    ("MASKWEB_HTTP_IDLE_TIMEOUT", "0", "MASKWEB_HTTP_IDLE_TIMEOUT=0.0"),
    ("MASKWEB_HTTP_MIN_BODY_RATE", "0", "MASKWEB_HTTP_MIN_BODY_RATE=0"),
    ("MASKWEB_WS_QUEUE", "2", "MASKWEB_WS_QUEUE=2: must be at least 4"),
    ("MASKWEB_WS_BEHIND_AFTER", "0", "MASKWEB_WS_BEHIND_AFTER=0.0"),
    ("MASKWEB_REDIS_RETRY_SECONDS", "1000", "MASKWEB_REDIS_RETRY_SECONDS=1000.0"),
    ("MASKWEB_PROXY_HEADER", "X Real IP", "MASKWEB_PROXY_HEADER='X Real IP'"),
    ("MASKWEB_HTTPS", "maybe", "MASKWEB_HTTPS='maybe'"),
    ("MASKWEB_HSTS_SECONDS", "soon", "MASKWEB_HSTS_SECONDS='soon'"),
    # The object store (issue 20): a URL, and nothing without a bucket.
    ("MASKWEB_S3_ENDPOINT_URL", "seaweedfs:8333", "MASKWEB_S3_ENDPOINT_URL='seaweedfs:8333'"),
    ("MASKWEB_S3_PREFIX", "maskweb", "need MASKWEB_S3_BUCKET"),
])
def test_bad_value_stops_startup_naming_the_variable(tmp_path, name, value, expected):
    done = start_django(tmp_path, **{name: value})
    assert done.returncode != 0
    assert "ImproperlyConfigured" in done.stderr and expected in done.stderr


def test_defaults_give_sqlite_in_the_data_dir_and_a_kept_secret(tmp_path):
    done = start_django(tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "django.db.backends.sqlite3"
    secret = tmp_path / "secret_key"
    key = secret.read_text()
    assert len(key) >= 50 and secret.stat().st_mode & 0o777 == 0o600
    assert start_django(tmp_path).returncode == 0 and secret.read_text() == key, \
        "the same key on every start (sessions and signatures stay valid)"
    assert not list(REPO.glob("**/secret_key")), "never inside the repository"


def test_the_default_database_is_a_wal_file_without_an_fsync_per_click(tmp_path):
    """Every click writes the prompt log: WAL with synchronous=NORMAL commits without an
    fsync, and a crashed process still loses nothing."""
    done = subprocess.run([sys.executable, "-c", "import django, os;"
                           "os.environ['DJANGO_SETTINGS_MODULE'] = 'maskweb.settings';"
                           "django.setup(); from django.db import connection;"
                           "c = connection.cursor();"
                           "print(c.execute('PRAGMA journal_mode').fetchone()[0],"
                           " c.execute('PRAGMA synchronous').fetchone()[0])"],
                          cwd=REPO, env=defaults_env(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["wal", "1"]  # 1 = NORMAL (2 = FULL, the default)


def test_a_postgres_url_gives_postgresql_with_checked_connections_and_no_sqlite_options(
        tmp_path):
    done = subprocess.run([sys.executable, "-c", "import django, os;"
                           "os.environ['DJANGO_SETTINGS_MODULE'] = 'maskweb.settings';"
                           "django.setup(); from django.conf import settings;"
                           "d = settings.DATABASES['default'];"
                           "print(d['ENGINE'], d['HOST'], d['PORT'], d['NAME'],"
                           " d['CONN_HEALTH_CHECKS'], d.get('OPTIONS', {}))"],
                          cwd=REPO, env=defaults_env(
                              tmp_path, DATABASE_URL="postgres://u:pw@db.example:5433/photos"),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["django.db.backends.postgresql", "db.example", "5433",
                                   "photos", "True", "{}"]


def test_the_tests_run_on_the_database_that_database_url_names(db):
    """scripts/test runs the database tests twice; the second run must really be on
    PostgreSQL, not silently on SQLite again."""
    from django.db import connection

    url = os.environ.get("DATABASE_URL", "")
    assert connection.vendor == ("postgresql" if url.startswith("postgres") else "sqlite")


def test_env_helpers_parse_and_bound(monkeypatch):
    monkeypatch.setenv("X_INT", " 12 ")
    assert config.env_int("X_INT", 1, minimum=1, maximum=20) == 12
    monkeypatch.setenv("X_FLOAT", "nan")
    with pytest.raises(ImproperlyConfigured, match="X_FLOAT"):
        config.env_float("X_FLOAT", 1.0)
    monkeypatch.setenv("X_BOOL", "Yes")
    assert config.env_bool("X_BOOL", False) is True
    monkeypatch.setenv("X_LIST", "a.example, b.example,,")
    assert config.env_list("X_LIST", []) == ["a.example", "b.example"]
    monkeypatch.delenv("X_INT")
    assert config.env_int("X_INT", 7) == 7


def test_unwritable_data_dir_is_a_clear_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("MASKWEB_DATA_DIR", str(blocker / "sub"))
    with pytest.raises(ImproperlyConfigured, match="MASKWEB_DATA_DIR"):
        config.data_dir()


def test_check_deploy_is_clean_with_the_documented_production_settings(tmp_path):
    """README "Production": behind a TLS proxy, MASKWEB_HTTPS=1 and the host name."""
    env = {**os.environ, "MASKWEB_DATA_DIR": str(tmp_path), "MASKWEB_HTTPS": "1",
           "MASKWEB_ALLOWED_HOSTS": "masks.example.org",
           "MASKWEB_PROXY_HEADER": "X-Real-IP"}
    env.pop("MASKWEB_DEBUG", None)
    done = subprocess.run([sys.executable, "manage.py", "check", "--deploy",
                           "--fail-level", "WARNING"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout
    without = subprocess.run([sys.executable, "manage.py", "check", "--deploy",
                              "--fail-level", "WARNING"], cwd=REPO,
                             env={**env, "MASKWEB_HTTPS": "0"},
                             capture_output=True, text=True, timeout=60)
    assert without.returncode != 0 and "SECURE_SSL_REDIRECT" in without.stderr, \
        "plain HTTP is for one machine, and the check says so"


def test_files_go_to_the_local_folder_by_default_and_to_s3_with_a_bucket(tmp_path):
    script = ("import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'maskweb.settings';"
              "django.setup(); from django.core.files.storage import storages;"
              "s = storages['default'];"
              "print(type(s).__name__, getattr(s, 'location', ''),"
              "getattr(s, 'bucket_name', ''), getattr(s, 'endpoint_url', ''))")

    def storage(**env: str) -> str:
        done = subprocess.run([sys.executable, "-c", script], cwd=REPO,
                              env=defaults_env(tmp_path, **env), capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert storage() == f"FileSystemStorage {tmp_path / 'photos'}"
    assert storage(MASKWEB_S3_BUCKET="photos",
                   MASKWEB_S3_ENDPOINT_URL="http://store:8333") == \
        "S3Storage  photos http://store:8333"
