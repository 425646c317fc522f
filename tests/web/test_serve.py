"""`manage.py serve` (what scripts/run starts): everything comes up; a child that dies (Redis,
the worker, Daphne, by SIGTERM or SIGKILL) is started again and logged; the embedded Redis
keeps its data in the data directory across the restart; the periodic clean-up runs; Ctrl+C
leaves no process."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import redis

from maskweb import runner
from tests.web.client import two_tone_photo, upload

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(240)


class Output:
    """The serve process's output, read in a thread, so a test can wait for a line."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self.changed = threading.Condition()
        assert process.stdout is not None
        self.thread = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self.thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()

    def wait_for(self, pattern: str, timeout: float, after: int = 0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        with self.changed:
            while True:
                for line in self.lines[after:]:
                    found = re.search(pattern, line)
                    if found:
                        return found
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"no line matching {pattern!r}:\n{''.join(self.lines)}")
                self.changed.wait(left)


def child(serve: subprocess.Popen[str], name: str) -> psutil.Process:
    for process in psutil.Process(serve.pid).children(recursive=True):
        if name in " ".join(process.cmdline()):
            return process
    raise LookupError(name)


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.1)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def served(data_dir: Path, **settings: str) -> Iterator[tuple[subprocess.Popen[str], Output,
                                                              str]]:
    """`manage.py serve` as scripts/run starts it (embedded Redis, SQLite in ``data_dir``, a
    free port, ``settings`` as MASKWEB_* variables), once it says it is running: the
    process, its output and its URL. Its whole process group is killed if the test leaves
    it running."""
    port = runner.free_port()
    env = {**os.environ, "MASKWEB_DATA_DIR": str(data_dir), "MASKWEB_PORT": str(port),
           "PYTHONUNBUFFERED": "1", "MASKWEB_MODELS_DIR": str(data_dir / "models"), **settings}
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPO, env=env,
                   check=True, timeout=60)
    serve = subprocess.Popen([sys.executable, "manage.py", "serve"], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
    try:
        output = Output(serve)
        output.wait_for("maskweb is running", 90)
        yield serve, output, f"http://127.0.0.1:{port}"
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()


def test_serve_restarts_each_child_that_dies_and_ctrl_c_stops_them_all(tmp_path):
    # The clean-up every 10 s; a session idle for 8.6 s expires.
    with served(tmp_path, MASKWEB_CLEANUP_INTERVAL="10",
                MASKWEB_SESSION_IDLE_DAYS="0.0001") as (serve, output, base):
        redis_port = int(output.wait_for(r"redis: embedded on port (\d+)", 1).group(1))
        children = psutil.Process(serve.pid).children(recursive=True)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        assert "redis-server" in names and "celery" in names and "daphne" in names
        assert answers(f"{base}/api/v1/models")
        assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600

        # The embedded Redis snapshots into the data directory and loads it when it starts
        # again: its save points were lost ("300 1" as one argument) and nothing was saved.
        client = redis.Redis(port=redis_port)
        assert client.config_get("save") == {"save": "300 1"}
        assert client.config_get("dir")["dir"] == str(tmp_path / "redis")
        client.set("kept-across-a-restart", "yes")
        redis_server = child(serve, "redis-server")
        seen = len(output.lines)
        redis_server.send_signal(signal.SIGTERM)  # a service manager's stop: saves first
        # Redis handles SIGTERM: it saves and exits with status 0.
        output.wait_for(r"redis-server exited with (status 0|signal SIGTERM).*starting it "
                        r"again", 20, seen)
        output.wait_for(r"redis-server started again", 30, seen)
        assert client.get("kept-across-a-restart") == b"yes"
        assert (tmp_path / "redis" / "dump.rdb").exists()
        assert child(serve, "redis-server").pid != redis_server.pid

        # Daphne killed outright: started again on the same port, and it answers.
        daphne = child(serve, "daphne")
        seen = len(output.lines)
        daphne.kill()
        output.wait_for(r"daphne exited with signal SIGKILL", 20, seen)
        output.wait_for(r"daphne started again", 60, seen)
        wait_until(lambda: answers(f"{base}/api/v1/models"), 30, "Daphne answering again")

        # The worker, stopped cleanly or killed, is started again and encodes.
        for kill in (signal.SIGTERM, signal.SIGKILL):
            worker = child(serve, "celery")
            seen = len(output.lines)
            worker.send_signal(kill)
            worker.wait(timeout=30)
            # Celery ends cleanly on SIGTERM (status 0), and is started again all the same.
            ended = "status 0|signal SIGTERM" if kill == signal.SIGTERM else "signal SIGKILL"
            output.wait_for(rf"worker exited with ({ended})", 20, seen)
            output.wait_for(r"worker started again", 30, seen)
        status, state = upload(base, "p.png", two_tone_photo(seed=11))
        assert status == 201, state
        token = state["edit_token"]

        def ready() -> bool:
            with urllib.request.urlopen(f"{base}/api/v1/sessions/{token}") as response:
                return json.loads(response.read())["status"] == "ready"

        wait_until(ready, 60, "the encode by the restarted worker")

        # The periodic clean-up (beat in the worker) deletes the session once it is idle.
        def gone() -> bool:
            try:
                urllib.request.urlopen(f"{base}/api/v1/sessions/{token}", timeout=5)
            except urllib.error.HTTPError as exc:
                return exc.code == 404
            return False

        wait_until(gone, 60, "the clean-up of an idle session")
        assert not list((tmp_path / "photos").rglob("original.*"))

        children = psutil.Process(serve.pid).children(recursive=True)
        serve.send_signal(signal.SIGINT)  # what Ctrl+C sends to the foreground process
        serve.wait(timeout=60)
        gone_, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, [p.cmdline() for p in alive]
        assert serve.returncode == 0


def test_models_command_lists_the_installed_models():
    done = subprocess.run([sys.executable, "manage.py", "models", "list"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "grabcut" in done.stdout


def test_the_cleanup_command_runs_once(tmp_path):
    env = {**os.environ, "MASKWEB_DATA_DIR": str(tmp_path),
           "MASKWEB_MODELS_DIR": str(tmp_path / "models")}
    env.pop("DATABASE_URL", None)
    env["REDIS_URL"] = f"redis://127.0.0.1:{runner.free_port()}/0"  # not needed: none waits
    env["MASKWEB_REDIS_RETRY_SECONDS"] = "0"
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPO, env=env,
                   check=True, timeout=60)
    done = subprocess.run([sys.executable, "manage.py", "cleanup"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "deleted 0 session(s)" in done.stdout
