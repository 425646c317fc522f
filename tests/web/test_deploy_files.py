"""docker-compose.yml and the Dockerfile: docker cannot run here, so check what can be checked."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


SECRETS = {"SECRET_KEY": "k" * 50, "POSTGRES_PASSWORD": "pg-secret",
           "MASKWEB_S3_ACCESS_KEY": "s3-key", "MASKWEB_S3_SECRET_KEY": "s3-secret"}


def compose_config(env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS and
             not k.startswith("MASKWEB_")}
    return subprocess.run(["docker-compose", "-f", "docker-compose.yml", "config"],
                          cwd=REPO, env={**clean, **(env or {})}, capture_output=True,
                          text=True, timeout=60)


def compose(env: dict[str, str] | None = None) -> dict:
    done = compose_config({**SECRETS, **(env or {})})
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


needs_compose = pytest.mark.skipif(shutil.which("docker-compose") is None,
                                   reason="docker-compose is installed by scripts/setup --test")
APP = ("migrate", "web", "worker", "beat", "worker-gpu")


@needs_compose
@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_start_without_each_secret(missing):
    """No default secret: one in the file would be everyone's."""
    done = compose_config({k: v for k, v in SECRETS.items() if k != missing})
    assert done.returncode != 0 and f"set {missing}" in done.stderr, done.stderr


@needs_compose
def test_compose_runs_replicas_on_postgres_s3_and_redis_behind_nginx():
    config = compose()
    services = config["services"]
    assert {"redis", "postgres", "seaweedfs", "migrate", "web", "worker", "beat", "nginx",
            "worker-gpu"} <= set(services)
    for name in APP:
        env = services[name]["environment"]
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert env["DATABASE_URL"] == "postgres://maskweb:pg-secret@postgres:5432/maskweb"
        assert env["MASKWEB_S3_BUCKET"] == "maskweb"
        assert env["MASKWEB_S3_ENDPOINT_URL"] == "http://seaweedfs:8333"
        assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("s3-key",
                                                                            "s3-secret")
        assert env["SECRET_KEY"] == SECRETS["SECRET_KEY"]
        # No shared data folder: the photos are in the bucket.
        assert not any(v.split(":")[1] == "/data" for v in services[name].get("volumes", []))
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "pg-secret"
    seaweed = services["seaweedfs"]
    assert "-s3" in seaweed["command"][0] and "-s3.config" in seaweed["command"][0]
    assert seaweed["environment"]["S3_SECRET_KEY"] == "s3-secret"
    # Tables and bucket once, before any replica.
    assert "migrate --noinput" in services["migrate"]["command"][2]
    assert "create_bucket" in services["migrate"]["command"][2]
    for name in ("web", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == \
            "service_completed_successfully"
        assert services[name]["deploy"]["replicas"] == 2
    web = services["web"]
    assert "ports" not in web, "nginx is the one port; replicas cannot share one"
    assert "daphne" in web["command"] and "X-Real-IP" in web["command"]
    assert web["environment"]["MASKWEB_PROXY_HEADER"] == "X-Real-IP"
    assert services["worker"]["command"][:4] == ["celery", "-A", "maskweb.celery", "worker"]
    assert services["beat"]["command"][:4] == ["celery", "-A", "maskweb.celery", "beat"]
    assert "deploy" not in services["beat"], "exactly one beat"
    save = services["redis"]["command"].index("--save")
    assert services["redis"]["command"][save + 1:save + 3] == ["300", "1"]
    nginx = services["nginx"]
    assert nginx["ports"][0]["target"] == 8000
    assert nginx["volumes"][0].startswith(str(REPO / "deploy" / "nginx.conf"))
    gpu = services["worker-gpu"]
    assert gpu["profiles"] == ["gpu"] and gpu["build"]["target"] == "gpu"
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert "profiles" not in services["worker"], "the CPU workers start with a plain `up`"

    more = compose({"MASKWEB_WEB_REPLICAS": "4", "MASKWEB_WORKER_REPLICAS": "3"})["services"]
    assert (more["web"]["deploy"]["replicas"], more["worker"]["deploy"]["replicas"]) == (4, 3)


def test_nginx_passes_the_websocket_and_the_client_address():
    text = (REPO / "deploy" / "nginx.conf").read_text()
    assert "proxy_pass $web;" in text and "set $web http://web:8000;" in text
    assert "proxy_http_version 1.1;" in text
    assert "proxy_set_header Upgrade $http_upgrade;" in text
    assert "proxy_set_header Connection $connection_upgrade;" in text
    assert "proxy_set_header X-Real-IP $remote_addr;" in text
    assert re.search(r"client_max_body_size 300m;", text)


def test_dockerfile_has_the_cpu_and_gpu_targets():
    text = (REPO / "Dockerfile").read_text()
    targets = re.findall(r"^FROM \S+ AS (\w+)", text, flags=re.M)
    assert {"base", "gpu", "cpu"} <= set(targets)
    gpu_stage = text.split("AS gpu", 1)[1].split("FROM ", 1)[0]
    assert "onnxruntime-gpu" in gpu_stage and "pip uninstall -y onnxruntime" in gpu_stage
    assert "SECRET_KEY" not in text, "no secret baked into the image"
