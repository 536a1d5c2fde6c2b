"""Evaluation and prediction sharded over msrun ranks: 2 CPU workers on loopback give exactly
the single-process numbers and files; a failing rank ends every rank with one error line."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from yolomodels.errors import DistributedError, ImageReadError
from yolomodels.eval.distributed import (
    decode_detections,
    encode_detections,
    exchange,
    shard,
)
from yolomodels.train.distributed import Parallel

ARCH = {"num_classes": 3, "img_size": 64, "depth_multiple": 0.33, "width_multiple": 0.25}
MSRUN = shutil.which("msrun", path=os.path.dirname(sys.executable))
needs_msrun = pytest.mark.skipif(MSRUN is None, reason="msrun is not installed next to Python")


# --- the exchange, in one process (threads as ranks) -------------------------------------------


def _ranks(world, work, **kw):
    """Run ``exchange`` for every rank in its own thread; {rank: result or exception}."""
    out = {}

    def one(r):
        try:
            out[r] = exchange(lambda: work(r), Parallel(r, world), token="t", **kw)
        except Exception as exc:  # noqa: BLE001 - handed to the test
            out[r] = exc

    threads = [threading.Thread(target=one, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def test_every_rank_gets_every_payload_and_the_directory_goes(tmp_path):
    def work(r):
        time.sleep(0.3 * r)  # ranks arrive at different times
        return bytes([r]) * (1000 * r + 1)

    out = _ranks(3, work, root=tmp_path)
    expected = [bytes([r]) * (1000 * r + 1) for r in range(3)]
    assert out == {0: expected, 1: expected, 2: expected}
    assert list(tmp_path.iterdir()) == []  # rank 0 cleaned up after everyone read


def test_a_failing_rank_fails_every_rank_with_its_message(tmp_path):
    def work(r):
        if r == 1:
            raise ImageReadError("image x.jpg is truncated")
        return b"fine"

    out = _ranks(2, work, root=tmp_path)
    for r in (0, 1):
        assert isinstance(out[r], DistributedError) and out[r].input_error
        assert str(out[r]) == (
            "1 of 2 ranks failed (rank 1: image x.jpg is truncated); nothing was written"
        )
    bug = _ranks(2, lambda r: b"" if r else 1 / 0, root=tmp_path)
    assert isinstance(bug[1], DistributedError) and not bug[1].input_error
    assert "rank 0: ZeroDivisionError: division by zero" in str(bug[1])


def test_a_silent_rank_is_given_up_on(tmp_path):
    # rank 1 never posts and never beats: rank 0 stops waiting once it looks gone
    t = time.monotonic()
    with pytest.raises(DistributedError, match=r"rank 0 of 2 gave up .*rank 1 stopped"):
        exchange(lambda: b"x", Parallel(0, 2), root=tmp_path, token="t", stale=0.5)
    # a rank that beats but sends nothing hits the overall timeout
    folder = tmp_path / "job-u"  # the job's directory, where the heartbeats are
    folder.mkdir()
    stop = threading.Event()

    def beat():
        while not stop.wait(0.1):
            (folder / "rank1.alive").touch()

    threading.Thread(target=beat, daemon=True).start()
    try:
        with pytest.raises(DistributedError, match=r"rank 1 sent nothing in 1\.5 s"):
            exchange(lambda: b"x", Parallel(0, 2), root=tmp_path, token="u", stale=0.5,
                     timeout=1.5)  # fmt: skip
    finally:
        stop.set()
    assert time.monotonic() - t < 20
    assert list(tmp_path.iterdir()) == []


def test_shards_cover_every_item_once_and_detections_round_trip_exactly():
    ids = list(range(3, 50, 4))
    parts = [shard(ids, Parallel(r, 3)) for r in range(3)]
    assert sorted(sum(parts, [])) == ids and max(map(len, parts)) - min(map(len, parts)) <= 1
    rng = np.random.default_rng(0)
    dets = {7: rng.random((5, 6), np.float32), 2**40: np.zeros((0, 6), np.float32)}
    back = decode_detections(encode_detections(dets))
    assert list(back) == list(dets)
    for k in dets:
        assert back[k].dtype == np.float32 and back[k].tobytes() == dets[k].tobytes()
    assert decode_detections(encode_detections({})) == {}


# --- msrun end to end ---------------------------------------------------------------------------


def _card(ckpt: Path) -> str:
    sha = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    args = ", ".join(f"{k}: {v}" for k, v in ARCH.items())
    return f"""---
format: yolohub/1
model-name: tiny_shapes
model-version: "1.0"
backbone-name: darknet53
train-dataset: synthetic-shapes
license: Apache2.0
summary: A scaled-down YOLOv3 with random weights, for distributed evaluation tests.
asset:
  - file-format: ckpt
    asset-link: <{ckpt.resolve().as_uri()}>
    asset-sha256: {sha}
    size: {ckpt.stat().st_size}
    version: "1.0"
architecture:
  name: yolov3_darknet53
  args: {{{args}}}
class-names: [circle, square, triangle]
eval-protocol:
  dataset: synthetic-shapes
  split: val2017
  metric: AP50
  img-size: 64
  conf-threshold: 0.001
  iou-threshold: 0.65
  max-detections: 100
  multi-label: true
  batch-size: 2
  tolerance: 0.001
---

# tiny_shapes
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    import mindspore as ms

    import yolomodels
    from yolomodels.checkpoint import save_checkpoint
    from yolomodels.data.synthetic import make_dataset

    root = tmp_path_factory.mktemp("dist")
    data = make_dataset(root / "data", num_images=7, img_size=(96, 80), num_classes=3, seed=5,
                        split="val2017", objects=(1, 3))  # fmt: skip
    ms.set_seed(3)
    net = yolomodels.build("yolov3_darknet53", **ARCH)
    ckpt = root / "tiny.ckpt"
    save_checkpoint(net, ckpt)
    (root / "cards").mkdir()
    (root / "cards" / "tiny_shapes.md").write_text(_card(ckpt))
    return {"root": root, "data": data, "cards": root / "cards"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _msrun_cmd(logs: Path, *argv) -> list[str]:
    return [MSRUN, "--worker_num=2", "--local_worker_num=2", f"--master_port={_free_port()}",
            "--master_addr=127.0.0.1", "--join=True", f"--log_dir={logs}",
            "python", "-m", "hub", *map(str, argv)]  # fmt: skip


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # msrun starts workers as `python ...`: make that the interpreter running the tests
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return env


def _msrun(tmp_path, *argv) -> tuple[int, list[str]]:
    logs = tmp_path / "logs"
    proc = subprocess.run(_msrun_cmd(logs, *argv), env=_env(), cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    return proc.returncode, [(logs / f"worker_{r}.log").read_text(errors="replace")
                             for r in range(2)]  # fmt: skip


def _ours(log: str) -> list[str]:
    """The lines yolohub printed (MindSpore's own log lines start with '[LEVEL]')."""
    return [ln for ln in log.splitlines() if not re.match(r"\[[A-Z]+\] ", ln)]


@pytest.mark.slow
@needs_msrun
def test_msrun_eval_equals_the_single_process_run_exactly(world, tmp_path):
    from hub import evaluate

    single = evaluate("tiny_shapes", data=world["data"], cards_dirs=[world["cards"]],
                      out=tmp_path / "single")  # fmt: skip
    assert single.num_detections > 0
    code, (log0, log1) = _msrun(tmp_path, "eval", "tiny_shapes", "--data", world["data"],
                                "--cards", world["cards"], "--out", tmp_path / "dist")  # fmt: skip
    assert code == 0, log0[-3000:] + log1[-3000:]
    dist = json.loads((tmp_path / "dist" / "eval.json").read_text())
    one = json.loads(single.report_json.read_text())
    assert dist["metrics"] == one["metrics"] and dist["per_class"] == one["per_class"]
    assert dist["num_images"] == 7 and dist["num_detections"] == single.num_detections
    # the very same detections, to the last bit of every float
    assert (tmp_path / "dist" / "detections.json").read_bytes() == single.detections.read_bytes()
    # rank 0 printed the summary; rank 1 printed nothing of its own and exited 0
    assert any("measured" in ln for ln in _ours(log0))
    assert not any("measured" in ln or "error" in ln for ln in _ours(log1))


@pytest.mark.slow
@needs_msrun
def test_msrun_predict_over_a_directory_equals_one_process(world, tmp_path):
    from hub import predict

    images = world["data"] / "images" / "val2017"
    single = predict("tiny_shapes", images, cards_dirs=[world["cards"]], conf=0.001,
                     out=tmp_path / "single")  # fmt: skip
    assert sum(len(r.detections) for r in single) > 0
    code, (log0, log1) = _msrun(tmp_path, "predict", "tiny_shapes", images, "--cards",
                                world["cards"], "--conf", "0.001", "--out", tmp_path / "dist",
                                "--json")  # fmt: skip
    assert code == 0, log0[-3000:] + log1[-3000:]
    lines = _ours(log0)
    printed = json.loads("\n".join(lines[lines.index("[") : len(lines) - lines[::-1].index("]")]))
    assert len(printed) == len(single) == 7
    for got, want in zip(printed, single):
        want = want.to_dict()
        assert got["image"] == want["image"] and got["detections"] == want["detections"]
        assert Path(got["annotated"]).name == Path(want["annotated"]).name
        # each rank drew its own shard: the files are the single process's, byte for byte
        assert Path(got["annotated"]).read_bytes() == Path(want["annotated"]).read_bytes()
    assert not any(ln.strip().startswith(("[", "{")) for ln in _ours(log1))


def _corrupt(path: Path) -> None:
    """A JPEG whose header reads (size checks pass) but whose pixels cannot be decoded."""
    from PIL import Image

    w, h = Image.open(path).size
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (9, 9, 9)).save(buf, "JPEG")
    data = buf.getvalue()
    cut = data.index(b"\xff\xda") + 20
    path.write_bytes(data[:cut] + bytes(10))


@pytest.mark.slow
@needs_msrun
def test_a_corrupt_image_on_one_rank_ends_every_rank_without_a_report(world, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(world["data"], data)
    bad = sorted((data / "images" / "val2017").iterdir())[3]  # 4th image id: rank 1's shard
    _corrupt(bad)
    t = time.monotonic()
    code, logs = _msrun(tmp_path, "eval", "tiny_shapes", "--data", data, "--cards",
                        world["cards"], "--out", tmp_path / "report")  # fmt: skip
    assert code != 0 and time.monotonic() - t < 300
    for log in logs:
        errors = [ln for ln in _ours(log) if ln.startswith("error:")]
        assert len(errors) == 1, log[-3000:]
        assert errors[0].startswith("error: 1 of 2 ranks failed (rank 1: ")
        assert bad.name in errors[0] and errors[0].endswith("nothing was written")
    assert not (tmp_path / "report").exists()


@pytest.mark.slow
@needs_msrun
def test_a_killed_rank_ends_the_job_without_a_report_and_without_a_hang(world, tmp_path):
    logs = tmp_path / "logs"
    with open(tmp_path / "msrun.out", "wb") as out:
        proc = subprocess.Popen(_msrun_cmd(logs, "eval", "tiny_shapes", "--data", world["data"],
                                           "--cards", world["cards"], "--out", tmp_path / "report"),
                                env=_env(), cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)  # fmt: skip
    try:
        log1, deadline, text = logs / "worker_1.log", time.monotonic() + 300, ""
        while time.monotonic() < deadline and proc.poll() is None:
            text = log1.read_text(errors="replace") if log1.is_file() else ""
            if "loaded" in text:  # kill rank 1 once it has its network
                break
            time.sleep(0.2)
        found = re.search(r"^\[[A-Z]+\] \w+\((\d+),", text, re.M)  # MindSpore's log prefix: pid
        assert found, (tmp_path / "msrun.out").read_text()[-3000:] + text[-3000:]
        os.kill(int(found.group(1)), signal.SIGKILL)
        code = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert code != 0
    assert not (tmp_path / "report").exists()
