"""The end-to-end demo: the whole life of a model on one machine, with no network but loopback.

synthetic dataset → train a scaled-down YOLOv3 from its card's recipe → measure it → publish it
as a new card into a local registry and asset store → serve the store over HTTP on 127.0.0.1 →
``hub.load`` it through download and hash verification → ``hub.evaluate`` (reproduced vs the
published claim) → a gallery of annotated validation images (ground truth beside predictions)
→ ``hub.predict`` on a validation image, writing an annotated PNG.

Everything lands under one output directory, including the cache (``YOLOHUB_HOME`` is pointed
there for the duration), so the demo never touches the user's own cache or registry.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hub.cards.card import EvalProtocol
from hub.errors import InputDataError

BASE_CARD = "yolov3_darknet53"
DEMO_NAME = "yolov3_shapes_demo"
TRAIN_SPLIT = "train2017"
VAL_SPLIT = "val2017"


# The card's recipe is MindYOLO's 300-epoch COCO schedule with SGD; a ~500-step run from scratch
# on a small synthetic set needs a short-run schedule on top of it: Adam (beta1 = the card's
# momentum), which gets much further than SGD in so few steps, a cosine decay to 5 % of its lr, a
# one-epoch warm-up without the 1000-step floor and without SGD's 0.1 bias lr, no EMA (its
# 2000-step ramp outlasts the run), and no mosaic/mixup/colour jitter (the shapes' colours are
# already random).  Everything else (loss gains, weight decay, flips, translation) is the card's.
SHORT_RUN = (
    "optimizer.name=adam", "optimizer.lr=0.002", "optimizer.lrf=0.05", "warmup.epochs=1",
    "warmup.min-steps=0", "warmup.bias-lr=0.0", "ema.enabled=false", "loss-scale.mode=none",
    "augment.mosaic=0", "augment.mixup=0", "augment.scale=0.2", "augment.hsv-h=0",
    "augment.hsv-s=0", "augment.hsv-v=0",
)  # fmt: skip


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo run; :meth:`quick` is the CI setting, the defaults are ``make demo``."""

    out: Path
    train_images: int = 400
    val_images: int = 64
    img_size: int = 128
    num_classes: int = 3
    depth_multiple: float = 0.33
    width_multiple: float = 0.25
    epochs: int = 10
    batch_size: int = 8
    seed: int = 0
    metric: str = "AP50"
    gallery_images: int = 8
    tolerance: float = 0.5
    overrides: tuple[str, ...] = ()

    @classmethod
    def quick(cls, out: Path, **changes: Any) -> DemoConfig:
        """A small run for CI: the same steps on a smaller dataset and fewer epochs."""
        return replace(cls(out=out), train_images=48, val_images=12, epochs=2).with_(**changes)

    def with_(self, **changes: Any) -> DemoConfig:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @property
    def arch_args(self) -> dict[str, Any]:
        """The fields that are arguments of the base architecture (its builder names them)."""
        from yolomodels.registry import get_arch

        return {k: getattr(self, k) for k in get_arch(BASE_CARD).arg_names if hasattr(self, k)}


@dataclass(frozen=True)
class DemoStep:
    """One step of the demo: what it did, how long it took, where its output went."""

    name: str
    seconds: float
    result: str
    path: Path | None = None


@dataclass(frozen=True)
class DemoResult:
    """Everything the demo produced, for the summary table and for tests."""

    config: DemoConfig
    steps: tuple[DemoStep, ...]
    card_path: Path
    checkpoint: Path
    sha256: str
    asset_url: str
    claimed: float
    reproduced: float
    holds: bool
    first_loss: float
    last_loss: float
    size: int  # bytes of the published checkpoint
    prediction_image: Path
    num_detections: int
    eval_report: Path
    eval_markdown: Path
    pr_plot: Path
    gallery: Any  # hub.tasks.gallery.Gallery: the grid PNG and the found / missed / false counts
    train_log: Path

    def table(self) -> str:
        """The summary as an aligned plain-text table."""
        rows = [("step", "time", "result")] + [
            (s.name, f"{s.seconds:6.1f} s", s.result) for s in self.steps
        ]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        total = sum(s.seconds for s in self.steps)
        lines.append(f"{'total':<{widths[0]}}  {total:6.1f} s")
        return "\n".join(lines)

    def closing(self) -> str:
        """The verdict, where to look first, what the numbers mean and where every file is."""
        c, g = self.config, self.gallery
        t = g.split
        verdict = "the claim holds" if self.holds else "the claim is NOT reproduced"
        files = [
            ("gallery", f"{g.path}"),
            ("PR plot", f"{self.pr_plot}"),
            ("eval report", f"{self.eval_markdown} (and {self.eval_report.name})"),
            ("card", f"{self.card_path}"),
            ("weights", f"{self.checkpoint} (sha256 {self.sha256[:16]}…)"),
            ("prediction", f"{self.prediction_image}"),
            ("training log", f"{self.train_log}"),
            ("dataset", f"{c.out / 'data'}"),
        ]
        width = max(len(k) for k, _ in files)
        return "\n".join([
            f"{c.metric} on the {c.val_images} validation images: measured {self.reproduced:.2f} "
            f"after the download round trip, claimed {self.claimed:.2f} "
            f"(tolerance ±{c.tolerance}): {verdict}.",
            "",
            f"Look first at {g.path} ({g.images_shown} validation images, ground truth left, "
            f"predictions right), then at the precision-recall curves in {self.pr_plot}.",
            f"{c.metric} {self.reproduced:.1f} is the area under those curves (a box counts when "
            f"it overlaps a same-class object with IoU >= 0.5; 100 = every object found before "
            f"any false box); at score >= {g.conf:.2f} the model finds {t.found} of {t.objects} "
            f"objects with {t.false} false detections ({t.duplicates} lower-scoring duplicate "
            f"boxes hidden in the gallery).",
            "",
            *(f"{k.ljust(width)}  {v}" for k, v in files),
        ])


@contextlib.contextmanager
def _scoped_env(**values: str) -> Iterator[None]:
    """Set environment variables for the block (settings are read at call time)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _Steps:
    """Runs named steps, timing each and echoing one line per step."""

    def __init__(self, total: int, echo: Callable[[str], None]) -> None:
        self.total = total
        self.echo = echo
        self.done: list[DemoStep] = []

    @contextlib.contextmanager
    def step(self, name: str, what: str) -> Iterator[dict[str, Any]]:
        self.echo(f"[{len(self.done) + 1}/{self.total}] {what} ...")
        slot: dict[str, Any] = {"result": "", "path": None}
        start = time.perf_counter()
        yield slot
        seconds = time.perf_counter() - start
        self.done.append(DemoStep(name, seconds, slot["result"], slot["path"]))
        where = f" -> {slot['path']}" if slot["path"] is not None else ""
        self.echo(f"      {slot['result']} ({seconds:.1f} s){where}")


def run_demo(
    config: DemoConfig,
    *,
    echo: Callable[[str], None] = print,
    progress: bool | None = None,
    fresh: bool = True,
) -> DemoResult:
    """Run every demo step under ``config.out`` and return what each produced.

    ``fresh`` empties ``config.out`` first (only if it looks like an earlier demo output or is
    empty, so a mistyped path never deletes someone's files).
    """
    out = Path(config.out).resolve()
    _prepare(out, fresh=fresh)
    config = replace(config, out=out)
    steps = _Steps(8, echo)
    with _scoped_env(YOLOHUB_HOME=str(out / "cache")):
        return _run(config, steps, progress=progress)


def _run(config: DemoConfig, steps: _Steps, *, progress: bool | None) -> DemoResult:
    import hub
    from hub.assets.serve import serve_directory
    from hub.tasks.gallery import draw_gallery
    from yolomodels.data.synthetic import make_dataset

    out = config.out
    data = out / "data"
    registry, store = out / "registry", out / "store"
    store.mkdir(parents=True, exist_ok=True)

    with steps.step("dataset", "writing a synthetic shapes dataset") as s:
        make_dataset(data, num_images=config.train_images, img_size=config.img_size,
                     num_classes=config.num_classes, seed=config.seed, split=TRAIN_SPLIT)
        make_dataset(data, num_images=config.val_images, img_size=config.img_size,
                     num_classes=config.num_classes, seed=config.seed + 1, split=VAL_SPLIT,
                     first_id=config.train_images + 1, image_format="png")
        s["result"] = (f"{config.train_images} train + {config.val_images} val images, "
                       f"{config.num_classes} classes, {config.img_size} px")
        s["path"] = data

    with steps.step("train", f"training a scaled-down {BASE_CARD} from its card's recipe") as s:
        trained = hub.train(
            BASE_CARD,
            data=data,
            out=out / "train",
            arch_args=config.arch_args,
            overrides=(*SHORT_RUN, f"epochs={config.epochs}", f"batch-size={config.batch_size}",
                       f"seed={config.seed}", *config.overrides),
            progress=progress,
        )
        s["result"] = (f"{trained.epochs} epochs, loss {trained.first_loss:.3f} -> "
                       f"{trained.last_loss:.3f}")
        s["path"] = trained.checkpoint

    protocol = _eval_protocol(config)
    with steps.step("measure", "measuring the trained weights (the claim to publish)") as s:
        claimed = _measure(trained.checkpoint, config, data, protocol, out / "measure",
                           progress=progress)
        s["result"] = f"{config.metric} = {claimed:.2f}"

    base_url, stop = serve_directory(store)
    try:
        with steps.step("publish", "publishing it as a new card into a local registry") as s:
            published = hub.publish(
                trained.checkpoint,
                name=DEMO_NAME,
                arch=BASE_CARD,
                registry=registry,
                store=store,
                base_url=base_url,
                arch_args=config.arch_args,
                class_names=list(trained.class_names),
                eval_protocol=protocol,
                claimed=claimed,
                recipe=trained.recipe,
                summary=f"Demo: YOLOv3 (Darknet53, depth {config.depth_multiple}, width "
                f"{config.width_multiple}) trained on synthetic shapes by `yolohub demo`.",
            )
            s["result"] = f"sha256 {published.sha256[:12]}…, {published.size / 1e6:.1f} MB"
            s["path"] = published.card_path

        with steps.step("load", f"hub.load({DEMO_NAME!r}) over HTTP from {base_url}") as s:
            from hub.cards.catalog import open_catalog

            catalog = open_catalog([registry])  # the published card, scanned once
            net = hub.load(DEMO_NAME, cards_dirs=catalog, progress=progress)
            report, fetched = net.hub.report, net.hub.weights.path  # what loading established
            s["result"] = (f"{published.size / 1e6:.1f} MB downloaded, sha256 verified, "
                           f"{len(report.loaded)} parameters loaded strictly")
            s["path"] = fetched

        with steps.step("eval", "hub.evaluate: reproducing the published claim") as s:
            evaluation = hub.evaluate(DEMO_NAME, data=data, cards_dirs=catalog,
                                      out=out / "eval", progress=progress)
            verdict = "holds" if evaluation.holds else "NOT reproduced"
            s["result"] = (f"{config.metric} {evaluation.measured:.2f} vs claimed "
                           f"{claimed:.2f} ± {config.tolerance}: {verdict}")
            s["path"] = evaluation.report_markdown
    finally:
        stop()

    with steps.step("gallery", "drawing validation images: ground truth | predictions") as s:
        gallery = draw_gallery(
            evaluation.annotations, evaluation.detections, data / "images" / VAL_SPLIT,
            out / "gallery.png", count=config.gallery_images,
            title=f"{DEMO_NAME}: {config.metric} {evaluation.measured:.1f} on the "
            f"{config.val_images} {VAL_SPLIT} images (the first {config.gallery_images} shown)",
        )
        t = gallery.split
        s["result"] = (f"{gallery.images_shown} images; at score >= {gallery.conf:.2f} "
                       f"{t.found}/{t.objects} val objects found, {t.false} false detections")
        s["path"] = gallery.path

    with steps.step("predict", "hub.predict on a validation image") as s:
        image = sorted((data / "images" / VAL_SPLIT).iterdir())[0]
        predictions = hub.predict(net, [image], out=out / "predict")
        first = predictions[0]
        s["result"] = f"{len(first.detections)} detections on {image.name}"
        s["path"] = first.annotated

    return DemoResult(
        config=config,
        steps=tuple(steps.done),
        card_path=published.card_path,
        checkpoint=Path(fetched),
        sha256=published.sha256,
        asset_url=published.url,
        claimed=claimed,
        reproduced=float(evaluation.measured),
        holds=bool(evaluation.holds),
        first_loss=float(trained.first_loss),
        last_loss=float(trained.last_loss),
        size=published.size,
        prediction_image=Path(first.annotated),
        num_detections=len(first.detections),
        eval_report=evaluation.report_json,
        eval_markdown=evaluation.report_markdown,
        pr_plot=evaluation.plot,
        gallery=gallery,
        train_log=Path(trained.log),
    )


def _eval_protocol(config: DemoConfig) -> EvalProtocol:
    """The published card's eval-protocol: the val split of the synthetic dataset."""
    return EvalProtocol(
        dataset="synthetic-shapes",
        split=VAL_SPLIT,
        metric=config.metric,
        img_size=config.img_size,
        batch_size=8,
        tolerance=config.tolerance,
    )


def _measure(
    checkpoint: Path,
    config: DemoConfig,
    data: Path,
    protocol: EvalProtocol,
    out: Path,
    *,
    progress: bool | None = None,
) -> float:
    """The author's own measurement, made before publishing, straight from the checkpoint."""
    from hub.assets.weights import build_and_load
    from hub.progress import show_progress
    from hub.settings import get_settings
    from hub.tasks.evaluate import inference_settings
    from yolomodels.eval.coco import open_split
    from yolomodels.eval.scoring import evaluate_network

    retry = f"delete {config.out} and run the demo again"
    net, _ = build_and_load(BASE_CARD, config.arch_args, checkpoint,
                            context=f"the trained {BASE_CARD}", read_hint=retry,
                            fit_hint=f"it was not trained with {config.arch_args}; {retry}")
    result = evaluate_network(net, open_split(data, VAL_SPLIT),
                              settings=inference_settings(protocol),
                              detections_path=out / "detections.json",
                              progress=show_progress(get_settings(), progress))
    value = result.result.metrics.percent(config.metric)
    return 0.0 if value is None else float(value)  # None: COCOeval found nothing to score


def _prepare(out: Path, *, fresh: bool) -> None:
    """Create ``out``; when ``fresh``, clear an earlier demo's output there first."""
    if out.exists() and fresh and any(out.iterdir()):
        if not (out / "registry").is_dir() and not (out / "data").is_dir():
            raise InputDataError(
                f"{out} is not empty and does not look like an earlier demo output; "
                "choose an empty or new directory with --out"
            )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
