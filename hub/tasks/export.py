"""Export a card's network to MindIR or ONNX with MindSpore's own exporter, verified and cached.

(Named ``exporting`` rather than ``export``: importing a submodule called ``export`` would rebind
``hub.export`` from the public function to the module.)

``export("yolov3_darknet53", format="onnx")`` builds the card's network with its verified
weights in inference form (anchor decode included, NMS left to the caller, as ``hub.load``
gives it), writes the file with ``mindspore.export`` and, before reporting success, loads the
file back (MindIR through MindSpore, ONNX through ONNX Runtime), runs it on a fixed input and
compares its raw output with the MindSpore network's.  Above :data:`REL_TOLERANCE` the export
fails (:class:`ExportVerificationError`, exit 1) and nothing is kept.

Exports are cached under ``$YOLOHUB_HOME/exports/<weights sha256>/<arch>-<size>-b<batch>.<fmt>``
with a JSON record of the verification next to each file: the key is (weights sha256,
format, size, batch).  A cached file is re-hashed against its record before it is reused.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hub.cards.card import Release
from hub.errors import (
    ExportError,
    ExportVerificationError,
    HubError,
    InputDataError,
    UnsupportedOpError,
)
from hub.settings import get_settings

__all__ = [
    "FORMATS",
    "REL_TOLERANCE",
    "ExportResult",
    "Verification",
    "compare_outputs",
    "export",
    "fixed_input",
    "verify_exported",
]

log = logging.getLogger(__name__)

FORMATS = ("mindir", "onnx")
REL_TOLERANCE = 1e-4
MAX_BATCH = 256
_MS_FORMAT = {"mindir": "MINDIR", "onnx": "ONNX"}
_RUNTIME = {"mindir": "mindspore", "onnx": "onnxruntime"}
# MindSpore 2.x: "Can not find key Mish in convert map. Exporting Mish operator is not yet supported."
_UNSUPPORTED = (
    re.compile(r"Exporting (\w+) operator is not (?:yet )?supported"),
    re.compile(r"Can not find key (\w+) in convert map"),
)


@dataclass(frozen=True)
class Verification:
    """The exported file's output on the fixed input, against the MindSpore network's."""

    runtime: str  # what ran the exported file: mindspore (MindIR) or onnxruntime (ONNX)
    max_abs_diff: float
    max_rel_diff: float
    """Largest difference divided by the largest magnitude of its output field (x, y, w, h,
    objectness, each class score), so boxes in pixels and scores in [0, 1] count alike."""
    tolerance: float
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.max_rel_diff)) and self.max_rel_diff <= self.tolerance

    def describe(self) -> str:
        return (f"max abs diff {self.max_abs_diff:.3g}, max rel diff {self.max_rel_diff:.3g} "
                f"(limit {self.tolerance:g}) on a fixed {'x'.join(map(str, self.input_shape))} "
                f"input, run by {self.runtime}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "max_abs_diff": self.max_abs_diff,
            "max_rel_diff": self.max_rel_diff,
            "tolerance": self.tolerance,
            "ok": self.ok,
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "seconds": round(self.seconds, 3),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Verification:
        return cls(d["runtime"], float(d["max_abs_diff"]), float(d["max_rel_diff"]),
                   float(d["tolerance"]), tuple(d["input_shape"]), tuple(d["output_shape"]),
                   float(d.get("seconds", 0.0)))


@dataclass(frozen=True)
class ExportResult:
    """One verified export: where the file is, what it holds, how well it matches."""

    release: str  # name@version
    arch: str
    format: str
    path: Path  # the file the caller asked for (-o), else the cached file
    cache_path: Path
    sha256: str
    size: int
    img_size: int
    batch: int
    weights: str
    weights_sha256: str
    verification: Verification
    from_cache: bool
    export_seconds: float
    mindspore_version: str
    published: Any = None  # hub.assets.publish_export.AssetPublishResult when --publish ran

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.batch, 3, self.img_size, self.img_size)

    def to_dict(self) -> dict[str, Any]:
        d = {
            "model": self.release,
            "arch": self.arch,
            "format": self.format,
            "path": str(self.path),
            "cache_path": str(self.cache_path),
            "sha256": self.sha256,
            "size": self.size,
            "img_size": self.img_size,
            "batch": self.batch,
            "input_shape": list(self.input_shape),
            "weights": self.weights,
            "weights_sha256": self.weights_sha256,
            "verification": self.verification.to_dict(),
            "from_cache": self.from_cache,
            "export_seconds": round(self.export_seconds, 3),
            "mindspore_version": self.mindspore_version,
        }
        if self.published is not None:
            d["published"] = self.published.to_dict()
        return d


# --- checks -------------------------------------------------------------------------------------


def check_format(fmt: str) -> str:
    f = str(fmt).strip().lower().lstrip(".")
    if f not in FORMATS:
        raise InputDataError(
            f"export format {fmt!r} is not supported; expected one of {', '.join(FORMATS)}"
        )
    return f


def check_img_size(img_size) -> int:
    is_int = isinstance(img_size, (int, np.integer)) and not isinstance(img_size, bool)
    if not is_int or img_size < 32 or img_size % 32:
        hint = f"; try {max(32, round(int(img_size) / 32) * 32)}" if is_int else ""
        raise InputDataError(
            "image size must be a positive multiple of 32 (the networks' largest stride), "
            f"got {img_size!r}{hint}"
        )
    return int(img_size)


def check_batch(batch) -> int:
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) \
            or not 1 <= batch <= MAX_BATCH:
        raise InputDataError(f"batch must be an integer from 1 to {MAX_BATCH}, got {batch!r}")
    return int(batch)


def default_img_size(release: Release) -> int:
    """The size a card's network is meant to run at: its eval protocol's, else its builder's."""
    card = release.card
    if card.eval_protocol is not None:
        return int(card.eval_protocol.img_size)
    args = card.architecture.args if card.architecture else {}
    return int(args.get("img_size", 640))


# --- comparing outputs --------------------------------------------------------------------------


def fixed_input(batch: int, img_size: int) -> np.ndarray:
    """The verification input: a seeded image-like batch in [0, 1], the same on every machine."""
    rng = np.random.RandomState(20240614)
    return rng.random_sample((batch, 3, img_size, img_size)).astype(np.float32)


def compare_outputs(reference: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """(max absolute difference, max difference relative to each output field's magnitude)."""
    reference = np.asarray(reference, np.float64)
    other = np.asarray(other, np.float64)
    if reference.shape != other.shape:
        return float("inf"), float("inf")
    diff = np.abs(reference - other)
    if diff.size == 0:
        return 0.0, 0.0
    fields = reference.reshape(-1, reference.shape[-1])
    scale = np.maximum(np.abs(fields).max(axis=0), 1e-3)  # per field: x, y, w, h, obj, classes
    rel = diff.reshape(-1, reference.shape[-1]) / scale
    worst_abs = float(diff.max()) if np.isfinite(diff).all() else float("inf")
    worst_rel = float(rel.max()) if np.isfinite(rel).all() else float("inf")
    return worst_abs, worst_rel


def run_exported(path: Path, fmt: str, x: np.ndarray) -> np.ndarray:
    """Load ``path`` back with its own runtime and run it on ``x``."""
    if fmt == "mindir":
        from hub.tasks.backends import run_mindir

        return run_mindir(path, x)
    from hub.tasks.backends import onnx_input_shape, open_onnx

    session = open_onnx(path)
    shape = onnx_input_shape(session)
    if tuple(shape) != tuple(x.shape):
        raise InputDataError(
            f"ONNX file {path} takes inputs of shape {tuple(shape)}, not {tuple(x.shape)}; "
            "export it for that size and batch"
        )
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def verify_exported(path: Path, fmt: str, x: np.ndarray, reference: np.ndarray) -> Verification:
    t = time.perf_counter()
    got = run_exported(path, fmt, x)
    worst_abs, worst_rel = compare_outputs(reference, got)
    return Verification(_RUNTIME[fmt], worst_abs, worst_rel, REL_TOLERANCE, tuple(x.shape),
                        tuple(np.shape(got)), time.perf_counter() - t)


def reference_output(net, x: np.ndarray) -> np.ndarray:
    import mindspore as ms

    out = net(ms.Tensor(x))
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out.asnumpy()


# --- the export ---------------------------------------------------------------------------------


def export(
    spec: str | Release,
    *,
    format: str,  # noqa: A002 (the CLI option is --format)
    img_size: int | None = None,
    batch: int = 1,
    weights: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    cards_dirs: Sequence = (),
    offline: bool | None = None,
    progress: bool | None = None,
    force: bool = False,
    publish: bool = False,
    store: str | os.PathLike | None = None,
    base_url: str | None = None,
    replace: bool = False,
) -> ExportResult:
    """Export card ``spec``'s network (with its verified weights, or ``weights``) and verify it.

    ``format`` is ``mindir`` or ``onnx``; ``img_size`` (a multiple of 32, default: the card's
    protocol size) and ``batch`` fix the input shape ``(batch, 3, img_size, img_size)``.  The
    file goes to the export cache and, with ``out``, is copied there too.  ``force`` exports
    again even when a verified export is cached.  ``publish`` adds the file to the card as an
    asset of the same version (``store``/``base_url`` as for :func:`hub.publish_asset`).

    Raises :class:`UnsupportedOpError` when MindSpore's ONNX exporter cannot express an
    operator of the network (after exporting MindIR instead) and
    :class:`ExportVerificationError` when the file does not reproduce the network's output.
    """
    from hub.tasks.load import _release, bind

    fmt = check_format(format)
    batch = check_batch(batch)
    release = _release(spec, cards_dirs)
    size = check_img_size(img_size if img_size is not None else default_img_size(release))
    binding = bind(release.card)  # a card that cannot be built fails before any download
    out_path = _check_out(out, fmt)
    if publish:  # refuse before minutes of exporting: a built-in card, no store to write to
        from hub.assets.publish_export import _check_owned, _store_and_base

        _check_owned(release)
        _store_and_base(release, store, base_url)
    weights_path, weights_sha = _weights(release, weights, offline=offline, progress=progress)
    if publish and weights is not None and not weights_sha.startswith(release.asset.sha256):
        from hub.errors import PublishError

        raise PublishError(
            f"--publish adds the export to {release.id}, but --weights {weights} is not that "
            f"card's checkpoint (sha256 {weights_sha[:16]}... vs {release.asset.sha256[:16]}...); "
            "publish those weights as their own card first (`yolohub publish`)"
        )
    entry = _cache_dir() / weights_sha
    file = entry / f"{binding.arch}-{size}-b{batch}.{fmt}"
    record = file.with_name(file.name + ".json")

    from filelock import FileLock

    entry.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(entry / ".lock")):
            result = None if force else _cached(file, record, release)
            if result is None:
                result = _export_fresh(release, binding.arch, fmt, size, batch, weights,
                                       weights_path, weights_sha, file, record,
                                       offline=offline, progress=progress)
    except _Unsupported as exc:
        _fallback(release, exc.op, size=size, batch=batch, weights=weights, out=out_path,
                  offline=offline, progress=progress, cards_dirs=cards_dirs)
    except OSError as exc:
        raise ExportError(
            f"cannot write the export cache {entry}: {exc}; check YOLOHUB_HOME"
        ) from None
    if out_path is not None:
        _copy(result.cache_path, out_path)
        result = _replace(result, path=out_path)
    if publish:
        from hub.assets.publish_export import publish_asset

        published = publish_asset(result.cache_path, release, store=store, base_url=base_url,
                                  force=replace, verification=result.verification,
                                  source_sha256=weights_sha)
        result = _replace(result, published=published)
    return result


def _replace(result: ExportResult, **changes) -> ExportResult:
    from dataclasses import replace

    return replace(result, **changes)


def _check_out(out, fmt: str) -> Path | None:
    if out is None:
        return None
    path = Path(out)
    if path.is_dir():
        raise InputDataError(f"-o {path} is a directory; give a file name such as model.{fmt}")
    if path.suffix.lower() != f".{fmt}":
        raise InputDataError(
            f"-o {path}: expected a file name ending in .{fmt} for --format {fmt}, found "
            f"{path.suffix or 'no suffix'!r}"
        )
    return path


def _cache_dir() -> Path:
    return get_settings().home / "exports"


def _weights(release: Release, weights, *, offline, progress) -> tuple[Path, str]:
    """(checkpoint path, its full sha256): the caller's file, else the card's verified asset."""
    from hub.assets.integrity import sha256_file

    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise InputDataError(f"weights file {path} does not exist; pass a .ckpt file")
        return path, sha256_file(path)
    from hub.assets.files import fetch_release
    from hub.tasks.load import _fetch

    path = _fetch(release, offline=offline, progress=progress)  # refuses a non-ckpt asset
    fetched = fetch_release(release, offline=offline, progress=False)  # a stat: just verified
    return path, fetched.sha256


def _mindspore_version() -> str:
    import mindspore

    return mindspore.__version__


def _cached(file: Path, record: Path, release: Release) -> ExportResult | None:
    """The cached export, if its record says it was verified and its bytes still match."""
    from hub.assets.integrity import sha256_file

    if not file.is_file() or not record.is_file():
        return None
    try:
        rec = json.loads(record.read_text())
        verification = Verification.from_dict(rec["verification"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not verification.ok or sha256_file(file) != rec.get("sha256"):
        log.warning("%s: cached export %s does not match its record; exporting again",
                    release.id, file)
        return None
    log.info("%s: verified %s export from the cache: %s", release.id, rec["format"], file)
    return ExportResult(
        release=release.id, arch=rec["arch"], format=rec["format"], path=file, cache_path=file,
        sha256=rec["sha256"], size=file.stat().st_size, img_size=int(rec["img_size"]),
        batch=int(rec["batch"]), weights=rec["weights"], weights_sha256=rec["weights_sha256"],
        verification=verification, from_cache=True,
        export_seconds=float(rec.get("export_seconds", 0.0)),
        mindspore_version=rec.get("mindspore_version", ""),
    )


def _unsupported_op(text: str) -> str | None:
    for pattern in _UNSUPPORTED:
        if m := pattern.search(text):
            return m.group(1)
    return None


def _ms_export(net, x, stem: str, fmt: str) -> None:
    """MindSpore's exporter; ONNX through ``mindspore.onnx.export`` where it exists (2.6+),
    which names the graph's input ``images`` and its output ``detections``."""
    import mindspore as ms

    if fmt == "onnx":
        try:
            from mindspore.onnx import export as onnx_export
        except ImportError:
            onnx_export = None
        if onnx_export is not None:
            onnx_export(net, x, file_name=stem, input_names=["images"],
                        output_names=["detections"])
            return
    ms.export(net, x, file_name=stem, file_format=_MS_FORMAT[fmt])


class _Unsupported(Exception):
    """Internal: the exporter has no conversion for ``op`` (handled outside the cache lock)."""

    def __init__(self, op: str):
        self.op = op
        super().__init__(op)


def _export_fresh(release, arch, fmt, size, batch, weights, weights_path, weights_sha, file,
                  record, *, offline, progress) -> ExportResult:
    import mindspore as ms

    from hub.assets.integrity import sha256_file
    from hub.tasks.load import load
    from yolomodels.inference import inference_form

    net = load(release, weights=weights, mode="pynative", offline=offline, progress=progress)
    net = inference_form(net)  # what is exported: BatchNorm folded into the convolutions
    x = fixed_input(batch, size)
    log.info("%s: exporting %s at %dx%d, batch %d", release.id, fmt, size, size, batch)
    reference = reference_output(net, x)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=file.parent))
    try:
        t = time.perf_counter()
        try:
            _ms_export(net, ms.Tensor(x), str(tmp / "model"), fmt)
        except (RuntimeError, TypeError, ValueError) as exc:
            op = _unsupported_op(str(exc))
            if fmt == "onnx" and op is not None:
                raise _Unsupported(op) from None
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ExportError(f"{release.id}: mindspore.export to {fmt} failed: {first}") from None
        seconds = time.perf_counter() - t
        produced = tmp / f"model.{fmt}"
        if not produced.is_file():
            raise ExportError(f"{release.id}: mindspore.export wrote no {produced.name} file")
        try:
            verification = verify_exported(produced, fmt, x, reference)
        except InputDataError as exc:
            raise ExportVerificationError(
                f"{release.id}: the {fmt} file MindSpore wrote cannot be run back: {exc}"
            ) from None
        if not verification.ok:
            raise ExportVerificationError(
                f"{release.id}: the exported {fmt} file does not reproduce the network: "
                f"{verification.describe()}; nothing was kept"
            )
        os.chmod(produced, 0o644)  # MindSpore writes its files owner-read-only
        os.replace(produced, file)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sha = sha256_file(file)
    result = ExportResult(
        release=release.id, arch=arch, format=fmt, path=file, cache_path=file, sha256=sha,
        size=file.stat().st_size, img_size=size, batch=batch,
        weights=str(Path(weights_path).resolve()), weights_sha256=weights_sha,
        verification=verification, from_cache=False, export_seconds=seconds,
        mindspore_version=_mindspore_version(),
    )
    from hub.assets.integrity import write_atomic

    write_atomic(record, json.dumps(result.to_dict(), indent=2))
    log.info("%s: %s export verified: %s", release.id, fmt, verification.describe())
    return result


def _fallback(release, op, *, size, batch, weights, out, offline, progress, cards_dirs):
    """ONNX cannot express ``op``: export (and verify) MindIR instead, then say so."""
    mindir_out = Path(out).with_suffix(".mindir") if out is not None else None
    try:
        mindir = export(release, format="mindir", img_size=size, batch=batch, weights=weights,
                        out=mindir_out, cards_dirs=cards_dirs, offline=offline,
                        progress=progress)
        instead = (f"exported MindIR instead: {mindir.path} ({mindir.verification.describe()})")
    except HubError as exc:
        mindir = None
        instead = f"the MindIR export failed too: {exc}"
    raise UnsupportedOpError(
        f"{release.id}: MindSpore {_mindspore_version()}'s ONNX exporter cannot express the "
        f"{op} operator this network uses, so there is no ONNX file; {instead}",
        op=op, fallback=mindir,
    )


def _copy(src: Path, dest: Path) -> None:
    """Copy ``src`` to ``dest`` through a temporary file and one rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, name)
        os.chmod(name, 0o644)
        os.replace(name, dest)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
