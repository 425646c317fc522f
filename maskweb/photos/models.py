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
    # What its files take on disk (original, working picture, preview): the per-client quota.
    disk_bytes = models.BigIntegerField(default=0)
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
        """The upright working picture as raw RGB (.npy), as photos uploaded before
        2026-12 kept it: 9 MB for a 2048 px photo whatever the upload's size (700 times a
        12.8 KB PNG). Newer photos keep no working picture: it is made from the original
        when it is encoded (maskweb.photos.ingest.read_work_image)."""
        return self.directory / "work.npy"

    @property
    def legacy_work_path(self) -> Path:
        """The working picture of photos stored before work.npy (a PNG)."""
        return self.directory / "work.png"

    def has_work_image(self) -> bool:
        """Whether the upright working picture can be made: its original is stored."""
        return self.original_path.exists() or self.work_path.exists() \
            or self.legacy_work_path.exists()

    def measure_disk(self) -> int:
        """The bytes its files take now."""
        try:
            return sum(p.stat().st_size for p in self.directory.iterdir() if p.is_file())
        except FileNotFoundError:
            return 0

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
