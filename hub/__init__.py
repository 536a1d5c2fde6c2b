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
    "list_models": "hub.cards.listing",
    "info": "hub.cards.listing",
    "resolve": "hub.cards.catalog",
    "download": "hub.assets.files",
    "verify": "hub.assets.files",
    "load": "hub.tasks.load",
    "load_weights": "hub.tasks.load",
    "publish": "hub.assets.publish",
    "gc_store": "hub.assets.store_gc",
    "rehash": "hub.assets.files",
    "predict": "hub.tasks.predict",
    "evaluate": "hub.tasks.evaluate",
    "train": "hub.tasks.train",
    "check_environment": "hub.tasks.environment",
    "search": "hub.cards.search",
    "write_index": "hub.cards.index",
    "update": "hub.cards.remote",
    "pack": "hub.assets.bundle",
    "unpack": "hub.assets.bundle",
    "export": "hub.tasks.export",
    "publish_asset": "hub.tasks.export_publish",
}

__all__ = sorted(_API) + ["__version__"]


def __getattr__(name: str):
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'hub' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__():
    return __all__
