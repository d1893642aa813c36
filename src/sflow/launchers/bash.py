"""The `bash` operator: run the task's script with bash on this machine."""

from __future__ import annotations

from sflow.launchers.base import LaunchContext, Launcher, register_launcher, task_process_env
from sflow.proc.spawn import LaunchSpec


@register_launcher("bash")
class BashLauncher(Launcher):
    def argv(self, ctx: LaunchContext) -> list[str]:
        return ["bash", ctx.script_text()]

    def build(self, ctx: LaunchContext) -> LaunchSpec:
        return LaunchSpec(
            argv=self.argv(ctx),
            env=task_process_env(ctx),
            cwd=ctx.cwd,
            log_path=ctx.log_path,
            info={"nodes": ctx.placement.node_names},
        )
