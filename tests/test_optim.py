"""GroupAdam against a plain numpy Adam, including a skipped (non-finite) step."""

from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest
from mindspore import Parameter, Tensor

from yolomodels.train.config import config_from_mapping
from yolomodels.train.optim import ADAM_BETA2, ADAM_EPS, GroupAdam


def _numpy_adam(w, grads, *, lr, beta1, wd, finite):
    m, v, t = np.zeros_like(w), np.zeros_like(w), 0
    for g, ok in zip(grads, finite):
        if not ok:
            continue
        t += 1
        g = g + wd * w
        m = beta1 * m + (1 - beta1) * g
        v = ADAM_BETA2 * v + (1 - ADAM_BETA2) * g * g
        w = w - lr * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - ADAM_BETA2**t)) + ADAM_EPS)
    return w, m, v, t


def test_group_adam_matches_numpy_and_skips_non_finite_steps():
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(3, 4)).astype(np.float32)
    b0 = rng.normal(size=(4,)).astype(np.float32)
    weight = Parameter(Tensor(w0), name="layer.weight")
    bias = Parameter(Tensor(b0), name="layer.bias")
    opt = GroupAdam([weight, bias], weight_decay=0.01)
    grads = [(rng.normal(size=w0.shape).astype(np.float32),
              rng.normal(size=b0.shape).astype(np.float32)) for _ in range(4)]
    finite = [True, True, False, True]
    lr, lr_bias, beta1 = 0.01, 0.02, 0.9
    for (gw, gb), ok in zip(grads, finite):
        opt((Tensor(gw), Tensor(gb)), Tensor(lr, ms.float32), Tensor(lr_bias, ms.float32),
            Tensor(beta1, ms.float32), Tensor(ok))
    ew, em, ev, t = _numpy_adam(w0, [g[0] for g in grads], lr=lr, beta1=beta1, wd=0.01,
                                finite=finite)
    eb, _, _, _ = _numpy_adam(b0, [g[1] for g in grads], lr=lr_bias, beta1=beta1, wd=0.0,
                              finite=finite)
    np.testing.assert_allclose(weight.asnumpy(), ew, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bias.asnumpy(), eb, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(opt.exp_avg[0].asnumpy(), em, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(opt.exp_avg_sq[0].asnumpy(), ev, rtol=1e-5, atol=1e-9)
    assert float(opt.steps.asnumpy()) == t == 3
    # every state Parameter is checkpointed, under names distinct from the network's
    names = [p.name for p in opt.moments]
    assert len(names) == len(set(names)) == 5


def test_recipe_accepts_adam_and_rejects_other_optimizers():
    assert config_from_mapping({"optimizer": {"name": "adam"}}).optimizer.name == "adam"
    from yolomodels.errors import RecipeError

    with pytest.raises(RecipeError, match="expected one of sgd, adam"):
        config_from_mapping({"optimizer": {"name": "rmsprop"}})


@pytest.mark.parametrize("kind", ["sgd", "nesterov", "adam"])
def test_unmasked_update_for_known_finite_steps_equals_the_masked_one_bit_for_bit(kind):
    """``finite=None`` (the train step's branch on finite gradients) drops the masks only."""
    from yolomodels.train.optim import GroupSGD

    rng = np.random.default_rng(1)
    w0 = rng.normal(size=(3, 4)).astype(np.float32)
    b0 = rng.normal(size=(4,)).astype(np.float32)
    grads = [(rng.normal(size=w0.shape).astype(np.float32),
              rng.normal(size=b0.shape).astype(np.float32)) for _ in range(3)]

    def run(finite):
        weight = Parameter(Tensor(w0), name="layer.weight")
        bias = Parameter(Tensor(b0), name="layer.bias")
        if kind == "adam":
            opt = GroupAdam([weight, bias], weight_decay=0.01, loss_scale=64.0)
        else:
            opt = GroupSGD([weight, bias], weight_decay=0.01, nesterov=kind == "nesterov",
                           loss_scale=64.0)
        for gw, gb in grads:
            opt((Tensor(gw * 64), Tensor(gb * 64)), Tensor(0.01, ms.float32),
                Tensor(0.02, ms.float32), Tensor(0.9, ms.float32), finite,
                Tensor(0.5, ms.float32))
        return [p.asnumpy() for p in (weight, bias, *opt.moments)]

    masked, plain = run(Tensor(True)), run(None)
    for a, b in zip(masked, plain):
        assert np.array_equal(a, b)
    assert not np.array_equal(plain[0], w0)
