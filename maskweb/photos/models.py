"""A photo as uploaded, once per content: the same bytes uploaded twice share one row."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db import models


class Photo(models.Model):
    sha256 = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=255, help_text="file name as uploaded, sanitised")
    format = models.CharField(max_length=16, help_text="PIL format: JPEG, PNG, WEBP, TIFF")
    byte_size = models.BigIntegerField()
    # The stored pixel grid (what darktable's XMP coordinates refer to) and EXIF orientation.
    stored_width = models.PositiveIntegerField()
    stored_height = models.PositiveIntegerField()
    orientation = models.PositiveSmallIntegerField(default=1)
    # The upright working picture (long side <= WORK_MAX_SIDE) that is encoded and shown.
    work_width = models.PositiveIntegerField()
    work_height = models.PositiveIntegerField()
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.sha256[:12]})"

    @property
    def directory(self) -> Path:
        return Path(settings.MEDIA_ROOT) / self.sha256[:2] / self.sha256

    @property
    def original_path(self) -> Path:
        return self.directory / f"original.{self.format.lower()}"

    @property
    def work_path(self) -> Path:
        """The upright working picture, raw RGB in NumPy's .npy format: lossless, so every
        process encodes the same pixels, and quick both ways (a 2048 px photo: 15 ms to write,
        1 ms to read, where a PNG took 430 ms and 90 ms and saved only a fifth of the bytes)."""
        return self.directory / "work.npy"

    @property
    def legacy_work_path(self) -> Path:
        """The working picture of photos stored before work.npy (a PNG)."""
        return self.directory / "work.png"

    def has_work_image(self) -> bool:
        return self.work_path.exists() or self.legacy_work_path.exists()

    @property
    def preview_path(self) -> Path:
        """The same picture as a JPEG for the page (smaller to send)."""
        return self.directory / "preview.jpg"

    @property
    def upright_width(self) -> int:
        return self.stored_height if self.orientation >= 5 else self.stored_width

    @property
    def upright_height(self) -> int:
        return self.stored_width if self.orientation >= 5 else self.stored_height
