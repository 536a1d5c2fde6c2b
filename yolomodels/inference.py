"""The inference form of a network: every Conv + BatchNorm pair folded into one biased conv.

In eval mode BatchNorm is a per-channel affine map, ``y = s * (x - mean) + beta`` with
``s = gamma / sqrt(var + eps)``, so it folds into the convolution before it: weights scaled by
``s`` per output channel, bias ``beta - s * mean`` (plus ``s * b`` for a conv that had a bias).
The arithmetic is done in float64 and rounded once, so outputs match the training form's
eval-mode outputs to float32 rounding.

:func:`inference_form` works on a deep copy: the network it is given (the training form) keeps
its parameters, its BatchNorm layers and its trainability.  The copy keeps every parameter name
that still exists (``model.model.3.conv.weight`` ...), adds ``...conv.bias`` where a BatchNorm
was folded, and refuses ``set_train(True)``: a network without BatchNorm would train silently
differently.
"""

from __future__ import annotations

import copy

import numpy as np
from mindspore import Tensor, nn

from yolomodels.errors import InferenceFormError
from yolomodels.layers import ConvNormAct

__all__ = ["FORM_VERSION", "ConvAct", "fold_conv_bn", "inference_form", "is_inference_form"]

FORM_VERSION = "bn-folded-1"
"""Names what :func:`inference_form` does to a graph; part of compiled-graph cache keys."""


class ConvAct(nn.Cell):
    """Conv2d with bias + activation: a :class:`ConvNormAct` after folding."""

    def __init__(self, conv: nn.Conv2d, act: nn.Cell):
        super().__init__()
        self.conv = conv
        self.act = act

    def construct(self, x):
        return self.act(self.conv(x))


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new biased Conv2d computing ``bn(conv(x))`` of eval mode; ``conv`` and ``bn`` unchanged."""
    gamma = bn.gamma.asnumpy().astype(np.float64)
    beta = bn.beta.asnumpy().astype(np.float64)
    mean = bn.moving_mean.asnumpy().astype(np.float64)
    var = bn.moving_variance.asnumpy().astype(np.float64)
    b0 = conv.bias.asnumpy().astype(np.float64) if conv.bias is not None else 0.0
    s = gamma / np.sqrt(var + float(bn.eps))
    w = conv.weight.asnumpy()
    # float32 product of float32 weights and the rounded scale: two roundings, ~1e-7 relative
    weight = w * s.astype(np.float32).reshape(-1, *([1] * (w.ndim - 1)))
    bias = (beta + s * (b0 - mean)).astype(np.float32)
    return nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        pad_mode=conv.pad_mode,
        padding=conv.padding,
        dilation=conv.dilation,
        group=conv.group,
        has_bias=True,
        weight_init=Tensor(weight),
        bias_init=Tensor(bias),
        data_format=conv.data_format,
    )


def _refuse_training(self, mode=True):
    if mode:
        raise InferenceFormError(
            f"this {type(self).__name__} is an inference form (BatchNorm folded into the convs) "
            "and cannot be trained; train the network it was made from (yolomodels.build, or "
            "hub.load(..., mode='pynative')) instead"
        )
    return nn.Cell.set_train(self, False)


def is_inference_form(net: nn.Cell) -> bool:
    """True for a network returned by :func:`inference_form`."""
    return getattr(net, "form_version", None) == FORM_VERSION


def inference_form(net: nn.Cell) -> nn.Cell:
    """A copy of ``net`` in eval mode with every :class:`ConvNormAct` folded into a :class:`ConvAct`.

    ``net`` itself is not modified.  An inference form given again is returned as it is.
    """
    if is_inference_form(net):
        return net
    # deep-copy everything but the ConvNormAct cells, which the memo maps to their folded form
    memo: dict[int, object] = {}
    for _, cell in net.cells_and_names():
        if isinstance(cell, ConvNormAct) and id(cell) not in memo:
            memo[id(cell)] = ConvAct(fold_conv_bn(cell.conv, cell.bn), copy.deepcopy(cell.act))
    replaced = len(memo)
    folded = copy.deepcopy(net, memo)
    for name, param in folded.parameters_and_names():
        param.name = name  # new convs' parameters are called "weight" / "bias" until renamed
    base = type(folded)
    folded.__class__ = type(
        base.__name__,
        (base,),
        {"set_train": _refuse_training, "__module__": base.__module__,
         "__qualname__": base.__qualname__},
    )
    folded.set_train(False)
    folded.form_version = FORM_VERSION
    folded.folded_convs = replaced
    return folded
