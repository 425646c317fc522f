"""Full-resolution crops of a photo, upright, for the page's true 100 % view.

The page shows the working picture (at most MASKWEB_WORK_MAX_SIDE on its long side): on a
24 MP photo, "100 %" was that picture enlarged three times. Zoomed in past the working
picture's own scale, the page asks for the visible region of the original instead. Decoding
a large JPEG costs a good part of a second, and a page pans and zooms around one photo, so
the last photos decoded are kept in memory (a few, as upright RGB arrays).
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict

import numpy as np
from PIL import Image

from maskweb.photos.ingest import read_stored_image
from maskweb.photos.models import Photo
from maskweb.segment.orientation import to_upright

#: The largest side of a crop: past it the working picture shows as much detail on a screen.
MAX_SIDE = 2048
#: Decoded originals kept (24 MP is 72 MB as RGB).
KEEP = 2
JPEG_QUALITY = 92

_lock = threading.Lock()
_kept: OrderedDict[str, np.ndarray] = OrderedDict()


class CropError(ValueError):
    """A region outside the photo, empty or too large; or an unreadable original."""


def upright_original(photo: Photo) -> np.ndarray:
    """The photo at full resolution, upright (as the page shows it), (H, W, 3) uint8."""
    with _lock:
        found = _kept.get(photo.sha256)
        if found is not None:
            _kept.move_to_end(photo.sha256)
            return found
    stored = read_stored_image(photo)
    if stored is None:
        raise CropError("The original of this photo cannot be read.")
    upright = np.ascontiguousarray(to_upright(stored, photo.orientation))
    with _lock:
        _kept[photo.sha256] = upright
        while len(_kept) > KEEP:
            _kept.popitem(last=False)
    return upright


def check_region(photo: Photo, x: int, y: int, w: int, h: int) -> None:
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > photo.upright_width \
            or y + h > photo.upright_height:
        raise CropError(f"the region must lie within the photo "
                        f"({photo.upright_width} x {photo.upright_height}), with a size")
    if w > MAX_SIDE or h > MAX_SIDE:
        raise CropError(f"a crop is at most {MAX_SIDE} pixels a side")


def crop_jpeg(photo: Photo, x: int, y: int, w: int, h: int) -> bytes:
    """The upright full-resolution region [x, x+w) x [y, y+h) as a JPEG."""
    check_region(photo, x, y, w, h)
    region = upright_original(photo)[y:y + h, x:x + w]
    buf = io.BytesIO()
    # 4:4:4: at 100 % the colour of each pixel is what is being looked at.
    Image.fromarray(region).save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0)
    return buf.getvalue()
