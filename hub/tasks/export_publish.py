"""Add an exported graph (MindIR, ONNX) to a published card as another asset of the same version.

``publish_asset("model.onnx", "my_v3@1.0", cards_dirs=["my-cards"])`` checks the file first:
unless the caller hands over the verification ``hub.export`` just made, the graph is loaded
back and compared with the card's own network and weights on the fixed input (the same check
as ``hub.export``).  Then it copies the file into the asset store next to the version's
checkpoint (``<store>/<name>/<version>/<name>-<version>-<sha8>.<fmt>``), hashing it on the way,
and appends an asset entry (``file-format``, ``asset-link``, ``asset-sha256``, ``size``,
``version``, ``input-shape``, ``source-sha256``) to the card, which is validated before it is
replaced.  ``yolohub download NAME --format onnx`` then fetches it hash-checked.

Without ``store``, the store is the one the version's checkpoint lives in when its link is a
``file://`` URL of the layout ``hub.publish`` writes; without ``base_url``, the base URL is the
checkpoint link's own prefix when it follows that layout.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from hub.cards.card import Release
from hub.cards.catalog import CardsArg
from hub.errors import (
    HubError,
    InputDataError,
    PublishConflictError,
    PublishError,
)

__all__ = ["AssetPublishResult", "publish_asset"]

log = logging.getLogger(__name__)

ASSET_FORMATS = ("mindir", "onnx")


@dataclass(frozen=True)
class AssetPublishResult:
    """What ``publish_asset`` wrote: the updated card, the stored file and its entry."""

    release: str
    card_path: Path
    asset_path: Path
    url: str
    file_format: str
    sha256: str
    size: int
    input_shape: tuple[int, ...]
    verification: Any  # hub.tasks.export.Verification
    replaced: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.release,
            "card": str(self.card_path),
            "asset": str(self.asset_path),
            "url": self.url,
            "format": self.file_format,
            "sha256": self.sha256,
            "size": self.size,
            "input_shape": list(self.input_shape),
            "verification": self.verification.to_dict() if self.verification else None,
            "replaced": self.replaced,
        }


def publish_asset(
    file: str | os.PathLike,
    spec: str | Release,
    *,
    store: str | os.PathLike | None = None,
    base_url: str | None = None,
    cards_dirs: CardsArg = (),
    force: bool = False,
    img_size: int | None = None,
    batch: int | None = None,
    verification: Any = None,
    source_sha256: str | None = None,
) -> AssetPublishResult:
    """Add ``file`` (``.onnx`` or ``.mindir``) to card ``spec`` as an asset of its version.

    An asset of the same version and format is only replaced with ``force``.  ``img_size`` and
    ``batch`` give a MindIR file's input shape (an ONNX file says its own); ``verification``
    skips re-checking a file ``hub.export`` has just verified.
    """
    from hub.assets.publish import _link
    from hub.assets.store_write import check_base_url, copy_hashing
    from hub.cards.catalog import resolve

    src = Path(file)
    if not src.is_file():
        what = "is a directory" if src.is_dir() else "does not exist"
        raise PublishError(f"asset {src} {what}; pass an exported .onnx or .mindir file")
    if src.stat().st_size == 0:
        raise PublishError(f"asset {src} is empty (0 bytes); nothing to publish")
    fmt = src.suffix.lstrip(".").lower()
    if fmt not in ASSET_FORMATS:
        raise PublishError(
            f"asset {src}: expected a file ending in .onnx or .mindir, found "
            f"{src.suffix or 'no suffix'!r}; checkpoints are published with `yolohub publish "
            "CHECKPOINT --name ...`"
        )
    release = resolve(spec, cards_dirs=cards_dirs)
    card = release.card
    _check_owned(release)
    if base_url is not None:
        check_base_url(base_url)
    store_dir, base = _store_and_base(release, store, base_url)

    if verification is None:
        verification = _verify(src, fmt, release, img_size=img_size, batch=batch)
    if source_sha256 is None:
        source_sha256 = _card_weights_sha(release)
    shape = tuple(int(v) for v in verification.input_shape)

    from filelock import FileLock

    from hub.cards.card import Asset
    from hub.cards.write import edit_card

    version = release.asset.version
    rel_dir = Path(card.name) / version
    with FileLock(str(card.path.parent / ".publish.lock")):
        fresh = _reload(release)
        same = [i for i, a in enumerate(fresh.assets)
                if a.version == version and a.file_format.lower() == fmt]
        if same and not force:
            raise PublishConflictError(
                f"{card.path} already lists a {fmt} asset for {release.id}; pass --force "
                "(force=True) to replace it"
            )
        tmp, sha, size = copy_hashing(src, store_dir / rel_dir, fmt)
        asset_rel = rel_dir / f"{card.name}-{version}-{sha[:8]}.{fmt}"
        asset_path = store_dir / asset_rel
        try:
            url = _link(asset_rel, asset_path, base)
            new = Asset(file_format=fmt, links=(url,), sha256=sha, size=size, version=version,
                        input_shape=shape, source_sha256=source_sha256 or None)

            def add_asset(now) -> dict:
                kept = [a for a in now.assets if not (a.version == version
                                                       and a.file_format.lower() == fmt)]
                at = next((i for i, a in enumerate(now.assets) if a not in kept), len(kept))
                return {"assets": (*kept[:at], new, *kept[at:])}

            os.replace(tmp, asset_path)
            try:
                edit_card(card.path, add_asset)
            except HubError as exc:
                asset_path.unlink(missing_ok=True)
                raise PublishError(f"the card {card.path} would not validate with the new "
                                   f"asset: {exc}") from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    log.info("%s: published %s asset %s (sha256 %s, %d bytes, input %s)", release.id, fmt, url,
             sha, size, list(shape))
    return AssetPublishResult(release.id, card.path, asset_path, url, fmt, sha, size, shape,
                              verification, replaced=bool(same))


def _check_owned(release: Release) -> None:
    card = release.card
    if card.source == "builtin" or card.path is None:
        raise PublishError(
            f"card {card.name!r} is built into yolohub and cannot be changed; publish your own "
            "copy of the model (`yolohub publish`) and add the asset to that card"
        )
    if not os.access(card.path, os.W_OK) or not os.access(card.path.parent, os.W_OK):
        raise PublishError(f"card file {card.path} is not writable; cannot add an asset to it")


def _reload(release: Release):
    from hub.cards.card import load_card

    return load_card(release.card.path, source=release.card.source)


def _store_and_base(release: Release, store, base_url) -> tuple[Path, str | None]:
    """The store directory and base URL, given or worked out from the checkpoint's link."""
    name, version = release.card.name, release.asset.version
    link = release.asset.links[0]
    parsed = urlparse(link)
    tail = f"/{name}/{version}/"
    if store is None:
        path = Path(unquote(parsed.path)) if parsed.scheme == "file" else None
        if path is None or path.parent.name != version or path.parent.parent.name != name:
            raise PublishError(
                f"cannot tell where {release.id}'s asset store is (its checkpoint link is "
                f"{link}); pass --store DIR (store=), the directory served at the card's base URL"
            )
        store = path.parents[2]
    if base_url is None and parsed.scheme in ("http", "https") and tail in parsed.path:
        base_url = link[: link.rindex(tail)]
    return Path(store), base_url


def _card_weights_sha(release: Release) -> str | None:
    sha = release.asset.sha256
    return sha if len(sha) == 64 else None


def _verify(src: Path, fmt: str, release: Release, *, img_size, batch):
    """Load ``src`` back and compare it with the card's network on the fixed input."""
    from hub.errors import ExportVerificationError
    from hub.tasks.export_verify import (
        check_batch,
        check_img_size,
        default_img_size,
        fixed_input,
        reference_output,
        verify_exported,
    )
    from hub.tasks.load import load

    if fmt == "onnx":
        from hub.tasks.backends import onnx_input_shape, open_onnx

        shape = onnx_input_shape(open_onnx(src))
        if len(shape) != 4 or not all(isinstance(v, int) for v in shape):
            raise InputDataError(f"{src}: expected a fixed (B, 3, H, W) input, found {shape}")
        if shape[2] != shape[3]:
            raise InputDataError(f"{src}: expected a square input, found {shape}")
        for given, have, what in ((img_size, shape[2], "size"), (batch, shape[0], "batch")):
            if given is not None and given != have:
                raise InputDataError(
                    f"{src} was exported for input shape {tuple(shape)}, not {what} {given}"
                )
        batch, img_size = shape[0], shape[2]
    batch = check_batch(batch if batch is not None else 1)
    img_size = check_img_size(img_size if img_size is not None else default_img_size(release))
    net = load(release, mode="pynative")
    x = fixed_input(batch, img_size)
    verification = verify_exported(src, fmt, x, reference_output(net, x))
    if not verification.ok:
        raise ExportVerificationError(
            f"{src} does not reproduce {release.id}'s network: {verification.describe()}; "
            "it was exported from other weights or another architecture"
        )
    return verification
