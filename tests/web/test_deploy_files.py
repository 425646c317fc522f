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


def compose_config(*extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    done = subprocess.run(["docker-compose", "-f", "docker-compose.yml", *extra, "config"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


@pytest.mark.skipif(shutil.which("docker-compose") is None,
                    reason="docker-compose is installed by scripts/setup --test")
def test_compose_file_is_valid_with_redis_web_worker_and_a_gpu_worker():
    config = compose_config()
    services = config["services"]
    assert {"redis", "web", "worker", "worker-gpu"} <= set(services)
    for name in ("web", "worker", "worker-gpu"):
        assert services[name]["environment"]["REDIS_URL"] == "redis://redis:6379/0"
        assert "redis" in services[name]["depends_on"]
    assert "daphne" in " ".join(services["web"]["command"])
    assert services["worker"]["command"][:4] == ["celery", "-A", "maskweb.celery", "worker"]
    # One beat for the periodic clean-up; Redis really snapshots (one argument per number).
    assert services["beat"]["command"][:4] == ["celery", "-A", "maskweb.celery", "beat"]
    save = services["redis"]["command"].index("--save")
    assert services["redis"]["command"][save + 1:save + 3] == ["300", "1"]
    gpu = services["worker-gpu"]
    assert gpu["profiles"] == ["gpu"] and gpu["build"]["target"] == "gpu"
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert "profiles" not in services["worker"], "the CPU worker starts with a plain `up`"


def test_dockerfile_has_the_cpu_and_gpu_targets():
    text = (REPO / "Dockerfile").read_text()
    targets = re.findall(r"^FROM \S+ AS (\w+)", text, flags=re.M)
    assert {"base", "gpu", "cpu"} <= set(targets)
    gpu_stage = text.split("AS gpu", 1)[1].split("FROM ", 1)[0]
    assert "onnxruntime-gpu" in gpu_stage and "pip uninstall -y onnxruntime" in gpu_stage
    assert "SECRET_KEY" not in text, "no secret baked into the image"
