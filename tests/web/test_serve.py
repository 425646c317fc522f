"""`manage.py serve` (what scripts/run starts): everything comes up, Ctrl+C leaves no process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from maskweb import runner

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.timeout(120)


def test_serve_starts_redis_worker_daphne_and_ctrl_c_stops_them_all(tmp_path):
    port = runner.free_port()
    env = {**os.environ, "MASKWEB_DATA_DIR": str(tmp_path), "MASKWEB_PORT": str(port),
           "PYTHONUNBUFFERED": "1", "MASKWEB_MODELS_DIR": str(tmp_path / "models")}
    env.pop("REDIS_URL", None)
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPO, env=env,
                   check=True, timeout=60)
    serve = subprocess.Popen([sys.executable, "manage.py", "serve"], cwd=REPO, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             start_new_session=True)
    try:
        lines = []
        deadline = time.monotonic() + 60
        assert serve.stdout is not None
        while time.monotonic() < deadline:
            line = serve.stdout.readline()
            lines.append(line)
            if "maskweb is running" in line:
                break
        else:
            pytest.fail("".join(lines))
        assert f"http://127.0.0.1:{port}/" in lines[-1]
        children = psutil.Process(serve.pid).children(recursive=True)
        names = " ".join(" ".join(c.cmdline()) for c in children)
        assert "redis-server" in names and "celery" in names and "daphne" in names
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/models") as response:
            assert response.status == 200
        # A worker that dies is started again.
        worker = next(c for c in children if "celery" in " ".join(c.cmdline()))
        worker.kill()
        worker.wait(timeout=10)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            children = psutil.Process(serve.pid).children(recursive=True)
            if any("celery" in " ".join(c.cmdline()) for c in children):
                break
            time.sleep(0.2)
        else:
            pytest.fail("the worker was not restarted")
        assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600

        serve.send_signal(signal.SIGINT)  # what Ctrl+C sends to the foreground process
        serve.wait(timeout=60)
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, [p.cmdline() for p in alive]
        assert serve.returncode == 0
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()


def test_models_command_lists_the_installed_models():
    done = subprocess.run([sys.executable, "manage.py", "models", "list"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "grabcut" in done.stdout
