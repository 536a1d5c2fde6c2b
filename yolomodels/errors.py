"""Exceptions raised by yolomodels, under one root.

``yolomodels`` never imports ``hub``; the hub translates these into its own ``HubError`` leaves at
its boundary.  Each class also inherits the builtin a caller would naturally catch.
"""

from __future__ import annotations

__all__ = [
    "ArchitectureArgumentError",
    "CheckpointReadError",
    "DatasetError",
    "DistributedError",
    "ImageReadError",
    "ImageSizeError",
    "InferenceFormError",
    "RecipeError",
    "UnknownArchitectureError",
    "WorkerError",
    "YoloModelsError",
]


class YoloModelsError(Exception):
    """Root of every error yolomodels raises on purpose."""


class UnknownArchitectureError(YoloModelsError, LookupError):
    """No architecture is registered under that name; the message lists close matches."""

    def __init__(self, message: str, *, name: str = "", suggestions: tuple[str, ...] = ()):
        self.name = name
        self.suggestions = tuple(suggestions)
        super().__init__(message)


class ArchitectureArgumentError(YoloModelsError, ValueError):
    """Arguments given to an architecture builder are unknown or out of range."""


class ImageSizeError(ArchitectureArgumentError):
    """An input size is not a positive multiple of the networks' largest stride."""


class CheckpointReadError(YoloModelsError, ValueError):
    """A checkpoint file cannot be read (missing, truncated, corrupt, not a checkpoint)."""

    def __init__(self, message: str, *, path: str = ""):
        self.path = path
        super().__init__(message)


class DatasetError(YoloModelsError, ValueError):
    """A dataset directory, list file, label file or annotation file cannot be used."""


class ImageReadError(DatasetError):
    """An image file cannot be read or decoded."""

    def __init__(self, message: str, *, path: str = ""):
        self.path = path
        super().__init__(message)


class RecipeError(YoloModelsError, ValueError):
    """A training recipe has a missing, unknown or out-of-range value."""


class InferenceFormError(YoloModelsError, RuntimeError):
    """An inference form (BatchNorm folded) was asked to do what only the training form can."""


class DistributedError(YoloModelsError, RuntimeError):
    """A rank of an msrun job failed or was lost; every rank raises it with the same story.

    ``input_error`` is true when each failed rank failed on bad input (an unreadable image),
    not on a bug or a lost process.
    """

    def __init__(self, message: str, *, input_error: bool = False):
        self.input_error = input_error
        super().__init__(message)


class WorkerError(YoloModelsError, RuntimeError):
    """A worker process died or stopped answering; the message says which and what to try."""
