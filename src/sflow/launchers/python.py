"""The `python` operator: the task's script is Python source, run by `python_exec` on this machine."""

from __future__ import annotations

import shlex

from sflow.launchers.base import LaunchContext, LocalLauncher, register_launcher


@register_launcher("python")
class PythonLauncher(LocalLauncher):
    def argv(self, ctx: LaunchContext) -> list[str]:
        op = ctx.operator
        python = shlex.split(getattr(op, "python_exec", None) or "python3")
        extra = list(getattr(op, "extra_args", None) or [])
        return [*python, *extra, ctx.script_text()]
