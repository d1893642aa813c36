"""Run a Python callable somewhere else and get its result back, reliably.

    import sflow.dispatch as dispatch

    async with dispatch.get_executor("slurm", {"partition": "debug"}) as ex:
        value = await ex.run(fn, 1, 2)                     # one call, one batch job
        values = await ex.map(fn, range(200))              # one job array
        handle = await ex.submit(dispatch.Call(fn, (1,), timeout=60, resources={"mem": "1G"}))
        value = await handle.result()

Executors (`local`, `process`, `subprocess`, `slurm`, or your own via `register_executor`)
share one interface (`sflow.dispatch.executor`). Environments (`config`, `load_config_file`)
name an executor and its options so callers only say *where*, e.g. `open_executor("gpu")`.
Importing this package needs no optional dependency; the executors that ship code to
another process need cloudpickle (installed with sflow) and, for Slurm's callbacks,
`sflow[dispatch]` (aiohttp), and say so when it is missing.

Names other than the configuration functions are resolved lazily (PEP 562) so that the worker, which imports `sflow.dispatch.payload`,
does not pay for asyncio, the executors and the configuration machinery at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Eager on purpose: importing the submodule `sflow.dispatch.config` binds the package
# attribute `config` to it; this import afterwards rebinds the name to the function.
from sflow.dispatch.config import (
    DispatchConfig,
    Environment,
    config,
    create_executor,
    get_config,
    load_config_file,
    open_executor,
    reset_config,
    resolve_environment,
)

if TYPE_CHECKING:
    from sflow.dispatch.errors import (
        DispatchCancelled,
        DispatchConfigError,
        DispatchDependencyError,
        DispatchError,
        DispatchJobError,
        DispatchTimeout,
        PayloadError,
        PayloadVersionError,
        RemoteError,
        RemoteTraceback,
    )
    from sflow.dispatch.executor import (
        Call,
        Executor,
        Handle,
        executor_names,
        get_executor,
        register_executor,
    )
    from sflow.dispatch.retry import call_with_retries
    from sflow.engine.unit import RetryPolicy

_LAZY = {
    "Call": "sflow.dispatch.executor",
    "DispatchCancelled": "sflow.dispatch.errors",
    "DispatchConfigError": "sflow.dispatch.errors",
    "DispatchDependencyError": "sflow.dispatch.errors",
    "DispatchError": "sflow.dispatch.errors",
    "DispatchJobError": "sflow.dispatch.errors",
    "DispatchTimeout": "sflow.dispatch.errors",
    "Executor": "sflow.dispatch.executor",
    "Handle": "sflow.dispatch.executor",
    "PayloadError": "sflow.dispatch.errors",
    "PayloadVersionError": "sflow.dispatch.errors",
    "RemoteError": "sflow.dispatch.errors",
    "RemoteTraceback": "sflow.dispatch.errors",
    "RetryPolicy": "sflow.engine.unit",  # the engine's policy: one for flows, YAML and dispatch
    "call_with_retries": "sflow.dispatch.retry",
    "executor_names": "sflow.dispatch.executor",
    "get_executor": "sflow.dispatch.executor",
    "register_executor": "sflow.dispatch.executor",
}

__all__ = [
    "Call",
    "DispatchCancelled",
    "DispatchConfig",
    "DispatchConfigError",
    "DispatchDependencyError",
    "DispatchError",
    "DispatchJobError",
    "DispatchTimeout",
    "Environment",
    "Executor",
    "Handle",
    "PayloadError",
    "PayloadVersionError",
    "RemoteError",
    "RemoteTraceback",
    "RetryPolicy",
    "call_with_retries",
    "config",
    "create_executor",
    "executor_names",
    "get_config",
    "get_executor",
    "load_config_file",
    "open_executor",
    "register_executor",
    "reset_config",
    "resolve_environment",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sflow.dispatch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
