"""Launchers turn one attempt of one task into a supervised process."""

from sflow.launchers.base import LaunchContext, Launcher, get_launcher, register_launcher
from sflow.proc.attempt import ProcessAttempt
from sflow.proc.spawn import LaunchSpec

__all__ = ["LaunchContext", "LaunchSpec", "Launcher", "ProcessAttempt", "get_launcher", "register_launcher"]
