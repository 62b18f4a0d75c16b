"""Shared fixtures: the real data folder, found through SPIKEWATCH_DATA."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "60")
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
