"""Django settings (minimal placeholder; the web app fills this in from the environment)."""

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "placeholder-overridden-by-the-web-app"  # noqa: S105
DEBUG = False
INSTALLED_APPS: list[str] = []
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = True
