"""The `bash` operator: run the task's script with bash on this machine."""

from __future__ import annotations

from sflow.launchers.base import LaunchContext, LocalLauncher, register_launcher


@register_launcher("bash")
class BashLauncher(LocalLauncher):
    def argv(self, ctx: LaunchContext) -> list[str]:
        return ["bash", ctx.script_text()]
