"""Re-run a card's training recipe on a dataset: ``train("yolov3_darknet53", data=DIR, out=DIR)``.

The card's ``recipe:`` block supplies every hyperparameter; ``overrides`` (``key.sub=value``,
the CLI's ``--set``) change any of them with the same type checks.  ``arch_args`` changes the
card's architecture arguments (a scaled-down network, another image size); the class count
follows the dataset.  ``from_`` starts from a card's verified weights (fine-tuning, the head
re-initialised when the class count differs).  The dataset is checked before the first step and
its report logged.  Under ``msrun`` every worker trains on its own shard with averaged
gradients; only rank 0 writes files.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hub.cards.catalog import CardsArg, open_catalog, resolve
from hub.errors import BindingError, CheckpointError, InputDataError
from hub.settings import get_settings

log = logging.getLogger(__name__)

RUN_FILE = "run.json"


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced and how it went."""

    model: str  # the card's name@version whose recipe ran
    checkpoint: Path  # EMA weights (raw when the recipe has no EMA); loads strictly into arch
    log: Path  # JSON-lines metrics, one record per step and per epoch
    out_dir: Path
    arch: str
    arch_args: Mapping[str, Any]  # complete builder arguments the checkpoint fits
    class_names: tuple[str, ...]
    recipe: Mapping[str, Any]  # the effective recipe (kebab-case), after overrides
    epochs: int  # epochs completed
    steps: int  # optimizer steps completed
    first_loss: float | None  # logged loss of the first step of this call
    last_loss: float | None  # logged loss of the last step
    epoch_losses: tuple[float, ...]  # mean loss of each epoch run in this call
    resumed_from_epoch: int
    seconds: float
    world_size: int
    rank: int
    dataset_summary: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "checkpoint": str(self.checkpoint),
            "log": str(self.log),
            "out_dir": str(self.out_dir),
            "arch": self.arch,
            "arch_args": dict(self.arch_args),
            "class_names": list(self.class_names),
            "recipe": dict(self.recipe),
            "epochs": self.epochs,
            "steps": self.steps,
            "first_loss": self.first_loss,
            "last_loss": self.last_loss,
            "epoch_losses": list(self.epoch_losses),
            "resumed_from_epoch": self.resumed_from_epoch,
            "seconds": round(self.seconds, 3),
            "world_size": self.world_size,
            "dataset": self.dataset_summary,
        }


def train(
    spec: str,
    *,
    data: str | os.PathLike,
    out: str | os.PathLike,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    arch_args: Mapping[str, Any] | None = None,
    resume: bool = False,
    from_: str | None = None,
    cards_dirs: CardsArg = (),
    progress: bool | None = None,
    rank_weights_dir: str | os.PathLike | None = None,
) -> TrainResult:
    """Train card ``spec``'s architecture with its recipe on ``data``, writing into ``out``.

    ``rank_weights_dir`` makes every rank also save its raw weights as ``rank<N>.ckpt`` there
    (to check that data-parallel ranks stay identical).
    """
    from yolomodels.errors import CheckpointReadError, YoloModelsError

    catalog = open_catalog(cards_dirs)  # once: --from resolves in the same snapshot
    release = catalog.resolve(spec)
    card = release.card
    if card.architecture is None:
        raise BindingError(
            f"card {card.name!r} has no architecture block, so there is no network to train; "
            "add `architecture: {name: ..., args: {...}}` to the card"
        )
    config, recipe = _config(card, overrides, arch_args)
    dataset = _dataset(data)
    args = dict(arch_args or {})
    args["img_size"] = config.img_size
    nc = args.get("num_classes")
    if nc is not None and nc != dataset.num_classes:
        raise InputDataError(
            f"arch_args num_classes={nc} but the dataset in {data} has {dataset.num_classes} "
            f"classes ({', '.join(dataset.class_names[:8])}); leave num_classes out to follow "
            "the dataset"
        )
    args.pop("num_classes", None)
    out_dir = Path(out)

    from yolomodels.train.distributed import init_parallel

    parallel = init_parallel()
    net, binding_args = _network(
        release,
        num_classes=dataset.num_classes,
        arch_args=args,
        from_=from_,
        seed=config.seed,
        catalog=catalog,
        progress=progress,
    )
    run = {
        "model": release.id,
        "arch": card.architecture.name,
        "arch_args": binding_args,
        "class_names": list(dataset.class_names),
        "recipe": recipe,
        "data": str(Path(data).resolve()),
        "world_size": parallel.world,
        "from": from_,
    }
    _check_resume(out_dir, run, resume)
    if parallel.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_json(out_dir / RUN_FILE, run)

    from hub.progress import show_progress
    from yolomodels.train.trainer import Trainer

    try:
        trainer = Trainer(
            net,
            dataset,
            config,
            out_dir=out_dir,
            parallel=parallel,
            progress=show_progress(get_settings(), progress),
            log_fn=log.info if parallel.is_main else None,
        )
        fit = trainer.fit(resume=resume)
    except CheckpointReadError as exc:
        raise CheckpointError(f"cannot resume from {out_dir}: {exc}") from exc
    except YoloModelsError as exc:  # dataset, recipe and image problems found mid-run
        raise InputDataError(str(exc)) from exc
    if rank_weights_dir is not None:
        trainer.save_rank_weights(Path(rank_weights_dir) / f"rank{parallel.rank}.ckpt")
    return TrainResult(
        model=release.id,
        checkpoint=fit.weights,
        log=fit.log,
        out_dir=out_dir,
        arch=card.architecture.name,
        arch_args=binding_args,
        class_names=tuple(dataset.class_names),
        recipe=recipe,
        epochs=fit.epochs,
        steps=fit.steps,
        first_loss=fit.first_loss,
        last_loss=fit.last_loss,
        epoch_losses=tuple(s.loss for s in fit.epoch_summaries),
        resumed_from_epoch=fit.resumed_from_epoch,
        seconds=fit.seconds,
        world_size=parallel.world,
        rank=parallel.rank,
        dataset_summary=dataset.report.summary(),
    )


def effective_recipe(
    spec: str,
    *,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    arch_args: Mapping[str, Any] | None = None,
    cards_dirs: CardsArg = (),
) -> dict[str, Any]:
    """The checked recipe (kebab-case, every key) a ``train`` call with these inputs would use."""
    card = resolve(spec, cards_dirs=cards_dirs).card
    return _config(card, overrides, arch_args)[1]


def _config(card, overrides, arch_args):
    """(TrainConfig, its kebab-case mapping) from the card's recipe, overrides and arch_args."""
    from yolomodels.errors import RecipeError
    from yolomodels.train.config import apply_overrides, config_from_mapping

    try:
        recipe = apply_overrides(card.recipe or {}, overrides)
        explicit_size = _mentions(overrides, "img-size") or _mentions(overrides, "img_size")
        if arch_args and "img_size" in arch_args and not explicit_size:
            recipe.pop("img_size", None)
            recipe["img-size"] = arch_args["img_size"]
        elif "img-size" not in recipe and "img_size" not in recipe:
            card_size = (
                (card.architecture.args or {}).get("img_size") if card.architecture else None
            )
            if card_size is not None:
                recipe["img-size"] = card_size
        config = config_from_mapping(recipe)
    except RecipeError as exc:
        raise InputDataError(f"{card.name}: {exc}") from None
    return config, config.to_recipe()


def _mentions(overrides, key: str) -> bool:
    items = (
        overrides.keys()
        if isinstance(overrides, Mapping)
        else (str(o).partition("=")[0].strip() for o in overrides)
    )
    return any(k == key for k in items)


def _dataset(data):
    from yolomodels.data.datasets import DatasetWarning, load_dataset
    from yolomodels.errors import DatasetError

    path = Path(data)
    if not path.exists():
        raise InputDataError(
            f"dataset directory {path} does not exist; expected a COCO layout "
            "(annotations/instances_train*.json + images/) or a YOLO layout (train*.txt + "
            "labels/); `yolohub make-dataset DIR` writes a small synthetic one"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DatasetWarning)
        try:
            dataset = load_dataset(path, split="train")
        except DatasetError as exc:
            raise InputDataError(str(exc)) from None
    log.info("dataset: %s", dataset.report.summary())
    for w in caught:
        if issubclass(w.category, DatasetWarning):
            log.warning("%s", w.message)
    return dataset


def _network(release, *, num_classes, arch_args, from_, seed, catalog, progress):
    """The network to train (fresh, or with ``from_``'s weights) and its complete arguments."""
    import mindspore as ms

    from hub.tasks.load import bind, build_for, load

    binding = bind(release.card, num_classes=num_classes, arch_args=arch_args)
    ms.set_seed(seed)
    if from_ is None:
        net = build_for(release, num_classes=num_classes, arch_args=arch_args, mode="pynative")
    else:
        source = catalog.resolve(from_)
        src_arch = source.card.architecture.name if source.card.architecture else None
        if src_arch != binding.arch:
            raise BindingError(
                f"--from {from_}: its architecture is {src_arch!r}, but {release.id} trains "
                f"{binding.arch!r}; fine-tune from a card of the same architecture"
            )
        net = load(
            source,
            num_classes=num_classes,
            arch_args=arch_args,
            mode="pynative",
            progress=progress,
        )
        report = net.hub.report
        if report is not None and report.dropped:
            log.info(
                "fine-tuning %s: %d head parameters re-initialised", from_, len(report.dropped)
            )
    net.set_train(True)
    return net, dict(binding.args)


def _check_resume(out_dir: Path, run: dict, resume: bool) -> None:
    path = out_dir / RUN_FILE
    if not resume:
        if (out_dir / "state").is_dir() and any((out_dir / "state").iterdir()):
            raise InputDataError(
                f"{out_dir} already holds a training run; pass --resume (resume=True) to "
                "continue it, or choose another --out directory"
            )
        return
    if not path.is_file():
        raise InputDataError(
            f"nothing to resume in {out_dir}: {RUN_FILE} is missing; start a run there first "
            "(without --resume)"
        )
    try:
        before = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputDataError(f"{path} cannot be read ({exc}); cannot resume") from None
    diffs = [
        k
        for k in ("model", "arch", "arch_args", "class_names", "recipe", "world_size")
        if _jsonable(before.get(k)) != _jsonable(run.get(k))
    ]
    if diffs:
        changes = [c for k in diffs for c in _changes(k, _jsonable(before.get(k)),
                                                       _jsonable(run.get(k)))]
        detail = "; ".join(changes[:6]) + (f"; {len(changes) - 6} more" if len(changes) > 6 else "")
        raise InputDataError(
            f"cannot resume the run in {out_dir}: {', '.join(diffs)} changed ({detail}); "
            "resume with the same card, recipe overrides, arch_args, dataset and rank count"
        )


def _changes(path: str, before, now) -> list[str]:
    """``key.sub: was X, now Y`` for each leaf that differs (not the whole recipes)."""
    if isinstance(before, dict) and isinstance(now, dict):
        out = []
        for k in list(before) + [k for k in now if k not in before]:
            if k not in now:
                out.append(f"{path}.{k}: was {_brief(before[k])}, now unset")
            elif k not in before:
                out.append(f"{path}.{k}: was unset, now {_brief(now[k])}")
            elif before[k] != now[k]:
                out.extend(_changes(f"{path}.{k}", before[k], now[k]))
        return out
    return [f"{path}: was {_brief(before)}, now {_brief(now)}"]


def _brief(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=str))


def _write_json(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, path)
