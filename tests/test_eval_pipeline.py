"""The evaluation pipeline (worker processes, NMS thread) against the plain loop it replaces.

A scaled-down YOLOv3 with random weights on real image files of mixed sizes and formats; the
batch size leaves a partial last batch.  Faults are real: a corrupt file, a missing file, worker
processes killed or stopped with signals.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from yolomodels.data.synthetic import make_dataset
from yolomodels.errors import DatasetError, ImageReadError, WorkerError
from yolomodels.eval.coco import open_split, to_coco_results

SIZES = [(120, 72), (50, 90), (200, 130), (64, 64), (33, 17)]  # (w, h)


@pytest.fixture(scope="module")
def mixed_root(tmp_path_factory) -> Path:
    """11 images of five sizes (one of them a PNG), boxes scaled with them."""
    import cv2

    root = make_dataset(
        tmp_path_factory.mktemp("mixed"), num_images=11, img_size=(120, 72), num_classes=3,
        seed=5, split="val2017", objects=(1, 3),
    )  # fmt: skip
    ann_path = root / "annotations" / "instances_val2017.json"
    ann = json.loads(ann_path.read_text())
    img_dir = root / "images" / "val2017"
    scale = {}
    for k, im in enumerate(ann["images"]):
        w, h = SIZES[k % len(SIZES)]
        src = img_dir / im["file_name"]
        img = cv2.imread(str(src))
        if k == 3:
            src.unlink()
            im["file_name"] = Path(im["file_name"]).with_suffix(".png").name
        cv2.imwrite(str(img_dir / im["file_name"]), cv2.resize(img, (w, h)))
        scale[im["id"]] = (w / im["width"], h / im["height"])
        im["width"], im["height"] = w, h
    for a in ann["annotations"]:
        sx, sy = scale[a["image_id"]]
        x, y, bw, bh = a["bbox"]
        a["bbox"] = [x * sx, y * sy, bw * sx, bh * sy]
        a["area"] = bw * sx * bh * sy
    ann_path.write_text(json.dumps(ann))
    return root


@pytest.fixture(scope="module")
def mixed(mixed_root):
    return open_split(mixed_root, "val2017")


@pytest.fixture(scope="module")
def net():
    import mindspore as ms

    import yolomodels

    ms.set_device("CPU")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    ms.set_seed(3)
    return yolomodels.build(
        "yolov3_darknet53", num_classes=3, img_size=96, depth_multiple=0.33, width_multiple=0.25
    )


def settings(**kw):
    from yolomodels.eval.runner import InferenceSettings

    return InferenceSettings(**{"img_size": 96, "batch_size": 4, "max_detections": 100, **kw})


def plain_loop(net, split, ids, s) -> dict[int, np.ndarray]:
    """The sequential loop the pipeline replaces, written out independently."""
    import mindspore as ms

    from yolomodels.images import read_image
    from yolomodels.postprocess import nms, preprocess, scale_boxes_back

    net.set_train(False)
    bs = min(s.batch_size, len(ids))
    out = {}
    for start in range(0, len(ids), bs):
        chunk = ids[start : start + bs]
        xs, metas = [], []
        for i in chunk:
            image = read_image(split.image_path(i))
            x, meta = preprocess(image, s.img_size)
            xs.append(x)
            metas.append((meta, image.shape[:2]))
        batch = np.zeros((bs, *xs[0].shape), np.float32)
        batch[: len(xs)] = np.stack(xs)
        pred = net(ms.Tensor(batch))
        pred = (pred[0] if isinstance(pred, (tuple, list)) else pred).asnumpy()
        for j, i in enumerate(chunk):
            det = nms(pred[j], conf=s.conf_threshold, iou=s.iou_threshold,
                      multi_label=s.multi_label, max_det=s.max_detections)  # fmt: skip
            det = np.array(det, dtype=np.float32).reshape(-1, 6)
            det[:, :4] = scale_boxes_back(det[:, :4], *metas[j])
            out[i] = det
    return out


def assert_same(got: dict, want: dict) -> None:
    assert list(got) == list(want)  # same images, same order
    for i in want:
        assert got[i].dtype == np.float32 and np.array_equal(got[i], want[i]), i
    cats = (1, 2, 3)
    assert to_coco_results(got, cats) == to_coco_results(want, cats)


def worker_pids() -> list[int]:
    """This process's image workers, from /proc."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat, cmd = (d / "stat").read_text(), (d / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid() and b"eval.workers" in cmd:
            pids.append(int(d.name))
    return pids


def test_pipeline_gives_the_plain_loops_detections(net, mixed):
    from yolomodels.eval.runner import run_inference

    s = settings()
    ids = list(mixed.image_ids)
    want = plain_loop(net, mixed, ids, s)
    assert sum(len(d) for d in want.values()) > 50  # random weights: plenty to compare
    for workers in (2, 0):  # worker processes + NMS thread; everything in this thread
        run = run_inference(net, mixed, settings=s, workers=workers)
        assert_same(run.detections, want)
        assert run.num_images == 11 and run.seconds > 0
    assert worker_pids() == []  # every worker stopped


def test_image_ids_pick_and_order_the_images(net, mixed):
    from yolomodels.eval.runner import run_inference

    s = settings(batch_size=3)
    ids = [mixed.image_ids[k] for k in (9, 2, 5, 0, 7)]  # 5 images: batches of 3 and 2
    run = run_inference(net, mixed, settings=s, image_ids=ids, workers=1)
    assert_same(run.detections, plain_loop(net, mixed, ids, s))
    assert run_inference(net, mixed, settings=s, image_ids=[]).num_images == 0
    with pytest.raises(DatasetError, match="not in"):
        run_inference(net, mixed, settings=s, image_ids=[ids[0], 10**9])
    with pytest.raises(DatasetError, match="more than once"):
        run_inference(net, mixed, settings=s, image_ids=[ids[0], ids[1], ids[0]])


@pytest.mark.parametrize("fault", ["garbage", "missing"])
def test_a_bad_image_fails_like_the_plain_loop_and_writes_nothing(net, mixed_root, tmp_path,
                                                                   fault):  # fmt: skip
    from yolomodels.eval.scoring import evaluate_network
    from yolomodels.images import read_image

    root = tmp_path / "ds"
    shutil.copytree(mixed_root, root)
    split = open_split(root, "val2017", check_images=False)
    bad = split.image_path(split.image_ids[6])  # in the second batch
    if fault == "garbage":
        bad.write_bytes(b"\x00not an image at all" * 10)
    else:
        bad.unlink()
    with pytest.raises(ImageReadError) as expected:
        read_image(bad)
    out = tmp_path / "out" / "detections.json"
    with pytest.raises(ImageReadError) as got:
        evaluate_network(net, split, settings=settings(), detections_path=out, workers=2)
    assert str(got.value) == str(expected.value) and got.value.path == expected.value.path
    assert not out.exists() and not out.parent.exists()
    assert worker_pids() == []


class FaultyNet:
    """The real network, plus a fault injected into the image workers at the first batch."""

    def __init__(self, net, sig):
        self.net, self.sig, self.hit = net, sig, []

    def set_train(self, mode):
        self.net.set_train(mode)

    def __call__(self, x):
        if not self.hit:
            self.hit = worker_pids()
            for pid in self.hit:
                os.kill(pid, self.sig)
        return self.net(x)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds workers in /proc")
def test_a_killed_worker_is_a_clear_error(net, mixed):
    from yolomodels.eval.runner import run_inference

    faulty = FaultyNet(net, signal.SIGKILL)
    with pytest.raises(WorkerError, match="killed by signal 9"):
        run_inference(faulty, mixed, settings=settings(), workers=2)
    assert len(faulty.hit) == 2 and worker_pids() == []


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds workers in /proc")
def test_a_stuck_worker_times_out_and_is_killed(net, mixed):
    from yolomodels.eval.pipeline import PipelineOptions, infer

    faulty = FaultyNet(net, signal.SIGSTOP)
    items = [(i, mixed.image_path(i)) for i in mixed.image_ids]
    t0 = time.monotonic()
    with pytest.raises(WorkerError, match="no answer for image number .* within 3 s"):
        infer(faulty, items, settings=settings(), options=PipelineOptions(workers=2, timeout=3))
    assert time.monotonic() - t0 < 120
    assert len(faulty.hit) == 2 and worker_pids() == []


def test_progress_bar_shows_images_per_second(net, mixed, capsys):
    from yolomodels.eval.runner import run_inference

    run_inference(net, mixed, settings=settings(), progress=True, workers=1,
                  image_ids=mixed.image_ids[:4])  # fmt: skip
    err = capsys.readouterr().err
    assert "eval" in err and ("img/s" in err or "s/img" in err)
    run_inference(net, mixed, settings=settings(), progress=False, workers=1,
                  image_ids=mixed.image_ids[:4])  # fmt: skip
    assert capsys.readouterr().err == ""


def test_pipeline_options_are_checked():
    from yolomodels.eval.pipeline import PipelineOptions
    from yolomodels.eval.workers import default_workers

    with pytest.raises(ValueError, match="workers"):
        PipelineOptions(workers=-1)
    with pytest.raises(ValueError, match="timeout"):
        PipelineOptions(timeout=0)
    assert [default_workers(c) for c in (1, 2, 4, 8, 64)] == [1, 1, 2, 4, 4]
