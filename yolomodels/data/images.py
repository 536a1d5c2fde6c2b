"""Moved: the pixel limit and the safe opener live in :mod:`yolomodels.images`, the one image
reader.  These names stay importable from here for existing callers."""

from __future__ import annotations

from yolomodels.images import MAX_IMAGE_PIXELS, image_size, open_image, read_rgb, too_large

__all__ = ["MAX_IMAGE_PIXELS", "image_size", "open_image", "read_rgb", "too_large"]
