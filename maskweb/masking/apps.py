from django.apps import AppConfig


class MaskingConfig(AppConfig):
    name = "maskweb.masking"
    label = "masking"
    verbose_name = "Masking sessions"
