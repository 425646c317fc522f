"""maskweb on several test hosts (tests/hosts.py): one infra host with Redis, PostgreSQL and
an S3 object store (SeaweedFS), web hosts running Daphne and worker hosts running a Celery
worker, as a site that outgrew one machine runs it. The hosts share the database, the bucket
and Redis, and nothing else: each has a data directory of its own.

    with start_cluster(webs=["web1", "web2"], workers=["worker1", "worker2"]) as cluster:
        cluster.url("web1"), cluster.ws_url("web2"), cluster.hosts["worker1"].kill()

Where network namespaces cannot be made, the hosts are loopback addresses of their own
(``cluster.net.isolated`` is False and ``cluster.net.why`` says why).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from maskweb import runner
from tests import postgres, s3
from tests.hosts import Host, Network, network

REPO = Path(__file__).resolve().parent.parent
BUCKET = "maskweb"


@dataclass
class Cluster:
    net: Network
    root: Path
    env: dict[str, str]  # what every app host shares: database, Redis, bucket, secret
    s3: s3.S3Server
    hosts: dict[str, Host] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)  # a web host's Daphne port

    def url(self, web: str) -> str:
        return f"http://{self.hosts[web].address}:{self.ports[web]}"

    def ws_url(self, web: str) -> str:
        return f"ws://{self.hosts[web].address}:{self.ports[web]}"

    def host_env(self, name: str) -> dict[str, str]:
        data = self.root / name
        (data / "models").mkdir(parents=True, exist_ok=True)
        return {**self.env, "MASKWEB_DATA_DIR": str(data),
                "MASKWEB_MODELS_DIR": str(data / "models")}

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def start_web(self, name: str, host: Host | None = None) -> None:
        """Daphne on a web host (``host``: an existing host, e.g. a second process on it)."""
        if host is None:
            host = self.hosts.get(name) or self.net.add_host(name)
        self.hosts[name] = host
        port = runner.free_port()
        process = host.spawn(runner.daphne_command(host.address, port), self.host_env(name),
                             REPO, self.log(name))
        runner.wait_for_port(host.address, port, timeout=60, process=process)
        self.ports[name] = port

    def start_worker(self, name: str) -> None:
        host = self.hosts.get(name) or self.net.add_host(name)
        self.hosts[name] = host
        host.spawn(runner.worker_command(name), self.host_env(name), REPO, self.log(name))

    def encoded(self, worker: str) -> int:
        """How many photos this worker has encoded (its log's lines)."""
        return self._count(worker, "encoded photo")

    def received(self, worker: str) -> int:
        """How many encode jobs this worker has taken from the queue."""
        return self._count(worker, "maskweb.encode_photo[")

    def ready(self, worker: str) -> bool:
        """Whether this worker is connected and taking jobs (Celery's "ready." line)."""
        return self._count(worker, " ready.") > 0

    def alive(self, name: str) -> bool:
        host = self.hosts.get(name)
        return host is not None and any(p.poll() is None for p in host.processes)

    def _count(self, name: str, text: str) -> int:
        path = self.log(name)
        return path.read_text(errors="replace").count(text) if path.exists() else 0

    def logs(self, tail: int = 3000) -> str:
        return "\n".join(f"--- {p.name} ---\n{p.read_text(errors='replace')[-tail:]}"
                         for p in sorted((self.root / "logs").glob("*.log")))


def _redis_on(host: Host, port: int, directory: Path) -> list[str]:
    command = runner.redis_command(port, directory, "256mb")
    command[command.index("--bind") + 1] = host.address
    return command


@contextlib.contextmanager
def start_cluster(webs: Sequence[str] = ("web1", "web2"),
                  workers: Sequence[str] = ("worker1", "worker2")) -> Iterator[Cluster]:
    root = Path(tempfile.mkdtemp(prefix="maskweb-cluster-"))
    (root / "logs").mkdir()
    (root / "redis").mkdir()
    try:
        with contextlib.ExitStack() as stack:
            net = stack.enter_context(network())
            infra = net.add_host("infra")
            redis_port = runner.free_port()
            redis_url = f"redis://{infra.address}:{redis_port}/0"
            infra.spawn(_redis_on(infra, redis_port, root / "redis"), {}, root,
                        root / "logs" / "redis.log")
            server = stack.enter_context(postgres.running_server(infra.address,
                                                                 infra.namespace))
            database = stack.enter_context(postgres.fresh_database(server, "maskweb_cluster"))
            store = stack.enter_context(s3.running_server(host=infra))
            store.create_bucket(BUCKET)
            runner.wait_for_redis(redis_url)
            env = {k: v for k, v in os.environ.items()
                   if not k.startswith(("MASKWEB_", "DATABASE_URL", "REDIS_URL", "AWS_"))}
            env.update({"DJANGO_SETTINGS_MODULE": "maskweb.settings",
                        "DATABASE_URL": database, "REDIS_URL": redis_url,
                        **store.env(BUCKET),
                        "SECRET_KEY": uuid.uuid4().hex * 2,  # one for all hosts
                        "MASKWEB_DEFAULT_MODEL": "grabcut",
                        "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                        "PYTHONUNBUFFERED": "1",
                        # Every client of the test is one address.
                        "MASKWEB_UPLOAD_BURST": "100000", "MASKWEB_UPLOAD_RATE": "1000000"})
            cluster = Cluster(net, root, env, store)
            cluster.hosts["infra"] = infra
            # The web hosts' own names (Host headers): known before they start.
            addresses = [net.address(len(net.hosts) + 2 + i) if net.isolated
                         else f"127.0.0.{len(net.hosts) + 2 + i}" for i in range(len(webs))]
            env["MASKWEB_ALLOWED_HOSTS"] = ",".join(addresses)
            subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
                           cwd=REPO, env=cluster.host_env("migrate"), check=True, timeout=120)
            for name in webs:
                cluster.start_web(name)
            assert [cluster.hosts[n].address for n in webs] == addresses
            for name in workers:
                cluster.start_worker(name)
            yield cluster
    finally:
        if os.environ.get("MASKWEB_KEEP_STACK"):
            print(f"cluster logs kept in {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
