"""Lazy imports of what shipping calls needs: cloudpickle (a dependency of sflow, also used to
store a flow's results for resume) and aiohttp (the optional `sflow[dispatch]`).

`import sflow` loads neither; only the code paths that really need them call these helpers,
and a missing package becomes one clear message.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from sflow.dispatch.errors import DispatchDependencyError

INSTALL_HINT = 'install sflow[dispatch] (pip install "sflow[dispatch]")'


def _require(module: str, purpose: str, hint: str = INSTALL_HINT) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise DispatchDependencyError(
            f"{purpose} needs the '{module}' package, which is not installed: {hint}",
            name=module,
        ) from exc


def cloudpickle() -> ModuleType:
    """The cloudpickle module, or a `DispatchDependencyError` naming the extra to install."""
    return _require("cloudpickle", "serialising a Python call or result", "pip install cloudpickle")


def aiohttp_web() -> ModuleType:
    """`aiohttp.web`, or a `DispatchDependencyError` naming the extra to install."""
    return _require("aiohttp.web", "the dispatch callback server")
