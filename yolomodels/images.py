"""Image files as RGB arrays, decoded the way MindYOLO's data loader decodes them.

MindYOLO reads every image with OpenCV (``IMREAD_COLOR``: 3 channels, EXIF orientation applied).
Evaluation and prediction both read through :func:`read_image`, so they see the same pixels as
MindYOLO and as each other.  Formats OpenCV cannot decode (GIF) fall back to Pillow.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np

from yolomodels.errors import ImageReadError

__all__ = ["decode_image", "read_image"]


def read_image(path: str | os.PathLike) -> np.ndarray:
    """The image file ``path`` as an (H, W, 3) uint8 RGB array.

    Raises :class:`ImageReadError` saying why when the file is missing, empty or not an image.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(f"image {path} does not exist") from None
    except OSError as exc:
        raise ImageReadError(f"image {path} cannot be read: {exc}") from None
    return decode_image(data, name=str(path))


def decode_image(data: bytes, *, name: str = "image") -> np.ndarray:
    """Encoded image bytes as an (H, W, 3) uint8 RGB array (see :func:`read_image`).

    Pillow reads the header first (cheap): an image declaring more than the pixel limit of
    :mod:`yolomodels.data.images` is refused before decoding, and OpenCV would spend seconds and
    gigabytes on a garbage header that declares a huge image.
    """
    if not data:
        raise ImageReadError(f"{name} cannot be read: the file is empty (0 bytes)")
    _check_header(data, name)
    import cv2

    level = cv2.getLogLevel()
    cv2.setLogLevel(0)  # silent: a broken file is reported once, by the error below
    try:
        bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    finally:
        cv2.setLogLevel(level)
    if bgr is not None:
        return np.ascontiguousarray(bgr[:, :, ::-1])
    return _decode_with_pillow(data, name)


def _check_header(data: bytes, name: str) -> None:
    import io

    from PIL import Image, UnidentifiedImageError

    from yolomodels.data.images import MAX_IMAGE_PIXELS, too_large

    try:
        with warnings.catch_warnings():
            # the limit is checked below; Pillow's own warning would only repeat it
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
    except UnidentifiedImageError:
        raise ImageReadError(
            f"{name} is not an image Pillow can read (found {len(data)} bytes of an unknown "
            "format); pass JPEG, PNG, BMP, WebP, TIFF or GIF files"
        ) from None
    except Image.DecompressionBombError as exc:
        m = re.search(r"\((\d+) pixels\)", str(exc))
        raise too_large(name, None, None, int(m.group(1)) if m else None) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageReadError(
            f"{name} cannot be decoded as an image ({exc}); the file is probably truncated or "
            "corrupt"
        ) from None
    if w * h > MAX_IMAGE_PIXELS:
        raise too_large(name, w, h, w * h)


def _decode_with_pillow(data: bytes, name: str) -> np.ndarray:
    """Formats OpenCV lacks (GIF), or files it gives up on: Pillow decodes or says why not."""
    import io

    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except Image.DecompressionBombError as exc:
        raise ImageReadError(f"{name} is too large to decode safely: {exc}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise ImageReadError(
            f"{name} cannot be decoded as an image ({exc}); the file is probably truncated or "
            "corrupt"
        ) from None
