"""Shared fixtures: the real data folder, found through SPIKEWATCH_DATA."""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "60")
# Prefect state of the test session lives in a temporary folder, never the user's ~/.prefect;
# set before any test module imports Prefect
if "SPIKEWATCH_TEST_PREFECT_HOME" not in os.environ:
    os.environ["SPIKEWATCH_TEST_PREFECT_HOME"] = tempfile.mkdtemp(prefix="spikewatch-prefect-")
    atexit.register(shutil.rmtree, os.environ["SPIKEWATCH_TEST_PREFECT_HOME"], True)
os.environ["PREFECT_HOME"] = os.environ["SPIKEWATCH_TEST_PREFECT_HOME"]
os.environ.pop("PREFECT_API_URL", None)
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
# tests must find the data whatever the working directory
os.environ.setdefault(
    "SPIKEWATCH_DATA", str((Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve())
)

from spikewatch.data import data_root  # noqa: E402


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The real recordings folder; fails loudly if it is missing."""
    return data_root()


@pytest.fixture(scope="session")
def mitdb(data_dir: Path) -> Path:
    """The MIT-BIH Arrhythmia folder."""
    return data_dir / "mitdb"


@pytest.fixture(scope="session")
def prefect_api() -> str:
    """URL of Prefect's ephemeral server, started once per test session, stopped quietly at exit."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import get_current_settings

    home = Path(get_current_settings().home).resolve()
    assert home == Path(os.environ["SPIKEWATCH_TEST_PREFECT_HOME"]).resolve(), (
        f"Prefect uses {home}, not the session's temporary PREFECT_HOME; refusing to run")
    server = SubprocessASGIServer()
    server.start(timeout=int(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "60")))

    def stop_quietly():  # before Prefect's own atexit stop, which logs to closed capture streams
        logging.getLogger("prefect").disabled = True
        server.stop()

    atexit.register(stop_quietly)
    return server.api_url


@pytest.fixture(scope="session")
def short_config(tmp_path_factory) -> Path:
    """ecg.yaml with a short warm-up (events within 30 s) and no HTML/EDF (fast reports)."""
    from spikewatch.config import CONFIG_DIR

    path = tmp_path_factory.mktemp("cfg") / "short.yaml"
    path.write_text(f"extends: {CONFIG_DIR / 'ecg.yaml'}\n"
                    "detection:\n  warmup_s: 8.0\n  baseline_s: 60.0\n"
                    "report:\n  html: false\n  edf_export: false\n")
    return path
