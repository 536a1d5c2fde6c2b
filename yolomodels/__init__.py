"""yolomodels: MindSpore YOLOv3 / YOLOv4 detectors whose parameters match MindYOLO checkpoints.

Importing the package is cheap (no MindSpore); the registry imports the network modules, and
with them MindSpore, only when a network is built.  Importing it also caps MindSpore's oneDNN at
AVX2 unless the user chose a cap (see :mod:`yolomodels.runtime`), so that no convolution in this
process or its subprocesses runs on oneDNN's slow AVX-512 reference kernel.

>>> import yolomodels
>>> yolomodels.list_archs()
['yolov3_darknet53', 'yolov4_cspdarknet53', 'yolov4_cspdarknet53_silu']
>>> net = yolomodels.build("yolov3_darknet53", num_classes=80)
"""

from __future__ import annotations

from yolomodels.errors import (
    ArchitectureArgumentError,
    CheckpointReadError,
    DatasetError,
    ImageReadError,
    RecipeError,
    UnknownArchitectureError,
    YoloModelsError,
)
from yolomodels.registry import ArchSpec, build, get_arch, list_archs, register_arch
from yolomodels.runtime import select_fast_isa

select_fast_isa()

__all__ = [
    "ArchSpec",
    "ArchitectureArgumentError",
    "CheckpointReadError",
    "DatasetError",
    "ImageReadError",
    "RecipeError",
    "UnknownArchitectureError",
    "YoloModelsError",
    "build",
    "get_arch",
    "list_archs",
    "register_arch",
]
