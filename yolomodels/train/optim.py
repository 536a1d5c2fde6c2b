"""SGD with momentum/nesterov and parameter groups, and the EMA copy of a network, as Cells.

Both are called inside the jitted train step; their state (moments, EMA weights) is made of
Parameters so it is saved and restored with a checkpoint.
"""

from __future__ import annotations

import fnmatch

import mindspore as ms
from mindspore import Parameter, ParameterTuple, Tensor, nn, ops


def is_bias_like(name: str) -> bool:
    """Biases and BN betas: the parameters whose warmup starts from the bias lr."""
    return name.endswith(".bias") or name.endswith(".beta")


def decays(name: str, no_decay: tuple[str, ...]) -> bool:
    """Whether weight decay applies: not if any ``no_decay`` pattern is a substring / glob of it."""
    return not any(p in name or fnmatch.fnmatchcase(name, p) for p in no_decay)


class GroupSGD(nn.Cell):
    """``w -= lr * (g + m * v)`` (nesterov) or ``w -= lr * v`` with ``v = m * v + g``.

    ``g = (grad + wd * w) / loss_scale``; wd is zero for no-decay parameters and biases/betas get
    their own lr.  When ``finite`` is false the step leaves weights and moments untouched.
    """

    def __init__(
        self,
        params,
        *,
        weight_decay: float,
        no_decay: tuple[str, ...] = ("bias", "beta", "gamma"),
        nesterov: bool = False,
        loss_scale: float = 1.0,
    ):
        super().__init__(auto_prefix=False)
        self.params = ParameterTuple(params)
        self.moments = self.params.clone(prefix="moments", init="zeros")
        self.wd = tuple(float(weight_decay) if decays(p.name, no_decay) else 0.0 for p in self.params)
        self.bias = tuple(is_bias_like(p.name) for p in self.params)
        self.nesterov = bool(nesterov)
        self.inv_scale = 1.0 / float(loss_scale)

    def construct(self, grads, lr, lr_bias, momentum, finite):
        keep = ops.cast(finite, ms.float32)
        mom = momentum * keep + (1.0 - keep)
        for i in range(len(self.params)):
            w = self.params[i]
            v = self.moments[i]
            g = ops.where(finite, grads[i], ops.zeros_like(grads[i]))
            if self.wd[i] != 0.0:
                g = g + self.wd[i] * w * keep
            g = g * self.inv_scale
            v_new = mom * v + g
            step_lr = lr_bias if self.bias[i] else lr
            step_lr = step_lr * keep
            if self.nesterov:
                delta = step_lr * (g + mom * v_new)
            else:
                delta = step_lr * v_new
            ops.assign(v, v_new)
            ops.assign(w, w - delta)
        return finite


class EMA(nn.Cell):
    """Exponential moving average of every float parameter of a network (BN statistics too)."""

    def __init__(self, net: nn.Cell):
        super().__init__(auto_prefix=False)
        src = [p for p in net.get_parameters() if p.dtype in (ms.float32, ms.float16)]
        self.src = ParameterTuple(src)
        self.shadow = ParameterTuple(
            [Parameter(Tensor(p.asnumpy()), name="ema." + p.name, requires_grad=False) for p in src]
        )

    def construct(self, decay):
        for i in range(len(self.src)):
            ops.assign(self.shadow[i], decay * self.shadow[i] + (1.0 - decay) * self.src[i])
        return decay
