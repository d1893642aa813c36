"""The `python` operator: the task's script is Python source, run by `python_exec` on this machine."""

from __future__ import annotations

import shlex

from sflow.launchers.base import LaunchContext, Launcher, register_launcher, task_process_env
from sflow.proc.spawn import LaunchSpec


@register_launcher("python")
class PythonLauncher(Launcher):
    def argv(self, ctx: LaunchContext) -> list[str]:
        op = ctx.operator
        python = shlex.split(getattr(op, "python_exec", None) or "python3")
        extra = list(getattr(op, "extra_args", None) or [])
        return [*python, *extra, ctx.script_text()]

    def build(self, ctx: LaunchContext) -> LaunchSpec:
        return LaunchSpec(
            argv=self.argv(ctx),
            env=task_process_env(ctx),
            cwd=ctx.cwd,
            log_path=ctx.log_path,
            info={"nodes": ctx.placement.node_names},
        )
