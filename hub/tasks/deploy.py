"""Which backend runs a card's network for predict and eval, and where its ONNX file comes from.

``backend="mindspore"`` is the network ``hub.load`` builds; ``backend="onnxruntime"`` runs the
card's exported ONNX graph in ONNX Runtime with the same letterbox, NMS and back-projection.
The ONNX file is, in order: the file the caller names; the card's ``onnx`` asset of this
version when its input size fits (downloaded and hash-checked like a checkpoint); a verified
export from the export cache; or a fresh export (verified and cached, see ``hub.export``).

``predict`` without a backend uses ONNX Runtime when an ONNX file is at hand (named, published
with the card, or already exported), because it is the faster of the two on CPU
(``bench/bench_export.py``); otherwise MindSpore.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from hub.cards.card import Release
from hub.errors import InputDataError

__all__ = ["BACKENDS", "DEFAULT_WITH_ONNX", "check_backend", "choose_backend", "onnx_network"]

log = logging.getLogger(__name__)

BACKENDS = ("mindspore", "onnxruntime")
DEFAULT_WITH_ONNX = "onnxruntime"
"""predict's backend when an ONNX file is at hand (the faster one in bench/results/export.md)."""


def check_backend(backend: str | None) -> str | None:
    if backend is None:
        return None
    b = str(backend).strip().lower()
    if b not in BACKENDS:
        raise InputDataError(
            f"backend {backend!r} is not supported; expected one of {', '.join(BACKENDS)}"
        )
    return b


def choose_backend(release: Release, backend: str | None, *, img_size: int, onnx=None,
                   weights=None) -> str:
    """The backend to use: the caller's, else ONNX Runtime when a fitting ONNX file is at hand."""
    backend = check_backend(backend)
    if backend is not None:
        if backend == "mindspore" and onnx is not None:
            raise InputDataError("an ONNX file (--onnx) runs with --backend onnxruntime, not "
                                 "mindspore; drop one of them")
        return backend
    if onnx is not None:
        return "onnxruntime"
    if weights is not None:
        return "mindspore"  # the card's ONNX graph holds the card's weights, not these
    if _card_asset(release, img_size) is not None or _cached_export(release, img_size) is not None:
        return DEFAULT_WITH_ONNX
    return "mindspore"


def _card_asset(release: Release, img_size: int) -> Release | None:
    for a in release.card.assets:
        if (a.version == release.asset.version and a.file_format.lower() == "onnx"
                and a.input_shape and tuple(a.input_shape[2:]) == (img_size, img_size)):
            return Release(release.card, a)
    return None


def _cached_export(release: Release, img_size: int) -> Path | None:
    """A verified export of the card's weights at this size already in the export cache."""
    from hub.tasks.export import _cache_dir
    from hub.tasks.load import bind

    sha = release.asset.sha256
    if len(sha) != 64:
        return None
    try:
        arch = bind(release.card).arch
    except Exception:  # noqa: BLE001 (an unbindable card simply has no export)
        return None
    for path in sorted((_cache_dir() / sha).glob(f"{arch}-{img_size}-b*.onnx")):
        if path.with_name(path.name + ".json").is_file():
            return path
    return None


def onnx_network(release: Release, *, img_size: int | None, onnx: str | os.PathLike | None = None,
                 weights=None, offline: bool | None = None, progress: bool | None = None):
    """The card's network as an :class:`~hub.tasks.backends.OnnxRuntimeNetwork`, with its
    load record (``net.hub``: the ONNX file and its sha256)."""
    from hub.tasks.backends import OnnxRuntimeNetwork
    from hub.tasks.load import bind, local_weights
    from hub.tasks.record import LoadRecord, WeightsFile

    binding = bind(release.card)
    if onnx is not None:
        file = local_weights(onnx)
        source = "the given file"
    else:
        from hub.tasks.export import default_img_size, export

        size = img_size if img_size is not None else default_img_size(release)
        asset = _card_asset(release, size) if weights is None else None
        if asset is not None:
            from hub.assets.files import fetch_release

            fetched = fetch_release(asset, offline=offline, progress=progress)
            file = WeightsFile(Path(fetched.path), fetched.sha256, "card")
            source = "the card's onnx asset"
        else:
            result = export(release, format="onnx", img_size=size, weights=weights,
                            offline=offline, progress=progress)
            file = WeightsFile(result.cache_path, result.sha256,
                               "local" if weights is not None else "card")
            source = "the export cache" if result.from_cache else "a fresh verified export"
    record = LoadRecord(release, binding, weights=file, report=None, mode="onnxruntime",
                        backend="onnxruntime")
    net = OnnxRuntimeNetwork(file.path, num_classes=binding.num_classes,
                             class_names=binding.class_names, release_id=release.id,
                             card_name=release.card.name, img_size=img_size, record=record)
    log.info("%s: running %s in ONNX Runtime (%s)", release.id, file.path, source)
    return net
