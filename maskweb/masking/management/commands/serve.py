"""`python manage.py serve`: everything on one machine (Redis unless REDIS_URL, a worker, Daphne).

Ctrl+C (or SIGTERM) stops Daphne, then the worker (its unfinished job goes back to the queue:
acks_late), then Redis, and exits when all are reaped. A child that dies (Redis, the worker or
Daphne) is started again with a backoff (maskweb.runner.Supervisor), on the same port: pages
reconnect, the worker and Daphne reconnect to Redis, and the embedded Redis loads its snapshot
from the data directory. The worker also runs the periodic clean-up (Celery beat).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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

    def log(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        self.stderr.write(f"{stamp} serve: {message}")
        sys.stderr.flush()

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
        supervisor = runner.Supervisor(self.log)
        try:
            if not settings.REDIS_URL:
                redis_port = env_int("MASKWEB_REDIS_PORT", 0, minimum=0, maximum=65535) \
                    or runner.free_port()
                (data / "redis").mkdir(exist_ok=True)
                env["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
                command = runner.redis_command(redis_port, data / "redis",
                                               env_str("MASKWEB_REDIS_MAXMEMORY", "1gb"))

                def start_redis() -> subprocess.Popen[bytes]:
                    process = runner.spawn(command, env, cwd, logs / "redis.log")
                    runner.wait_for_redis(env["REDIS_URL"], timeout=60, process=process)
                    return process

                supervisor.add("redis-server", start_redis)
                self.stdout.write(f"redis: embedded on port {redis_port}, snapshot in "
                                  f"{data / 'redis'} (log {logs}/redis.log)")
            else:
                runner.wait_for_redis(settings.REDIS_URL)
                self.stdout.write("redis: using REDIS_URL")

            def start_worker() -> subprocess.Popen[bytes]:
                return runner.spawn(runner.worker_command(
                    beat_schedule=data / "celerybeat-schedule"), env, cwd)

            def start_daphne() -> subprocess.Popen[bytes]:
                process = runner.spawn(runner.daphne_command(host, port,
                                                             settings.PROXY_HEADER), env, cwd)
                runner.wait_for_port(host, port, timeout=60, process=process)
                return process

            supervisor.add("worker", start_worker)
            supervisor.add("daphne", start_daphne)
            shown = f"[{host}]" if ":" in host else host
            self.stdout.write(self.style.SUCCESS(
                f"\nmaskweb is running: open http://{shown}:{port}/   (Ctrl+C stops it)\n"))
            self.stdout.flush()
            while not stopping:
                time.sleep(0.25)
                if not stopping:
                    supervisor.check()
        except (TimeoutError, RuntimeError) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            self.stdout.write("stopping…")
            supervisor.stop("daphne")
            supervisor.stop("worker", grace=15)
            supervisor.stop("redis-server")
            self.stdout.write("stopped.")
