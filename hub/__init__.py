"""yolohub: model hub registry and asset manager for MindSpore YOLO detectors.

The public API is imported lazily so that ``import hub`` (and ``yolohub list``) never pulls in
MindSpore; only the functions that build networks do.

>>> import hub
>>> hub.list_models()                       # typed summaries of every card
>>> path = hub.download("yolov3_darknet53")  # verified checkpoint in the cache
>>> net = hub.load("yolov3_darknet53")       # ready MindSpore network, eval mode
"""

from __future__ import annotations

import importlib

from yolomodels.runtime import select_fast_isa

# before anything in this process can bring up MindSpore's oneDNN (see yolomodels.runtime)
select_fast_isa()

__version__ = "0.1.0"

# public name -> module that defines it
_API = {
    "list_models": "hub.registry",
    "info": "hub.registry",
    "resolve": "hub.registry",
    "download": "hub.fetch",
    "verify": "hub.fetch",
    "load": "hub.loader",
    "load_weights": "hub.loader",
    "publish": "hub.publishing",
    "gc_store": "hub.store",
    "rehash": "hub.fetch",
    "predict": "hub.prediction",
    "evaluate": "hub.evaluation",
    "train": "hub.training",
    "check_environment": "hub.environment",
    "search": "hub.searching",
    "write_index": "hub.index",
    "update": "hub.remote",
    "pack": "hub.bundle",
    "unpack": "hub.bundle",
    "export": "hub.exporting",
    "publish_asset": "hub.asset_publishing",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str):
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'hub' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__():
    return __all__
