"""The inference form: BatchNorm folded into the convs, same outputs, training form untouched."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib
from pathlib import Path

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor, nn
from nethelpers import SCALED, small_net, structured_input

import yolomodels
from yolomodels.errors import InferenceFormError
from yolomodels.inference import FORM_VERSION, inference_form, is_inference_form
from yolomodels.layers import ConvNormAct

ms.set_device("CPU")

ARCHS = yolomodels.list_archs()
ROOT = Path(__file__).resolve().parents[1]


def with_batchnorm_statistics(net, seed: int = 0):
    """Non-trivial BatchNorm parameters and running statistics (fresh ones fold to identity)."""
    for name, p in net.parameters_and_names():
        if ".bn." not in name:
            continue
        rng = np.random.RandomState((zlib.crc32(name.encode()) + seed) & 0xFFFFFFFF)
        if name.endswith(("gamma", "moving_variance")):
            v = rng.uniform(0.3, 2.0, p.shape)
        else:
            v = rng.uniform(-0.5, 0.5, p.shape)
        p.set_data(Tensor(v.astype(np.float32)))
    return net


def snapshot(net) -> dict[str, np.ndarray]:
    return {name: p.asnumpy().copy() for name, p in net.parameters_and_names()}


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(scope="module", params=ARCHS)
def pair(request):
    """(arch, training form in eval mode, its parameters before folding, inference form)."""
    net = with_batchnorm_statistics(small_net(request.param, num_classes=3, img_size=96))
    net.set_train(False)
    before = snapshot(net)
    return request.param, net, before, inference_form(net)


def test_outputs_equal_the_training_form_in_eval_mode(pair):
    _, net, _, folded = pair
    x = np.concatenate([structured_input(96), np.random.RandomState(1).rand(1, 3, 96, 96)])
    x = Tensor(x.astype(np.float32))
    ref = net(x).asnumpy()
    out = folded(x).asnumpy()
    assert out.shape == ref.shape
    assert rel_err(out, ref) < 1e-5
    # compiled as a graph too (what hub.load runs)
    assert rel_err(ms.jit(folded.construct)(x).asnumpy(), ref) < 1e-5


def test_every_conv_norm_pair_is_folded_and_names_stay_unique(pair):
    _, net, _, folded = pair
    pairs = sum(isinstance(c, ConvNormAct) for _, c in net.cells_and_names())
    assert pairs > 10 and folded.folded_convs == pairs
    assert not any(isinstance(c, (nn.BatchNorm2d, ConvNormAct)) for _, c in folded.cells_and_names())
    names = [p.name for p in folded.get_parameters()]
    assert len(names) == len(set(names))
    assert names == [n for n, _ in folded.parameters_and_names()]
    kept = {n for n in snapshot(net) if ".bn." not in n}
    added = {n.replace(".bn.gamma", ".conv.bias") for n in snapshot(net) if n.endswith(".bn.gamma")}
    assert set(names) == kept | added
    assert is_inference_form(folded) and folded.form_version == FORM_VERSION
    assert not folded.training


def test_the_training_form_is_untouched_and_still_trains(pair):
    _, net, before, folded = pair
    after = snapshot(net)
    assert after.keys() == before.keys()
    assert all(np.array_equal(after[k], before[k]) for k in before)
    assert not is_inference_form(net)
    ours = {id(p) for p in net.get_parameters()}
    assert not ours & {id(p) for p in folded.get_parameters()}  # nothing shared
    assert any(isinstance(c, nn.BatchNorm2d) for _, c in net.cells_and_names())
    gammas = [p for p in net.trainable_params() if p.name.endswith("bn.gamma")]
    assert gammas and all(p.requires_grad for p in gammas)
    net.set_train(True)
    try:
        x = Tensor(np.random.RandomState(2).rand(2, 3, 64, 64).astype(np.float32))

        def loss(inp):
            raw = net(inp)
            flat = [t for level in raw for t in (level if isinstance(level, tuple) else (level,))]
            return sum((t * t).mean() for t in flat)

        grads = ms.grad(loss, grad_position=None, weights=gammas[:2])(x)
        assert all(float(np.abs(g.asnumpy()).sum()) > 0 for g in grads)
    finally:
        net.set_train(False)
        for name, p in net.parameters_and_names():  # training mode moved the statistics
            p.set_data(Tensor(before[name]))


def test_the_inference_form_refuses_training_and_folds_once(pair):
    _, _, _, folded = pair
    with pytest.raises(InferenceFormError, match="cannot be trained; train the network"):
        folded.set_train(True)
    assert not folded.training
    folded.set_train(False)
    assert inference_form(folded) is folded


def test_hub_graph_mode_returns_the_inference_form_and_pynative_the_training_form():
    from hub.cards.catalog import resolve
    from hub.tasks.load import build_for

    args = {**SCALED, "img_size": 64}
    graph = build_for(resolve("yolov3_darknet53"), num_classes=3, arch_args=args, mode="graph")
    eager = build_for(resolve("yolov3_darknet53"), num_classes=3, arch_args=args, mode="pynative")
    assert is_inference_form(graph) and graph.execution_mode == "graph"
    assert not is_inference_form(eager) and eager.execution_mode == "pynative"
    with_batchnorm_statistics(eager)
    eager.set_train(False)
    folded = dict(inference_form(eager).parameters_and_names())
    for name, p in graph.parameters_and_names():
        p.set_data(folded[name].data)
    x = Tensor(structured_input(64))
    assert rel_err(graph(x).asnumpy(), eager(x).asnumpy()) < 1e-5


SCRIPT = """
import numpy as np, mindspore as ms
from hub.tasks.load import build_for
from hub.cards.catalog import resolve
net = build_for(resolve("yolov3_darknet53"), num_classes=3,
                arch_args={"depth_multiple": 0.33, "width_multiple": 0.25, "img_size": 64})
net(ms.Tensor(np.zeros((1, 3, 64, 64), np.float32))).asnumpy()
"""


def test_the_compile_cache_key_names_the_inference_form(tmp_path):
    from hub.settings import get_settings
    from hub.tasks import compile_cache

    home = tmp_path / "home"
    script = tmp_path / "forward.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "YOLOHUB_HOME": str(home), "GLOG_v": "3"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    args = {"num_classes": 3, "depth_multiple": 0.33, "width_multiple": 0.25, "img_size": 64}
    settings = get_settings({**os.environ, "YOLOHUB_HOME": str(home)})
    expected = compile_cache.graph_dir("yolov3_darknet53", {**args, "form": FORM_VERSION},
                                       (1, 3, 64, 64), "Float32", settings=settings)
    training = compile_cache.graph_dir("yolov3_darknet53", {**args, "form": "training"},
                                       (1, 3, 64, 64), "Float32", settings=settings)
    made = {p.parents[2] for p in (home / "compile").rglob("*.mindir")}
    assert made == {expected}
    assert training.name != expected.name
