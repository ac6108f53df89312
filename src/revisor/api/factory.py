"""Build the served application from a configuration — in this process, or in a uvicorn worker.

Why this module exists: ``revisor serve --workers N`` has uvicorn start N processes, each of which
imports an application by name (``revisor.api.factory:app_from_env``) and must rebuild the same
service. The configuration (with any ``--source`` given on the command line) and the serve
settings travel through environment variables; no secret does (a configuration names the
variables that hold secrets, never their values). The job scheduler is attached when it exists.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from fastapi import FastAPI

from revisor.api.app import create_app
from revisor.api.settings import ServeSettings
from revisor.bootstrap import Revisor
from revisor.config import Config, adhoc_source, load_config
from revisor.errors import ConfigError

__all__ = ["SERVE_ENV", "app_from_env", "build_app", "serve_config", "serve_env"]

#: what a worker needs to rebuild the configuration: the file, the ad-hoc sources, the data dir
SERVE_ENV = "REVISOR_SERVE_CONFIG"

log = logging.getLogger(__name__)


def _attach_scheduler(app: FastAPI, rv: Revisor) -> bool:
    """Put the job scheduler where the application's lifespan starts and stops it."""
    try:
        module = importlib.import_module("revisor.jobs.scheduler")
    except ModuleNotFoundError:
        log.info("the job scheduler is not available in this build; serving without it")
        return False
    app.state.revisor.extras["scheduler"] = module.Scheduler(rv)
    return True


def build_app(rv: Revisor, settings: ServeSettings) -> FastAPI:
    """The application over an opened, started Revisor (with its scheduler if asked for)."""
    app = create_app(rv, settings)
    if settings.scheduler:
        _attach_scheduler(app, rv)
    return app


def serve_config(
    config_path: Path | None, sources: Sequence[str], data_dir: Path | None
) -> Config:
    """The configuration ``revisor serve`` runs: the file (``config_path``, else
    ``$REVISOR_CONFIG``, else the defaults), its data directory replaced by ``data_dir``, and
    one ad-hoc source per ``--source`` location."""
    config = load_config(config_path)
    if data_dir is not None:
        config = config.model_copy(update={"data_dir": data_dir.expanduser().absolute()})
    for location in sources:
        name, source = adhoc_source(location)
        if name in config.sources:
            raise ConfigError(f"a source called {name!r} is configured already",
                              field="--source")
        config = config.with_source(name, source)
    if not config.sources:
        raise ConfigError(
            "there is nothing to serve",
            field="--source",
            hint="give --source PATH_OR_URL, or a configuration with sources (--config)",
        )
    return config


def serve_env(
    config_path: Path | None, sources: Sequence[str], data_dir: Path | None,
    settings: ServeSettings,
) -> dict[str, str]:
    """The environment a worker process needs to rebuild the same application."""
    spec = {
        "config": str(config_path.absolute()) if config_path is not None else None,
        "sources": [str(Path(s).absolute()) if Path(s).is_dir() else s for s in sources],
        "data_dir": str(data_dir.absolute()) if data_dir is not None else None,
    }
    return {SERVE_ENV: json.dumps(spec), **settings.to_env()}


def app_from_env(env: Mapping[str, str] | None = None) -> FastAPI:
    """uvicorn's factory for worker processes (``factory=True``): the parent has migrated the
    database and recovered crashed work already."""
    env = env if env is not None else os.environ
    spec = json.loads(env[SERVE_ENV])
    config = serve_config(
        Path(spec["config"]) if spec["config"] else None,
        list(spec["sources"]),
        Path(spec["data_dir"]) if spec["data_dir"] else None,
    )
    settings = ServeSettings.from_env(env)
    rv = Revisor(config).start(recover=False)
    return build_app(rv, settings)
