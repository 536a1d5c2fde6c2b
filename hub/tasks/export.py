"""Export a card's network to MindIR or ONNX with MindSpore's own exporter, verified and cached.

``export("yolov3_darknet53", format="onnx")`` builds the card's network with its verified
weights in inference form (anchor decode included, NMS left to the caller, as ``hub.load``
gives it), writes the file with ``mindspore.export`` and, before reporting success, loads the
file back (MindIR through MindSpore, ONNX through ONNX Runtime), runs it on a fixed input and
compares its raw output with the MindSpore network's (:mod:`hub.tasks.export_verify`).  Above
:data:`REL_TOLERANCE` the export fails (:class:`ExportVerificationError`, exit 1) and nothing is
kept.  The checkpoint is fetched (or hashed) once and the network loaded from it
(:func:`hub.tasks.load.load_from`).

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.cards.card import Release
from hub.cards.catalog import CardsArg
from hub.errors import (
    ExportError,
    ExportVerificationError,
    HubError,
    InputDataError,
    UnsupportedOpError,
)
from hub.settings import get_settings
from hub.tasks.export_verify import (  # noqa: F401 (re-exported: hub.tasks.export's old API)
    FORMATS,
    REL_TOLERANCE,
    Verification,
    check_batch,
    check_format,
    check_img_size,
    compare_outputs,
    default_img_size,
    fixed_input,
    reference_output,
    run_exported,
    verify_exported,
)

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

_MS_FORMAT = {"mindir": "MINDIR", "onnx": "ONNX"}
# MindSpore 2.x: "Can not find key Mish in convert map. Exporting Mish operator is not yet supported."
_UNSUPPORTED = (
    re.compile(r"Exporting (\w+) operator is not (?:yet )?supported"),
    re.compile(r"Can not find key (\w+) in convert map"),
)


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
    published: Any = None  # hub.tasks.export_publish.AssetPublishResult when --publish ran

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


# --- the export ---------------------------------------------------------------------------------


def export(
    spec: str | Release,
    *,
    format: str,  # noqa: A002 (the CLI option is --format)
    img_size: int | None = None,
    batch: int = 1,
    weights: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    cards_dirs: CardsArg = (),
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
    from hub.cards.catalog import resolve
    from hub.tasks.load import bind

    fmt = check_format(format)
    batch = check_batch(batch)
    release = resolve(spec, cards_dirs=cards_dirs)
    size = check_img_size(img_size if img_size is not None else default_img_size(release))
    binding = bind(release.card)  # a card that cannot be built fails before any download
    out_path = _check_out(out, fmt)
    if publish:  # refuse before minutes of exporting: a built-in card, no store to write to
        from hub.tasks.export_publish import _check_owned, _store_and_base

        _check_owned(release)
        _store_and_base(release, store, base_url)
    checkpoint = _weights(release, weights, offline=offline, progress=progress)
    weights_sha = checkpoint.sha256
    if publish and weights is not None and not weights_sha.startswith(release.asset.sha256):
        from hub.errors import PublishError

        raise PublishError(
            f"--publish adds the export to {release.id}, but --weights {weights} is not that "
            f"card's checkpoint (sha256 {weights_sha[:16]}... vs {release.asset.sha256[:16]}...); "
            "publish those weights as their own card first (`yolohub publish`)"
        )
    entry = _cache_dir() / weights_sha
    target = entry / f"{binding.arch}-{size}-b{batch}.{fmt}"
    record = target.with_name(target.name + ".json")

    from filelock import FileLock

    entry.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(str(entry / ".lock")):
            result = None if force else _cached(target, record, release)
            if result is None:
                result = _export_fresh(release, binding.arch, fmt, size, batch, checkpoint,
                                       target, record)
    except _Unsupported as exc:
        _fallback(release, exc.op, size=size, batch=batch, weights=weights, out=out_path,
                  offline=offline, progress=progress)
    except OSError as exc:
        raise ExportError(
            f"cannot write the export cache {entry}: {exc}; check YOLOHUB_HOME"
        ) from None
    if out_path is not None:
        _copy(result.cache_path, out_path)
        result = _replace(result, path=out_path)
    if publish:
        from hub.tasks.export_publish import publish_asset

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


def _weights(release: Release, weights, *, offline, progress):
    """The checkpoint to export (a WeightsFile: path and full sha256): the caller's file, else
    the card's verified asset."""
    from hub.tasks.load import fetch_checkpoint, local_weights

    if weights is not None:
        return local_weights(weights)
    return fetch_checkpoint(release, offline=offline, progress=progress)  # refuses a non-ckpt


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


def _export_fresh(release, arch, fmt, size, batch, weights, file, record) -> ExportResult:
    """Export ``release``'s network with ``weights`` (a WeightsFile already at hand) to
    ``file``, verify it and write its ``record``."""
    import mindspore as ms

    from hub.assets.integrity import sha256_file
    from hub.tasks.load import load_from
    from yolomodels.inference import inference_form

    net = load_from(release, weights, mode="pynative")
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
        weights=str(Path(weights.path).resolve()), weights_sha256=weights.sha256,
        verification=verification, from_cache=False, export_seconds=seconds,
        mindspore_version=_mindspore_version(),
    )
    from hub.fileio import write_atomic
    write_atomic(record, json.dumps(result.to_dict(), indent=2))
    log.info("%s: %s export verified: %s", release.id, fmt, verification.describe())
    return result


def _fallback(release, op, *, size, batch, weights, out, offline, progress):
    """ONNX cannot express ``op``: export (and verify) MindIR instead, then say so."""
    mindir_out = Path(out).with_suffix(".mindir") if out is not None else None
    try:
        mindir = export(release, format="mindir", img_size=size, batch=batch, weights=weights,
                        out=mindir_out, offline=offline,
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
