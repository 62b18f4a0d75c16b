"""Exception hierarchy shared by every spikewatch stage.

Every error a user can cause (bad file, bad config, bad option) is a
:class:`SpikewatchError`; the CLI prints its one-line message and exits 2.
"""

from __future__ import annotations

import os


class SpikewatchError(Exception):
    """Base class of every error spikewatch raises on purpose.

    The message is one line meant for the user; it names the offending
    object (file, config key, ...) and the reason.
    """

    exit_code = 2


class RecordingError(SpikewatchError):
    """A recording cannot be read or is unusable.

    Parameters
    ----------
    path : str or os.PathLike
        The file (or record) that failed.
    reason : str
        Why it failed, in a few words.
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = " ".join(str(reason).split())  # one line, always
        super().__init__(f"{self.path}: {self.reason}")


class DataNotFoundError(SpikewatchError):
    """The shared data folder (``SPIKEWATCH_DATA``) is missing."""


class ConfigError(SpikewatchError):
    """A configuration file or override is invalid."""


class NetworkError(SpikewatchError):
    """A network cannot be built or mapped onto the requested backend."""
