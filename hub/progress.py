"""What a person sees of a transfer: progress bars and byte counts in binary units.

Bars are tqdm's, on stderr, and quiet when the caller says so, when ``YOLOHUB_PROGRESS=0``, or
(``auto``) when stderr is not a terminal.
"""

from __future__ import annotations

import sys

from hub.settings import Settings


def show_progress(settings: Settings, progress: bool | None) -> bool:
    """Progress bars: off when the caller says so, else ``YOLOHUB_PROGRESS`` (auto = TTY)."""
    if progress is False or settings.progress == "off":
        return False
    if settings.progress == "on":
        return True
    return sys.stderr.isatty()


def progress_bar(settings: Settings, progress: bool | None, *, total: int | None, initial: int,
                 label: str):
    """A byte-counting tqdm bar (a context manager), disabled per :func:`show_progress`."""
    from tqdm import tqdm

    return tqdm(
        total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024,
        desc=label, disable=not show_progress(settings, progress),
        dynamic_ncols=True, leave=False,
    )


def human_bytes(n: float) -> str:
    """``n`` bytes as ``512 B``, ``1.5 KiB``, ... ``2.0 TiB``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
