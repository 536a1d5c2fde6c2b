"""COCO category-id mapping between the 80 contiguous training classes and the 91 official ids."""

from __future__ import annotations

# Index = contiguous class (0..79), value = official COCO category id (1..90, with gaps).
COCO80_TO_91: tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28,
    31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55,
    56, 57, 58, 59, 60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84,
    85, 86, 87, 88, 89, 90,
)  # fmt: skip

COCO91_TO_80: dict[int, int] = {cid: i for i, cid in enumerate(COCO80_TO_91)}


def coco80_to_91(index: int) -> int:
    """Official COCO category id of contiguous class ``index`` (0..79)."""
    return COCO80_TO_91[index]


def coco91_to_80(category_id: int) -> int:
    """Contiguous class (0..79) of an official COCO category id; KeyError for the 11 unused ids."""
    return COCO91_TO_80[category_id]
