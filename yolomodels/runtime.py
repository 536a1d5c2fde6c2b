"""Keep MindSpore's CPU convolutions on oneDNN's fast path.

The oneDNN bundled with MindSpore 2.10 (v3.10) runs NCHW float32 convolutions with a reference
kernel (``jit_uni_ncsp:conv+ref``, ~0.3 GFLOPS) whenever it may use any AVX-512 level; capped at
AVX2 it picks ``gemm:jit`` and is 60-100x faster.  oneDNN reads the cap from the environment at
its first convolution, not at import, so setting it any time before a network first runs is
enough.  :func:`select_fast_isa` does that (without overriding a value the user set) and runs
when ``yolomodels`` is imported; :func:`check_fast_path` catches the one case it cannot fix, a
process that ran a convolution before ``yolomodels`` was imported.

This module imports neither MindSpore nor NumPy at import time.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import MutableMapping
from dataclasses import dataclass

ISA_VARIABLE = "ONEDNN_MAX_CPU_ISA"
LEGACY_ISA_VARIABLE = "DNNL_MAX_CPU_ISA"
FAST_ISA = "AVX2"

# A probe convolution slower than this fraction of NumPy's float32 matmul on the same machine is
# on the reference kernel: the fast path measures ~1/5 here, the reference kernel ~1/400.
SLOW_FRACTION = 1 / 40

_log = logging.getLogger("yolomodels.runtime")


@dataclass(frozen=True)
class IsaChoice:
    """What the process's oneDNN CPU ISA cap is and who decided it."""

    value: str | None
    """the cap in force (``None``: no cap, oneDNN uses the best ISA of the CPU)"""
    source: str
    """``"yolohub"`` (set by :func:`select_fast_isa`) or ``"user"`` (found in the environment)"""
    variable: str
    late: bool
    """MindSpore was already imported when the cap was set: a convolution may have run before"""


@dataclass(frozen=True)
class ConvProbe:
    """Measured throughput of one convolution against NumPy's matmul on the same cores."""

    conv_gflops: float
    matmul_gflops: float

    @property
    def fraction(self) -> float:
        return self.conv_gflops / self.matmul_gflops if self.matmul_gflops > 0 else 0.0

    @property
    def slow(self) -> bool:
        return self.fraction < SLOW_FRACTION


_choice: IsaChoice | None = None
_checked = False


def select_fast_isa(environ: MutableMapping[str, str] | None = None) -> IsaChoice:
    """Cap oneDNN at AVX2 unless the user chose a cap; idempotent, first call wins.

    The value goes into ``os.environ`` so that subprocesses (``msrun`` workers, tests' CLI runs)
    inherit it too.
    """
    global _choice
    if _choice is not None and environ is None:
        return _choice
    env = os.environ if environ is None else environ
    late = "mindspore" in sys.modules
    for variable in (ISA_VARIABLE, LEGACY_ISA_VARIABLE):
        value = env.get(variable, "").strip()
        if value:
            choice = IsaChoice(value=value, source="user", variable=variable, late=late)
            break
    else:
        env[ISA_VARIABLE] = FAST_ISA
        choice = IsaChoice(value=FAST_ISA, source="yolohub", variable=ISA_VARIABLE, late=late)
    if environ is None:
        _choice = choice
    return choice


def probe_convolution(*, channels: int = 64, size: int = 48, repeats: int = 3) -> ConvProbe:
    """Time a 3x3 convolution in MindSpore (PyNative) and a float32 matmul in NumPy.

    Costs a few milliseconds on the fast path and about a second on the reference kernel.
    """
    import mindspore as ms
    import numpy as np

    rng = np.random.default_rng(0)
    x = ms.Tensor(rng.standard_normal((1, channels, size, size), dtype=np.float32))
    w = ms.Tensor(rng.standard_normal((channels, channels, 3, 3), dtype=np.float32) * 0.05)
    conv_flops = 2.0 * channels * channels * 9 * size * size
    ms.ops.conv2d(x, w, pad_mode="same").asnumpy()  # first call picks and builds the kernel
    conv_best = _best_of(lambda: ms.ops.conv2d(x, w, pad_mode="same").asnumpy(), repeats)

    n = 512
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    mm_best = _best_of(lambda: a @ b, repeats)
    return ConvProbe(conv_gflops=conv_flops / conv_best / 1e9, matmul_gflops=2.0 * n**3 / mm_best / 1e9)


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - t0
        best = min(best, elapsed)
        if elapsed > 0.2:  # clearly the slow kernel: one timing is enough
            break
    return max(best, 1e-9)


def slow_path_advice(choice: IsaChoice) -> str:
    """One line saying what to do when convolutions run on oneDNN's reference kernel."""
    if choice.source == "user":
        return (
            f"{choice.variable}={choice.value} makes MindSpore's oneDNN run convolutions on its "
            f"slow reference kernel; unset it or set {ISA_VARIABLE}={FAST_ISA} before starting Python"
        )
    return (
        "MindSpore ran a convolution before yolomodels/yolohub was imported, so oneDNN's slow "
        f"reference kernel is in use (~60x slower); restart with {ISA_VARIABLE}={FAST_ISA} set "
        f"before Python starts (in a notebook: %env {ISA_VARIABLE}={FAST_ISA} as the first cell)"
    )


def check_fast_path() -> ConvProbe | None:
    """Warn once, in one line, when convolutions may already be stuck on the slow kernel.

    Probes only when MindSpore was imported before the cap was set (the notebook case); returns
    the probe, or ``None`` when there was nothing to check.
    """
    global _checked
    choice = select_fast_isa()
    if _checked or not choice.late or choice.source == "user":
        return None
    _checked = True
    probe = probe_convolution()
    if probe.slow:
        _log.warning("warning: %s", slow_path_advice(choice))
    return probe
