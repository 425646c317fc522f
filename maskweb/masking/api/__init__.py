"""The HTTP edge: the JSON API under /api/v1 (its OpenAPI document included), the two pages,
the downloads (made once per object revision and settings, a bounded number at a time), and
JSON errors for whatever Django itself answers on an API path. Thin: it parses a request,
resolves its link, calls the session domain (maskweb.masking.editing) and shapes the answer.
"""
