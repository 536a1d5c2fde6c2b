"""Evaluation inference as a pipeline that keeps the cores busy.

Three stages run at once, each in order: worker processes read and letterbox the next batch
(:mod:`yolomodels.eval.workers`), the calling thread runs the network on the current batch, and
a thread runs NMS and maps boxes back for the previous batch (NumPy releases the GIL in its
array work, MindSpore while the graph runs).  Each image goes through exactly the calls of the
plain loop (``read_image``, ``preprocess``, the network on the same padded batch, ``nms``,
``scale_boxes_back``), so the detections are the same, bit for bit.

Memory is bounded by the batch size, not by the number of images: at most one batch of
prepared images ahead, one network output waiting for NMS, and the ``(K, 6)`` float32
detections kept per image.  ``workers=0`` runs the plain loop in the calling thread.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from yolomodels.eval.workers import ImageWorkers, InlineImages, default_workers


@dataclass(frozen=True)
class PipelineOptions:
    """How inference is spread over processes and threads (never what it computes).

    ``workers``: image worker processes (None: :func:`default_workers`; 0: none, and NMS in
    the calling thread too).  ``timeout``: seconds to wait for one image before a worker is
    declared stuck.
    """

    workers: int | None = None
    timeout: float = 120.0

    def __post_init__(self):
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"workers must be >= 0 (0: no worker processes), got {self.workers}")
        if not self.timeout > 0:
            raise ValueError(f"timeout must be > 0 seconds, got {self.timeout}")

    @property
    def worker_count(self) -> int:
        return default_workers() if self.workers is None else int(self.workers)


def postprocess_image(pred: np.ndarray, meta, original_hw, settings) -> np.ndarray:
    """One image's detections ``(K, 6)`` float32 in original pixels from its network output."""
    from yolomodels.postprocess import nms, scale_boxes_back

    det = nms(
        pred,
        conf=settings.conf_threshold,
        iou=settings.iou_threshold,
        multi_label=settings.multi_label,
        max_det=settings.max_detections,
    )
    det = np.array(det, dtype=np.float32).reshape(-1, 6)
    det[:, :4] = scale_boxes_back(det[:, :4], meta, original_hw)
    return det


class _Postprocess:
    """NMS + mapping back, batch by batch, in a thread (``threaded``) or inline.

    The queue holds one batch, so the network can run at most one batch ahead of NMS.  An
    error in the thread is raised in the caller at its next ``put`` or at ``finish``.
    """

    def __init__(self, settings, *, threaded: bool, done: Callable[[int], None]):
        self.detections: dict[int, np.ndarray] = {}
        self._settings, self._done = settings, done
        self._error: BaseException | None = None
        self._abort = False
        self._queue: queue.Queue | None = queue.Queue(maxsize=1) if threaded else None
        self._thread = None
        if threaded:
            self._thread = threading.Thread(target=self._loop, name="eval-nms", daemon=True)
            self._thread.start()

    def put(self, ids: Sequence[int], out: np.ndarray, metas: Sequence) -> None:
        if self._queue is None:
            self._run(ids, out, metas)
            return
        self._raise()
        self._queue.put((ids, out, metas))

    def finish(self) -> None:
        if self._queue is not None:
            self._queue.put(None)
            self._thread.join()
            self._raise()

    def abort(self) -> None:
        if self._queue is not None and self._thread.is_alive():
            self._abort = True
            self._queue.put(None)  # behind at most one batch, which is skipped
            self._thread.join()

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def _loop(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._error is None and not self._abort:
                try:
                    self._run(*item)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller
                    self._error = exc

    def _run(self, ids, out, metas) -> None:
        for j, image_id in enumerate(ids):
            meta, hw = metas[j]
            self.detections[image_id] = postprocess_image(out[j], meta, hw, self._settings)
        self._done(len(ids))


def _forward(net, batch: np.ndarray) -> np.ndarray:
    import mindspore as ms

    out = net(ms.Tensor(batch))
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out.asnumpy()


def infer(
    net,
    items: Sequence[tuple[int, str | os.PathLike]],
    *,
    settings,
    options: PipelineOptions = PipelineOptions(),
    progress: bool = False,
    batch: int | None = None,
) -> dict[int, np.ndarray]:
    """Detections per image id for ``items`` (``(image id, image path)`` pairs), in their order.

    ``net`` is switched to eval mode and called on batches of ``settings.batch_size`` images
    (fewer when there are fewer images; ``batch`` fixes the shape instead); the last batch is
    padded with zeros to that shape so one compiled graph serves every batch.  A single batch
    runs the plain loop.
    """
    net.set_train(False)
    items = list(items)
    n = len(items)
    if n == 0:
        return {}
    bs = batch if batch is not None else min(settings.batch_size, n)
    size = settings.img_size
    # one batch has nothing to overlap with: worker start-up would be pure cost
    count = options.worker_count if n > bs else 0
    if count > 0:
        images = ImageWorkers(min(count, n), img_size=size, timeout=options.timeout)
    else:
        images = InlineImages(img_size=size)
    with images, tqdm(
        total=n, unit="img", desc="eval", disable=not progress, leave=False, smoothing=0.1
    ) as bar:
        post = _Postprocess(settings, threaded=count > 0, done=bar.update)
        submitted = 0
        try:
            for start in range(0, n, bs):
                chunk = items[start : start + bs]
                batch = np.zeros((bs, 3, size, size), dtype=np.float32)  # zero rows pad
                metas = []
                for j in range(len(chunk)):
                    # keep one batch of images in preparation beyond the one being assembled
                    while submitted < min(n, start + j + 1 + bs):
                        images.submit(submitted, items[submitted][1])
                        submitted += 1
                    x, meta, hw = images.result(start + j)
                    batch[j] = x
                    metas.append((meta, hw))
                out = _forward(net, batch)
                del batch
                post.put([int(i) for i, _ in chunk], out, metas)
                del out
            post.finish()
        except BaseException:
            post.abort()
            raise
    return post.detections
