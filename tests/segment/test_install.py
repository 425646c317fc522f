"""models install against a local HTTP server serving packages this test builds."""

import hashlib
import http.server
import json
import threading
import zipfile
from pathlib import Path

import pytest

from maskweb.segment import registry
from maskweb.segment.cli import main
from maskweb.segment.install import InstallError, install
from tests.segment import onnx_fixtures as fx

NAME = "mask-object-sam21-tiny"


def build_package(tmp: Path, name: str = NAME, drop: str | None = None,
                  extra_entry: str | None = None) -> Path:
    src = fx.sam2_package(tmp / "src" / name, model_id=name)
    pkg = tmp / "release" / f"{name}.dtmodel"
    pkg.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(pkg, "w") as zf:
        for f in sorted(src.iterdir()):
            if f.name != drop:
                zf.write(f, f"{name}/{f.name}")
        if extra_entry:
            zf.writestr(extra_entry, b"x")
    return pkg


def entry_for(pkg: Path, digest: str | None = None) -> dict:
    return {"version": "1.0", "task": "mask",
            "sha256": "sha256:" + (digest or hashlib.sha256(pkg.read_bytes()).hexdigest()),
            "size": pkg.stat().st_size}


def serve(tmp_path, pkg, versions):
    """Publish a package and its versions.json at <server>/download/."""
    d = tmp_path / "release" / "download"
    d.mkdir(parents=True, exist_ok=True)
    (d / "versions.json").write_text(json.dumps({"schema": 1, "models": versions}))
    (d / pkg.name).write_bytes(pkg.read_bytes())


class Handler(http.server.SimpleHTTPRequestHandler):
    truncate: set[str] = set()

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):  # noqa: N802
        name = self.path.rsplit("/", 1)[-1]
        if name in self.truncate:
            body = (Path(self.directory) / name).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])  # then hang up
            self.wfile.flush()
            self.close_connection = True
            return
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    release = tmp_path / "release"
    release.mkdir()
    handler = type("H", (Handler,), {"truncate": set()})

    def make(*a, **k):
        return handler(*a, directory=str(release), **k)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/download", handler
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def dest(tmp_path, monkeypatch):
    d = tmp_path / "models"
    monkeypatch.setenv("MASKWEB_MODELS_DIR", str(d))
    monkeypatch.setattr(registry, "REPO_ROOT", tmp_path / "repo")
    monkeypatch.setattr(registry, "DARKTABLE_DIR", tmp_path / "no-darktable")
    monkeypatch.delenv("MASKWEB_DEFAULT_MODEL", raising=False)
    monkeypatch.setenv("MASKWEB_ONNX_THREADS", "1")
    return d


def nothing_left(dest: Path) -> bool:
    return not dest.exists() or not any(dest.iterdir())


def test_install_downloads_verifies_and_unpacks(tmp_path, server, dest):
    url, _ = server
    pkg = build_package(tmp_path)
    serve(tmp_path, pkg, {NAME: entry_for(pkg)})
    folder = install(NAME, url=url, dest=dest)
    assert folder == dest / NAME
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "decoder.onnx",
                                                       "encoder.onnx"]
    assert [p.name for p in dest.iterdir()] == [NAME]  # no staging or temp left behind
    models = {m.id: m for m in registry.list_models()}
    assert models[NAME].family == "sam2" and models[NAME].path == folder


def test_truncated_download_is_refused_and_nothing_is_installed(tmp_path, server, dest):
    url, handler = server
    pkg = build_package(tmp_path)
    serve(tmp_path, pkg, {NAME: entry_for(pkg)})
    handler.truncate.add(pkg.name)
    with pytest.raises(InstallError, match="truncated|download failed"):
        install(NAME, url=url, dest=dest)
    assert nothing_left(dest)


def test_wrong_checksum_is_refused(tmp_path, server, dest):
    url, _ = server
    pkg = build_package(tmp_path)
    serve(tmp_path, pkg, {NAME: entry_for(pkg, digest="0" * 64)})
    with pytest.raises(InstallError, match="checksum mismatch"):
        install(NAME, url=url, dest=dest)
    assert nothing_left(dest)


def test_package_with_a_missing_file_is_refused(tmp_path, server, dest):
    url, _ = server
    pkg = build_package(tmp_path, drop="decoder.onnx")
    serve(tmp_path, pkg, {NAME: entry_for(pkg)})
    with pytest.raises(InstallError, match="decoder.onnx"):
        install(NAME, url=url, dest=dest)
    assert nothing_left(dest)


def test_package_escaping_its_folder_is_refused(tmp_path, server, dest):
    url, _ = server
    pkg = build_package(tmp_path, extra_entry="../evil.txt")
    serve(tmp_path, pkg, {NAME: entry_for(pkg)})
    with pytest.raises(InstallError, match="unexpected entry"):
        install(NAME, url=url, dest=dest)
    assert nothing_left(dest) and not (tmp_path / "evil.txt").exists()


def test_unknown_name_and_missing_checksum_are_clear_errors(tmp_path, server, dest):
    url, _ = server
    pkg = build_package(tmp_path)
    entry = entry_for(pkg)
    del entry["sha256"]
    serve(tmp_path, pkg, {NAME: entry})
    with pytest.raises(InstallError, match="not in this release"):
        install("mask-object-sam21-small", url=url, dest=dest)
    with pytest.raises(InstallError, match="no sha256"):
        install(NAME, url=url, dest=dest)
    # An explicit digest is accepted instead.
    digest = hashlib.sha256(pkg.read_bytes()).hexdigest()
    assert install(NAME, url=url, dest=dest, sha256=digest).is_dir()


def test_http_errors_are_clear(tmp_path, server, dest):
    url, _ = server
    with pytest.raises(InstallError, match="HTTP 404"):
        install(NAME, url=url, dest=dest)
    with pytest.raises(InstallError, match="not a valid model name"):
        install("../../etc", url=url, dest=dest)


def test_reinstall_replaces_the_old_copy_only_on_success(tmp_path, server, dest):
    url, _ = server
    pkg = build_package(tmp_path)
    serve(tmp_path, pkg, {NAME: entry_for(pkg)})
    install(NAME, url=url, dest=dest)
    marker = dest / NAME / "marker"
    marker.write_text("old")
    bad = build_package(tmp_path / "bad", drop="encoder.onnx")
    serve(tmp_path, bad, {NAME: entry_for(bad)})
    with pytest.raises(InstallError):
        install(NAME, url=url, dest=dest)
    assert marker.read_text() == "old"  # the working install is untouched
    serve(tmp_path, pkg, {NAME: entry_for(pkg)})
    install(NAME, url=url, dest=dest)
    assert not marker.exists() and [p.name for p in dest.iterdir()] == [NAME]


def test_cli_install_and_list(tmp_path, server, dest, capsys):
    url, _ = server
    pkg = build_package(tmp_path)
    serve(tmp_path, pkg, {NAME: entry_for(pkg)})
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "* grabcut" in out and NAME not in out
    assert main(["install", NAME, "--base-url", url]) == 0
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert NAME in out and "sam2" in out
    assert main(["install", "nope", "--base-url", url]) == 1
    assert "not in this release" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2
