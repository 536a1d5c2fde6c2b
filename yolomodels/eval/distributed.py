"""Evaluation and prediction sharded over the ranks of an ``msrun`` job.

Every rank runs its own shard (``ids[rank::world]``: strided, so image sizes spread evenly) and
posts the result, or its one-line error, as a file in a directory of the job; every rank waits
for all results, so every rank learns when another failed and raises the same one-line error;
rank 0 alone scores and writes the report.

Why files and not MindSpore's collectives: on CPU an ``AllGather`` gives up when a peer arrives
more than 30 s later (measured, mccl's fixed CollectiveWait), and ranks routinely drift that far
apart (compile time, load, a larger shard).  Waiting on files has our own limits instead: a
heartbeat per rank (a killed rank is noticed within ``stale`` seconds) and an overall timeout for
a rank that is alive but stuck.  The one collective is right after ``init()``, where the ranks
meet anyway: rank 0's random token names the job's directory.  Ranks on several hosts need
that directory on a shared file system.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from yolomodels.errors import DistributedError, YoloModelsError
from yolomodels.train.distributed import Parallel, launched_by_msrun

__all__ = [
    "GATHER_TIMEOUT",
    "Job",
    "current",
    "decode_detections",
    "encode_detections",
    "exchange",
    "init_ranks",
    "run_inference_sharded",
    "shard",
]

GATHER_TIMEOUT = 1800.0  # seconds a rank waits for the slowest one before giving up
STALE_AFTER = 60.0  # seconds without a heartbeat after which a rank counts as gone
# MindSpore's scheduler declares a worker dead after 30 s without its heartbeat and then fails
# the whole job; a loaded machine starved rank 0's heartbeat while it scored (seen in CI). Our
# own heartbeat files notice a dead rank within STALE_AFTER, so the scheduler may wait longer.
NODE_TIMEOUT = 90
_BEAT = 2.0

T = TypeVar("T")


@dataclass(frozen=True)
class Job:
    """This process's place in an msrun job, and the job's token (same on every rank)."""

    parallel: Parallel
    token: str = ""


_STATE: Job | None = None
_BEATING: dict[Path, _Heartbeat] = {}


def init_ranks(*, root: str | os.PathLike | None = None) -> Parallel:
    """Join the msrun job (once) and return this process's rank; rank 0 of 1 outside msrun.

    Under msrun the scheduler process runs the same command: its ``init()`` serves the cluster
    and exits the process when the workers are done, so call this before anything that could
    fail.  Unlike training, no parallel mode is set: each rank compiles the plain network, so
    its numbers are the single-process ones.  With ``root`` (the directory later given to
    :func:`exchange`) the rank's heartbeat starts now, so a rank that dies while still loading
    is noticed too.
    """
    global _STATE
    if _STATE is None:
        if launched_by_msrun():
            from mindspore import Tensor, ops
            from mindspore.communication import get_group_size, get_rank, init

            os.environ.setdefault("MS_NODE_TIMEOUT", str(NODE_TIMEOUT))  # read by init()
            init()
            parallel = Parallel(rank=get_rank(), world=get_group_size())
            mine = np.frombuffer(secrets.token_bytes(8), np.int32)
            tokens = ops.AllGather()(Tensor(mine)).asnumpy()  # ranks meet here right after init
            _STATE = Job(parallel, token=tokens[:2].astype("<i4").tobytes().hex())
            if root is not None:
                path = Path(root) / f"job-{_STATE.token}" / f"rank{parallel.rank}.alive"
                _BEATING[path] = _Heartbeat(path).__enter__()  # beats until the process ends
                atexit.register(_forget, path)
        else:
            _STATE = Job(Parallel())
    return _STATE.parallel


def _forget(alive: Path) -> None:
    """At exit: drop this rank's heartbeat, and the job's directory if it is left empty (a
    command that ended before exchanging, e.g. on bad input, leaves nothing behind)."""
    alive.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        alive.parent.rmdir()


def current() -> Parallel:
    """The rank :func:`init_ranks` found, or rank 0 of 1 when it was not called."""
    return _STATE.parallel if _STATE else Parallel()


def shard(items: Sequence[T], parallel: Parallel) -> list[T]:
    """This rank's share of ``items``: every ``world``-th item from position ``rank``."""
    return list(items[parallel.rank :: parallel.world])


def exchange(
    work: Callable[[], bytes],
    parallel: Parallel,
    *,
    root: str | os.PathLike,
    name: str = "results",
    expected: tuple[type[BaseException], ...] = (YoloModelsError,),
    timeout: float = GATHER_TIMEOUT,
    stale: float = STALE_AFTER,
    token: str | None = None,
) -> list[bytes]:
    """Run ``work`` on this rank, then return every rank's bytes (index = rank) on every rank.

    An exception from ``work`` does not leave this rank: it is posted as the rank's result, and
    every rank then raises :class:`DistributedError` naming the failed rank(s) and their
    messages (``input_error`` is true when each failure was one of ``expected``: bad input, not
    a bug).  A rank that stops beating for ``stale`` seconds, or a wait longer than ``timeout``
    seconds, raises it too.  ``root`` holds the job's directory (shared by the ranks); ``name``
    tells several exchanges of one job apart; ``token`` names the job (default: the one
    :func:`init_ranks` agreed on).
    """
    if not parallel.enabled:
        return [work()]
    token = token or (_STATE.token if _STATE is not None else "")
    if not token:
        raise DistributedError("exchange() needs init_ranks() first, under msrun")
    job_dir = Path(root) / f"job-{token}"
    folder = job_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    me = parallel.rank
    alive = job_dir / f"rank{me}.alive"
    with contextlib.nullcontext() if alive in _BEATING else _Heartbeat(alive):
        try:
            payload, kind = work(), "ok"
        except expected as exc:
            payload, kind = _one_line(str(exc) or type(exc).__name__).encode(), "input"
        except Exception as exc:  # noqa: BLE001 - a bug on one rank must still end every rank
            payload, kind = _one_line(f"{type(exc).__name__}: {exc}").encode(), "bug"
        _post(folder / f"rank{me}.{kind}", payload)
        try:
            posted = _wait_all(folder, parallel, timeout=timeout, stale=stale)
        except DistributedError:
            if me == 0:
                shutil.rmtree(job_dir, ignore_errors=True)
            raise
        _post(folder / f"rank{me}.read", b"")
    if me == 0:
        _clean_up(job_dir, folder, parallel, stale=stale)
    failed = {r: (k, p) for r, (k, p) in posted.items() if k != "ok"}
    if failed:
        reasons = "; ".join(f"rank {r}: {p.decode(errors='replace')}" for r, (_, p) in
                            sorted(failed.items()))  # fmt: skip
        raise DistributedError(
            f"{len(failed)} of {parallel.world} ranks failed ({reasons}); nothing was written",
            input_error=all(k == "input" for k, _ in failed.values()),
        )
    return [posted[r][1] for r in range(parallel.world)]


def _post(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all (readers poll for it)."""
    path.parent.mkdir(parents=True, exist_ok=True)  # rank 0 may have given up and cleaned up
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _wait_all(folder: Path, parallel: Parallel, *, timeout: float, stale: float):
    """{rank: (kind, payload)} once every rank has posted; DistributedError if one is gone."""
    start = time.monotonic()
    posted: dict[int, tuple[str, bytes]] = {}
    delay = 0.02
    while True:
        for r in range(parallel.world):
            if r in posted:
                continue
            for kind in ("ok", "input", "bug"):
                f = folder / f"rank{r}.{kind}"
                if f.is_file():
                    posted[r] = (kind, f.read_bytes())
                    break
        if len(posted) == parallel.world:
            return posted
        waited = time.monotonic() - start
        missing = [r for r in range(parallel.world) if r not in posted]
        gone = [r for r in missing
                if waited > stale and _age(folder.parent / f"rank{r}.alive") > stale]  # fmt: skip
        if gone or (timeout > 0 and waited > timeout):
            why = (
                f"rank {', '.join(map(str, gone))} stopped (no sign of life for {stale:g} s: "
                "killed or crashed, see the msrun log directory)"
                if gone
                else f"rank {', '.join(map(str, missing))} sent nothing in {timeout:g} s (stuck? "
                "raise the gather timeout, YOLOHUB_GATHER_TIMEOUT, if it is just slow)"
            )
            raise DistributedError(
                f"rank {parallel.rank} of {parallel.world} gave up waiting for the other ranks: "
                f"{why}; nothing was written"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return float("inf")


def _clean_up(job_dir: Path, folder: Path, parallel: Parallel, *, stale: float) -> None:
    """Rank 0 removes the job's directory once every rank has read the results (bounded wait;
    the heartbeats stop by themselves when their files are gone)."""
    deadline = time.monotonic() + min(stale, 30.0)
    while time.monotonic() < deadline and not all(
        (folder / f"rank{r}.read").is_file() for r in range(parallel.world)
    ):
        time.sleep(0.05)
    shutil.rmtree(job_dir, ignore_errors=True)


class _Heartbeat:
    """Touch ``path`` every few seconds while the block runs (other ranks watch its mtime)."""

    def __init__(self, path: Path):
        self.path = path
        self._done = threading.Event()

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()
        threading.Thread(target=self._beat, daemon=True, name="rank-heartbeat").start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        return False

    def _beat(self) -> None:
        while not self._done.wait(_BEAT):
            try:
                os.utime(self.path)
            except OSError:
                return


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


def _one_line(text: str) -> str:
    return " ".join(text.split())


def run_inference_sharded(
    net,
    split,
    *,
    settings,
    parallel: Parallel,
    root: str | os.PathLike | None = None,
    progress: bool = False,
    timeout: float = GATHER_TIMEOUT,
):
    """``run_inference`` over this rank's shard of ``split``, gathered: every rank returns the
    detections of every image, in the split's order, as one process would have found them.
    ``root``: the directory the ranks exchange through (default: the system's temp directory,
    which only ranks on one host share)."""
    from yolomodels.eval.runner import InferenceRun, run_inference

    start = time.perf_counter()
    root = Path(tempfile.gettempdir()) / "yolomodels-ranks" if root is None else root
    mine = shard(split.image_ids, parallel)

    def work() -> bytes:
        run = run_inference(net, split, settings=settings, image_ids=mine, progress=progress)
        return encode_detections(run.detections)

    merged: dict[int, np.ndarray] = {}
    for payload in exchange(work, parallel, root=root, name="eval", timeout=timeout):
        merged.update(decode_detections(payload))
    detections = {i: merged[i] for i in split.image_ids}
    return InferenceRun(detections=detections, seconds=time.perf_counter() - start)
