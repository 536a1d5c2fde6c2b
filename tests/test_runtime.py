"""oneDNN's fast convolution path: taken by default, never overriding the user, and checked.

The subprocess tests start from a default environment (no oneDNN variable), as a user's shell
would, and read oneDNN's own verbose log to see which ISA and convolution kernel it picked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from yolomodels.runtime import FAST_ISA, ISA_VARIABLE, LEGACY_ISA_VARIABLE, select_fast_isa

ROOT = Path(__file__).resolve().parents[1]
AVX512 = "avx512f" in Path("/proc/cpuinfo").read_text(errors="replace")

# a scaled-down YOLOv3 forward pass through the architecture registry (what hub.load builds)
FORWARD = """
import numpy as np
{prelude}
import yolomodels, mindspore as ms
net = yolomodels.build("yolov3_darknet53", num_classes=3, depth_multiple=0.33, width_multiple=0.25)
net.set_train(False)
net(ms.Tensor(np.zeros((1, 3, 64, 64), np.float32)))
print("forward done")
"""

# MindSpore runs a convolution before yolomodels is imported: oneDNN has latched its ISA by then
EARLY_CONV = """
import mindspore as ms, numpy as np
ms.ops.conv2d(ms.Tensor(np.ones((1, 8, 8, 8), np.float32)),
              ms.Tensor(np.ones((8, 8, 3, 3), np.float32))).asnumpy()
"""


def default_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (ISA_VARIABLE, LEGACY_ISA_VARIABLE)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600
    )


def conv_kernels(log: str) -> list[str]:
    kernels = []
    for line in log.splitlines():
        fields = line.split(",")
        if line.startswith("onednn_verbose") and "exec" in fields and "convolution" in fields:
            kernels.append(fields[fields.index("convolution") + 1])
    return kernels


def onednn_isa(log: str) -> str:
    return next(line.partition(",isa:")[2] for line in log.splitlines() if ",isa:" in line)


@pytest.mark.parametrize("environ", [{}, {ISA_VARIABLE: ""}, {ISA_VARIABLE: "  "}])
def test_an_unset_or_empty_cap_becomes_avx2(environ):
    choice = select_fast_isa(environ)
    assert environ[ISA_VARIABLE] == FAST_ISA
    assert (choice.value, choice.source) == (FAST_ISA, "yolohub")


@pytest.mark.parametrize("variable", [ISA_VARIABLE, LEGACY_ISA_VARIABLE])
@pytest.mark.parametrize("value", ["AVX512_CORE", "SSE41", "avx2_vnni"])
def test_a_cap_the_user_set_is_never_overridden(variable, value):
    environ = {variable: value}
    choice = select_fast_isa(environ)
    assert environ == {variable: value}
    assert (choice.value, choice.source, choice.variable) == (value, "user", variable)


@pytest.mark.parametrize(
    "prelude",
    ["", "import mindspore  # imported first, but no convolution has run yet"],
    ids=["yolomodels-first", "mindspore-imported-first"],
)
def test_a_default_environment_runs_convolutions_on_a_jit_kernel(prelude):
    done = run_python(FORWARD.format(prelude=prelude), default_env(ONEDNN_VERBOSE="1"))
    assert done.returncode == 0, done.stderr[-2000:]
    log = done.stdout + done.stderr
    kernels = conv_kernels(log)
    assert kernels, "oneDNN logged no convolution"
    assert not [k for k in kernels if "ref" in k.replace("+", ":").split(":")], set(kernels)
    assert "AVX-512" not in onednn_isa(log)
    assert "warning" not in done.stderr.lower()


def test_the_probe_convolution_runs_near_numpy_matmul_speed():
    """On oneDNN's reference kernel the probe measures ~1/400 of matmul; the fast path ~1/5."""
    code = "from yolomodels.runtime import probe_convolution as p; r = p(); print(r.fraction)"
    done = run_python(code, default_env())
    assert done.returncode == 0, done.stderr[-2000:]
    fraction = float(done.stdout.split()[-1])
    assert fraction > 1 / 40, f"probe convolution at {fraction:.4f} of NumPy matmul speed"


def test_yolohub_env_reports_the_fast_path():
    done = subprocess.run(
        [sys.executable, "-m", "hub", "env", "--json"],
        env=default_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True and report["advice"] is None
    assert report["isa_cap"] == FAST_ISA
    assert report["isa_cap_source"] == f"{ISA_VARIABLE} set by yolohub"
    assert report["conv_kernel"] and "ref" not in report["conv_kernel"]
    assert report["conv_gflops"] > report["matmul_gflops"] / 40
    assert report["mindspore"] and report["cores"] >= 1


@pytest.mark.skipif(not AVX512, reason="the slow kernel exists only on AVX-512 CPUs")
def test_yolohub_env_flags_a_user_cap_that_takes_the_slow_kernel():
    done = subprocess.run(
        [sys.executable, "-m", "hub", "env", "--no-measure"],
        env=default_env(**{ISA_VARIABLE: "AVX512_CORE"}),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "SLOW" in done.stdout
    warnings = [line for line in done.stdout.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and f"{ISA_VARIABLE}=AVX2" in warnings[0]


@pytest.mark.skipif(not AVX512, reason="the slow kernel exists only on AVX-512 CPUs")
def test_a_convolution_before_yolomodels_is_reported_in_one_line():
    done = run_python(FORWARD.format(prelude=EARLY_CONV), default_env())
    assert done.returncode == 0, done.stderr[-2000:]
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, done.stderr[-2000:]
    assert f"{ISA_VARIABLE}={FAST_ISA}" in warnings[0] and "restart" in warnings[0]
