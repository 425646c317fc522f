"""Installing darktable-ai model packages (``<id>.dtmodel``) into the models folder.

darktable-ai publishes each model as a zip named ``<id>.dtmodel`` whose single top-level
folder is ``<id>/`` (``config.json``, ``encoder.onnx``, ``decoder.onnx``), next to a
``versions.json`` on the same release: ``{"schema": 1, "models": {"<id>": {"version": "1.0",
"sha256": "sha256:<hex>", "size": <bytes>, ...}}}``. darktable refuses a download it cannot
verify, and so do we.

Nothing is ever half-installed: the package is downloaded into a temporary folder, its size
and SHA-256 are checked, it is unpacked into a staging folder beside the destination (same
filesystem), the model is loaded with onnxruntime and its inputs/outputs are checked against
its family's contract, and only then is the folder renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from maskweb.segment.descriptor import DescriptorError, ModelDescriptor, load_descriptor

DEFAULT_BASE_URL = "https://github.com/darktable-org/darktable-ai/releases/latest/download"
KNOWN_PACKAGES = ("mask-object-sam21-tiny", "mask-object-sam21-small",
                  "mask-object-sam21-base-plus", "mask-object-segnext-b2hq")
MAX_PACKAGE_BYTES = 4 << 30  # no interactive mask model comes near this
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_CHUNK = 1 << 20

# What each family's ONNX files must offer (names as darktable's segmentation.c uses them).
CONTRACT = {
    "sam": {"decoder_inputs": {"point_coords", "point_labels"}, "encoder_outputs": set()},
    "sam2": {"decoder_inputs": {"point_coords", "point_labels", "mask_input", "has_mask_input"},
             "encoder_outputs": {"high_res_feats_0", "high_res_feats_1"}},
    "segnext": {"decoder_inputs": {"point_coords", "point_labels", "prev_mask"},
                "encoder_outputs": {"image_feats"}},
}


class InstallError(RuntimeError):
    """The package could not be installed; nothing was changed in the destination."""


def base_url() -> str:
    return os.environ.get("MASKWEB_MODELS_BASE_URL", "").strip() or DEFAULT_BASE_URL


def _fetch(url: str, dest: Path, expected_size: int | None = None,
           progress: Callable[[int, int | None], None] | None = None,
           timeout: float = 60.0) -> None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(dest, "wb") as out:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else expected_size
            if total is not None and total > MAX_PACKAGE_BYTES:
                raise InstallError(f"{url}: {total} bytes is more than any model package")
            done = 0
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                done += len(chunk)
                if done > MAX_PACKAGE_BYTES:
                    raise InstallError(f"{url}: download larger than any model package")
                if progress:
                    progress(done, total)
            if total is not None and done != total:
                raise InstallError(f"{url}: truncated download ({done} of {total} bytes)")
    except urllib.error.HTTPError as exc:
        raise InstallError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        # http.client.IncompleteRead is an HTTPException; OSError covers resets and timeouts.
        raise InstallError(f"{url}: download failed: {exc}") from exc
    except Exception as exc:  # http.client.IncompleteRead and friends
        if isinstance(exc, InstallError):
            raise
        raise InstallError(f"{url}: download failed: {exc!r}") from exc


def read_versions(url: str, workdir: Path) -> dict[str, dict[str, object]]:
    """The release's ``versions.json`` models map."""
    path = workdir / "versions.json"
    _fetch(url, path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        models = data["models"]
        if not isinstance(models, dict):
            raise TypeError("models is not an object")
    except (ValueError, KeyError, TypeError) as exc:
        raise InstallError(f"{url}: not a darktable-ai versions.json ({exc})") from exc
    if data.get("schema", 1) != 1:
        raise InstallError(f"{url}: versions.json schema {data.get('schema')} is not supported")
    return models


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _normalise_digest(digest: str) -> str:
    d = digest.strip().lower().removeprefix("sha256:")
    if not re.fullmatch(r"[0-9a-f]{64}", d):
        raise InstallError(f"not a SHA-256 digest: {digest!r}")
    return d


def unpack(package: Path, staging: Path, model_id: str) -> Path:
    """Unzip into ``staging``; the archive must hold exactly one top folder named ``model_id``
    and no absolute paths, ``..``, or links. Returns ``staging/model_id``."""
    try:
        with zipfile.ZipFile(package) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise InstallError(f"{package.name}: corrupt member {bad}")
            for info in zf.infolist():
                parts = PurePosixPath(info.filename).parts
                if (not parts or info.filename.startswith(("/", "\\")) or ".." in parts
                        or parts[0] != model_id or "\\" in info.filename):
                    raise InstallError(f"{package.name}: unexpected entry {info.filename!r} "
                                       f"(everything must be under {model_id}/)")
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise InstallError(f"{package.name}: links are not allowed "
                                       f"({info.filename})")
            zf.extractall(staging)
    except zipfile.BadZipFile as exc:
        raise InstallError(f"{package.name}: not a zip archive ({exc})") from exc
    folder = staging / model_id
    if not folder.is_dir():
        raise InstallError(f"{package.name}: no {model_id}/ folder inside")
    return folder


def check_model(folder: Path) -> ModelDescriptor:
    """Load the descriptor and both ONNX files and check the family's contract."""
    try:
        desc = load_descriptor(folder)
    except DescriptorError as exc:
        raise InstallError(f"package is incomplete or not an interactive mask model: {exc}") \
            from exc
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sessions = {}
    for role, path in (("encoder", desc.encoder_path), ("decoder", desc.decoder_path)):
        try:
            sessions[role] = ort.InferenceSession(str(path), sess_options=opts,
                                                  providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types
            raise InstallError(f"{path.name} does not load in onnxruntime: {exc}") from exc
    contract = CONTRACT[desc.family]
    dec_in = {i.name for i in sessions["decoder"].get_inputs()}
    enc_out = {o.name for o in sessions["encoder"].get_outputs()}
    missing = (contract["decoder_inputs"] - dec_in) | (contract["encoder_outputs"] - enc_out)
    if missing:
        raise InstallError(f"{desc.id}: ONNX files lack {sorted(missing)} for a "
                           f"{desc.family} model")
    return desc


def install(name: str, url: str | None = None, dest: Path | None = None,
            sha256: str | None = None,
            progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Download, verify and install package ``name``; returns the installed folder.

    ``url`` is the release's base URL (``<url>/<name>.dtmodel``, ``<url>/versions.json``);
    ``sha256`` overrides the digest from versions.json (for a mirror without one).
    Raises InstallError with a message a person can act on; the destination is unchanged then.
    """
    if not _ID.match(name):
        raise InstallError(f"not a valid model name: {name!r}")
    from maskweb.segment.registry import user_models_dir

    root = (url or base_url()).rstrip("/")
    target_root = Path(dest) if dest is not None else user_models_dir()
    target_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="maskweb-dl-") as tmp:
        work = Path(tmp)
        expected_size: int | None = None
        if sha256 is None:
            entry = read_versions(f"{root}/versions.json", work).get(name)
            if not isinstance(entry, dict):
                known = ", ".join(KNOWN_PACKAGES)
                raise InstallError(f"{name!r} is not in this release's versions.json "
                                   f"(interactive mask packages: {known})")
            if not isinstance(entry.get("sha256"), str):
                raise InstallError(f"versions.json has no sha256 for {name}; refusing an "
                                   "unverifiable download (pass --sha256 to override)")
            sha256 = str(entry["sha256"])
            size = entry.get("size")
            expected_size = int(size) if isinstance(size, int) else None
        want = _normalise_digest(sha256)
        package = work / f"{name}.dtmodel"
        _fetch(f"{root}/{name}.dtmodel", package, expected_size, progress)
        if expected_size is not None and package.stat().st_size != expected_size:
            raise InstallError(f"{name}.dtmodel: {package.stat().st_size} bytes, "
                               f"versions.json says {expected_size}")
        got = sha256_of(package)
        if got != want:
            raise InstallError(f"{name}.dtmodel: checksum mismatch (sha256 {got}, expected "
                               f"{want}); the download is corrupt or the release changed")
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.staging-", dir=target_root))
        try:
            folder = unpack(package, staging, name)
            check_model(folder)
            final = target_root / name
            backup = None
            if final.exists():
                backup = target_root / f".{name}.old-{os.getpid()}"
                os.replace(final, backup)
            try:
                os.replace(folder, final)
            except OSError:
                if backup is not None:
                    os.replace(backup, final)
                raise
            if backup is not None:
                shutil.rmtree(backup, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return final
