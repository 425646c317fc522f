"""Uploaded sidecars move from a database column into the storage (maskweb.masking.sidecars),
beside the photos: a database row no longer carries up to 4 MB of XMP, and every host reads
them from the same place."""

import hashlib

from django.db import migrations, models


def move_to_storage(apps, schema_editor):
    from maskweb.photos import storage

    MaskSession = apps.get_model("masking", "MaskSession")
    for session in MaskSession.objects.exclude(sidecar=None).iterator():
        data = bytes(session.sidecar)
        if not data:
            continue
        # The same name as maskweb.masking.sidecars.name_for (kept here: a migration must not
        # change when the app's code does).
        name = (f"sidecars/{session.pk}/"
                f"{hashlib.blake2b(data, digest_size=16).hexdigest()}.xmp")
        storage.save_bytes(name, data)
        MaskSession.objects.filter(pk=session.pk).update(sidecar_file=name,
                                                         sidecar_bytes=len(data))


def back_to_database(apps, schema_editor):
    from maskweb.photos import storage

    MaskSession = apps.get_model("masking", "MaskSession")
    for session in MaskSession.objects.exclude(sidecar_file="").iterator():
        MaskSession.objects.filter(pk=session.pk).update(
            sidecar=storage.read(session.sidecar_file))


class Migration(migrations.Migration):

    dependencies = [
        ("masking", "0007_object_recipe"),
    ]

    operations = [
        migrations.AddField(
            model_name="masksession",
            name="sidecar_file",
            field=models.CharField(blank=True, default="", max_length=255),
        ),
        migrations.AddField(
            model_name="masksession",
            name="sidecar_bytes",
            field=models.PositiveIntegerField(default=0),
        ),
        migrations.RunPython(move_to_storage, back_to_database),
        migrations.RemoveField(
            model_name="masksession",
            name="sidecar",
        ),
    ]
