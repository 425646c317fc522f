"""File names for downloads that every operating system accepts, non-ASCII letters kept.

An object's name is whatever its user typed ("Sky / left", "CON", "写真"): used as a file
name it must lose what Windows, macOS or Linux refuse or misread (path separators, the
characters Windows reserves, control characters, trailing dots and spaces, the device names
CON, NUL, COM1…), and stay under the 255-byte limit of common file systems. Letters of any
script stay: the HTTP layer sends them as RFC 5987's ``filename*``.
"""

from __future__ import annotations

import re
import unicodedata

# Characters Windows refuses in a file name (NTFS and FAT), path separators included.
_RESERVED_CHARS = re.compile(r'[<>:"/\\|?*]')
# Device names Windows reserves, whatever the extension ("con.png" is the console too).
_RESERVED_NAMES = {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$",
                   *(f"COM{i}" for i in "0123456789¹²³"),
                   *(f"LPT{i}" for i in "0123456789¹²³")}
# Bytes of UTF-8 a whole name may take: ext4, APFS and NTFS allow 255 (NTFS counts UTF-16
# units, never more than UTF-8 bytes); some room is left for a browser's " (1)".
MAX_BYTES = 240


def clean_part(text: str) -> str:
    """One part of a name: no separators, reserved or control characters (each becomes
    ``_``), runs of white space as one space, no leading or trailing dots and spaces."""
    text = unicodedata.normalize("NFC", text)
    text = re.sub(r"\s+", " ", text)  # tabs and line breaks are spaces, not "_"
    text = "".join("_" if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c
                   for c in text)
    text = _RESERVED_CHARS.sub("_", text)
    return text.strip(" .")


def _cap(text: str, limit: int) -> str:
    """At most ``limit`` bytes of UTF-8, cut between characters."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit].decode(errors="ignore").rstrip(" .")


def download_name(*parts: str, extension: str, fallback: str = "download") -> str:
    """``part1-part2….extension``, each part cleaned, empty ones dropped; ``fallback`` when
    nothing is left. ``extension`` is trusted (ours: "png", "svg")."""
    cleaned = [p for p in (clean_part(part) for part in parts) if p]
    stem = "-".join(cleaned) or fallback
    stem = _cap(stem, MAX_BYTES - len(extension.encode()) - 1) or fallback
    if stem.split(".")[0].upper().rstrip(" ") in _RESERVED_NAMES:
        stem = f"_{stem}"
    return f"{stem}.{extension}"
