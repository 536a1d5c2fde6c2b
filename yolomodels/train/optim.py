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


_sgd_update = ops.MultitypeFuncGraph("sgd_update")
_ema_update = ops.MultitypeFuncGraph("ema_update")
_apply_momentum = ops.ApplyMomentum()
_apply_nesterov = ops.ApplyMomentum(use_nesterov=True)


@_sgd_update.register(
    "Bool", "Number", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Number", "Bool",
    "Tensor", "Tensor", "Tensor",
)  # fmt: skip
def _sgd_one(nesterov, inv_scale, grad_scale, lr, lr_bias, momentum, keep, wd, bias, w, v, g):
    """One parameter: ``g = keep * (grad * grad_scale + wd * w) / loss_scale``; then ApplyMomentum."""
    g = ops.where(keep > 0.5, g * grad_scale, ops.zeros_like(g))
    if wd != 0.0:
        g = g + wd * w
    g = g * (keep * inv_scale)
    step_lr = lr_bias if bias else lr
    if nesterov:
        return _apply_nesterov(w, v, step_lr * keep, g, momentum)
    return _apply_momentum(w, v, step_lr * keep, g, momentum)


@_ema_update.register("Tensor", "Tensor", "Tensor")
def _ema_one(decay, shadow, w):
    return ops.assign(shadow, decay * shadow + (1.0 - decay) * w)


class GroupSGD(nn.Cell):
    """``v = m * v + g``; ``w -= lr * (g + m * v)`` (nesterov) or ``w -= lr * v``.

    ``g = (grad + wd * w) / loss_scale``; wd is zero for no-decay parameters and biases/betas get
    their own lr.  When ``finite`` is false the step leaves weights and moments untouched.  The
    update is one fused ``ApplyMomentum`` per parameter, mapped with ``HyperMap``: a Python loop
    over ~130 parameters compiles several times slower.
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
        self.wd = tuple(
            float(weight_decay) if decays(p.name, no_decay) else 0.0 for p in self.params
        )
        self.bias = tuple(is_bias_like(p.name) for p in self.params)
        self.nesterov = bool(nesterov)
        self.inv_scale = 1.0 / float(loss_scale)
        self.map = ops.HyperMap()

    def construct(self, grads, lr, lr_bias, momentum, finite, grad_scale=1.0):
        """One step; ``grad_scale`` multiplies the gradients first (to undo a loss scale)."""
        keep = ops.cast(finite, ms.float32)
        # On overflow: zero step size and momentum 1 leave both w and v as they were.
        mom = momentum * keep + (1.0 - keep)
        self.map(
            ops.partial(
                _sgd_update, self.nesterov, self.inv_scale, grad_scale, lr, lr_bias, mom, keep
            ),
            self.wd,
            self.bias,
            self.params,
            self.moments,
            grads,
        )
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
        self.map = ops.HyperMap()

    def construct(self, decay):
        self.map(ops.partial(_ema_update, decay), self.shadow, self.src)
        return decay
