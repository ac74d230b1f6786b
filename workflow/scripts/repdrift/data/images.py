"""Image loading with one clear error for a missing, empty, truncated or corrupt file.

PIL decodes lazily, so ``Image.open`` alone accepts a truncated file; ``load()`` forces the decode and raises.
A PNG cut after its pixel data still decodes, so PNGs are also ``verify()``-ed (chunk CRCs up to IEND; cheap).
This relies on ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` staying False (PIL's default): nothing in repdrift sets it,
because a silently grey-padded image would bias features without anyone noticing.
"""

from __future__ import annotations

import os
import warnings

from PIL import Image

from repdrift.errors import DataError


def _fail(path, reason: str) -> DataError:
    return DataError(f"{path}: cannot read image ({reason}); expected a readable PNG/JPEG image file")


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open, fully decode and convert to RGB (greyscale X-rays and palette PNGs included)."""
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise _fail(path, e.strerror or "not found") from None
    if size == 0:
        raise _fail(path, "empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.format != "PNG":
                    im.load()
                    return im.convert("RGB")
                im.verify()  # leaves im unusable: decode from a fresh handle below
            with Image.open(path) as im:
                im.load()
                return im.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        # OSError covers "image file is truncated" and UnidentifiedImageError; PIL raises SyntaxError for
        # some broken PNG chunks.
        raise _fail(path, str(e) or type(e).__name__) from None
