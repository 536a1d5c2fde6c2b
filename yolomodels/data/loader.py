"""Training batches through ``mindspore.dataset.GeneratorDataset`` with worker processes.

A batch is ``(images (bs, 3, S, S) float32 in [0, 1], labels (bs, 160, 6) float32)`` with label
rows ``[image index in batch, class, cx, cy, w, h]`` normalised to the S x S training image;
padding rows carry class and box = -1 (fact sheet §3.1).  The order of samples is a seeded
permutation per epoch; rank ``r`` of ``world`` takes every ``world``-th element of it, so shards
are disjoint and equally long.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from yolomodels.data.augment import AugmentConfig, Augmenter
from yolomodels.data.datasets import DatasetWarning, DetectionDataset
from yolomodels.errors import DatasetError, ImageReadError

MAX_BOXES = 160


def pad_labels(labels: np.ndarray, max_boxes: int = MAX_BOXES) -> np.ndarray:
    """(n, 5) -> (max_boxes, 5), extra rows dropped, missing rows filled with -1."""
    out = np.full((max_boxes, 5), -1.0, np.float32)
    n = min(len(labels), max_boxes)
    out[:n] = labels[:n]
    return out


def collate_labels(padded: np.ndarray) -> np.ndarray:
    """(bs, max_boxes, 5) -> (bs, max_boxes, 6) with the image index in front."""
    bs, m = padded.shape[:2]
    idx = np.broadcast_to(np.arange(bs, dtype=np.float32)[:, None, None], (bs, m, 1))
    return np.concatenate([idx, padded], -1).astype(np.float32)


class _Source:
    """Random-access source: key ``epoch * N + i`` -> augmented sample ``i`` of that epoch."""

    def __init__(self, augmenter: Augmenter, max_boxes: int):
        self.augmenter = augmenter
        self.max_boxes = max_boxes
        self.n = len(augmenter.records)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key):
        epoch, index = divmod(int(key), self.n)
        for attempt in range(8):
            i = (index + attempt) % self.n
            try:
                img, labels = self.augmenter(i, epoch)
                return img, pad_labels(labels, self.max_boxes)
            except ImageReadError as exc:
                # The file vanished or broke after the dataset check; train on a neighbour.
                warnings.warn(f"{exc}; using another image instead", DatasetWarning, stacklevel=1)
        raise DatasetError(f"8 consecutive images failed to read around index {index}")


class _KeySampler:
    """Yields the source keys of epochs [start, stop) for one rank, whole batches only."""

    def __init__(self, loader: TrainLoader, start: int, stop: int):
        self.loader, self.start, self.stop = loader, start, stop

    def __iter__(self):
        n = len(self.loader.dataset)
        for epoch in range(self.start, self.stop):
            for i in self.loader.epoch_indices(epoch):
                yield int(epoch * n + i)

    def __len__(self) -> int:
        return (self.stop - self.start) * self.loader.steps_per_epoch * self.loader.batch_size


@dataclass
class TrainLoader:
    """Batches of augmented samples of ``dataset`` for rank ``rank`` of ``world``."""

    dataset: DetectionDataset
    img_size: int
    batch_size: int
    augment: AugmentConfig
    seed: int = 0
    workers: int = 2
    rank: int = 0
    world: int = 1
    shuffle: bool = True
    max_boxes: int = MAX_BOXES

    def __post_init__(self):
        if self.steps_per_epoch < 1:
            raise DatasetError(
                f"{len(self.dataset)} usable images cannot fill one batch of {self.batch_size} "
                f"per rank on {self.world} rank(s); use a smaller batch size or more images"
            )
        self.augmenter = Augmenter(
            self.dataset.records, img_size=self.img_size, config=self.augment, seed=self.seed
        )

    @property
    def shard_size(self) -> int:
        return len(self.dataset) // self.world

    @property
    def steps_per_epoch(self) -> int:
        return self.shard_size // self.batch_size

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """Dataset indices this rank uses in ``epoch``, in order (whole batches only)."""
        n = len(self.dataset)
        order = (
            np.random.default_rng([self.seed, 7919, int(epoch)]).permutation(n)
            if self.shuffle
            else np.arange(n)
        )
        mine = order[self.rank :: self.world][: self.shard_size]
        return mine[: self.steps_per_epoch * self.batch_size]

    def build(self, start_epoch: int, stop_epoch: int):
        """The ``mindspore.dataset`` pipeline for epochs [start_epoch, stop_epoch)."""
        import mindspore.dataset as mds

        workers = max(int(self.workers), 1)
        ds = mds.GeneratorDataset(
            _Source(self.augmenter, self.max_boxes),
            column_names=["image", "labels"],
            sampler=_KeySampler(self, start_epoch, stop_epoch),
            num_parallel_workers=workers,
            python_multiprocessing=workers > 1,
        )

        def add_index(images, labels, _info):
            return np.stack(images), collate_labels(np.stack(labels))

        return ds.batch(
            self.batch_size,
            drop_remainder=True,
            per_batch_map=add_index,
            input_columns=["image", "labels"],
        )

    def batches(self, start_epoch: int = 0, stop_epoch: int = 1) -> Iterator[tuple]:
        """Yield ``(epoch, step, images, labels)`` numpy batches for the given epochs."""
        pipeline = self.build(start_epoch, stop_epoch)
        it = pipeline.create_tuple_iterator(num_epochs=1, output_numpy=True)
        steps = self.steps_per_epoch
        for k, (images, labels) in enumerate(it):
            yield start_epoch + k // steps, k % steps, images, labels
