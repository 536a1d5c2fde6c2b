"""Per-step learning rates and momentum: warmup, then cosine or linear decay per epoch to lr*lrf."""

from __future__ import annotations

import math
from dataclasses import dataclass

from yolomodels.train.config import OptimizerConfig, WarmupConfig


@dataclass(frozen=True)
class StepValues:
    lr: float  # weights and BN gammas
    lr_bias: float  # biases and BN betas (differs only during warmup)
    momentum: float


@dataclass(frozen=True)
class Schedule:
    """A pure function of the global step, so a resumed run continues exactly where it stopped."""

    optimizer: OptimizerConfig
    warmup: WarmupConfig
    epochs: int
    steps_per_epoch: int

    @property
    def warmup_steps(self) -> int:
        if self.warmup.epochs <= 0 and self.warmup.min_steps <= 0:
            return 0
        return max(round(self.warmup.epochs * self.steps_per_epoch), self.warmup.min_steps)

    def epoch_lr(self, epoch: int) -> float:
        o = self.optimizer
        x = epoch / self.epochs
        if o.schedule == "cosine":
            factor = o.lrf + (1 - o.lrf) * 0.5 * (1 + math.cos(math.pi * x))
        else:
            factor = (1 - x) * (1 - o.lrf) + o.lrf
        return o.lr * factor

    def at(self, step: int) -> StepValues:
        """Values for global step ``step`` (0-based, counted over all epochs)."""
        epoch = step // self.steps_per_epoch
        lr = self.epoch_lr(epoch)
        w = self.warmup_steps
        if step < w:
            frac = step / w
            target = lr if self.warmup.target == "schedule" else self.optimizer.lr
            return StepValues(
                lr=target * frac,
                lr_bias=self.warmup.bias_lr + (target - self.warmup.bias_lr) * frac,
                momentum=self.warmup.momentum
                + (self.optimizer.momentum - self.warmup.momentum) * frac,
            )
        return StepValues(lr=lr, lr_bias=lr, momentum=self.optimizer.momentum)
