"""`python manage.py models list|install ...`: the engine's own command line, unchanged."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Manage segmentation models (list, install): see `manage.py models --help`."

    def run_from_argv(self, argv: list[str]) -> None:
        # Everything after `models` goes to the engine's parser untouched.
        from maskweb.segment.cli import main

        code = main(argv[2:])
        if code:
            raise SystemExit(code)

    def handle(self, *args: Any, **options: Any) -> None:  # pragma: no cover - not reached
        raise CommandError("use: manage.py models ...")
