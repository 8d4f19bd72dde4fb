"""The one place autoray reads its environment.

Nothing else in the code base calls ``os.environ`` for configuration: entry points build a
:class:`Settings` once (``Settings.from_env()``) and pass values down. Secrets (provider API
keys) are the exception by design: they are read by name, at call time, by the provider that
needs them, through :func:`read_secret`, and are never stored on a settings object.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./autoray.db"


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None = None
    sim_url: str | None = None
    ray_address: str | None = None
    require_docker: bool = False
    strict_skips: bool = False
    docker_host: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            database_url=env.get("AUTORAY_DATABASE_URL") or None,
            sim_url=env.get("AUTORAY_SIM_URL") or None,
            ray_address=env.get("RAY_ADDRESS") or None,
            require_docker=env.get("AUTORAY_REQUIRE_DOCKER", "0") == "1",
            strict_skips=env.get("AUTORAY_STRICT_SKIPS", "0") == "1",
            docker_host=env.get("DOCKER_HOST") or None,
        )


def resolve_database_url(
    flag: str | None, settings: Settings, config_url: str | None = None
) -> str:
    """``--database-url``, else ``AUTORAY_DATABASE_URL``, else the config file, else default."""
    return flag or settings.database_url or config_url or DEFAULT_DATABASE_URL


def read_secret(env_var: str) -> str | None:
    """Read a secret (an API key) by the name a config gives; never log or store the value."""
    return os.environ.get(env_var) or None
