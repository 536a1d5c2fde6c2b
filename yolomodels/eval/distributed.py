"""Evaluation and prediction sharded over the ranks of an ``msrun`` job.

Every rank runs its own shard (``ids[rank::world]``: strided, so image sizes spread evenly),
then all ranks exchange their results with two all-gathers on the job's communicator: a header
per rank (status, payload length), then the payloads padded to the longest one.  Every rank
gets every result, so every rank also learns when another rank failed and raises the same
one-line error; rank 0 alone scores and writes files.

Why collectives rather than files in a run directory: they need no directory shared by the
ranks (msrun also starts ranks on other hosts), leave nothing behind after a crash, and a dead
peer ends the gather by itself (MindSpore's heartbeat fails the collective after ~30 s).  A
peer that is alive but stuck is caught by a watchdog: the waiting rank prints one line and
exits.  Gathering 16 MB between two CPU ranks on loopback takes ~0.3 s (bench_eval_distributed).
"""

from __future__ import annotations

import io
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

import numpy as np

from yolomodels.errors import DistributedError, YoloModelsError
from yolomodels.train.distributed import Parallel, launched_by_msrun

__all__ = [
    "GATHER_TIMEOUT",
    "current",
    "decode_detections",
    "encode_detections",
    "exchange",
    "init_ranks",
    "run_inference_sharded",
    "shard",
]

GATHER_TIMEOUT = 1800.0  # seconds a rank waits for the slowest one before giving up
WATCHDOG_EXIT_CODE = 10
_OK, _FAILED, _FAILED_INPUT = 0, 1, 2

_STATE: Parallel | None = None
T = TypeVar("T")


def init_ranks() -> Parallel:
    """Join the msrun job (once) and return this process's rank; rank 0 of 1 outside msrun.

    Under msrun the scheduler process runs the same command: its ``init()`` serves the cluster
    and exits the process when the workers are done, so call this before anything that could
    fail.  Unlike training, no parallel mode is set: each rank compiles the plain network, so
    its numbers are the single-process ones.
    """
    global _STATE
    if _STATE is None:
        if launched_by_msrun():
            from mindspore.communication import get_group_size, get_rank, init

            init()
            _STATE = Parallel(rank=get_rank(), world=get_group_size())
        else:
            _STATE = Parallel()
    return _STATE


def current() -> Parallel:
    """The rank :func:`init_ranks` found, or rank 0 of 1 when it was not called."""
    return _STATE or Parallel()


def shard(items: Sequence[T], parallel: Parallel) -> list[T]:
    """This rank's share of ``items``: every ``world``-th item from position ``rank``."""
    return list(items[parallel.rank :: parallel.world])


def exchange(
    work: Callable[[], bytes],
    parallel: Parallel,
    *,
    expected: tuple[type[BaseException], ...] = (YoloModelsError,),
    timeout: float = GATHER_TIMEOUT,
) -> list[bytes]:
    """Run ``work`` on this rank, then return every rank's bytes (index = rank) on every rank.

    An exception from ``work`` does not leave this rank: it is sent to the others as the rank's
    result, and every rank then raises :class:`DistributedError` naming the failed rank(s) and
    their messages (``input_error`` is true when each failure was one of ``expected``, i.e. bad
    input rather than a bug).  A lost peer raises it too; no answer within ``timeout`` seconds
    prints one line and exits the process (a stuck collective cannot be interrupted).
    """
    if not parallel.enabled:
        return [work()]
    try:
        payload, status = work(), _OK
    except expected as exc:
        payload, status = _one_line(str(exc) or type(exc).__name__).encode(), _FAILED_INPUT
    except Exception as exc:  # noqa: BLE001 - a bug on one rank must still end every rank
        payload, status = _one_line(f"{type(exc).__name__}: {exc}").encode(), _FAILED
    with _watchdog(parallel, timeout):
        payloads, statuses = _allgather_bytes(payload, status, parallel)
    failed = [r for r, s in enumerate(statuses) if s != _OK]
    if failed:
        reasons = "; ".join(
            f"rank {r}: {payloads[r].decode(errors='replace')}" for r in failed
        )
        raise DistributedError(
            f"{len(failed)} of {parallel.world} ranks failed ({reasons}); nothing was written",
            input_error=all(statuses[r] == _FAILED_INPUT for r in failed),
        )
    return payloads


def encode_detections(detections: Mapping[int, np.ndarray]) -> bytes:
    """Detections per image id as bytes (ids, counts, rows; exact float32 values)."""
    ids = np.fromiter(detections, dtype=np.int64, count=len(detections))
    rows = [np.asarray(detections[i], np.float32).reshape(-1, 6) for i in detections]
    buf = io.BytesIO()
    np.savez(
        buf,
        ids=ids,
        counts=np.array([len(r) for r in rows], np.int64),
        rows=np.concatenate(rows) if rows else np.zeros((0, 6), np.float32),
    )
    return buf.getvalue()


def decode_detections(data: bytes) -> dict[int, np.ndarray]:
    """The inverse of :func:`encode_detections`."""
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        ids, counts, rows = z["ids"], z["counts"], z["rows"]
    parts = np.split(rows, np.cumsum(counts)[:-1]) if len(ids) else []
    return {int(i): p for i, p in zip(ids, parts)}


def _allgather_bytes(
    payload: bytes, status: int, parallel: Parallel
) -> tuple[list[bytes], list[int]]:
    """Every rank's (payload, status); int32 all-gathers (MindSpore's CPU AllGather has no
    byte type), payloads zero-padded to a common multiple of 4 bytes."""
    from mindspore import Tensor, ops

    gather = ops.AllGather()
    try:
        header = np.array([status, len(payload)], np.int32)
        headers = gather(Tensor(header)).asnumpy().reshape(parallel.world, 2)
        width = -(-int(headers[:, 1].max()) // 4) or 1
        padded = np.zeros(width * 4, np.uint8)
        padded[: len(payload)] = np.frombuffer(payload, np.uint8)
        blob = gather(Tensor(padded.view(np.int32))).asnumpy().reshape(parallel.world, width)
    except RuntimeError as exc:
        raise DistributedError(
            f"rank {parallel.rank} of {parallel.world} lost contact with the other ranks while "
            f"gathering results (a rank died or was killed: {_one_line(str(exc))[:160]}); nothing "
            "was written, see the msrun log directory for the rank that stopped"
        ) from None
    raw = blob.view(np.uint8).reshape(parallel.world, width * 4)
    payloads = [raw[r, : int(headers[r, 1])].tobytes() for r in range(parallel.world)]
    return payloads, [int(s) for s in headers[:, 0]]


class _watchdog:
    """Exit the process with one line on stderr if the block does not finish in ``timeout``."""

    def __init__(self, parallel: Parallel, timeout: float):
        self.parallel, self.timeout = parallel, timeout
        self._done = threading.Event()

    def __enter__(self):
        if self.timeout > 0:  # 0: wait as long as it takes
            threading.Thread(target=self._watch, daemon=True, name="gather-watchdog").start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        return False

    def _watch(self) -> None:  # pragma: no cover - runs only when a peer hangs
        if self._done.wait(self.timeout):
            return
        p = self.parallel
        sys.stderr.write(
            f"error: rank {p.rank} of {p.world} waited {self.timeout:g} s for the other ranks to "
            "send their results and gave up (a rank is stuck or was stopped); nothing was "
            "written. Raise YOLOHUB_GATHER_TIMEOUT if a rank is just slow\n"
        )
        sys.stderr.flush()
        os._exit(WATCHDOG_EXIT_CODE)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def run_inference_sharded(
    net,
    split,
    *,
    settings,
    parallel: Parallel,
    progress: bool = False,
    timeout: float = GATHER_TIMEOUT,
):
    """``run_inference`` over this rank's shard of ``split``, gathered: every rank returns the
    detections of every image, in the split's order, as one process would have found them."""
    from yolomodels.eval.runner import InferenceRun, run_inference

    start = time.perf_counter()
    mine = shard(split.image_ids, parallel)

    def work() -> bytes:
        run = run_inference(net, split, settings=settings, image_ids=mine, progress=progress)
        return encode_detections(run.detections)

    merged: dict[int, np.ndarray] = {}
    for payload in exchange(work, parallel, timeout=timeout):
        merged.update(decode_detections(payload))
    detections = {i: merged[i] for i in split.image_ids}
    return InferenceRun(detections=detections, seconds=time.perf_counter() - start)
