"""`python manage.py serve`: everything on one machine (Redis unless REDIS_URL, a worker, Daphne).

Ctrl+C (or SIGTERM) stops Daphne, then the worker (its unfinished job goes back to the queue:
acks_late), then Redis, and exits when all are reaped. A worker that dies is started again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from maskweb import runner
from maskweb.config import env_int, env_str


class Command(BaseCommand):
    help = "Start the embedded Redis (unless REDIS_URL), one Celery worker and Daphne."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default=env_str("MASKWEB_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int,
                            default=env_int("MASKWEB_PORT", 8000, minimum=1, maximum=65535))

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        stopping = False

        def on_signal(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)

        env = dict(os.environ)
        data = Path(settings.DATA_DIR)
        logs = data / "logs"
        logs.mkdir(exist_ok=True)
        cwd = Path(settings.BASE_DIR)
        redis_proc: subprocess.Popen[bytes] | None = None
        worker: subprocess.Popen[bytes] | None = None
        daphne: subprocess.Popen[bytes] | None = None
        try:
            if not settings.REDIS_URL:
                redis_port = env_int("MASKWEB_REDIS_PORT", 0, minimum=0, maximum=65535) \
                    or runner.free_port()
                (data / "redis").mkdir(exist_ok=True)
                redis_proc = runner.spawn(
                    runner.redis_command(redis_port, data / "redis",
                                         env_str("MASKWEB_REDIS_MAXMEMORY", "1gb")),
                    env, cwd, logs / "redis.log")
                env["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
                runner.wait_for_redis(env["REDIS_URL"], process=redis_proc)
                self.stdout.write(f"redis: embedded on port {redis_port} (log {logs}/redis.log)")
            else:
                runner.wait_for_redis(settings.REDIS_URL)
                self.stdout.write("redis: using REDIS_URL")
            worker = runner.spawn(runner.worker_command(), env, cwd)
            daphne = runner.spawn(runner.daphne_command(host, port), env, cwd)
            runner.wait_for_port(host, port, process=daphne)
            shown = f"[{host}]" if ":" in host else host
            self.stdout.write(self.style.SUCCESS(
                f"\nmaskweb is running: open http://{shown}:{port}/   (Ctrl+C stops it)\n"))
            while not stopping:
                time.sleep(0.5)
                if daphne.poll() is not None:
                    raise CommandError(f"Daphne exited with {daphne.returncode}")
                if redis_proc is not None and redis_proc.poll() is not None:
                    raise CommandError(f"redis-server exited with {redis_proc.returncode}")
                if worker.poll() is not None and not stopping:
                    self.stderr.write(f"worker exited with {worker.returncode}; restarting it")
                    worker = runner.spawn(runner.worker_command(), env, cwd)
        except (TimeoutError, RuntimeError) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            self.stdout.write("stopping…")
            runner.stop(daphne)
            runner.stop(worker, grace=15)
            runner.stop(redis_proc)
            self.stdout.write("stopped.")
