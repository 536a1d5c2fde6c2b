"""Opening image files safely: every reader (predict, eval, training) goes through here.

An image is refused before its pixels are decoded when its header declares more than
:data:`MAX_IMAGE_PIXELS` pixels, so a file of a few bytes that claims 20000 x 20000 pixels (a
"decompression bomb") costs a header read, not gigabytes of memory, and ends in an
:class:`~yolomodels.errors.ImageReadError` that names the file and the numbers.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from yolomodels.errors import ImageReadError

# 100 megapixels: a 12000 x 8000 photo; decoded as RGB about 300 MB.  Detectors see 640 px.
MAX_IMAGE_PIXELS = 100_000_000


def too_large(path, w: int | None, h: int | None, pixels: int | None) -> ImageReadError:
    """The error for an image whose header declares more than :data:`MAX_IMAGE_PIXELS`."""
    dims = f"{w} x {h} pixels ({pixels / 1e6:.0f} megapixels)" if w and h else (
        f"{pixels / 1e6:.0f} megapixels" if pixels else "more pixels than Pillow allows"
    )
    return ImageReadError(
        f"image {path} declares {dims}, more than the {MAX_IMAGE_PIXELS // 1_000_000}-megapixel "
        "limit; it is refused before decoding (a file this size claiming so many pixels may be a "
        "decompression bomb). Resize it below the limit first",
        path=str(path),
    )


@contextlib.contextmanager
def open_image(path: str | os.PathLike) -> Iterator[Image.Image]:
    """``PIL.Image.open`` with the size limit checked from the header, before any decoding.

    Raises :class:`ImageReadError` for a missing file, a format Pillow does not know, a header
    declaring zero or too many pixels, and (on use) truncated or corrupt pixel data.
    """
    path = Path(path)
    try:
        with warnings.catch_warnings():
            # our limit is checked below; Pillow's own warning would only repeat it
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except FileNotFoundError:
        raise ImageReadError(f"image {path} does not exist", path=str(path)) from None
    except Image.DecompressionBombError as exc:
        m = re.search(r"\((\d+) pixels\)", str(exc))
        raise too_large(path, None, None, int(m.group(1)) if m else None) from None
    except UnidentifiedImageError:
        raise ImageReadError(
            f"image {path} is not an image Pillow can read ({_size(path)} bytes of an unknown "
            "format); expected JPEG, PNG, BMP, WebP, TIFF or GIF",
            path=str(path),
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"image {path} cannot be read: {exc}", path=str(path)) from None
    with im:
        w, h = im.size
        if w * h > MAX_IMAGE_PIXELS:
            raise too_large(path, w, h, w * h)
        if w < 1 or h < 1:
            raise ImageReadError(f"image {path} declares {w} x {h} pixels", path=str(path))
        try:
            yield im
        except ImageReadError:
            raise
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise ImageReadError(
                f"image {path} cannot be decoded ({exc}); the file is probably truncated or "
                "corrupt",
                path=str(path),
            ) from None


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) from the header, with the checks of :func:`open_image` (no decoding)."""
    with open_image(path) as im:
        return im.size


def read_rgb(path: str | os.PathLike) -> Image.Image:
    """The decoded image converted to RGB (a new image; the file is closed)."""
    with open_image(path) as im:
        return im.convert("RGB")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
