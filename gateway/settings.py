"""Process-level settings from the environment (prefix ``GATEWAY_``) and the operator's ``.env``.

These are the few things fixed for the life of a process: where the config file and the
``.env`` are, where data lives, and overrides for the listen address. Everything that may
change while serving (providers, keys, clients, the master key) lives in the config snapshot.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from .upstream.transports.choice import TransportName


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    config: Path = Path("config/config.yaml")
    env_file: Path = Path(".env")
    data_dir: Path = Path("data")
    host: str | None = None
    port: int | None = None
    workers: int = 1
    log_level: str = "info"
    watch: bool = True
    http_transport: TransportName | None = None  # None: the default (upstream/transports/choice.py), proxy-aware
    batch_helper_threads: bool = False  # server/sched.py: opt-in, for a worker with a core to itself
    embedded: bool = True  # one worker runs Granian embedded (server/embedded.py); false: its supervisor process
    lock_file: Path | None = None  # the operator lock (server/oplock.py); None: run/gateway.lock in the cwd
    lock_fd: int | None = None  # set by a script that holds the operator lock on this inherited descriptor


def load_settings() -> Settings:
    """Environment first, then the ``.env`` named by ``GATEWAY_ENV_FILE`` (default ``./.env``)."""
    env_file = os.environ.get("GATEWAY_ENV_FILE", ".env")
    try:
        return Settings(_env_file=env_file if Path(env_file).is_file() else None)
    except ValidationError as exc:
        raise SystemExit("error: bad process settings:\n" + "\n".join(_explain(e) for e in exc.errors())) from None


def _explain(error: ErrorDetails) -> str:
    """One line a setting: its variable name and what is wrong (the value itself is not repeated)."""
    name = "GATEWAY_" + "_".join(str(part) for part in error["loc"][:1])[:60].upper()
    return f"  {name}: {error['msg']}"
