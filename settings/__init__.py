"""Validated configuration: deployments per scenario, read once in app.py and passed down explicitly."""

from catalog.deployment import DeploymentConfig
from catalog.scenarios import SCENARIOS, STACK_NAMES, Profile, get_profile
from settings.loading import load_settings, read_config_file, selected_scenarios, split_context
from settings.options import AppOptions, Settings

__all__ = [
    "SCENARIOS",
    "STACK_NAMES",
    "AppOptions",
    "DeploymentConfig",
    "Profile",
    "Settings",
    "get_profile",
    "load_settings",
    "read_config_file",
    "selected_scenarios",
    "split_context",
]
