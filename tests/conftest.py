"""Fixtures shared by every test directory.

``live_stack``: the real stack (embedded Redis, a Celery worker process, Daphne) for the whole
test session; see tests/stack.py. ``redis_server``: a bare embedded redis-server for tests
that only need Redis (the services' and the consumer's tests).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from maskweb import runner
from tests.stack import LiveStack, start_stack


@pytest.fixture(scope="session")
def django_db_modify_db_settings(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The test database is a file in WAL mode, as the app's own, not Django's default
    in-memory shared-cache database: there a read in one thread while another thread commits
    (a socket connecting while another one's click is written) fails with "database table is
    locked", which the app never sees."""
    from django.conf import settings

    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        test_db = tmp_path_factory.mktemp("db") / "test.sqlite3"
        database.setdefault("TEST", {})["NAME"] = str(test_db)


@pytest.fixture(scope="session", autouse=True)
def postgres_test_database_is_dropped(request: pytest.FixtureRequest) -> Iterator[None]:
    """On PostgreSQL, ends the test database's other connections before pytest-django drops
    it: the socket tests' worker threads keep theirs open (MASKWEB_DB_CONN_MAX_AGE), and
    PostgreSQL refuses to drop a database in use."""
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        yield
        return
    request.getfixturevalue("django_db_setup")  # set up first, so torn down after this
    yield
    from django.db import connection

    with request.getfixturevalue("django_db_blocker").unblock(), connection.cursor() as cur:
        cur.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A failed test that used the live stack reports the stack's logs: its worker and Daphne
    saw what went wrong, and CI keeps only the test output."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    funcargs = getattr(item, "funcargs", {})
    if report.when == "call" and report.failed and funcargs.get("live_stack") is not None:
        report.sections.append(("live stack logs", funcargs["live_stack"].logs()))


@pytest.fixture(scope="session")
def live_stack() -> Iterator[LiveStack]:
    with start_stack() as stack:
        yield stack


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """The URL of a private redis-server, stopped after the test session."""
    directory = Path(tempfile.mkdtemp(prefix="maskweb-redis-"))
    port = runner.free_port()
    process = runner.spawn(runner.redis_command(port, directory, "256mb"), {}, directory,
                           directory / "redis.log")
    url = f"redis://127.0.0.1:{port}/0"
    try:
        runner.wait_for_redis(url, process=process)
        yield url
    finally:
        runner.stop(process)
        shutil.rmtree(directory, ignore_errors=True)
