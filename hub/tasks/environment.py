"""``yolohub env``: what this machine gives MindSpore, and whether convolutions run at full speed.

The report names the CPU and its vector extensions, the versions that matter, the oneDNN ISA cap
and who set it, the ISA and convolution kernel oneDNN actually picks (read from its verbose log
in a child process, which also shows what subprocesses inherit), and a measured convolution
throughput against NumPy's matmul on the same cores.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from yolomodels.runtime import select_fast_isa, slow_path_advice

# the vector extensions that decide which oneDNN kernels exist for this CPU
_ISA_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")

# a child process that runs one small convolution with oneDNN's verbose log on
_VERBOSE_PROBE = """
import yolomodels.runtime, mindspore as ms, numpy as np
x = ms.Tensor(np.ones((1, 16, 16, 16), np.float32))
w = ms.Tensor(np.ones((16, 16, 3, 3), np.float32))
ms.ops.conv2d(x, w, pad_mode="same").asnumpy()
"""


@dataclass(frozen=True)
class EnvironmentReport:
    """What ``yolohub env`` found; ``ok`` is false when convolutions run far below the machine."""

    python: str
    platform: str
    cpu: str
    cpu_flags: tuple[str, ...]
    cores: int
    mindspore: str | None
    numpy: str | None
    isa_cap: str | None
    isa_cap_source: str
    onednn_isa: str | None
    conv_kernel: str | None
    conv_gflops: float | None
    matmul_gflops: float | None
    ok: bool
    advice: str | None

    def to_dict(self) -> dict:
        return asdict(self)


def check_environment(*, measure: bool = True) -> EnvironmentReport:
    """Describe the machine and MindSpore set-up; with ``measure``, time a probe convolution."""
    choice = select_fast_isa()
    isa, kernel = _onednn_choice()
    conv = matmul = None
    slow = kernel is not None and re.search(r"(^|[:+])ref([:+]|$)", kernel) is not None
    if measure:
        from yolomodels.runtime import probe_convolution

        probe = probe_convolution()
        conv, matmul = round(probe.conv_gflops, 2), round(probe.matmul_gflops, 2)
        slow = slow or probe.slow
    return EnvironmentReport(
        python=platform.python_version(),
        platform=platform.platform(),
        cpu=_cpu_model(),
        cpu_flags=_cpu_flags(),
        cores=os.cpu_count() or 1,
        mindspore=_version("mindspore"),
        numpy=_version("numpy"),
        isa_cap=choice.value,
        isa_cap_source=f"{choice.variable} set by {choice.source}",
        onednn_isa=isa,
        conv_kernel=kernel,
        conv_gflops=conv,
        matmul_gflops=matmul,
        ok=not slow,
        advice=slow_path_advice(choice) if slow else None,
    )


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpuinfo() -> list[str]:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace").splitlines()
    except OSError:
        return []


def _cpu_model() -> str:
    for line in _cpuinfo():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def _cpu_flags() -> tuple[str, ...]:
    for line in _cpuinfo():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            return tuple(f for f in _ISA_FLAGS if f in flags)
    return ()


def _onednn_choice() -> tuple[str | None, str | None]:
    """The ISA and convolution implementation oneDNN picks in a child with this environment."""
    env = {**os.environ, "ONEDNN_VERBOSE": "1"}
    try:
        done = subprocess.run(
            [sys.executable, "-c", _VERBOSE_PROBE],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None, None
    isa = kernel = None
    for line in (done.stdout + done.stderr).splitlines():
        fields = line.split(",")
        if "info" in fields and ",isa:" in line and isa is None:
            isa = line.partition(",isa:")[2].strip()
        if "exec" in fields and "convolution" in fields and kernel is None:
            kernel = fields[fields.index("convolution") + 1]
    return isa, kernel
