"""The OpenAPI 3.1 document of the HTTP API, written by hand (filled in below)."""

from __future__ import annotations

from typing import Any


def openapi_document() -> dict[str, Any]:
    return {"openapi": "3.1.0", "info": {"title": "maskweb", "version": "1"}, "paths": {}}
