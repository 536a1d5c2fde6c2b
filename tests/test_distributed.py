"""Data-parallel training through msrun: 2 CPU workers on loopback end with identical weights."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    from yolomodels.data.synthetic import make_dataset

    root = tmp_path_factory.mktemp("shapes")
    make_dataset(root, num_images=8, img_size=64, num_classes=2, seed=4)
    return root


@pytest.mark.skipif(
    shutil.which("msrun", path=os.path.dirname(sys.executable)) is None,
    reason="msrun is not installed next to this Python",
)
def test_msrun_two_workers_train_in_lockstep(shapes, tmp_path):
    import mindspore as ms

    out, ranks, logs = tmp_path / "run", tmp_path / "ranks", tmp_path / "logs"
    env = dict(os.environ)
    # msrun starts workers as `python <script>`; make that the interpreter running the tests.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    cmd = [
        os.path.join(os.path.dirname(sys.executable), "msrun"),
        "--worker_num=2",
        "--local_worker_num=2",
        f"--master_port={_free_port()}",
        "--master_addr=127.0.0.1",
        "--join=True",
        f"--log_dir={logs}",
        "python", "-m", "hub", "train", "yolov3_darknet53",
        "--data", str(shapes),
        "--out", str(out),
        "--img-size", "64",
        "--batch-size", "2",
        "--epochs", "1",
        "--arch", "depth_multiple=0.33",
        "--arch", "width_multiple=0.25",
        "--set", "workers=1",
        "--set", "warmup.min-steps=0",
        "--rank-weights", str(ranks),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    worker_logs = "\n".join(
        p.read_text(errors="replace") for p in sorted(logs.glob("worker_*.log"))
    )
    assert proc.returncode == 0, worker_logs[-3000:]
    # Each rank trained on its own shard of 4 images: 2 steps of 2 images, gradients averaged.
    a = {k: v.asnumpy() for k, v in ms.load_checkpoint(str(ranks / "rank0.ckpt")).items()}
    b = {k: v.asnumpy() for k, v in ms.load_checkpoint(str(ranks / "rank1.ckpt")).items()}
    assert set(a) == set(b) and len(a) > 100
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    # Only rank 0 wrote the run's files, and it recorded both devices.
    log_lines = (out / "train_log.jsonl").read_text().splitlines()
    assert sum('"type": "step"' in line for line in log_lines) == 2
    assert '"world_size": 2' in (out / "run.json").read_text()
    assert (out / "weights" / "last.ckpt").is_file()
    assert "trained yolov3_darknet53" in worker_logs
