"""The masking app's configuration: its label stays ``masking``, which its migrations carry."""

from django.apps import AppConfig


class MaskingConfig(AppConfig):
    name = "maskweb.masking"
    label = "masking"
    verbose_name = "Masking sessions"

    def ready(self) -> None:
        # The Celery app must be configured in every process that queues a task (web too).
        import maskweb.celery  # noqa: F401
