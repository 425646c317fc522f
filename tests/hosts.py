"""Test hosts with addresses of their own, for tests of maskweb on several machines.

Each host is a Linux network namespace with one veth link to a bridge; the bridge carries
the first address of a small benchmarking subnet (RFC 2544's 198.18.0.0/15, meant for tests),
so the test process itself reaches every host and the hosts reach each other, but nothing
leaves the machine (the namespaces have no other route). Processes are started in a host with
``ip netns exec``; killing a host SIGKILLs every process in its namespace, as a power cut
would.

Where namespaces cannot be made (not root, or a container without CAP_NET_ADMIN), the same
test runs with each host on an address of its own on loopback (127.0.0.N): every process
binds and connects by its host's address as before, only the isolation is gone, and killing a
host kills the processes started on it. ``Network.isolated`` says which, and ``Network.why``
why not.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from maskweb import runner

SUBNET = "198.18.{net}.{host}"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@dataclass
class Host:
    name: str
    address: str
    namespace: str | None  # None: the loopback stand-in
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def spawn(self, command: list[str], env: Mapping[str, str], cwd: Path,
              log: Path | None = None) -> subprocess.Popen[bytes]:
        """``command`` started on this host (in its namespace), like ``runner.spawn``."""
        prefix = ["ip", "netns", "exec", self.namespace] if self.namespace else []
        process = runner.spawn(prefix + command, env, cwd, log)
        self.processes.append(process)
        return process

    def run(self, command: list[str], **kwargs: object) -> subprocess.CompletedProcess[bytes]:
        prefix = ["ip", "netns", "exec", self.namespace] if self.namespace else []
        return subprocess.run(prefix + command, **kwargs)  # type: ignore[call-overload]

    def kill(self) -> None:
        """SIGKILL every process on the host at once: no process gets to say goodbye."""
        pids = {p.pid for p in self.processes if p.poll() is None}
        if self.namespace:
            listed = subprocess.run(["ip", "netns", "pids", self.namespace],
                                    capture_output=True, text=True, timeout=30)
            pids |= {int(pid) for pid in listed.stdout.split()}
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)

    def stop(self) -> None:
        for process in reversed(self.processes):
            runner.stop(process)


class Network:
    """Hosts on one bridge; ``close`` kills them all and removes every link and namespace."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:6]
        self.hosts: list[Host] = []
        self.bridge = f"mwbr{self.tag}"
        self.why = ""
        self._net = 18 + int(self.tag, 16) % 200  # 198.18.<net>.0/24: runs side by side differ
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.address(1)}/24", "dev", self.bridge)
            _ip("link", "set", self.bridge, "up")
            self.isolated = True
        except (OSError, subprocess.CalledProcessError) as exc:
            stderr = getattr(exc, "stderr", b"") or b""
            self.why = (stderr.decode(errors="replace").strip() or str(exc))
            self.isolated = False
            self._cleanup_bridge()

    def address(self, index: int) -> str:
        return SUBNET.format(net=self._net, host=index)

    @property
    def test_address(self) -> str:
        """Where the test process itself is seen from the hosts."""
        return self.address(1) if self.isolated else "127.0.0.1"

    def add_host(self, name: str) -> Host:
        index = len(self.hosts) + 2
        if not self.isolated:
            host = Host(name, f"127.0.0.{index}", None)
            self.hosts.append(host)
            return host
        namespace = f"mw{self.tag}-{name}"
        outside, inside = f"mw{self.tag}o{index}", f"mw{self.tag}i{index}"
        _ip("netns", "add", namespace)
        host = Host(name, self.address(index), namespace)
        self.hosts.append(host)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        _ip("link", "set", inside, "netns", namespace)
        _ip("link", "set", outside, "master", self.bridge, "up")
        _ip("-n", namespace, "addr", "add", f"{host.address}/24", "dev", inside)
        _ip("-n", namespace, "link", "set", inside, "up")
        _ip("-n", namespace, "link", "set", "lo", "up")
        return host

    def close(self) -> None:
        for host in self.hosts:
            host.kill()
            if host.namespace:
                subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True,
                               timeout=30)
        self._cleanup_bridge()

    def _cleanup_bridge(self) -> None:
        subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, timeout=30)


@contextlib.contextmanager
def network() -> Iterator[Network]:
    net = Network()
    try:
        yield net
    finally:
        net.close()
