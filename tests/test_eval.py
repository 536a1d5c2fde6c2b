"""COCO evaluation: numbers equal a direct pycocotools run, claim verdicts, reports on disk."""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from yolomodels.data.synthetic import make_dataset
from yolomodels.errors import DatasetError
from yolomodels.eval.coco import (
    COCO80_TO_COCO91,
    CocoMetrics,
    category_mapping,
    evaluate_file,
    evaluate_results,
    load_ground_truth,
    open_split,
    save_results,
    to_coco_results,
)
from yolomodels.eval.report import (
    NO_CLAIM,
    NOT_REPRODUCED,
    REPRODUCED,
    check_claim,
    write_report,
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(
        tmp_path_factory.mktemp("ds"), num_images=24, img_size=(96, 80), num_classes=3, seed=7,
        split="val2017", objects=(1, 4),
    )  # fmt: skip


def _gt_boxes(split):
    """Per image: (K, 6) ground truth as detections [x1, y1, x2, y2, 1.0, cls]."""
    out = {}
    for img_id in split.image_ids:
        anns = split.gt.loadAnns(split.gt.getAnnIds(imgIds=[img_id]))
        out[img_id] = np.array(
            [
                [
                    *a["bbox"][:2],
                    a["bbox"][0] + a["bbox"][2],
                    a["bbox"][1] + a["bbox"][3],
                    1.0,
                    split.category_ids.index(a["category_id"]),
                ]
                for a in anns
            ]  # fmt: skip
        ).reshape(-1, 6)
    return out


def _noisy_detections(split, seed=0):
    """Jittered true boxes, some dropped, some with the wrong class, plus random false positives."""
    rng = np.random.default_rng(seed)
    dets = {}
    for img_id, boxes in _gt_boxes(split).items():
        rows = []
        for b in boxes:
            if rng.random() < 0.15:
                continue
            b = b.copy()
            b[:4] += rng.normal(0, 2.5, 4)
            b[4] = rng.uniform(0.2, 1.0)
            if rng.random() < 0.1:
                b[5] = (b[5] + 1) % 3
            rows.append(b)
        for _ in range(int(rng.integers(0, 3))):
            x, y = rng.uniform(0, 60, 2)
            rows.append([x, y, x + rng.uniform(5, 30), y + rng.uniform(5, 30), rng.uniform(0, 0.6),
                         rng.integers(3)])  # fmt: skip
        dets[img_id] = np.array(rows, dtype=float).reshape(-1, 6)
    return dets


def _direct_pycocotools(ann_file, records, img_ids):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ann_file))
        dt = gt.loadRes(records)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.imgIds = img_ids
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def test_metrics_equal_a_direct_pycocotools_run(dataset, capsys):
    split = open_split(dataset, "val2017")
    records = to_coco_results(_noisy_detections(split), split.category_ids)
    result = evaluate_results(split.gt, records, image_ids=split.image_ids)
    ev = _direct_pycocotools(split.annotations, records, list(split.image_ids))
    assert list(result.metrics.__dict__.values()) == [float(s) for s in ev.stats]
    np.testing.assert_array_equal(result.precision, ev.eval["precision"])
    assert 0.2 < result.metrics.AP < 0.95  # noisy: neither trivial nor perfect
    assert result.num_detections == len(records) and result.num_images == 24
    assert "Average Precision" in result.summary
    assert capsys.readouterr().out == ""  # pycocotools' chatter stays inside the library


def test_saved_detections_rerun_without_inference(dataset, tmp_path):
    split = open_split(dataset, "val")  # "val" finds val2017
    records = to_coco_results(_noisy_detections(split, seed=3), split.category_ids)
    first = evaluate_results(split.gt, records)
    path = save_results(records, tmp_path / "dets" / "detections.json")
    again = evaluate_file(split.annotations, path)
    assert again.metrics == first.metrics
    # rounding as MindYOLO writes results: 3 decimals for boxes, 5 for scores
    rec = json.loads(path.read_text())[0]
    assert all(round(v, 3) == v for v in rec["bbox"]) and round(rec["score"], 5) == rec["score"]


def test_perfect_detections_score_one(dataset):
    split = open_split(dataset, "val2017")
    result = evaluate_results(split.gt, to_coco_results(_gt_boxes(split), split.category_ids))
    m = result.metrics
    assert m.AP == m.AP50 == m.AP75 == m.AR100 == 1.0
    for name in set(CocoMetrics.names()) - {"AR1"}:
        assert getattr(m, name) in (1.0, -1.0), name
    assert m.AR1 < 1.0  # several objects per image but only one detection counted
    assert all(ap == 100.0 for _, _, ap, _ in result.per_class_ap())


def test_no_detections_score_zero_and_absent_sizes_stay_minus_one(dataset):
    split = open_split(dataset, "val2017")
    m = evaluate_results(split.gt, []).metrics
    assert m.AP == m.AP50 == m.AR100 == 0.0
    assert m.APl == -1.0 and m.percent("APl") is None  # no large boxes in 96x80 images


def test_detections_outside_the_ground_truth_are_refused(dataset):
    split = open_split(dataset, "val2017")
    good = {"image_id": split.image_ids[0], "category_id": 1, "bbox": [1, 1, 5, 5], "score": 0.5}
    with pytest.raises(DatasetError, match="image_id 999999"):
        evaluate_results(split.gt, [{**good, "image_id": 999999}])
    with pytest.raises(DatasetError, match="category_id 42"):
        evaluate_results(split.gt, [{**good, "category_id": 42}])
    with pytest.raises(DatasetError, match="lacks"):
        evaluate_results(split.gt, [{"image_id": 1}])


def test_category_mapping(dataset):
    gt = open_split(dataset, "val2017").gt
    assert category_mapping(gt, 3) == (1, 2, 3)
    with pytest.raises(DatasetError, match="predicts 5 classes but the dataset has 3"):
        category_mapping(gt, 5)
    # an 80-class network scored on (a subset of) COCO uses the 80->91 table
    assert category_mapping(gt, 80) == COCO80_TO_COCO91
    assert len(COCO80_TO_COCO91) == 80 and COCO80_TO_COCO91[11] == 13 and COCO80_TO_COCO91[-1] == 90
    coco = COCO()
    coco.dataset = {"images": [], "annotations": [],
                    "categories": [{"id": i, "name": str(i)} for i in COCO80_TO_COCO91]}  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    assert category_mapping(coco, 80) == COCO80_TO_COCO91


def test_open_split_layouts_and_errors(dataset, tmp_path):
    # COCO's own layout: <root>/val2017/*.jpg next to annotations/
    root = tmp_path / "coco"
    shutil.copytree(dataset / "annotations", root / "annotations")
    shutil.copytree(dataset / "images" / "val2017", root / "val2017")
    split = open_split(root, "val2017")
    assert split.image_dir == root / "val2017"
    assert split.image_path(split.image_ids[0]).is_file()
    with pytest.raises(DatasetError, match=r"no annotations for split 'test'.*instances_val2017"):
        open_split(root, "test")
    with pytest.raises(DatasetError, match="does not exist"):
        open_split(tmp_path / "nowhere", "val2017")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        load_ground_truth(bad)
    bad.write_text('{"images": []}')
    with pytest.raises(DatasetError, match="not COCO json"):
        load_ground_truth(bad)


@pytest.mark.parametrize(
    "claimed, tolerance, verdict",
    [(50.0, 0.5, REPRODUCED), (50.5, 0.5, REPRODUCED), (49.5, 0.5, REPRODUCED),
     (50.51, 0.5, NOT_REPRODUCED), (49.0, 0.5, NOT_REPRODUCED), (None, 0.5, NO_CLAIM)],
)  # fmt: skip
def test_claim_verdict(claimed, tolerance, verdict):
    metrics = CocoMetrics.from_stats([0.5] + [0.7] * 11)
    check = check_claim(metrics, "AP", claimed=claimed, tolerance=tolerance)
    assert check.measured == pytest.approx(50.0)
    assert check.verdict == verdict
    assert check.holds is {REPRODUCED: True, NOT_REPRODUCED: False, NO_CLAIM: None}[verdict]
    if claimed is not None:
        assert check.delta == pytest.approx(50.0 - claimed)
    with pytest.raises(KeyError, match="unknown metric"):
        check_claim(metrics, "mAP", claimed=1.0, tolerance=0.1)


def test_report_files(dataset, tmp_path):
    split = open_split(dataset, "val2017")
    result = evaluate_results(
        split.gt, to_coco_results(_noisy_detections(split), split.category_ids)
    )
    claim = check_claim(result.metrics, "AP50", claimed=99.0, tolerance=0.5)
    files = write_report(
        result, tmp_path / "report", title="shapes@1 on val2017", claim=claim,
        context={"model": "shapes", "protocol": {"img_size": 96, "iou_threshold": 0.65}},
    )  # fmt: skip
    data = json.loads(files.json.read_text())
    assert data["model"] == "shapes" and data["protocol"]["img_size"] == 96
    assert data["claim"]["verdict"] == NOT_REPRODUCED and data["claim"]["claimed"] == 99.0
    assert data["metrics"]["AP50"] == pytest.approx(result.metrics.AP50 * 100, abs=1e-4)
    assert [c["name"] for c in data["per_class"]] == ["circle", "square", "triangle"]
    md = files.markdown.read_text()
    assert "**Verdict: not reproduced**" in md and "| AP50 | 99.00 |" in md
    assert "protocol.iou_threshold | 0.65" in md and "](eval_pr.png)" in md
    with Image.open(files.plot) as im:
        assert im.format == "PNG" and im.size[0] > 600 and im.size[1] > 300
        pixels = np.asarray(im.convert("L"))
    assert pixels.std() > 10  # curves and axes, not a blank canvas


# ------------------------------------------------------------------ inference over a split


class OracleNet:
    """A detector that is always right, to check the runner's geometry end to end.

    For each input it finds the image that preprocesses to exactly that input and emits that
    image's ground-truth boxes in input pixels (decoded-output layout, obj 1, class score 0.9).
    """

    rows = 16

    def __init__(self, split, img_size, num_classes):
        import hashlib

        from yolomodels.eval.runner import read_image
        from yolomodels.postprocess import preprocess

        self._hash = lambda a: hashlib.sha1(np.ascontiguousarray(a).tobytes()).hexdigest()
        self.num_classes = num_classes
        self.training = True
        self.table = {}
        for img_id in split.image_ids:
            x, meta = preprocess(read_image(split.image_path(img_id)), img_size)
            out = np.zeros((self.rows, 5 + num_classes), np.float32)
            anns = split.gt.loadAnns(split.gt.getAnnIds(imgIds=[img_id]))
            for i, a in enumerate(anns):
                bx, by, bw, bh = a["bbox"]
                out[i, 0] = (bx + bw / 2) * meta.ratio + meta.pad[0]
                out[i, 1] = (by + bh / 2) * meta.ratio + meta.pad[1]
                out[i, 2:4] = bw * meta.ratio, bh * meta.ratio
                out[i, 4] = 1.0
                out[i, 5 + split.category_ids.index(a["category_id"])] = 0.9
            self.table[self._hash(x)] = out

    def set_train(self, mode):
        self.training = mode

    def __call__(self, batch):
        import mindspore as ms

        empty = np.zeros((self.rows, 5 + self.num_classes), np.float32)
        return ms.Tensor(np.stack([self.table.get(self._hash(x), empty) for x in batch.asnumpy()]))


@pytest.fixture(scope="module")
def rect_split(tmp_path_factory):
    """Non-square images, so the letterbox pads and boxes must be mapped back exactly."""
    root = make_dataset(
        tmp_path_factory.mktemp("rect"), num_images=10, img_size=(120, 72), num_classes=3,
        seed=11, split="val2017", objects=(1, 3),
    )  # fmt: skip
    return open_split(root, "val2017")


def test_runner_maps_a_perfect_detector_to_perfect_scores(rect_split, tmp_path):
    from yolomodels.eval.runner import InferenceSettings
    from yolomodels.eval.scoring import evaluate_network

    net = OracleNet(rect_split, 96, 3)
    settings = InferenceSettings(img_size=96, batch_size=4)  # 10 images: last batch padded
    ev = evaluate_network(net, rect_split, settings=settings, detections_path=tmp_path / "d.json")
    assert net.training is False
    assert ev.result.metrics.AP == pytest.approx(1.0) and ev.result.metrics.AR100 == 1.0
    n_gt = len(rect_split.gt.getAnnIds())
    assert ev.result.num_detections == n_gt == len(json.loads(ev.detections_path.read_text()))
    assert sorted(ev.inference.detections) == list(rect_split.image_ids)


@pytest.fixture(scope="module")
def tiny_yolov3():
    """A scaled-down YOLOv3 with random weights, in PyNative mode (no graph compile in tests)."""
    import mindspore as ms

    import yolomodels

    ms.set_device("CPU")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    ms.set_seed(0)
    return yolomodels.build(
        "yolov3_darknet53", num_classes=3, img_size=96, depth_multiple=0.33, width_multiple=0.25
    )


def test_untrained_network_evaluates_end_to_end(tiny_yolov3, rect_split, tmp_path):
    from yolomodels.eval.runner import InferenceSettings, run_inference
    from yolomodels.eval.scoring import evaluate_network

    settings = InferenceSettings(img_size=96, batch_size=10, max_detections=50)
    ev = evaluate_network(
        tiny_yolov3, rect_split, settings=settings, detections_path=tmp_path / "det.json"
    )
    m = ev.result.metrics
    assert 0.0 <= m.AP < 0.05 and 0.0 <= m.AP50 < 0.1  # random weights find nothing real
    assert ev.inference.num_images == 10 and ev.inference.seconds > 0
    for det in ev.inference.detections.values():
        assert 0 < len(det) <= 50
        assert np.all(det[:, [0, 2]] >= 0) and np.all(det[:, [0, 2]] <= 120)  # clipped
        assert np.all(det[:, [1, 3]] >= 0) and np.all(det[:, [1, 3]] <= 72)
        assert np.all(np.isin(det[:, 5], [0, 1, 2]))
    # the saved detections re-score without inference, to the same numbers
    assert evaluate_file(rect_split.annotations, ev.detections_path).metrics == m
    files = write_report(ev.result, tmp_path / "r", title="t", context={}, claim=None)
    assert files.json.is_file() and files.markdown.is_file() and files.plot.stat().st_size > 0
    # the batch size (and the padding of the last batch) does not change any detection
    again = run_inference(tiny_yolov3, rect_split, settings=InferenceSettings(
        img_size=96, batch_size=4, max_detections=50))  # fmt: skip
    for img_id, det in ev.inference.detections.items():
        np.testing.assert_allclose(again.detections[img_id], det, rtol=1e-4, atol=1e-3)


def test_inference_settings_and_unreadable_images_are_refused(rect_split, tmp_path):
    from yolomodels.errors import ImageReadError
    from yolomodels.eval.runner import InferenceSettings, read_image

    with pytest.raises(DatasetError, match="multiple of 32"):
        InferenceSettings(img_size=100)
    with pytest.raises(DatasetError, match="thresholds"):
        InferenceSettings(iou_threshold=0)
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(ImageReadError, match="is not an image"):
        read_image(bad)
    with pytest.raises(ImageReadError, match="does not exist"):
        read_image(tmp_path / "missing.jpg")
