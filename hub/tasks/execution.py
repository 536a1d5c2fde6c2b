"""How a loaded network runs, and the one attribute it carries: ``net.hub``.

:func:`attach` gives a network from :func:`hub.load` its :class:`~hub.tasks.record.LoadRecord`
and makes it a *loaded network*: its class becomes a subclass of its own (one per architecture
class, made once) that adds

* read-only views of the record that ``hub.load`` has always offered — ``net.load_report``,
  ``net.class_names``, ``net.release_id``, ``net.card_name``, ``net.execution_mode``;
* with ``mode="graph"``, inference as one compiled graph per input shape: ``mindspore.jit`` on
  this network only, so the process-wide context (which the trainer or other code may rely on)
  is left alone, and ``construct`` itself is untouched (MindSpore's parser resolves it).  If
  compilation fails, the network falls back to PyNative for good, with a warning, and keeps
  working.  Training mode always runs eagerly.  The first call for each input shape goes
  through the persistent compile cache (:mod:`hub.tasks.compile_cache`) unless
  ``YOLOHUB_COMPILE_CACHE=0``.
"""

from __future__ import annotations

import logging
from typing import Any

from hub.errors import InputDataError
from hub.tasks.record import LoadRecord

__all__ = ["GraphRunner", "LoadedNetwork", "attach"]

log = logging.getLogger(__name__)


class GraphRunner:
    """Runs a network's ``construct`` as compiled graphs, one per input shape."""

    def __init__(self, net, *, binding=None, label: str):
        self.mode = "graph"
        self._construct = net.construct
        self._net_form = net
        self._binding = binding
        self._label = label
        self._graphs: dict[tuple, Any] = {}

    def __call__(self, args: tuple):
        import mindspore as ms

        from hub.settings import get_settings
        from hub.tasks import compile_cache

        # one jit object per input shape: MindSpore fixes a function's cache directory at its
        # first compilation and numbers the graphs in it by compile order
        key = tuple((tuple(a.shape), str(a.dtype)) for a in args if hasattr(a, "shape"))
        compiled = self._graphs.get(key)
        if compiled is not None:
            return compiled(*args)
        settings = get_settings()
        if self._binding is None or len(key) != 1 or not settings.compile_cache:
            compiled = self._graphs[key] = ms.jit(self._construct)
            return compiled(*args)
        (shape, dtype), = key
        form = {"form": getattr(self._net_form, "form_version", "training")}  # folded or not
        directory = compile_cache.graph_dir(self._binding.arch, {**self._binding.args, **form},
                                            shape, dtype, settings=settings)
        with compile_cache.compiling(directory):
            compiled = self._graphs[key] = ms.jit(self._construct)
            return compiled(*args)

    def fall_back(self, exc: BaseException) -> None:
        self.mode = "pynative"
        text = str(exc).strip()
        log.warning("%s: graph compilation failed (%s); falling back to PyNative execution",
                    self._label, text.splitlines()[0] if text else type(exc).__name__)


class LoadedNetwork:
    """What :func:`attach` adds to a network's class (placed before it in the MRO)."""

    hub: LoadRecord

    @property
    def load_report(self):
        """What the strict load loaded, dropped and found missing (None: nothing loaded)."""
        return self.hub.report

    @property
    def class_names(self) -> tuple[str, ...] | None:
        return self.hub.class_names

    @property
    def release_id(self) -> str:
        return self.hub.id

    @property
    def card_name(self) -> str:
        return self.hub.card_name

    @property
    def execution_mode(self) -> str:
        return self.hub.execution_mode

    def __call__(self, *args, **kwargs):
        runner = self.hub.runner
        if runner is None or self.training or kwargs or runner.mode != "graph":
            return super().__call__(*args, **kwargs)
        try:
            return runner(args)
        except (RuntimeError, TypeError) as exc:
            runner.fall_back(exc)
            return super().__call__(*args)


_CLASSES: dict[type, type] = {}


def _loaded_class(base: type) -> type:
    cls = _CLASSES.get(base)
    if cls is None:
        # the same names as the network's class: MindSpore labels graphs and cells by them
        cls = _CLASSES[base] = type(base.__name__, (LoadedNetwork, base), {
            "__module__": base.__module__, "__qualname__": base.__qualname__})
    return cls


def attach(net, record: LoadRecord):
    """Put the network in eval mode, give it ``record`` as ``net.hub`` and run it in
    ``record.mode``; returns the network. In graph mode that is its inference form (BatchNorm
    folded into the convolutions, a new cell); PyNative keeps ``net`` itself (the training form).
    """
    import dataclasses

    import mindspore as ms

    if record.mode == "graph" and not isinstance(net, LoadedNetwork):
        from yolomodels.inference import inference_form

        net = inference_form(net)
    net.set_train(False)
    if isinstance(net, LoadedNetwork):
        raise InputDataError("this network already carries a load record (net.hub)")
    runner = None
    if record.mode == "graph" and ms.get_context("mode") != ms.GRAPH_MODE:
        runner = GraphRunner(net, binding=record.binding, label=record.id)
    elif record.mode == "graph":
        pass  # the whole process already runs graphs
    record = dataclasses.replace(record, runner=runner)
    net.__class__ = _loaded_class(type(net))
    net.hub = record
    return net
