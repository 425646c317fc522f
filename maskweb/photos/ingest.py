"""Turning an uploaded file into a Photo: validate everything first, store only when it is sound.

Order matters for safety: the header is read (cheap) and the pixel count checked before any
pixel is decoded, so a decompression bomb never allocates its pixels; the full decode then
catches truncated files; only after that is anything stored. The upload is checked in a local
temp folder (``MEDIA_ROOT/.upload-*``); the checked files then go to the storage
(maskweb.photos.storage: the local folder or an object store), the row last, so nobody sees a
photo whose files are not all there, and a failure leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from PIL import Image, UnidentifiedImageError

from maskweb.photos import storage
from maskweb.photos.models import Photo
from maskweb.segment.orientation import to_upright, upright_size

ACCEPTED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp",
                    "TIFF": "image/tiff", "MPO": "image/jpeg"}
EXIF_ORIENTATION_TAG = 0x0112


class UploadError(Exception):
    """A refused upload: ``status`` is the HTTP status, ``code`` the protocol's error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Inspected:
    format: str
    stored_width: int
    stored_height: int
    orientation: int


def safe_name(name: str | None) -> str:
    base = os.path.basename((name or "").replace("\\", "/")).strip()
    base = re.sub(r"[^\w.\- ()+]", "_", base)[:200]
    return base or "photo"


def inspect_header(path: Path) -> Inspected:
    """Reads only the header: format, stored size and EXIF orientation."""
    if path.stat().st_size == 0:
        raise UploadError(400, "invalid_image", "The file is empty (0 bytes).")
    try:
        with warnings.catch_warnings():
            # Below PIL's hard limit the size check just after gives the clearer message.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                fmt = img.format or ""
                width, height = img.size
                orientation = exif_orientation(img)
    except Image.DecompressionBombError:
        raise UploadError(413, "too_large", "The image has far too many pixels; at most "
                          f"{settings.MAX_IMAGE_PIXELS / 1e6:.1f} MP are accepted.") from None
    except UnidentifiedImageError:
        raise UploadError(415, "unsupported_type",
                          "Not an image this app reads (JPEG, PNG, WebP or TIFF).") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UploadError(400, "invalid_image", f"The image cannot be read: {exc}") from None
    if fmt not in ACCEPTED_FORMATS:
        raise UploadError(415, "unsupported_type",
                          f"{fmt or 'This'} images are not accepted: JPEG, PNG, WebP or TIFF.")
    if width <= 0 or height <= 0:
        raise UploadError(400, "invalid_image", "The image has no pixels.")
    if width * height > settings.MAX_IMAGE_PIXELS:
        raise UploadError(413, "too_large", f"The image is {width}x{height} = "
                          f"{width * height / 1e6:.1f} MP; at most "
                          f"{settings.MAX_IMAGE_PIXELS / 1e6:.1f} MP are accepted.")
    return Inspected(fmt, width, height, orientation)


def exif_orientation(img: Image.Image) -> int:
    """The EXIF Orientation (1..8); 1 when it is missing or junk (a string, a list, 0, 99, an
    EXIF block that cannot be read): the pixels decode fine, so the photo is taken upright as
    stored rather than refused."""
    try:
        value = img.getexif().get(EXIF_ORIENTATION_TAG, 1)
    except Exception:  # Pillow raises several kinds for a broken EXIF block
        return 1
    if isinstance(value, tuple | list) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int):
        return 1
    return value if 1 <= value <= 8 else 1


def check_work_size(width: int, height: int) -> None:
    """The working picture must have a side the encoders can read (MASKWEB_MIN_IMAGE_SIDE):
    a 1-pixel strip was accepted and then failed to encode."""
    if min(width, height) < settings.MIN_IMAGE_SIDE:
        raise UploadError(400, "invalid_image", f"The picture is {width}x{height} pixels once "
                          f"scaled to the working size; each side must be at least "
                          f"{settings.MIN_IMAGE_SIDE} pixels.")


def work_size(info: Inspected, max_side: int) -> tuple[int, int]:
    """The working picture's size in the stored grid's axes (not yet oriented)."""
    uw, uh = upright_size(info.stored_width, info.stored_height, info.orientation)
    scale = min(1.0, max_side / max(uw, uh))
    return max(1, round(info.stored_width * scale)), max(1, round(info.stored_height * scale))


def load_work_image(source: Path | IO[bytes], info: Inspected, max_side: int) -> np.ndarray:
    """Decodes the whole file (so truncation is caught) into the upright working picture.

    JPEGs decode straight at a reduced scale (``draft``), which keeps a 50 MP upload to a
    fraction of the memory and time.
    """
    tw, th = work_size(info, max_side)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                if img.format == "JPEG":
                    img.draft("RGB", (tw, th))
                img.load()
                rgb = _to_rgb(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:
        raise UploadError(400, "invalid_image",
                          f"The image is damaged or truncated: {exc}") from None
    if rgb.size != (tw, th):
        rgb = rgb.resize((tw, th), Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.ascontiguousarray(to_upright(np.asarray(rgb), info.orientation))


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # 16-bit greyscale (TIFF): keep the high byte rather than clipping at 255.
        arr = np.asarray(img, dtype=np.uint32) >> 8
        return Image.fromarray(arr.clip(0, 255).astype(np.uint8)).convert("RGB")
    if img.mode in ("RGBA", "LA", "P", "PA"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, img).convert("RGB")
    return img.convert("RGB")


def read_work_image(photo: Photo) -> np.ndarray:
    """The photo's upright working picture, (H, W, 3) uint8 RGB.

    Made from the original, exactly as the upload made it (same decoder, same scaling), at
    the size stored with the photo. Keeping it on disk instead cost 9 MB a photo whatever the
    upload's size; making it again costs the worker one decode per encode (a 12 MP JPEG
    decodes at reduced scale in a fraction of the encode's time). Photos stored by earlier
    versions keep their file, which is read as it is. The bytes come from the storage (on
    several hosts, not the one that took the upload) and are decoded in memory.
    """
    if storage.exists(photo.work_name):
        with storage.opened(photo.work_name) as handle:
            return np.asarray(np.load(handle, allow_pickle=False))
    if storage.exists(photo.legacy_work_name):
        with storage.opened(photo.legacy_work_name) as handle:
            return np.asarray(Image.open(handle).convert("RGB"))
    info = Inspected(photo.format, photo.stored_width, photo.stored_height, photo.orientation)
    with storage.opened(photo.original_name) as handle:
        work = load_work_image(handle, info, max(photo.work_width, photo.work_height))
    if work.shape[:2] != (photo.work_height, photo.work_width):  # a rounding at another size
        work = np.asarray(Image.fromarray(work).resize((photo.work_width, photo.work_height),
                                                       Image.Resampling.LANCZOS))
    return work


def read_stored_image(photo: Photo) -> np.ndarray | None:
    """The photo at full resolution in its stored grid (no EXIF turn), (H, W, 3) uint8 RGB;
    None when the original cannot be read (downloads then scale the mask up unguided)."""
    try:
        with storage.opened(photo.original_name) as handle, Image.open(handle) as img:
            img.load()
            rgb = np.asarray(_to_rgb(img))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return None
    if rgb.shape[:2] != (photo.stored_height, photo.stored_width):
        return None
    return np.ascontiguousarray(rgb)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def ingest(upload: IO[bytes], name: str | None, size: int | None) -> Photo:
    """Validates and stores one upload; returns the (possibly already existing) Photo.

    Raises :class:`UploadError` and stores nothing when the file is refused.
    """
    if size is not None and size > settings.MAX_UPLOAD_BYTES:
        raise UploadError(413, "too_large", f"The file is {size:,} bytes; at most "
                          f"{settings.MAX_UPLOAD_BYTES:,} are accepted.")
    Image.MAX_IMAGE_PIXELS = settings.MAX_IMAGE_PIXELS  # PIL's own bomb check, same limit
    media = Path(settings.MEDIA_ROOT)
    media.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".upload-", dir=media))
    try:
        raw = staging / "upload"
        written = 0
        with raw.open("wb") as out:
            for block in iter(lambda: upload.read(1 << 20), b""):
                written += len(block)
                if written > settings.MAX_UPLOAD_BYTES:
                    raise UploadError(413, "too_large", "The file is larger than "
                                      f"{settings.MAX_UPLOAD_BYTES:,} bytes.")
                out.write(block)
        sha = sha256_of(raw)
        existing = Photo.objects.filter(sha256=sha).first()
        if existing is not None and existing.has_work_image():
            return existing
        info = inspect_header(raw)
        check_work_size(*work_size(info, settings.WORK_MAX_SIDE))
        work = load_work_image(raw, info, settings.WORK_MAX_SIDE)
        preview = staging / "preview.jpg"
        Image.fromarray(work).save(preview, quality=90)
        photo = Photo(sha256=sha, name=safe_name(name), format=info.format,
                      byte_size=written, stored_width=info.stored_width,
                      stored_height=info.stored_height, orientation=info.orientation,
                      work_width=work.shape[1], work_height=work.shape[0])
        photo.disk_bytes = raw.stat().st_size + preview.stat().st_size
        _store_files(photo, {photo.preview_name: preview, photo.original_name: raw})
        try:
            with transaction.atomic():
                photo.save()
        except IntegrityError:  # the same photo uploaded at the same moment by someone else
            return Photo.objects.get(sha256=sha)
        return photo
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _store_files(photo: Photo, files: dict[str, Path]) -> None:
    """Copies the checked files into the storage, the original last (its presence is what
    makes a stored photo usable: Photo.has_work_image). A failure removes what was stored,
    unless a row of the same photo (the same bytes) uses the files meanwhile."""
    try:
        for name, path in files.items():
            with path.open("rb") as handle:
                storage.save(name, handle)
    except BaseException:
        if not Photo.objects.filter(sha256=photo.sha256).exists():
            storage.delete(files)
        raise
