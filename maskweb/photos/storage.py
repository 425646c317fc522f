"""Where the photos' files and the uploaded sidecars are kept: Django's storage API.

The default storage is the local folder MEDIA_ROOT or an S3-compatible bucket
(MASKWEB_S3_BUCKET; settings.STORAGES). Everything that reads or writes those files goes
through here, by name (``ab/abcdef.../original.jpeg``), never by a local path: on several
hosts the worker that encodes a photo is not the web host that took the upload, and they
share no folder. Code that needs pixels reads the bytes and decodes them in memory.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from django.core.files import File
from django.core.files.storage import Storage, default_storage


def storage() -> Storage:
    return default_storage


def save(name: str, content: IO[bytes]) -> None:
    """Stores ``content`` under exactly ``name`` (overwriting: names are content hashes)."""
    saved = storage().save(name, File(content, name=name))
    if saved != name:  # a storage that renames instead of overwriting would lose the file
        storage().delete(saved)
        raise RuntimeError(f"the storage kept {name!r} as {saved!r}: configure it to overwrite")


def save_bytes(name: str, data: bytes) -> None:
    save(name, io.BytesIO(data))


def read(name: str) -> bytes:
    with storage().open(name, "rb") as handle:
        return bytes(handle.read())


@contextlib.contextmanager
def opened(name: str) -> Iterator[IO[bytes]]:
    """The file read into memory, for decoders that seek (PIL): an object store's file reads
    by ranged requests, one per seek."""
    yield io.BytesIO(read(name))


def exists(name: str) -> bool:
    return storage().exists(name)


def size_of(names: Iterable[str]) -> int:
    """The bytes the files of ``names`` that exist take."""
    total = 0
    for name in names:
        with contextlib.suppress(FileNotFoundError, OSError):
            if storage().exists(name):
                total += storage().size(name)
    return total


def delete(names: Iterable[str]) -> None:
    """Deletes the files (missing ones are fine) and, in a local folder, their folders once
    empty (an object store has no folders)."""
    folders: set[Path] = set()
    for name in names:
        storage().delete(name)
        with contextlib.suppress(NotImplementedError):
            folders.add(Path(storage().path(name)).parent)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        for empty in (folder, folder.parent):
            with contextlib.suppress(OSError):  # not empty, or gone
                empty.rmdir()


def ensure_bucket() -> bool:
    """Creates the S3 storage's bucket if it is missing (True then)."""
    import botocore.exceptions

    bucket = storage().bucket  # type: ignore[attr-defined]  # django-storages' S3Storage
    try:
        bucket.meta.client.head_bucket(Bucket=bucket.name)
        return False
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket"):
            raise
    bucket.create()
    return True
