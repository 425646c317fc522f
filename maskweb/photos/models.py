"""A photo as uploaded, once per content: the same bytes uploaded twice share one row."""

from __future__ import annotations

from django.db import models

from maskweb.photos import storage


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
    # What its files take in the storage (original, preview; a working picture if kept):
    # the per-client quota.
    disk_bytes = models.BigIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.sha256[:12]})"

    # Its files are kept through Django's storage API (maskweb.photos.storage) under these
    # names: the local layout MEDIA_ROOT/ab/abcd.../ of earlier versions, or keys in a bucket.
    @property
    def folder(self) -> str:
        return f"{self.sha256[:2]}/{self.sha256}"

    @property
    def original_name(self) -> str:
        return f"{self.folder}/original.{self.format.lower()}"

    @property
    def preview_name(self) -> str:
        """The working picture as a JPEG for the page (smaller to send)."""
        return f"{self.folder}/preview.jpg"

    @property
    def work_name(self) -> str:
        """The upright working picture as raw RGB (.npy), as photos uploaded before
        2026-12 kept it: 9 MB for a 2048 px photo whatever the upload's size (700 times a
        12.8 KB PNG). Newer photos keep no working picture: it is made from the original
        when it is encoded (maskweb.photos.ingest.read_work_image)."""
        return f"{self.folder}/work.npy"

    @property
    def legacy_work_name(self) -> str:
        """The working picture of photos stored before work.npy (a PNG)."""
        return f"{self.folder}/work.png"

    @property
    def file_names(self) -> list[str]:
        return [self.original_name, self.preview_name, self.work_name, self.legacy_work_name]

    def has_work_image(self) -> bool:
        """Whether the upright working picture can be made: its original is stored."""
        return any(storage.exists(name) for name in
                   (self.original_name, self.work_name, self.legacy_work_name))

    def measure_disk(self) -> int:
        """The bytes its files take now."""
        return storage.size_of(self.file_names)

    @property
    def upright_width(self) -> int:
        return self.stored_height if self.orientation >= 5 else self.stored_width

    @property
    def upright_height(self) -> int:
        return self.stored_width if self.orientation >= 5 else self.stored_height
