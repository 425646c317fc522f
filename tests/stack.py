"""The real maskweb stack for tests: embedded redis-server, a real `celery worker` process and
Daphne, on free ports, in a temporary data directory. The same command lines as
`manage.py serve` (maskweb.runner).

Use the session-scoped pytest fixture ``live_stack`` (exported by tests/conftest.py)::

    def test_page_loads(live_stack):
        page.goto(live_stack + "/")          # live_stack IS the base URL (a str) ...
        live_stack.url                       # ... also spelled out
        live_stack.ws_url                    # "ws://127.0.0.1:<port>"
        live_stack.restart_worker()          # kill -9 the worker (mid-job) and start a new one
        live_stack.flush_redis()             # FLUSHALL: embeddings, queue, channel layer
        live_stack.restart_redis()           # stop and start redis-server: dead connections
        live_stack.restart_daphne()
        live_stack.logs()                    # the processes' output, for failure messages

The stack encodes with the classical ``grabcut`` model by default (fast, no model files);
set ``MASKWEB_STACK_MODEL`` to try another installed model. Process output goes to
``<data dir>/logs/*.log``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import redis

from maskweb import runner
from tests.postgres import fresh_database

REPO = Path(__file__).resolve().parent.parent


class LiveStack(str):
    """The base URL (``http://127.0.0.1:<port>``), with handles on the processes behind it."""

    data_dir: Path
    env: dict[str, str]
    host: str
    port: int
    redis_url: str
    redis_proc: subprocess.Popen[bytes] | None
    worker: subprocess.Popen[bytes] | None
    daphne: subprocess.Popen[bytes] | None

    @property
    def url(self) -> str:
        return str(self)

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def _log(self, name: str) -> Path:
        return self.data_dir / "logs" / f"{name}.log"

    def start_worker(self) -> None:
        self.worker = runner.spawn(runner.worker_command("test"), self.env, REPO,
                                   self._log("worker"))

    def kill_worker(self) -> None:
        """SIGKILL: the worker dies mid-job, as with a crash or an OOM kill."""
        if self.worker is not None and self.worker.poll() is None:
            self.worker.kill()
            self.worker.wait(timeout=10)

    def restart_worker(self) -> None:
        self.kill_worker()
        self.start_worker()

    def start_daphne(self) -> None:
        self.daphne = runner.spawn(runner.daphne_command(self.host, self.port), self.env, REPO,
                                   self._log("daphne"))
        runner.wait_for_port(self.host, self.port, timeout=60, process=self.daphne)

    def restart_daphne(self) -> None:
        runner.stop(self.daphne)
        self.start_daphne()

    def start_redis(self) -> None:
        port = int(self.redis_url.rsplit(":", 1)[1].split("/", 1)[0])
        self.redis_proc = runner.spawn(runner.redis_command(port, self.data_dir / "redis",
                                                            "256mb"),
                                       self.env, REPO, self._log("redis"))
        runner.wait_for_redis(self.redis_url, process=self.redis_proc)

    def restart_redis(self) -> None:
        """SIGTERM (Redis saves its data, as a service manager's restart does), then the same
        port and directory again: every client's pooled connection is now dead."""
        runner.stop(self.redis_proc)
        self.start_redis()

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url)

    def flush_redis(self) -> None:
        client = self.redis()
        try:
            client.flushall()
        finally:
            client.close()

    def logs(self, tail: int = 4000) -> str:
        parts = []
        for path in sorted((self.data_dir / "logs").glob("*.log")):
            parts.append(f"--- {path.name} ---\n{path.read_text(errors='replace')[-tail:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        runner.stop(self.daphne)
        runner.stop(self.worker, grace=10)
        runner.stop(self.redis_proc)


@contextlib.contextmanager
def start_stack(extra_env: dict[str, str] | None = None) -> Iterator[LiveStack]:
    """Starts everything; yields when Daphne listens and the worker has connected."""
    data_dir = Path(tempfile.mkdtemp(prefix="maskweb-stack-"))
    (data_dir / "logs").mkdir()
    (data_dir / "redis").mkdir()
    (data_dir / "models").mkdir()
    host = "127.0.0.1"
    port, redis_port = runner.free_port(), runner.free_port()
    redis_url = f"redis://{host}:{redis_port}/0"
    env = {**os.environ, "MASKWEB_DATA_DIR": str(data_dir), "REDIS_URL": redis_url,
           "DJANGO_SETTINGS_MODULE": "maskweb.settings",
           "MASKWEB_MODELS_DIR": str(data_dir / "models"),
           "MASKWEB_DEFAULT_MODEL": os.environ.get("MASKWEB_STACK_MODEL", "grabcut"),
           # Two cores shared by everything in CI: one thread per library.
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "PYTHONUNBUFFERED": "1",
           # Every test and bench client is 127.0.0.1: one client, uploading far more than a
           # person. tests/web/editing/test_limits.py checks the limit itself.
           "MASKWEB_UPLOAD_BURST": "100000", "MASKWEB_UPLOAD_RATE": "1000000"}
    # SQLite: a file in the data dir. PostgreSQL (scripts/test's second run sets DATABASE_URL
    # to a server of tests.postgres): a database of the stack's own on that server.
    server_url = env.pop("DATABASE_URL", "")
    database = (fresh_database(server_url, "maskweb_stack") if server_url.startswith("postgres")
                else contextlib.nullcontext(""))
    env.update(extra_env or {})
    stack = LiveStack(f"http://{host}:{port}")
    stack.data_dir, stack.env, stack.host, stack.port = data_dir, env, host, port
    stack.redis_url = redis_url
    stack.redis_proc = stack.worker = stack.daphne = None
    stack_exit = contextlib.ExitStack()
    try:
        database_url = stack_exit.enter_context(database)
        if database_url:
            env["DATABASE_URL"] = database_url
        stack.start_redis()
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
                       cwd=REPO, env=env, check=True, timeout=120)
        stack.start_worker()
        stack.start_daphne()
        yield stack
    finally:
        stack.stop()
        stack_exit.close()
        if os.environ.get("MASKWEB_KEEP_STACK"):
            print(f"live stack data kept in {data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
