"""shopsync's settings: one TOML file → frozen, validated dataclasses, built once and passed down.

* :mod:`~shopsync.settings.model`: :class:`Settings` and its parts, which refuse invalid values.
* :mod:`~shopsync.settings.load`: :func:`load_settings` (TOML, environment, credential files).
* :mod:`~shopsync.settings.secrets`: :class:`Secret`, a value that never shows itself.
* :mod:`~shopsync.settings.urls`: the registry of storage URL schemes and URL helpers.
"""

from shopsync.settings.load import CONFIG_ENV, load_settings, resolve_config_path
from shopsync.settings.model import DaemonConfig, Settings, ShopConfig, SinkConfig, StreamKey, SyncConfig
from shopsync.settings.secrets import Secret, SecretRef

__all__ = [
    "CONFIG_ENV",
    "DaemonConfig",
    "Secret",
    "SecretRef",
    "Settings",
    "ShopConfig",
    "SinkConfig",
    "StreamKey",
    "SyncConfig",
    "load_settings",
    "resolve_config_path",
]
