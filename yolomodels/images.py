"""Image files in, RGB pixels out: the one image reader of yolomodels and the hub.

Every reader goes through here — evaluation, prediction, dataset checks and training — so they
share two rules:

* **the pixel limit**: an image whose header declares more than :data:`MAX_IMAGE_PIXELS` is
  refused from the header, before its pixels are decoded.  A file of a few bytes claiming
  20000 x 20000 pixels (a "decompression bomb") then costs a header read, not gigabytes;
* **MindYOLO's decoding**: :func:`read_image` decodes with OpenCV (``IMREAD_COLOR``: 3 channels,
  EXIF orientation applied), as MindYOLO's data loader does, so evaluation and prediction see the
  same pixels as MindYOLO and as each other.  Formats OpenCV cannot decode (GIF) fall back to
  Pillow.

:func:`open_image` / :func:`image_size` read headers only (Pillow); :func:`read_rgb` gives the
training pipeline a Pillow image to resize.  Every failure is an
:class:`~yolomodels.errors.ImageReadError` naming the file and saying why.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from yolomodels.errors import ImageReadError

__all__ = [
    "MAX_IMAGE_PIXELS",
    "decode_image",
    "image_size",
    "open_image",
    "read_image",
    "read_rgb",
    "too_large",
]

# 100 megapixels: a 12000 x 8000 photo; decoded as RGB about 300 MB.  Detectors see 640 px.
MAX_IMAGE_PIXELS = 100_000_000

_FORMATS = "JPEG, PNG, BMP, WebP, TIFF or GIF"
_CORRUPT = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def too_large(name, w: int | None, h: int | None, pixels: int | None) -> ImageReadError:
    """The error for an image (``name``: "image <path>" or a label) over :data:`MAX_IMAGE_PIXELS`."""
    dims = f"{w} x {h} pixels ({pixels / 1e6:.0f} megapixels)" if w and h else (
        f"{pixels / 1e6:.0f} megapixels" if pixels else "more pixels than Pillow allows"
    )
    return ImageReadError(
        f"{name} declares {dims}, more than the {MAX_IMAGE_PIXELS // 1_000_000}-megapixel "
        "limit; it is refused before decoding (a file this size claiming so many pixels may be a "
        "decompression bomb). Resize it below the limit first",
        path=_path_of(name),
    )


@contextlib.contextmanager
def _checked(source: str | os.PathLike | BinaryIO, name: str, size: int) -> Iterator[Image.Image]:
    """Pillow's lazy open of ``source`` with the header checks; errors name ``name``."""
    try:
        with warnings.catch_warnings():
            # the limit is checked below; Pillow's own warning would only repeat it
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(source)
    except FileNotFoundError:
        raise ImageReadError(f"{name} does not exist", path=_path_of(name)) from None
    except Image.DecompressionBombError as exc:
        m = re.search(r"\((\d+) pixels\)", str(exc))
        raise too_large(name, None, None, int(m.group(1)) if m else None) from None
    except UnidentifiedImageError:
        raise ImageReadError(
            f"{name} is not an image Pillow can read ({size} bytes of an unknown format); "
            f"expected {_FORMATS}",
            path=_path_of(name),
        ) from None
    except _CORRUPT as exc:
        raise _corrupt(name, exc) from None
    with im:
        w, h = im.size
        if w * h > MAX_IMAGE_PIXELS:
            raise too_large(name, w, h, w * h)
        if w < 1 or h < 1:
            raise ImageReadError(f"{name} declares {w} x {h} pixels", path=_path_of(name))
        try:
            yield im
        except ImageReadError:
            raise
        except _CORRUPT as exc:
            raise _corrupt(name, exc) from None


def open_image(path: str | os.PathLike) -> contextlib.AbstractContextManager[Image.Image]:
    """``PIL.Image.open`` with the size limit checked from the header, before any decoding.

    Raises :class:`ImageReadError` for a missing file, a format Pillow does not know, a header
    declaring zero or too many pixels, and (on use) truncated or corrupt pixel data.
    """
    path = Path(path)
    return _checked(path, f"image {path}", _file_size(path))


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) from the header, with the checks of :func:`open_image` (no decoding)."""
    with open_image(path) as im:
        return im.size


def read_rgb(path: str | os.PathLike) -> Image.Image:
    """The decoded image converted to RGB as a Pillow image (a new image; the file is closed)."""
    with open_image(path) as im:
        return im.convert("RGB")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """The image file ``path`` as an (H, W, 3) uint8 RGB array, decoded as MindYOLO decodes it.

    Raises :class:`ImageReadError` saying why when the file is missing, empty, over the pixel
    limit or not an image.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(f"image {path} does not exist", path=str(path)) from None
    except OSError as exc:
        raise ImageReadError(f"image {path} cannot be read: {exc}", path=str(path)) from None
    return decode_image(data, name=f"image {path}")


def decode_image(data: bytes, *, name: str = "image") -> np.ndarray:
    """Encoded image bytes as an (H, W, 3) uint8 RGB array (see :func:`read_image`).

    The header is checked first (cheap): OpenCV would spend seconds and gigabytes on a garbage
    header declaring a huge image.  Error messages start with ``name``.
    """
    if not data:
        raise ImageReadError(f"{name} cannot be read: the file is empty (0 bytes)")
    with _checked(io.BytesIO(data), name, len(data)):
        pass
    import cv2

    level = cv2.getLogLevel()
    cv2.setLogLevel(0)  # silent: a broken file is reported once, by the error below
    try:
        bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    finally:
        cv2.setLogLevel(level)
    if bgr is not None:
        return np.ascontiguousarray(bgr[:, :, ::-1])
    # Formats OpenCV lacks (GIF), or files it gives up on: Pillow decodes or says why not.
    with _checked(io.BytesIO(data), name, len(data)) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def _corrupt(name: str, exc: BaseException) -> ImageReadError:
    return ImageReadError(
        f"{name} cannot be decoded ({exc}); the file is probably truncated or corrupt",
        path=_path_of(name),
    )


def _path_of(name) -> str:
    text = str(name)
    return text[len("image "):] if text.startswith("image ") else text


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
