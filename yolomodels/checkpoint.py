"""Read, check and write MindSpore checkpoints of yolomodels networks.

MindSpore's own ``load_param_into_net`` is lenient: it silently skips names it does not know and
strips unmatched prefixes.  A hub must not be lenient, because a checkpoint that "loads" with
half its tensors missing gives a network that only looks right.  :func:`load_strict` compares
every name and shape first and assigns nothing unless they all fit (apart from the head
parameters the caller explicitly drops when fine-tuning to another class count).
"""

from __future__ import annotations

import fnmatch
import functools
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from yolomodels.errors import CheckpointReadError

__all__ = ["LoadReport", "load_strict", "read_checkpoint", "save_checkpoint", "split_entries"]

log = logging.getLogger(__name__)

EMA_PREFIX = "ema."

# Entries a training run may store next to the network weights (optimizer state, loss scaler,
# step counters).  They are never network parameters.
_EXTRA_PREFIXES = ("accum.", "stat.", "moments.", "moment1.", "moment2.", "optimizer.")
_EXTRA_NAMES = frozenset(
    {
        "learning_rate",
        "global_step",
        "momentum",
        "scale_sense",
        "current_iterator_step",
        "last_overflow_iterator_step",
        "epoch_num",
        "step_num",
        "loss_scale",
        "beta1_power",
        "beta2_power",
    }
)


def _is_extra(name: str) -> bool:
    return name in _EXTRA_NAMES or name.startswith(_EXTRA_PREFIXES)


def split_entries(entries: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Separate network entries (``ema.`` stripped) from optimizer/bookkeeping entries.

    When a file holds both ``ema.X`` and ``X``, the EMA copy wins: it is the copy MindYOLO
    evaluates and publishes.
    """
    net: dict[str, Any] = {}
    skipped: list[str] = []
    for name, value in entries.items():
        if _is_extra(name):
            skipped.append(name)
            continue
        if name.startswith(EMA_PREFIX):
            net[name[len(EMA_PREFIX):]] = value
        elif name not in net:
            net[name] = value
    return net, skipped


def read_checkpoint(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The network tensors of a ``.ckpt`` file as numpy arrays, in file order.

    A leading ``ema.`` is stripped; optimizer state and step counters are skipped.  Anything that
    is not a readable MindSpore checkpoint raises :class:`CheckpointReadError`.
    """
    import mindspore as ms

    p = Path(path)
    if not p.exists():
        raise CheckpointReadError(
            f"checkpoint {p} does not exist; pass the path of a .ckpt file", path=str(p)
        )
    if not p.is_file():
        raise CheckpointReadError(
            f"checkpoint {p} is not a file (is it a directory?); pass the path of a .ckpt file",
            path=str(p),
        )
    size = p.stat().st_size
    if size == 0:
        raise CheckpointReadError(
            f"checkpoint {p} is empty (0 bytes); the download or save was probably interrupted",
            path=str(p),
        )
    try:
        raw = _load_any_suffix(ms, p)
    except (ValueError, RuntimeError, TypeError, OSError) as exc:
        raise CheckpointReadError(
            f"{p} ({size} bytes) is not a readable MindSpore checkpoint: it is corrupt, "
            f"truncated or another file format (MindSpore said: {_first_line(exc)}); "
            "download it again or check the file you passed",
            path=str(p),
        ) from None
    entries, skipped = split_entries(raw)
    if skipped:
        log.debug("%s: skipped %d non-network entries: %s", p, len(skipped), skipped[:5])
    if not entries:
        raise CheckpointReadError(
            f"{p} is a checkpoint without network parameters "
            f"(only {len(skipped)} optimizer/bookkeeping entries); pass the network checkpoint",
            path=str(p),
        )
    return {name: value.asnumpy() for name, value in entries.items()}


def _load_any_suffix(ms, p: Path) -> dict:
    """``mindspore.load_checkpoint`` insists on a ``.ckpt`` suffix; cached blobs may lack it."""
    if p.suffix == ".ckpt":
        return ms.load_checkpoint(str(p))
    with tempfile.TemporaryDirectory(prefix="yolomodels-ckpt-") as tmp:
        link = Path(tmp) / "checkpoint.ckpt"
        link.symlink_to(p.resolve())
        return ms.load_checkpoint(str(link))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@dataclass(frozen=True)
class LoadReport:
    """What a strict load found: names loaded, missing, unexpected, mis-shaped and dropped."""

    loaded: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    """Network parameters the checkpoint does not have."""
    unexpected: tuple[str, ...] = ()
    """Checkpoint entries the network does not have."""
    mismatched: tuple[tuple[str, tuple[int, ...], tuple[int, ...]], ...] = ()
    """``(name, expected_shape, found_shape)`` for entries present in both with other shapes."""
    dropped: tuple[str, ...] = ()
    """Parameters deliberately not loaded (head parameters on a class-count change)."""

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def describe(self, *, limit: int = 5) -> str:
        """One human line: counts, and the first few problems of each kind."""
        parts = [f"{len(self.loaded)} loaded"]
        if self.dropped:
            parts.append(f"{len(self.dropped)} dropped")
        if self.missing:
            parts.append(f"{len(self.missing)} missing ({_first(self.missing, limit)})")
        if self.unexpected:
            parts.append(f"{len(self.unexpected)} unexpected ({_first(self.unexpected, limit)})")
        if self.mismatched:
            shown = ", ".join(
                f"{n}: network {tuple(e)} vs checkpoint {tuple(f)}"
                for n, e, f in self.mismatched[:limit]
            )
            more = f", ... {len(self.mismatched) - limit} more" if len(self.mismatched) > limit else ""
            parts.append(f"{len(self.mismatched)} mis-shaped ({shown}{more})")
        return "; ".join(parts)


def _first(names: tuple[str, ...], limit: int) -> str:
    more = f", ... {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def compare(
    expected: Iterable[tuple[str, tuple[int, ...]]],
    found: Mapping[str, tuple[int, ...]],
    *,
    drop: Iterable[str] = (),
) -> LoadReport:
    """The load report for network ``(name, shape)`` pairs against checkpoint shapes by name.

    ``drop`` holds fnmatch patterns; matching names are excluded on both sides.
    """
    patterns = tuple(drop)

    def dropped(name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pat) for pat in patterns)

    loaded, missing, mismatched, dropped_names = [], [], [], []
    net_names = set()
    for name, shape in expected:
        net_names.add(name)
        if dropped(name):
            dropped_names.append(name)
            continue
        if name not in found:
            missing.append(name)
        elif tuple(found[name]) != tuple(shape):
            mismatched.append((name, tuple(shape), tuple(found[name])))
        else:
            loaded.append(name)
    unexpected = [n for n in found if n not in net_names and not dropped(n)]
    return LoadReport(
        loaded=tuple(loaded),
        missing=tuple(missing),
        unexpected=tuple(unexpected),
        mismatched=tuple(mismatched),
        dropped=tuple(dropped_names),
    )


@functools.lru_cache(maxsize=1)
def _np_dtypes() -> dict:
    import mindspore as ms

    return {ms.float32: np.float32, ms.float16: np.float16, ms.float64: np.float64,
            ms.int32: np.int32, ms.int64: np.int64, ms.uint8: np.uint8, ms.bool_: np.bool_}


def load_strict(net, params: Mapping[str, np.ndarray], *, drop: Iterable[str] = ()) -> LoadReport:
    """Assign ``params`` to ``net`` only if every name and shape fits; return the report.

    ``drop`` are fnmatch patterns of network parameters to leave at their current values (and of
    checkpoint entries to ignore), for fine-tuning with another class count.  When the report is
    not ``ok`` nothing is assigned, so the caller can raise with the report in hand.
    """
    from mindspore import Tensor

    net_params = {p.name: p for p in net.get_parameters()}
    report = compare(
        ((n, tuple(p.shape)) for n, p in net_params.items()),
        {n: tuple(np.shape(v)) for n, v in params.items()},
        drop=drop,
    )
    if not report.ok:
        return report
    # Every name and shape fits, so assign directly: ``Tensor(array)`` copies the values (the
    # network must not alias the caller's arrays), and skipping ``load_param_into_net``'s
    # per-entry Parameter objects makes a full-size load several times cheaper.
    for name in report.loaded:
        target = net_params[name]
        value = np.asarray(params[name])
        want = _np_dtypes().get(target.dtype) or target.asnumpy().dtype
        if value.dtype != want:
            value = value.astype(want)
        target.set_data(Tensor(value))
    return report


def save_checkpoint(net, path: str | os.PathLike, *, extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``net``'s parameters (and optional ``extra`` scalar/array entries) to ``path``.

    The file is written next to its destination and renamed into place, so a crash never leaves
    a half-written checkpoint under the final name.
    """
    import mindspore as ms
    from mindspore import Tensor

    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp.ckpt")  # MindSpore insists on .ckpt
    append = None
    if extra:
        append = {}
        for key, value in extra.items():
            if isinstance(value, (int, float, str, bool)):
                append[key] = value
            else:
                append[key] = Tensor(np.asarray(value))
    try:
        ms.save_checkpoint(net, str(tmp), append_dict=append)
        os.chmod(tmp, 0o644)  # MindSpore writes 0400; a hub file must be copyable and replaceable
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest
