"""One compiled training step: forward, loss, gradients, all-reduce, unscale, clip, SGD, EMA.

The step follows fact sheet §4.3: the loss is multiplied by the number of ranks and the
gradients are mean-reduced across ranks, so one rank with batch B and N ranks with batch B each
see the same per-device loss convention.  Learning rates, momentum, the EMA decay and the loss
scale are inputs, computed on the host from the global step, so the compiled graph never
changes during a run and a resumed run feeds it exactly the same values.
"""

from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops

from yolomodels.train.distributed import Parallel
from yolomodels.train.optim import EMA, GroupSGD

_scale = ops.MultitypeFuncGraph("scale")


@_scale.register("Tensor", "Tensor")
def _scale_one(factor, g):
    return g * factor


def build_train_step(
    net: nn.Cell,
    loss_fn: nn.Cell,
    optimizer: GroupSGD,
    ema: EMA | None,
    *,
    parallel: Parallel,
    clip_grad: float | None = None,
):
    """A jitted ``step(images, labels, lr, lr_bias, momentum, scale, ema_decay)``.

    Returns ``(loss, items, finite)``: the unscaled loss that was differentiated, the loss
    cell's logged items, and whether every gradient was finite (the update is skipped if not).
    """
    params = optimizer.params
    world = float(parallel.world)
    reducer = (
        nn.DistributedGradReducer(params, mean=True, degree=parallel.world)
        if parallel.enabled
        else None
    )

    def forward(images, labels, scale):
        preds = net(images)
        loss, items = loss_fn(preds, labels, images)
        return loss * world * scale, items

    hyper_map = ops.HyperMap()
    grad_fn = ms.value_and_grad(forward, None, params, has_aux=True)

    @ms.jit
    def step(images, labels, lr, lr_bias, momentum, scale, ema_decay):
        (loss, items), grads = grad_fn(images, labels, scale)
        if reducer is not None:
            grads = reducer(grads)
        inv = 1.0 / scale
        finite = ms.amp.all_finite(grads)
        # A real branch, not the optimizer's masked update: MindSpore 2.10's CPU backend runs
        # this graph faster, and inside it the update needs no masks (finite=None), which saves
        # several passes over every parameter.  Overflow: no update, EMA still runs.
        if finite:
            if clip_grad is not None:
                grads = hyper_map(ops.partial(_scale, inv), grads)
                grads = ops.clip_by_global_norm(grads, clip_grad)
                optimizer(grads, lr, lr_bias, momentum, None, 1.0)
            else:
                optimizer(grads, lr, lr_bias, momentum, None, inv)
        if ema is not None:
            ema(ema_decay)
        return loss * inv / world, items, finite

    return step


def _float_params(net_or_params) -> list:
    params = (
        list(net_or_params.get_parameters())
        if isinstance(net_or_params, nn.Cell)
        else list(net_or_params)
    )
    return [p for p in params if p.dtype in (ms.float32, ms.float16)]


def _all_reduce_into(params, parallel: Parallel, *, keep_rank0_only: bool) -> None:
    """Sum ``params`` over ranks in one all-reduce (of one flat buffer) and write back."""
    if not params:
        return
    flat = np.concatenate([p.asnumpy().astype(np.float32).ravel() for p in params])
    if keep_rank0_only and parallel.rank != 0:
        flat = np.zeros_like(flat)
    summed = ops.AllReduce()(Tensor(flat)).asnumpy()
    if not keep_rank0_only:
        summed = summed / parallel.world
    offset = 0
    for p in params:
        n = int(np.prod(p.shape)) if p.shape else 1
        p.set_data(Tensor(summed[offset : offset + n].reshape(p.shape), p.dtype))
        offset += n


def broadcast_parameters(net_or_params, parallel: Parallel) -> None:
    """Make every rank start from rank 0's values (one all-reduce of all parameters)."""
    if parallel.enabled:
        _all_reduce_into(_float_params(net_or_params), parallel, keep_rank0_only=True)


def average_parameters(params, parallel: Parallel) -> None:
    """Replace ``params`` by their mean over ranks (BN running statistics: each rank sees its
    own shard, so without this the ranks' statistics drift apart)."""
    if parallel.enabled:
        _all_reduce_into(_float_params(params), parallel, keep_rank0_only=False)
