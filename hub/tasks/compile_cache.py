"""MindSpore's persistent compile cache for hub networks, keyed by what was compiled.

MindSpore's cache is process-wide: it fixes its directory when a process first compiles with it
and names the graphs it stores by compile order (``compile_cache_0.mindir``, ``_1`` ...).  A
directory shared by different networks could therefore hand one network another's graph.  So a
process uses the cache for exactly one graph, the first network a hub call compiles, in a
directory keyed by (architecture, builder arguments, input shape and dtype, MindSpore version):
whatever MindSpore later loads from that directory is that network's graph.  Later graphs of the
same process compile uncached.  That covers what the cache is for, a CLI process (predict, eval,
export) that compiles one network at one size.  MindSpore re-checks the hash of the entry script
and the sources it imports and recompiles (and rewrites) a stale or unreadable cache file; a
process without an entry script file (``python -c``, a REPL, a notebook) compiles uncached.  A
file lock per directory makes a second process wait for the first one's compilation and then
load it, instead of both writing the same files.

Layout: ``YOLOHUB_HOME/compile/mindspore-<version>/<arch>-<key>/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from hub.assets.cleanup import Removal
from hub.settings import Settings, get_settings

log = logging.getLogger("hub")

_LOCK_NAME = ".lock"
_claimed = False  # this process has used MindSpore's cache directory for its one graph


def mindspore_version() -> str:
    try:
        return metadata.version("mindspore")
    except metadata.PackageNotFoundError:
        return "unknown"


def root(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).home / "compile"


def graph_dir(
    arch: str,
    args: Mapping[str, Any],
    shape: tuple[int, ...],
    dtype: str,
    *,
    settings: Settings | None = None,
) -> Path:
    """The cache directory of one network's graph for one input shape and dtype."""
    key = json.dumps(
        {"arch": arch, "args": dict(args), "shape": list(shape), "dtype": dtype},
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return root(settings) / f"mindspore-{mindspore_version()}" / f"{arch}-{digest}"


@contextlib.contextmanager
def compiling(directory: Path, *, timeout: float = 600.0) -> Iterator[None]:
    """Compile (or load) the graph of the call made inside this block through ``directory``.

    Without a usable directory (read-only home, lock timeout) the call compiles uncached, with
    a one-line notice; the cache is an optimisation, never a reason to fail.
    """
    global _claimed
    import mindspore as ms
    from filelock import FileLock, Timeout

    if (
        _claimed
        or not Path(sys.argv[0] if sys.argv else "").is_file()
        or ms.get_context("enable_compile_cache")
        or os.environ.get("MS_COMPILER_CACHE_ENABLE")
    ):
        # one graph per process (see the module docstring); no script file to hash (MindSpore
        # would fail to compile at all); or the user runs MindSpore's cache their own way
        yield
        return
    _claimed = True
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(directory / _LOCK_NAME))
        lock.acquire(timeout=timeout)
    except (OSError, Timeout) as exc:
        log.info("compile cache %s unusable (%s); compiling without it", directory, exc)
        yield
        return
    try:
        ms.set_context(enable_compile_cache=True, compile_cache_path=str(directory))
        try:
            yield
        finally:
            ms.set_context(enable_compile_cache=False)  # no other graph goes into this directory
    finally:
        lock.release()


def prune(*, settings: Settings | None = None, everything: bool = False) -> Removal:
    """Delete compiled graphs of other MindSpore versions (``everything``: all of them).

    Directories whose lock another process holds are left alone.
    """
    from filelock import FileLock, Timeout

    base = root(settings)
    current = f"mindspore-{mindspore_version()}"
    removed: list[Path] = []
    freed = 0
    if not base.is_dir():
        return Removal((), 0)
    for version_dir in sorted(p for p in base.iterdir() if p.is_dir()):
        if version_dir.name == current and not everything:
            continue
        for graph in sorted(p for p in version_dir.iterdir() if p.is_dir()):
            lock = FileLock(str(graph / _LOCK_NAME))
            try:
                lock.acquire(timeout=0)
            except (Timeout, OSError):
                continue
            try:
                size = sum(f.stat().st_size for f in graph.rglob("*") if f.is_file())
                shutil.rmtree(graph, ignore_errors=True)
            finally:
                lock.release()
            removed.append(graph)
            freed += size
        with contextlib.suppress(OSError):
            version_dir.rmdir()
    return Removal(tuple(removed), freed)
