"""Training-state checkpoints (network, EMA, optimizer moments, counters) and final weights.

A state file holds every Parameter the train step touches under its own name (``model.…``,
``ema.model.…``, ``moments.model.…``) plus ``meta.*`` scalars (epoch, global step, loss scale),
so resuming restores exactly what an uninterrupted run would have had in memory.  Files are
written to a temporary name and renamed, so a crash never leaves a half-written checkpoint.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor

from yolomodels.errors import CheckpointReadError

STATE_PATTERN = re.compile(r"^epoch_(\d+)\.ckpt$")


@dataclass(frozen=True)
class StateMeta:
    """Counters stored with a state checkpoint."""

    epoch: int  # epochs completed
    step: int  # optimizer steps completed (global)
    loss_scale: float
    good_steps: int  # finite steps since the last loss-scale change (dynamic scaling)


def _entries(params) -> list[dict]:
    return [{"name": p.name, "data": Tensor(p.asnumpy())} for p in params]


def _atomic_save(entries: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # save_checkpoint appends ".ckpt" to names without it, so the temporary name keeps it.
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.ckpt")
    ms.save_checkpoint(entries, str(tmp))
    os.replace(tmp, path)


def save_state(path: Path, *, params, meta: StateMeta) -> None:
    """Write the Parameters ``params`` and the counters ``meta`` to ``path``."""
    entries = _entries(params)
    entries += [
        {"name": "meta.epoch", "data": Tensor(np.array(meta.epoch, np.int64))},
        {"name": "meta.step", "data": Tensor(np.array(meta.step, np.int64))},
        {"name": "meta.loss_scale", "data": Tensor(np.array(meta.loss_scale, np.float64))},
        {"name": "meta.good_steps", "data": Tensor(np.array(meta.good_steps, np.int64))},
    ]
    _atomic_save(entries, path)


def load_state(path: Path, *, params) -> StateMeta:
    """Restore ``params`` in place from a state file; every one must be present with its shape."""
    try:
        stored = ms.load_checkpoint(str(path))
    except (RuntimeError, ValueError, OSError) as exc:
        raise CheckpointReadError(f"training state {path} cannot be read ({exc})") from None
    problems = []
    for p in params:
        value = stored.get(p.name)
        if value is None:
            problems.append(f"{p.name} missing")
        elif tuple(value.shape) != tuple(p.shape):
            problems.append(f"{p.name} has shape {tuple(value.shape)}, expected {tuple(p.shape)}")
    missing_meta = [k for k in ("meta.epoch", "meta.step") if k not in stored]
    if problems or missing_meta:
        shown = (problems + [f"{k} missing" for k in missing_meta])[:5]
        raise CheckpointReadError(
            f"training state {path} does not fit this run ({len(problems) + len(missing_meta)} "
            f"problem(s), e.g. {'; '.join(shown)}); resume with the recipe and architecture "
            "arguments it was written with"
        )
    for p in params:
        p.set_data(Tensor(stored[p.name].asnumpy(), p.dtype))

    def scalar(name, default):
        return stored[name].asnumpy().item() if name in stored else default

    return StateMeta(
        epoch=int(scalar("meta.epoch", 0)),
        step=int(scalar("meta.step", 0)),
        loss_scale=float(scalar("meta.loss_scale", 1.0)),
        good_steps=int(scalar("meta.good_steps", 0)),
    )


def latest_state(directory: Path) -> Path | None:
    """The state file of the highest epoch in ``directory``, if any."""
    if not directory.is_dir():
        return None
    found = []
    for p in directory.iterdir():
        m = STATE_PATTERN.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return max(found)[1] if found else None


def prune_states(directory: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest state files."""
    found = sorted(
        (int(m.group(1)), p)
        for p in directory.iterdir()
        if (m := STATE_PATTERN.match(p.name)) is not None
    )
    for _, p in found[: max(len(found) - keep, 0)]:
        p.unlink(missing_ok=True)


def save_weights(path: Path, net, ema=None) -> None:
    """The network's weights under its own parameter names; EMA values where an EMA exists.

    Integer buffers (YOLOv3's ``stride``) are not averaged and come from the network, so the
    file loads strictly into a freshly built network of the same architecture.
    """
    shadow: dict[str, Parameter] = {}
    if ema is not None:
        shadow = {s.name[len("ema.") :]: s for s in ema.shadow}
    entries = []
    for p in net.get_parameters():
        src = shadow.get(p.name, p)
        entries.append({"name": p.name, "data": Tensor(src.asnumpy())})
    _atomic_save(entries, path)
