"""SGD with momentum/nesterov or Adam, with parameter groups, and the EMA copy of a network, as Cells.

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
_sgd_plain = ops.MultitypeFuncGraph("sgd_plain")
_adam_update = ops.MultitypeFuncGraph("adam_update")
_adam_plain = ops.MultitypeFuncGraph("adam_plain")
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


@_sgd_plain.register(
    "Bool", "Number", "Tensor", "Tensor", "Tensor", "Tensor", "Number", "Bool",
    "Tensor", "Tensor", "Tensor",
)  # fmt: skip
def _sgd_plain_one(nesterov, inv_scale, grad_scale, lr, lr_bias, momentum, wd, bias, w, v, g):
    """:func:`_sgd_one` for a step known to be finite: the same arithmetic without the masks
    (each is an exact identity when ``keep`` = 1), so fewer passes over every parameter."""
    g = g * grad_scale
    if wd != 0.0:
        g = g + wd * w
    if inv_scale != 1.0:
        g = g * inv_scale
    step_lr = lr_bias if bias else lr
    if nesterov:
        return _apply_nesterov(w, v, step_lr, g, momentum)
    return _apply_momentum(w, v, step_lr, g, momentum)


@_adam_update.register(
    "Number", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Number",
    "Bool", "Tensor", "Tensor", "Tensor", "Tensor",
)  # fmt: skip
def _adam_one(inv_scale, grad_scale, lr, lr_bias, beta1, keep, c1, c2, wd, bias, w, m, v, g):
    """One parameter: ``g = (grad * grad_scale + wd * w) / loss_scale``, then a bias-corrected
    Adam step; with ``keep`` = 0 (a non-finite step) weights and moments stay as they were."""
    g = ops.where(keep > 0.5, g * grad_scale, ops.zeros_like(g))
    if wd != 0.0:
        g = g + wd * w
    g = g * inv_scale
    m_new = m + keep * ((1.0 - beta1) * (g - m))
    v_new = v + keep * ((1.0 - ADAM_BETA2) * (g * g - v))
    step_lr = lr_bias if bias else lr
    update = step_lr * (m_new / c1) / (ops.sqrt(v_new / c2) + ADAM_EPS)
    ops.assign(m, m_new)
    ops.assign(v, v_new)
    return ops.assign(w, w - keep * update)


@_adam_plain.register(
    "Number", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Number",
    "Bool", "Tensor", "Tensor", "Tensor", "Tensor",
)  # fmt: skip
def _adam_plain_one(inv_scale, grad_scale, lr, lr_bias, beta1, c1, c2, wd, bias, w, m, v, g):
    """:func:`_adam_one` for a step known to be finite, without the (identity) masks."""
    g = g * grad_scale
    if wd != 0.0:
        g = g + wd * w
    g = g * inv_scale
    m_new = m + (1.0 - beta1) * (g - m)
    v_new = v + (1.0 - ADAM_BETA2) * (g * g - v)
    step_lr = lr_bias if bias else lr
    update = step_lr * (m_new / c1) / (ops.sqrt(v_new / c2) + ADAM_EPS)
    ops.assign(m, m_new)
    ops.assign(v, v_new)
    return ops.assign(w, w - update)


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

    def construct(self, grads, lr, lr_bias, momentum, finite=None, grad_scale=1.0):
        """One step; ``grad_scale`` multiplies the gradients first (to undo a loss scale).

        ``finite=None`` promises finite gradients (the caller branched on them): the update
        then skips the masks, with the same result as ``finite=True``.
        """
        if finite is None:
            self.map(
                ops.partial(
                    _sgd_plain, self.nesterov, self.inv_scale, grad_scale, lr, lr_bias, momentum
                ),
                self.wd,
                self.bias,
                self.params,
                self.moments,
                grads,
            )
            return True
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


ADAM_BETA2 = 0.999
ADAM_EPS = 1e-8


class GroupAdam(nn.Cell):
    """Adam with the same groups and call as :class:`GroupSGD`; beta1 is the scheduled momentum.

    ``m = b1 m + (1 - b1) g``, ``v = b2 v + (1 - b2) g^2``, ``w -= lr * m_hat / (sqrt(v_hat) +
    eps)`` with bias corrections from a step counter that is saved with the moments.  Scale
    invariant in the gradients, so a loss summed over the batch needs no lr rescaling; it
    converges in far fewer steps than SGD when training from scratch on a short budget.
    """

    def __init__(
        self,
        params,
        *,
        weight_decay: float,
        no_decay: tuple[str, ...] = ("bias", "beta", "gamma"),
        loss_scale: float = 1.0,
    ):
        super().__init__(auto_prefix=False)
        self.params = ParameterTuple(params)
        self.exp_avg = self.params.clone(prefix="moments", init="zeros")
        self.exp_avg_sq = self.params.clone(prefix="moments_sq", init="zeros")
        self.steps = Parameter(Tensor(0.0, ms.float32), name="moments_sq.adam_steps",
                               requires_grad=False)
        self.beta2 = Tensor(ADAM_BETA2, ms.float32)
        self.wd = tuple(
            float(weight_decay) if decays(p.name, no_decay) else 0.0 for p in self.params
        )
        self.bias = tuple(is_bias_like(p.name) for p in self.params)
        self.inv_scale = 1.0 / float(loss_scale)
        self.map = ops.HyperMap()

    @property
    def moments(self) -> tuple:
        """Every state Parameter (first and second moments, step counter), for checkpoints."""
        return (*self.exp_avg, *self.exp_avg_sq, self.steps)

    def construct(self, grads, lr, lr_bias, momentum, finite=None, grad_scale=1.0):
        """One step, as :meth:`GroupSGD.construct` (``finite=None``: known finite, no masks)."""
        keep = 1.0 if finite is None else ops.cast(finite, ms.float32)
        t = self.steps + keep
        ops.assign(self.steps, t)
        t = ops.maximum(t, 1.0)
        c1 = 1.0 - ops.pow(momentum, t)
        c2 = 1.0 - ops.pow(self.beta2, t)
        if finite is None:
            self.map(
                ops.partial(
                    _adam_plain, self.inv_scale, grad_scale, lr, lr_bias, momentum, c1, c2
                ),
                self.wd,
                self.bias,
                self.params,
                self.exp_avg,
                self.exp_avg_sq,
                grads,
            )
            return True
        self.map(
            ops.partial(
                _adam_update, self.inv_scale, grad_scale, lr, lr_bias, momentum, keep, c1, c2
            ),
            self.wd,
            self.bias,
            self.params,
            self.exp_avg,
            self.exp_avg_sq,
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
