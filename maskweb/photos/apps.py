from django.apps import AppConfig


class PhotosConfig(AppConfig):
    name = "maskweb.photos"
    label = "photos"
    verbose_name = "Uploaded photos"
