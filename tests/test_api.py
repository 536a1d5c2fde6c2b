"""The public API: every ``hub.<name>`` stays the function, whichever hub modules are imported.

A submodule named like a public function (``hub/download.py`` for ``hub.download``) would be
bound over the function the moment anything imports it; module names must not collide.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import hub


def test_every_public_name_is_a_function_after_all_modules_are_imported():
    names = [n for n in hub.__all__ if n != "__version__"]
    children = {m.name for m in pkgutil.iter_modules(hub.__path__)}
    assert not set(names) & children, "a hub submodule is named like a public function"
    modules = [m.name for m in pkgutil.walk_packages(hub.__path__, "hub.")]
    modules = [m for m in modules if not m.endswith("__main__")]  # that one runs the CLI
    for module in modules:
        importlib.import_module(module)
    for name in names:
        assert inspect.isfunction(getattr(hub, name)), name
