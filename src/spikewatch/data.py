"""Where the real recordings live: one setting, ``SPIKEWATCH_DATA``.

The project never ships recordings. Tests, benchmarks and the README's quick
start reach the public data set through this single setting, which defaults to
``../shared/data`` relative to the current working directory.
"""

from __future__ import annotations

import os
from pathlib import Path

from spikewatch.errors import DataNotFoundError

ENV_VAR = "SPIKEWATCH_DATA"
DEFAULT = Path("..") / "shared" / "data"


def data_root(must_exist: bool = True) -> Path:
    """Return the folder holding the real recordings.

    Parameters
    ----------
    must_exist : bool
        Raise :class:`DataNotFoundError` if the folder does not exist.

    Returns
    -------
    pathlib.Path
        ``$SPIKEWATCH_DATA`` if set, else ``../shared/data``, resolved.

    Raises
    ------
    DataNotFoundError
        If ``must_exist`` and the folder is missing.
    """
    root = Path(os.environ.get(ENV_VAR) or DEFAULT).expanduser().resolve()
    if must_exist and not root.is_dir():
        raise DataNotFoundError(
            f"{root}: data folder not found; set {ENV_VAR} to the folder holding "
            "mitdb/, eeg-bonn/, ... (or fetch PhysioNet records with wfdb.dl_database)"
        )
    return root
