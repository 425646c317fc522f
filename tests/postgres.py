"""A private PostgreSQL server for the tests: Debian's ``postgresql`` binaries, a throwaway
cluster in a temporary folder, on a free port, listening on loopback only.

    .venv/bin/python -m tests.postgres -- .venv/bin/python -m pytest tests/web
        runs the command with ``DATABASE_URL`` pointing at a fresh server (scripts/test)
    with running_server() as url: ...
        the same in Python

PostgreSQL refuses to run as root, so under root (CI) the cluster belongs to the ``postgres``
user that Debian's package creates, and its commands run as that user. ``tests/stack.py``
gives each live stack a database of its own on that server (``fresh_database``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from maskweb import runner

SUPERUSER = "maskweb"


def _bin_dir() -> Path:
    """The folder of Debian's server binaries (they are not on PATH there), newest first."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                      key=lambda p: int(p.parent.parent.name), reverse=True)
    if not versions:
        raise RuntimeError("PostgreSQL's server is not installed: `scripts/setup --test` "
                           "installs Debian's postgresql package")
    return versions[0].parent


def _as_owner(owner: pwd.struct_passwd | None) -> dict[str, Any]:
    """subprocess arguments that run a command as ``owner`` (None: as ourselves)."""
    if owner is None:
        return {}
    return {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": [],
            "env": {**os.environ, "HOME": owner.pw_dir, "USER": owner.pw_name}}


@contextlib.contextmanager
def running_server(address: str = "127.0.0.1", namespace: str | None = None) -> Iterator[str]:
    """Starts a fresh cluster listening on ``address`` (in network namespace ``namespace``,
    a test host of tests/hosts.py); yields the superuser's URL to its ``postgres`` database."""
    bin_dir = _bin_dir()
    owner = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="maskweb-pg-"))
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir()
    if owner is not None:
        for path in (root, sockets):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    port = runner.free_port()
    as_owner = _as_owner(owner)
    # `ip netns exec` needs root, so in a namespace the switch to the owner comes after it.
    in_host = ["ip", "netns", "exec", namespace] if namespace else []
    if namespace and owner is not None:
        in_host += ["runuser", "-u", owner.pw_name, "--"]
    start_as = {} if namespace else as_owner
    log = root / "server.log"
    try:
        subprocess.run([str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER,
                        "--auth=trust", "--encoding=UTF8", "--no-sync"],
                       check=True, capture_output=True, timeout=120, **as_owner)
        # fsync off: a test server that loses its data on a power cut loses nothing of value,
        # and every commit of a click's prompt would otherwise wait for the disk.
        options = (f"-p {port} -k {sockets} -c listen_addresses={address} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        if namespace:  # clients from other hosts: trust them too (a throwaway test server)
            with (data / "pg_hba.conf").open("a") as hba:
                hba.write("host all all 0.0.0.0/0 trust\n")
        subprocess.run([*in_host, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log),
                        "-o", options, "-w", "-t", "60", "start"],
                       check=True, capture_output=True, timeout=90, **start_as)
        yield f"postgres://{SUPERUSER}@{address}:{port}/postgres"
    finally:
        if data.exists():
            subprocess.run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                            "-w", "stop"], capture_output=True, timeout=60, **as_owner)
        shutil.rmtree(root, ignore_errors=True)


def with_database(url: str, name: str) -> str:
    """``url`` with its database name replaced."""
    return url.rsplit("/", 1)[0] + "/" + name


@contextlib.contextmanager
def fresh_database(server_url: str, prefix: str = "maskweb") -> Iterator[str]:
    """An empty database of its own on ``server_url``'s server, dropped afterwards."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            # A killed process's connections may linger for a moment; FORCE ends them.
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "--" or len(argv) < 2:
        print("usage: python -m tests.postgres -- COMMAND [ARG ...]", file=sys.stderr)
        return 2
    started = time.monotonic()
    with running_server() as url:
        print(f"tests.postgres: PostgreSQL at {url} (started in "
              f"{time.monotonic() - started:.1f} s)", file=sys.stderr, flush=True)
        return subprocess.run(argv[1:], env={**os.environ, "DATABASE_URL": url}).returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
