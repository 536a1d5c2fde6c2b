"""The training recipe as typed, frozen dataclasses, built from a card's kebab-case ``recipe:``.

Every key is checked: an unknown key or a value of the wrong type raises
:class:`~yolomodels.errors.RecipeError` naming the dotted key, the expected type and what was
found.  ``apply_overrides`` turns ``key.sub=value`` strings (the CLI's ``--set``) into a new
mapping before the check, so overrides get exactly the same validation.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Union

import yaml

from yolomodels.data.augment import AugmentConfig
from yolomodels.errors import RecipeError


@dataclass(frozen=True)
class OptimizerConfig:
    """SGD with momentum (or Adam, beta1 = momentum); weight decay only on parameters not
    matching ``no_decay``."""

    name: str = "sgd"  # "sgd" or "adam"
    lr: float = 0.01
    lrf: float = 0.1  # final lr = lr * lrf
    momentum: float = 0.937
    nesterov: bool = True
    weight_decay: float = 0.0005
    nominal_batch: int | None = None  # if set, weight decay scales with total batch / this
    no_decay: tuple[str, ...] = ("bias", "beta", "gamma")
    schedule: str = "cosine"  # "cosine" or "linear", per epoch
    loss_scale: float = 1.0  # the optimizer divides (grad + wd * w) by this (YOLOv4: 64)


@dataclass(frozen=True)
class WarmupConfig:
    epochs: float = 3.0
    min_steps: int = 0
    bias_lr: float = 0.1  # start lr of biases and BN betas
    momentum: float = 0.8  # start momentum (ramps to the optimizer's)
    target: str = "schedule"  # ramp to the scheduled lr ("schedule") or to the initial lr ("lr")


@dataclass(frozen=True)
class EmaConfig:
    enabled: bool = True
    decay: float = 0.9999
    ramp: float = 2000.0  # d = decay * (1 - exp(-updates / ramp))


@dataclass(frozen=True)
class LossScaleConfig:
    mode: str = "none"  # "none", "static" or "dynamic"
    value: float = 1024.0
    factor: float = 2.0  # dynamic: divide on overflow, multiply after `window` finite steps
    window: int = 1000


@dataclass(frozen=True)
class LossConfig:
    name: str = "YOLOv3Loss"
    box: float = 0.05
    obj: float = 0.7
    cls: float = 0.3
    anchor_t: float | None = None  # YOLOv3Loss
    label_smoothing: float | None = None
    fl_gamma: float | None = None  # YOLOv3Loss
    cls_pw: float | None = None  # YOLOv3Loss
    obj_pw: float | None = None  # YOLOv3Loss
    ignore_threshold: float | None = None  # YOLOv4Loss
    iou_threshold: float | None = None  # YOLOv4Loss

    def options(self) -> dict[str, Any]:
        """Keyword arguments of the loss cell (unset optional keys left to its defaults)."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "name" and getattr(self, f.name) is not None
        }


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs besides the network, the data and the output dir."""

    epochs: int = 300
    batch_size: int = 16  # per device
    img_size: int = 640
    seed: int = 0
    workers: int = 2
    keep_checkpoints: int = 3  # newest training-state files kept in out/state
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    warmup: WarmupConfig = field(default_factory=WarmupConfig)
    ema: EmaConfig = field(default_factory=EmaConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    loss_scale: LossScaleConfig = field(default_factory=LossScaleConfig)
    clip_grad: float | None = None  # global-norm clip, off when None
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def to_recipe(self) -> dict[str, Any]:
        """The kebab-case mapping that ``from_mapping`` turns back into this config."""
        return _kebab(asdict(self))


_CHOICES = {
    ("optimizer", "name"): ("sgd", "adam"),
    ("optimizer", "schedule"): ("cosine", "linear"),
    ("warmup", "target"): ("schedule", "lr"),
    ("loss_scale", "mode"): ("none", "static", "dynamic"),
    ("loss", "name"): ("YOLOv3Loss", "YOLOv4Loss"),
}
_POSITIVE = {
    ("epochs",),
    ("batch_size",),
    ("img_size",),
    ("keep_checkpoints",),
    ("optimizer", "lr"),
}


def _kebab(obj):
    if isinstance(obj, dict):
        return {k.replace("_", "-"): _kebab(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return [_kebab(v) for v in obj]
    return obj


def _type_name(tp) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        return "a list of strings"
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string"}.get(
        tp, "null" if tp is type(None) else getattr(tp, "__name__", str(tp))
    )


def _coerce(value, tp, path: str):
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, path)
            except RecipeError:
                continue
        raise _wrong(path, tp, value)
    if tp is type(None):
        if value is None:
            return None
        raise _wrong(path, tp, value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _wrong(path, tp, value)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _wrong(path, tp, value)
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise RecipeError(f"recipe.{path}: expected a finite number, found {value!r}; "
                                  "fix the card's recipe or the --set override")
            return float(value)
        raise _wrong(path, tp, value)
    if tp is str:
        if isinstance(value, str):
            return value
        raise _wrong(path, tp, value)
    if origin is tuple:
        if isinstance(value, Sequence) and not isinstance(value, str):
            return tuple(
                _coerce(v, typing.get_args(tp)[0], f"{path}[{i}]") for i, v in enumerate(value)
            )
        raise _wrong(path, tp, value)
    raise RecipeError(f"recipe.{path}: unsupported type {tp}")  # pragma: no cover


def _wrong(path: str, tp, value) -> RecipeError:
    return RecipeError(
        f"recipe.{path}: expected {_type_name(tp)}, found {value!r} ({type(value).__name__}); "
        "fix the card's recipe or the --set override"
    )


def _build(cls, mapping: Any, path: tuple[str, ...]):
    where = "recipe" + "".join(f".{p}" for p in path)
    if not isinstance(mapping, Mapping):
        raise RecipeError(
            f"{where}: expected a mapping, found {mapping!r} ({type(mapping).__name__})"
        )
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    kwargs = {}
    for raw_key, value in mapping.items():
        key = str(raw_key).replace("-", "_")
        if key not in known:
            close = difflib.get_close_matches(
                key.replace("_", "-"), [k.replace("_", "-") for k in known], n=2
            )
            hint = f"; did you mean {' or '.join(close)}?" if close else ""
            raise RecipeError(
                f"{where}: unknown key {raw_key!r}{hint} (known: "
                f"{', '.join(k.replace('_', '-') for k in known)})"
            )
        tp = hints[key]
        sub = path + (key,)
        dotted = ".".join(p.replace("_", "-") for p in sub)
        if isinstance(tp, type) and hasattr(tp, "__dataclass_fields__"):
            if tp is EmaConfig and isinstance(value, bool):
                value = {"enabled": value}
            kwargs[key] = _build(tp, value, sub)
            continue
        v = _coerce(value, tp, dotted)
        choices = _CHOICES.get(sub)
        if choices is not None and v not in choices:
            raise RecipeError(f"recipe.{dotted}: expected one of {', '.join(choices)}, found {v!r}")
        if sub in _POSITIVE and v <= 0:
            raise RecipeError(f"recipe.{dotted}: expected a positive value, found {v!r}")
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
            raise RecipeError(f"recipe.{dotted}: expected a value >= 0, found {v!r}")
        kwargs[key] = v
    missing = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
    if missing:  # pragma: no cover - every field has a default
        raise RecipeError(f"{where}: missing {missing}")
    return cls(**kwargs)


def config_from_mapping(recipe: Mapping[str, Any] | None) -> TrainConfig:
    """Check a kebab-case recipe mapping and turn it into a :class:`TrainConfig`."""
    cfg = _build(TrainConfig, recipe or {}, ())
    if cfg.loss.name == "YOLOv4Loss":
        bad = [
            k
            for k in ("anchor_t", "fl_gamma", "cls_pw", "obj_pw")
            if getattr(cfg.loss, k) is not None
        ]
    else:
        bad = [k for k in ("ignore_threshold", "iou_threshold") if getattr(cfg.loss, k) is not None]
    if bad:
        raise RecipeError(
            f"recipe.loss: {', '.join(k.replace('_', '-') for k in bad)} do(es) not apply to "
            f"{cfg.loss.name}; remove them"
        )
    return cfg


def apply_overrides(
    recipe: Mapping[str, Any] | None, overrides: Sequence[str] | Mapping[str, Any]
) -> dict:
    """A deep copy of ``recipe`` with ``a.b=value`` overrides applied (values parsed as YAML)."""
    out = _deep_copy(recipe or {})
    items = overrides.items() if isinstance(overrides, Mapping) else [_split(o) for o in overrides]
    for key, value in items:
        parts = [p for p in str(key).split(".") if p]
        if not parts:
            raise RecipeError(f"override {key!r} has an empty key; expected key.sub=value")
        node = out
        for p in parts[:-1]:
            child = node.get(p)
            if child is True or child is False:  # e.g. `ema: true` gaining a sub-key
                child = {"enabled": child}
            if child is None:
                child = {}
            if not isinstance(child, dict):
                raise RecipeError(
                    f"override {key!r}: recipe.{p} is {child!r}, not a mapping; cannot set a sub-key"
                )
            node[p] = child
            node = child
        node[parts[-1]] = value
    return out


def _split(text: str) -> tuple[str, Any]:
    key, sep, raw = str(text).partition("=")
    if not sep or not key.strip():
        raise RecipeError(
            f"override {text!r} is not of the form key=value (e.g. optimizer.lr=0.02)"
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def _deep_copy(m: Mapping) -> dict:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in m.items()}
