"""The training loop: batches in, compiled steps, per-epoch checkpoints, JSON-lines metrics.

``Trainer(net, dataset, config, out_dir=...).fit()`` trains ``net`` (a registered detector)
on a checked :class:`~yolomodels.data.datasets.DetectionDataset` with a
:class:`~yolomodels.train.config.TrainConfig`.  Everything that varies with the step (learning
rates, momentum, EMA decay, loss scale) is a pure function of the global step, and the data
order and augmentations are pure functions of ``(seed, epoch, index)``, so ``fit(resume=True)``
after an interruption reaches the same weights as an uninterrupted run.

Files under ``out_dir`` (written by rank 0 only):

* ``state/epoch_NNN.ckpt``: network, EMA, optimizer moments, epoch, step, loss scale;
* ``weights/last.ckpt``: the EMA weights (raw weights when EMA is off) after the last epoch,
  under the network's own parameter names, so it loads strictly into the same architecture;
* ``train_log.jsonl``: one record per step and one per epoch.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from yolomodels.data.datasets import DetectionDataset
from yolomodels.data.loader import TrainLoader
from yolomodels.train.config import TrainConfig
from yolomodels.train.distributed import Parallel
from yolomodels.train.schedule import Schedule
from yolomodels.train.state import (
    StateMeta,
    latest_state,
    load_state,
    prune_states,
    save_state,
    save_weights,
)

LOG_NAME = "train_log.jsonl"
WEIGHTS_NAME = "weights/last.ckpt"
STATE_DIR = "state"


@dataclass(frozen=True)
class EpochSummary:
    epoch: int  # 1-based
    steps: int
    loss: float  # mean of the logged total loss over the epoch's finite steps
    box: float
    obj: float
    cls: float
    seconds: float
    images_per_second: float
    skipped_steps: int  # steps whose gradients were not finite


@dataclass(frozen=True)
class FitResult:
    """What a finished (or resumed and finished) run produced."""

    weights: Path  # final EMA (or raw) weights, loadable strictly into the architecture
    log: Path
    state: Path | None  # last training-state checkpoint
    epochs: int
    steps: int  # global optimizer steps at the end
    steps_per_epoch: int
    resumed_from_epoch: int  # 0 for a fresh run
    epoch_summaries: tuple[EpochSummary, ...]  # epochs run in this call
    first_loss: float | None  # logged loss of the first step run in this call
    last_loss: float | None  # logged loss of the last step
    seconds: float


def ema_decay(config: TrainConfig, step: int) -> float:
    """EMA decay after optimizer step ``step`` (0-based); MindYOLO's counter starts at 2."""
    updates = step + 2
    return config.ema.decay * (1.0 - math.exp(-updates / config.ema.ramp))


class Trainer:
    """Trains one network on one dataset with one recipe, writing into ``out_dir``."""

    def __init__(
        self,
        net,
        dataset: DetectionDataset,
        config: TrainConfig,
        *,
        out_dir: str | Path,
        parallel: Parallel | None = None,
        progress: bool = False,
        log_fn: Callable[[str], None] | None = None,
    ):
        self.net = net
        self.dataset = dataset
        self.config = config
        self.out_dir = Path(out_dir)
        self.parallel = parallel or Parallel()
        self.progress = progress
        self.log_fn = log_fn or (lambda _msg: None)
        world = self.parallel.world
        self.loader = TrainLoader(
            dataset,
            img_size=config.img_size,
            batch_size=config.batch_size,
            augment=config.augment,
            seed=config.seed,
            workers=max(config.workers // world, 1) if config.workers > 0 else 1,
            rank=self.parallel.rank,
            world=world,
        )
        self.schedule = Schedule(
            optimizer=config.optimizer,
            warmup=config.warmup,
            epochs=config.epochs,
            steps_per_epoch=self.loader.steps_per_epoch,
        )
        self._built = False

    # -- construction ------------------------------------------------------------------------

    def _build(self) -> None:
        if self._built:
            return
        from yolomodels.losses import build_loss
        from yolomodels.train.optim import EMA, GroupAdam, GroupSGD
        from yolomodels.train.step import broadcast_parameters, build_train_step

        cfg = self.config
        broadcast_parameters(self.net, self.parallel)
        self.net.set_train(True)
        opt = cfg.optimizer
        wd = opt.weight_decay
        if opt.nominal_batch:
            wd *= cfg.batch_size * self.parallel.world / opt.nominal_batch
        if opt.name == "adam":
            self.optimizer = GroupAdam(
                self.net.trainable_params(),
                weight_decay=wd,
                no_decay=opt.no_decay,
                loss_scale=opt.loss_scale,
            )
        else:
            self.optimizer = GroupSGD(
                self.net.trainable_params(),
                weight_decay=wd,
                no_decay=opt.no_decay,
                nesterov=opt.nesterov,
                loss_scale=opt.loss_scale,
            )
        self.ema = EMA(self.net) if cfg.ema.enabled else None
        self.loss_fn = build_loss(
            cfg.loss.name,
            num_classes=self.net.num_classes,
            options=cfg.loss.options(),
            levels=getattr(getattr(self.net, "head", None), "levels", None),  # its anchors
        )
        self.step_fn = build_train_step(
            self.net,
            self.loss_fn,
            self.optimizer,
            self.ema,
            parallel=self.parallel,
            clip_grad=cfg.clip_grad,
        )
        self._built = True

    def state_params(self) -> list:
        """Every Parameter a state checkpoint holds: network, EMA shadow, optimizer moments."""
        self._build()
        params = list(self.net.get_parameters()) + list(self.optimizer.moments)
        if self.ema is not None:
            params += list(self.ema.shadow)
        return params

    # -- paths -------------------------------------------------------------------------------

    @property
    def log_path(self) -> Path:
        return self.out_dir / LOG_NAME

    @property
    def weights_path(self) -> Path:
        return self.out_dir / WEIGHTS_NAME

    @property
    def state_dir(self) -> Path:
        return self.out_dir / STATE_DIR

    def _initial_scale(self) -> float:
        ls = self.config.loss_scale
        return 1.0 if ls.mode == "none" else float(ls.value)

    # -- the loop ----------------------------------------------------------------------------

    def fit(self, *, resume: bool = False, stop_after_epoch: int | None = None) -> FitResult:
        """Train to ``config.epochs`` (or only up to ``stop_after_epoch``), resuming if asked.

        With ``resume`` the newest state checkpoint in ``out_dir/state`` is restored first;
        without a checkpoint the run starts fresh.
        """
        import mindspore as ms
        from mindspore import Tensor
        from tqdm.auto import tqdm

        self._build()
        cfg = self.config
        meta = StateMeta(epoch=0, step=0, loss_scale=self._initial_scale(), good_steps=0)
        last_state = latest_state(self.state_dir) if resume else None
        if last_state is not None:
            meta = load_state(last_state, params=self.state_params())
            self.log_fn(f"resumed from {last_state} (epoch {meta.epoch}, step {meta.step})")
        start_epoch, step = meta.epoch, meta.step
        stop_epoch = cfg.epochs if stop_after_epoch is None else min(stop_after_epoch, cfg.epochs)
        scale, good = meta.loss_scale, meta.good_steps
        main = self.parallel.is_main
        if main:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        steps_per_epoch = self.loader.steps_per_epoch
        summaries: list[EpochSummary] = []
        first_loss = last_loss = None
        t_run = time.perf_counter()
        log = self.log_path.open("a", encoding="utf-8") if main else None
        try:
            if start_epoch < stop_epoch:
                batches = self.loader.batches(start_epoch, stop_epoch)
            else:
                batches = iter(())
            bar = None
            acc = np.zeros(4)
            finite_steps = skipped = 0
            t_epoch = time.perf_counter()
            for epoch, k, images, labels in batches:
                if k == 0:
                    bar = tqdm(
                        total=steps_per_epoch,
                        desc=f"epoch {epoch + 1}/{cfg.epochs}",
                        disable=not (self.progress and main),
                        leave=False,
                        unit="step",
                    )
                    acc[:] = 0
                    finite_steps = skipped = 0
                    t_epoch = time.perf_counter()
                v = self.schedule.at(step)
                decay = ema_decay(cfg, step)
                loss, items, finite = self.step_fn(
                    Tensor(images),
                    Tensor(labels),
                    Tensor(v.lr, ms.float32),
                    Tensor(v.lr_bias, ms.float32),
                    Tensor(v.momentum, ms.float32),
                    Tensor(scale, ms.float32),
                    Tensor(decay, ms.float32),
                )
                items = items.asnumpy().astype(float)
                ok = bool(finite.asnumpy())
                step += 1
                if ok:
                    acc += items
                    finite_steps += 1
                    if first_loss is None:
                        first_loss = float(items[0])
                    last_loss = float(items[0])
                else:
                    skipped += 1
                record = {
                    "type": "step",
                    "epoch": epoch + 1,
                    "step": step,
                    "loss": round(float(items[0]), 6),
                    "box": round(float(items[1]), 6),
                    "obj": round(float(items[2]), 6),
                    "cls": round(float(items[3]), 6),
                    "lr": v.lr,
                    "lr_bias": v.lr_bias,
                    "momentum": v.momentum,
                    "loss_scale": scale,
                    "finite": ok,
                    "seconds": round(time.perf_counter() - t_run, 3),
                }
                scale, good = self._update_scale(scale, good, ok)
                if log is not None:
                    log.write(json.dumps(record) + "\n")
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{items[0]:.4f}", lr=f"{v.lr:.2e}")
                if k == steps_per_epoch - 1:
                    if bar is not None:
                        bar.close()
                    seconds = time.perf_counter() - t_epoch
                    mean = acc / max(finite_steps, 1)
                    summary = EpochSummary(
                        epoch=epoch + 1,
                        steps=steps_per_epoch,
                        loss=float(mean[0]),
                        box=float(mean[1]),
                        obj=float(mean[2]),
                        cls=float(mean[3]),
                        seconds=seconds,
                        images_per_second=steps_per_epoch
                        * cfg.batch_size
                        * self.parallel.world
                        / max(seconds, 1e-9),
                        skipped_steps=skipped,
                    )
                    summaries.append(summary)
                    meta = StateMeta(epoch=epoch + 1, step=step, loss_scale=scale, good_steps=good)
                    self._sync_statistics()
                    if main:
                        self._checkpoint(meta)
                        log.write(json.dumps({"type": "epoch", **_rounded(summary)}) + "\n")
                        log.flush()
                    self.log_fn(
                        f"epoch {epoch + 1}/{cfg.epochs}: loss {summary.loss:.4f} "
                        f"(box {summary.box:.4f} obj {summary.obj:.4f} cls {summary.cls:.4f}), "
                        f"{seconds:.1f}s, {summary.images_per_second:.1f} img/s"
                    )
        finally:
            if log is not None:
                log.close()
        if main and not self.weights_path.exists():
            save_weights(self.weights_path, self.net, self.ema)
        return FitResult(
            weights=self.weights_path,
            log=self.log_path,
            state=latest_state(self.state_dir),
            epochs=meta.epoch,
            steps=step,
            steps_per_epoch=steps_per_epoch,
            resumed_from_epoch=start_epoch,
            epoch_summaries=tuple(summaries),
            first_loss=first_loss,
            last_loss=last_loss,
            seconds=time.perf_counter() - t_run,
        )

    def _sync_statistics(self) -> None:
        """Average BN running statistics (and their EMA) over ranks, so every rank holds the
        same state at each epoch end.  MindYOLO keeps per-rank statistics and saves rank 0's;
        the average describes the whole dataset instead of one shard."""
        if not self.parallel.enabled:
            return
        from yolomodels.train.step import average_parameters

        stats = [p for p in self.state_params() if ".moving_" in p.name]
        average_parameters(stats, self.parallel)

    def _update_scale(self, scale: float, good: int, finite: bool) -> tuple[float, int]:
        ls = self.config.loss_scale
        if ls.mode != "dynamic":
            return scale, good
        if not finite:
            return max(scale / ls.factor, 1.0), 0
        good += 1
        if good >= ls.window:
            return scale * ls.factor, 0
        return scale, good

    def _checkpoint(self, meta: StateMeta) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        save_state(
            self.state_dir / f"epoch_{meta.epoch:03d}.ckpt", params=self.state_params(), meta=meta
        )
        prune_states(self.state_dir, self.config.keep_checkpoints)
        save_weights(self.weights_path, self.net, self.ema)

    def save_rank_weights(self, path: str | Path) -> None:
        """Every rank writes its raw network weights (used to check ranks stay in sync)."""
        save_weights(Path(path), self.net, None)


def _rounded(summary: EpochSummary) -> dict:
    out = {}
    for k, v in summary.__dict__.items():
        out[k] = round(v, 6) if isinstance(v, float) else v
    return out
