"""Prefect 3 pipelines: batch analysis, scheduled deployments, Dask scale-out.

Thin flows over the functions the CLI uses (:mod:`spikewatch.jobs`,
:mod:`spikewatch.batch`):

* :func:`~spikewatch.pipelines.flows.analyze_recording`: one recording;
* :func:`~spikewatch.pipelines.flows.batch_analyze`: a folder, glob or manifest,
  one task per recording on threads or a Dask cluster, ``batch.tsv`` and
  ``index.html`` in the output root;
* :func:`~spikewatch.pipelines.serve.serve_schedules`: deployments with cron or
  interval schedules from ``configs/schedules.yaml``.

Importing this package does not import Prefect: call :func:`prefect_environment`
first, so Prefect reads the settings it sets.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["analyze_recording", "batch_analyze", "prefect_environment", "spikewatch_home", "serve_schedules"]


def spikewatch_home() -> Path:
    """Per-user data folder of spikewatch.

    Returns
    -------
    pathlib.Path
        ``$SPIKEWATCH_HOME`` if set, else ``$XDG_DATA_HOME/spikewatch``
        (default ``~/.local/share/spikewatch``).
    """
    if os.environ.get("SPIKEWATCH_HOME"):
        return Path(os.environ["SPIKEWATCH_HOME"]).expanduser()
    xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(xdg).expanduser() / "spikewatch"


def prefect_environment(quiet_console: bool = False) -> dict[str, str]:
    """Set spikewatch's Prefect defaults in ``os.environ`` (before Prefect is imported).

    * ``PREFECT_HOME`` (Prefect's database and settings) becomes
      ``spikewatch_home()/prefect``, unless it is set already or
      ``~/.prefect/profiles.toml`` exists (you use Prefect yourself: your
      profile, e.g. its ``PREFECT_API_URL``, is kept);
    * telemetry to Prefect's servers is off (``PREFECT_SERVER_ANALYTICS_ENABLED``)
      unless set;
    * ``quiet_console`` hides Prefect's own console log lines and library
      warnings, also in Dask worker processes (the CLI prints one line per
      recording instead; ``--debug`` shows them).

    Parameters
    ----------
    quiet_console : bool
        Raise Prefect's console handler to CRITICAL and ignore warnings in child processes.

    Returns
    -------
    dict
        The variables this call set.
    """
    wanted = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    if not os.environ.get("PREFECT_HOME") and not (Path.home() / ".prefect" / "profiles.toml").is_file():
        wanted["PREFECT_HOME"] = str(spikewatch_home() / "prefect")
    if quiet_console:
        wanted["PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL"] = "CRITICAL"
        wanted["PYTHONWARNINGS"] = "ignore"  # library warnings in Dask worker processes too
    done = {}
    for key, value in wanted.items():
        if not os.environ.get(key):
            os.environ[key] = value
            done[key] = value
    if "PREFECT_HOME" in done:
        Path(done["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)
    return done


def __getattr__(name: str):
    if name in ("analyze_recording", "batch_analyze"):
        from spikewatch.pipelines import flows

        return getattr(flows, name)
    if name == "serve_schedules":
        from spikewatch.pipelines.serve import serve_schedules

        return serve_schedules
    raise AttributeError(f"module 'spikewatch.pipelines' has no attribute {name!r}")
