"""A masking session (share tokens, model, encode status) and its objects with their prompt logs.

Everything a user did lives here, so a reload, a restart of any process or a Redis flush loses
nothing: Redis only holds what can be recomputed (embeddings, recent mask frames).
"""

from __future__ import annotations

import secrets

from django.db import models
from django.utils import timezone

from maskweb.photos.models import Photo


def new_token() -> str:
    return secrets.token_urlsafe(24)  # 192 bits


class Status(models.TextChoices):
    ENCODING = "encoding"
    READY = "ready"
    FAILED = "failed"


class MaskSession(models.Model):
    photo = models.ForeignKey(Photo, on_delete=models.PROTECT, related_name="sessions")
    edit_token = models.CharField(max_length=64, unique=True, default=new_token)
    view_token = models.CharField(max_length=64, unique=True, default=new_token)
    # The file name this uploader used (the Photo row is shared by everyone who uploaded the
    # same bytes): downloads and the XMP sidecar are named after it.
    photo_name = models.CharField(max_length=255, default="photo")
    model_id = models.CharField(max_length=128)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ENCODING)
    progress = models.FloatField(default=0.0)
    message = models.CharField(max_length=500, blank=True, default="")
    # Bumped by every change a client can see; mask frames carry it as ``seq`` so a page
    # drops a frame older than one it has drawn.
    revision = models.PositiveBigIntegerField(default=0)
    current = models.ForeignKey("MaskObject", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="+")
    # The photo's existing darktable XMP as uploaded, merged on export: the name of a file in
    # the storage (maskweb.masking.editing.sidecars), empty when none was uploaded.
    sidecar_file = models.CharField(max_length=255, blank=True, default="")
    # The uploaded sidecar's file name and size, for the pages.
    sidecar_name = models.CharField(max_length=255, blank=True, default="",
                                    help_text="the uploaded sidecar's file name, for the pages")
    sidecar_bytes = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    # Who uploaded it, as maskweb.masking.editing.limits.client_key (a keyed hash of the
    # address, not the address): the per-client disk quota counts the photos of these sessions.
    client = models.CharField(max_length=32, blank=True, default="", db_index=True)
    # Last opened or changed (to within ACTIVE_PRECISION): idle sessions expire
    # (maskweb.masking.editing.retention).
    last_active = models.DateTimeField(default=timezone.now, db_index=True)
    # How many of its SessionChange rows are in effect (undoable) and undone (redoable): every
    # mask frame says whether undo / redo can do anything, without a query for it.
    changes_done = models.PositiveIntegerField(default=0)
    changes_undone = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"session {self.pk} on {self.photo}"


class MaskObject(models.Model):
    """One object of the photo. ``actions[:cursor]`` is in effect; the rest is the redo tail.

    An action is ``{"op": "prompt", "prompt": {...}}`` or ``{"op": "clear"}``; prompts are in
    the photo's *stored* pixel grid (full resolution), as the XMP needs. ``"rev"``: the
    session revision the action made, which orders it against the session's other changes
    (SessionChange) for undo; actions stored before it existed count as older than any.
    """

    session = models.ForeignKey(MaskSession, on_delete=models.CASCADE, related_name="mask_objects")
    number = models.PositiveIntegerField()
    name = models.CharField(max_length=100)
    visible = models.BooleanField(default=True)
    # The overlay colour the pages draw it in, "#rrggbb"; "" for the page's own palette.
    colour = models.CharField(max_length=7, blank=True, default="")
    applied = models.BooleanField(default=False)
    actions = models.JSONField(default=list)
    cursor = models.PositiveIntegerField(default=0)
    candidate = models.PositiveSmallIntegerField(default=0)
    # The applied mask, upright at the photo's work size, 8-bit PNG: downloads need no model.
    mask_png = models.BinaryField(null=True, blank=True)
    area = models.PositiveBigIntegerField(default=0, help_text="pixels in the stored grid")
    # For an object made by combining others (maskweb.masking.editing.combine): the operation and
    # each operand's own mask, so its downloads combine the operands' full-resolution masks exactly
    # and its XMP keeps their shapes, whatever happens to those objects afterwards.
    recipe = models.JSONField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["session", "number"],
                                               name="object_number_unique_per_session")]

    def __str__(self) -> str:
        return f"{self.name} (session {self.session_id})"

    def effective_prompts(self) -> list[dict]:
        prompts: list[dict] = []
        for action in self.actions[: self.cursor]:
            if action["op"] == "clear":
                prompts = []
            else:
                prompts.append(action["prompt"])
        return prompts

    @property
    def can_undo(self) -> bool:
        return self.cursor > 0

    @property
    def can_redo(self) -> bool:
        return self.cursor < len(self.actions)


class SessionChange(models.Model):
    """One undoable change to a session's objects (apply, delete, rename, visibility, reopen,
    combine): what maskweb.masking.editing.history needs to take it back and to make it again.

    The current object's prompt log has its own undo; ``revision`` (the session revision the
    change made) orders the two, so undo always takes back the newest change of either kind.
    """

    session = models.ForeignKey(MaskSession, on_delete=models.CASCADE, related_name="changes")
    revision = models.PositiveBigIntegerField()
    op = models.CharField(max_length=16)
    data = models.JSONField(default=dict)
    # A deleted object's applied mask (PNG), so that undoing the delete brings it back as it was.
    mask_png = models.BinaryField(null=True, blank=True)
    undone = models.BooleanField(default=False)

    class Meta:
        ordering = ["revision"]
        indexes = [models.Index(fields=["session", "undone", "revision"])]

    def __str__(self) -> str:
        return f"{self.op} at revision {self.revision} of session {self.session_id}"
