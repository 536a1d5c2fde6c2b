"""Data-parallel setup under MindSpore's own launcher (``msrun``).

``msrun`` starts each worker with ``MS_ROLE=MS_WORKER`` and ``MS_WORKER_NUM``, and runs the
same command once more as the scheduler (``MS_ROLE=MS_SCHED``), whose ``init()`` serves the
cluster instead of training.  Those are MindSpore's variables, not yolohub settings, so they are
read here where the decision is made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Parallel:
    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


_STATE: Parallel | None = None


def launched_by_msrun() -> bool:
    role = os.environ.get("MS_ROLE")
    return role in ("MS_WORKER", "MS_SCHED") and int(os.environ.get("MS_WORKER_NUM", "1")) > 1


def init_parallel() -> Parallel:
    """Initialise communication once when started by msrun with several workers; else rank 0 of 1."""
    global _STATE
    if _STATE is not None:
        return _STATE
    if not launched_by_msrun():
        _STATE = Parallel()
        return _STATE
    import mindspore as ms
    from mindspore.communication import get_group_size, get_rank, init

    init()
    ms.set_auto_parallel_context(parallel_mode=ms.ParallelMode.DATA_PARALLEL, gradients_mean=True)
    _STATE = Parallel(rank=get_rank(), world=get_group_size())
    return _STATE


def barrier(parallel: Parallel) -> None:
    """Wait for every rank (no-op when not distributed)."""
    if parallel.enabled:
        import numpy as np
        from mindspore import Tensor, ops

        ops.AllReduce()(Tensor(np.zeros(1, np.float32)))
