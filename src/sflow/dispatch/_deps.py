"""Lazy imports of the optional `sflow[dispatch]` dependencies.

Plain `sflow` must import and run without cloudpickle or aiohttp; only the code paths
that really need them call these helpers, and a missing package becomes one clear message.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from sflow.dispatch.errors import DispatchDependencyError

INSTALL_HINT = 'install sflow[dispatch] (pip install "sflow[dispatch]")'


def _require(module: str, purpose: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DispatchDependencyError(
            f"{purpose} needs the '{module}' package, which is not installed: {INSTALL_HINT}",
            name=module,
        ) from exc


def cloudpickle() -> ModuleType:
    """The cloudpickle module, or a `DispatchDependencyError` naming the extra to install."""
    return _require("cloudpickle", "serialising a Python call for dispatch")


def aiohttp_web() -> ModuleType:
    """`aiohttp.web`, or a `DispatchDependencyError` naming the extra to install."""
    return _require("aiohttp.web", "the dispatch callback server")
