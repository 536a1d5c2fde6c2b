"""Every default and environment variable yolohub reads, in one place, read at call time.

================================  ======================================  =========================
variable                          meaning                                 default
================================  ======================================  =========================
``YOLOHUB_HOME``                  cache root                              ``~/.cache/yolohub``
``YOLOHUB_CARDS``                 extra card sources (dirs, registry URLs) none
``YOLOHUB_REGISTRY_TTL``          seconds a fetched registry index is fresh 300
``YOLOHUB_OFFLINE``               never open a network connection         off
``YOLOHUB_MIRRORS``               host rewrites ``old=new,old2=new2``     none
``YOLOHUB_CONNECT_TIMEOUT``       seconds to establish a connection       10
``YOLOHUB_READ_TIMEOUT``          seconds without a byte before retrying  60
``YOLOHUB_RETRIES``               retries per link after the first try    5
``YOLOHUB_BACKOFF``               first backoff delay in seconds          1
``YOLOHUB_BACKOFF_MAX``           longest backoff delay in seconds        8
``YOLOHUB_LOCK_TIMEOUT``          seconds to wait for another downloader  1800
``YOLOHUB_MAX_DOWNLOAD``          byte cap for an asset without a size    8 GiB
``YOLOHUB_PROGRESS``              ``auto`` (TTY only), ``1`` or ``0``      ``auto``
``YOLOHUB_DEBUG``                 CLI prints tracebacks                   off
``YOLOHUB_COMPILE_CACHE``         reuse compiled graphs across processes  on
``YOLOHUB_GATHER_TIMEOUT``        seconds an msrun rank waits for the rest 1800
================================  ======================================  =========================

Booleans accept ``1/true/yes/on`` and ``0/false/no/off`` (any case).  Anything else is an error,
not a silent default.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from hub.errors import InputDataError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


@dataclass(frozen=True)
class Settings:
    home: Path
    cards_path: tuple[Path | str, ...] = ()  # directories (Path) and registry URLs (str)
    registry_ttl: float = 300.0
    offline: bool = False
    mirrors: tuple[tuple[str, str], ...] = ()
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    retries: int = 5
    backoff: float = 1.0
    backoff_max: float = 8.0
    lock_timeout: float = 1800.0
    max_download: int = 8 << 30
    progress: str = "auto"
    debug: bool = False
    compile_cache: bool = True
    gather_timeout: float = 1800.0

    def with_(self, **changes) -> Settings:
        """A copy with some fields replaced (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def parse_bool(name: str, value: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise InputDataError(
        f"{name}={value!r} is not a boolean; expected one of 1/true/yes/on or 0/false/no/off"
    )


def _number(name: str, value: str, kind: type):
    try:
        n = kind(value)
    except ValueError:
        raise InputDataError(
            f"{name}={value!r} is not a {kind.__name__}; set it to a number or unset it"
        ) from None
    if n < 0:
        raise InputDataError(f"{name}={value!r} must not be negative")
    return n


def parse_mirrors(value: str) -> tuple[tuple[str, str], ...]:
    """Parse ``old-host=new-host,...`` (hosts may carry a scheme/port/path prefix)."""
    pairs = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        old, sep, new = item.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise InputDataError(
                f"YOLOHUB_MIRRORS entry {item!r} is not of the form old-host=new-host; "
                "example: YOLOHUB_MIRRORS='download.mindspore.cn=mirror.example.org'"
            )
        pairs.append((old.strip(), new.strip()))
    return tuple(pairs)


_URL_START = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")


def is_url(entry: str | os.PathLike) -> bool:
    """True for a registry URL (``https://``, ``http://``, ``file://``), False for a path."""
    return isinstance(entry, str) and _URL_START.match(entry) is not None


def parse_cards_path(value: str) -> tuple[Path | str, ...]:
    """Split ``YOLOHUB_CARDS``: entries separated by ``;``, whitespace or (between directories)
    ``:``.  A URL runs to the next ``;`` or whitespace, so its ``host:port`` colon is kept."""
    out: list[Path | str] = []
    i, n = 0, len(value)
    while i < n:
        if value[i] in ";: \t\n":
            i += 1
            continue
        if _URL_START.match(value, i):
            j = i
            while j < n and value[j] not in "; \t\n":
                j += 1
            out.append(value[i:j])
        else:
            j = i
            while j < n and value[j] not in ";: \t\n":
                j += 1
            out.append(Path(value[i:j]).expanduser())
        i = j
    return tuple(out)


def get_settings(env: dict[str, str] | None = None) -> Settings:
    """Build the settings from the environment as it is now (never cached)."""
    env = os.environ if env is None else env
    home = env.get("YOLOHUB_HOME") or os.path.join(
        env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "yolohub"
    )
    cards = parse_cards_path(env.get("YOLOHUB_CARDS", ""))
    progress = env.get("YOLOHUB_PROGRESS", "auto").strip().lower() or "auto"
    if progress not in {"auto", *_TRUE, *_FALSE}:
        raise InputDataError(f"YOLOHUB_PROGRESS={progress!r}; expected auto, 1 or 0")
    if progress != "auto":
        progress = "on" if parse_bool("YOLOHUB_PROGRESS", progress) else "off"

    def num(name: str, default, kind=float):
        raw = env.get(name)
        return default if raw is None or raw.strip() == "" else _number(name, raw, kind)

    return Settings(
        home=Path(home).expanduser(),
        cards_path=cards,
        offline=parse_bool("YOLOHUB_OFFLINE", env.get("YOLOHUB_OFFLINE", "")),
        mirrors=parse_mirrors(env.get("YOLOHUB_MIRRORS", "")),
        connect_timeout=num("YOLOHUB_CONNECT_TIMEOUT", 10.0),
        read_timeout=num("YOLOHUB_READ_TIMEOUT", 60.0),
        retries=num("YOLOHUB_RETRIES", 5, int),
        backoff=num("YOLOHUB_BACKOFF", 1.0),
        backoff_max=num("YOLOHUB_BACKOFF_MAX", 8.0),
        lock_timeout=num("YOLOHUB_LOCK_TIMEOUT", 1800.0),
        max_download=num("YOLOHUB_MAX_DOWNLOAD", 8 << 30, int),
        progress=progress,
        registry_ttl=num("YOLOHUB_REGISTRY_TTL", 300.0),
        debug=parse_bool("YOLOHUB_DEBUG", env.get("YOLOHUB_DEBUG", "")),
        compile_cache=parse_bool("YOLOHUB_COMPILE_CACHE", env.get("YOLOHUB_COMPILE_CACHE", "1")),
        gather_timeout=num("YOLOHUB_GATHER_TIMEOUT", 1800.0),
    )
