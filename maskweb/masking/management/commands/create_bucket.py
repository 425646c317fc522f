"""`python manage.py create_bucket`: creates MASKWEB_S3_BUCKET if it does not exist yet.

For a fresh object store (docker-compose's SeaweedFS runs it once before the web replicas
start). Does nothing, and says so, when the files are kept in the local folder.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

from maskweb.photos import storage


class Command(BaseCommand):
    help = "Create the S3 bucket of MASKWEB_S3_BUCKET if it is missing."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.S3_BUCKET:
            self.stdout.write("MASKWEB_S3_BUCKET is not set: files go to the local folder "
                              f"{settings.MEDIA_ROOT}; nothing to create")
            return
        created = storage.ensure_bucket()
        self.stdout.write(f"bucket {settings.S3_BUCKET}: {'created' if created else 'exists'}")
