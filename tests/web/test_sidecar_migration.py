"""Migration 0008 moves the sidecars that sessions kept in a database column into the storage,
and back when it is undone: a sidecar uploaded before the storage API is still merged."""

from __future__ import annotations

import io

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from maskweb.masking.models import MaskSession
from maskweb.photos import storage
from maskweb.photos.ingest import ingest
from tests.web.client import two_tone_photo

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("masking", "0007_object_recipe")]
AFTER = [("masking", "0008_sidecar_in_storage")]
SIDECAR = b"<?xml version='1.0'?><x:xmpmeta xmlns:x='adobe:ns:meta/'></x:xmpmeta>"


def migrate(targets: list[tuple[str, str]]) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()
    return executor


def test_sidecars_in_the_database_move_into_the_storage_and_back():
    data = two_tone_photo(seed=40)
    photo = ingest(io.BytesIO(data), "a.png", len(data))
    old_apps = migrate(BEFORE).loader.project_state(BEFORE).apps
    OldSession = old_apps.get_model("masking", "MaskSession")
    with_sidecar = OldSession.objects.create(photo_id=photo.pk, model_id="grabcut",
                                             sidecar=SIDECAR)
    without = OldSession.objects.create(photo_id=photo.pk, model_id="grabcut")

    migrate(AFTER)
    moved = MaskSession.objects.get(pk=with_sidecar.pk)
    assert moved.sidecar_file.startswith(f"sidecars/{moved.pk}/")
    assert storage.read(moved.sidecar_file) == SIDECAR
    assert moved.sidecar_bytes == len(SIDECAR)
    assert MaskSession.objects.get(pk=without.pk).sidecar_file == ""

    back_apps = migrate(BEFORE).loader.project_state(BEFORE).apps
    back = back_apps.get_model("masking", "MaskSession").objects.get(pk=with_sidecar.pk)
    assert bytes(back.sidecar) == SIDECAR
    migrate(AFTER)  # the test database as the other tests expect it
