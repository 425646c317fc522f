"""`python manage.py cleanup`: the periodic clean-up once, now (for cron, or by hand).

`manage.py serve` runs it every MASKWEB_CLEANUP_INTERVAL seconds already (Celery beat in its
worker); see maskweb.masking.editing.retention for what it deletes.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from maskweb.masking.editing import retention


class Command(BaseCommand):
    help = "Delete expired sessions and unused photos, requeue lost encodes (once)."

    def handle(self, *args: Any, **options: Any) -> None:
        report = retention.cleanup()
        self.stdout.write(f"deleted {report.sessions} session(s) and {report.photos} photo(s) "
                          f"({report.bytes / 2**20:.1f} MB), removed {report.staging} stale "
                          f"upload folder(s), queued {len(report.requeued)} lost encode(s) "
                          "again")
