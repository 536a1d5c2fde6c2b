"""Architecture registry: names a card can refer to, mapped to typed network builders.

The registry itself never imports MindSpore; the built-in builders live in
:mod:`yolomodels.archs`, whose functions import the network modules only when called.  So
listing architectures and checking a card's arguments against a builder stay cheap.

This is where the hub asks about architectures instead of spelling their facts itself: the
builder's argument names and types (:attr:`ArchSpec.arg_names`, :func:`arg_types`), its defaults,
and the class-dependent parameters (:attr:`ArchSpec.head_params`; the built-ins derive them from
the layer graph, which imports MindSpore, on first use).
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from yolomodels.errors import ArchitectureArgumentError, UnknownArchitectureError
from yolomodels.runtime import check_fast_path

__all__ = ["ArchSpec", "arg_types", "build", "get_arch", "list_archs", "register_arch"]


@dataclass(frozen=True)
class ArchSpec:
    """One registered architecture: its builder and what a card needs to know about it."""

    name: str
    builder: Callable[..., Any]
    head_source: tuple[str, ...] | Callable[[], Sequence[str]]
    """The patterns of :attr:`head_params`, or a function deriving them (called when asked)."""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    """Builder arguments used when neither the card nor the caller gives them."""
    module: str = ""
    summary: str = ""

    @property
    def head_params(self) -> tuple[str, ...]:
        """fnmatch patterns of the parameters that depend on the class count (dropped on fine-tune)."""
        src = self.head_source
        return tuple(src() if callable(src) else src)

    @property
    def arg_names(self) -> tuple[str, ...]:
        """Keyword arguments the builder accepts."""
        params = inspect.signature(self.builder).parameters.values()
        return tuple(
            p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
        )

    @property
    def arg_types(self) -> dict[str, type]:
        """Keyword arguments the builder accepts, each with the type of its default (else str)."""
        params = inspect.signature(self.builder).parameters
        return {
            name: str if params[name].default is inspect.Parameter.empty
            else type(params[name].default)
            for name in self.arg_names
        }

    def check_args(self, args: Mapping[str, Any]) -> None:
        """Raise :class:`ArchitectureArgumentError` if the builder does not accept ``args``."""
        accepted = self.arg_names
        unknown = sorted(set(args) - set(accepted))
        if unknown:
            raise ArchitectureArgumentError(
                f"architecture {self.name!r} does not take argument(s) {', '.join(unknown)}; "
                f"it accepts {', '.join(accepted)}"
            )
        try:
            inspect.signature(self.builder).bind(**{**self.defaults, **args})
        except TypeError as exc:
            raise ArchitectureArgumentError(
                f"arguments {dict(args)!r} do not fit architecture {self.name!r}: {exc}"
            ) from None

    def is_head_param(self, param_name: str) -> bool:
        """True if ``param_name`` matches one of the declared head patterns."""
        return any(fnmatch.fnmatchcase(param_name, pat) for pat in self.head_params)


_REGISTRY: dict[str, ArchSpec] = {}
_BUILTINS_LOADED = False


def register_arch(
    name: str,
    *,
    head_params: Sequence[str] | Callable[[], Sequence[str]] = (),
    defaults: Mapping[str, Any] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a network builder under ``name``; a duplicate name raises.

    ``head_params`` are fnmatch patterns of the class-dependent parameters, or a function that
    derives them (the built-ins derive them from the layer graph, which needs MindSpore, so only
    when asked).
    """

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ValueError(
                f"architecture {name!r} is already registered by "
                f"{_REGISTRY[name].module}.{_REGISTRY[name].builder.__name__}; pick another name"
            )
        doc = inspect.getdoc(fn) or ""
        spec = ArchSpec(
            name=name,
            builder=fn,
            head_source=head_params if callable(head_params) else tuple(head_params),
            defaults=MappingProxyType(dict(defaults or {})),
            module=fn.__module__,
            summary=doc.splitlines()[0] if doc else "",
        )
        spec.check_args({})  # the defaults must fit the builder's own signature
        _REGISTRY[name] = spec
        return fn

    return decorate


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        import yolomodels.archs  # noqa: F401  (registers the built-in builders)


def list_archs(pattern: str | None = None) -> list[str]:
    """Sorted names of the registered architectures, optionally filtered by an fnmatch pattern."""
    _load_builtins()
    names = sorted(_REGISTRY)
    if pattern:
        names = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    return names


def arg_types() -> dict[str, type]:
    """Every registered builder's keyword arguments with their types, in order of first appearance.

    Front ends (the CLI's ``publish`` flags) offer these instead of spelling the names.
    """
    out: dict[str, type] = {}
    for name in list_archs():
        for arg, kind in _REGISTRY[name].arg_types.items():
            out.setdefault(arg, kind)
    return out


def get_arch(name: str) -> ArchSpec:
    """The spec registered under ``name``; unknown names raise with close matches."""
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        close = tuple(difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5))
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownArchitectureError(
            f"no architecture named {name!r}{hint} "
            f"(registered: {', '.join(sorted(_REGISTRY))})",
            name=name,
            suggestions=close,
        ) from None


def build(name: str, **kwargs: Any):
    """Build the network registered as ``name`` (defaults overridden by ``kwargs``)."""
    spec = get_arch(name)
    spec.check_args(kwargs)
    check_fast_path()
    return spec.builder(**{**spec.defaults, **kwargs})
