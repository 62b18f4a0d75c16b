"""Input checks shared by the readers; every failure is a one-line RecordingError."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from spikewatch.errors import RecordingError

MIN_SFREQ = 1.0
MAX_SFREQ = 100_000.0
SFREQ_REQUIRED = "sampling rate unknown: pass sfreq (CLI --sfreq / config io.sfreq)"

# physical unit -> factor to volts
_UNIT_TO_VOLT = {"v": 1.0, "mv": 1e-3, "uv": 1e-6, "µv": 1e-6, "μv": 1e-6, "nv": 1e-9}


def condense(exc: BaseException, limit: int = 240) -> str:
    """Describe an exception from a third-party reader in one short line."""
    text = " ".join(str(exc).split()) or "no message"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}"


def unit_scale(unit: str | None) -> float | None:
    """Factor converting ``unit`` to volts, or ``None`` if it is not a voltage."""
    if unit is None:
        return None
    return _UNIT_TO_VOLT.get(unit.strip().lower())


def check_sfreq(path: str | os.PathLike, sfreq: object, source: str = "") -> float:
    """Validate a sampling rate: finite and within [1 Hz, 100 kHz].

    Parameters
    ----------
    path : path-like
        Recording the rate belongs to (named in the error).
    sfreq : object
        The rate; ``None`` means it is unknown.
    source : str
        Where the rate came from (e.g. ``"in header"``), for the message.

    Returns
    -------
    float
        The rate in Hz.
    """
    if sfreq is None:
        raise RecordingError(path, SFREQ_REQUIRED)
    where = f" {source}" if source else ""
    try:
        value = float(sfreq)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise RecordingError(path, f"invalid sampling rate {sfreq!r}{where}") from None
    if not math.isfinite(value) or not MIN_SFREQ <= value <= MAX_SFREQ:
        raise RecordingError(
            path,
            f"invalid sampling rate {sfreq!r} Hz{where} (must be between "
            f"{MIN_SFREQ:g} Hz and {MAX_SFREQ:g} Hz)",
        )
    return value


def check_file(path: Path) -> int:
    """Check that ``path`` is a readable, non-empty regular file; return its size."""
    if not path.exists():
        raise RecordingError(path, "file not found")
    if path.is_dir():
        raise RecordingError(path, "is a directory, expected a recording file")
    if not os.access(path, os.R_OK):
        raise RecordingError(path, "permission denied")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise RecordingError(path, f"cannot stat file: {condense(exc)}") from exc
    if size == 0:
        raise RecordingError(path, "empty file")
    return size


def read_bytes(path: Path) -> bytes:
    """Read a whole (small) file, turning OS errors into RecordingError."""
    check_file(path)
    try:
        return path.read_bytes()
    except PermissionError:
        raise RecordingError(path, "permission denied") from None
    except OSError as exc:
        raise RecordingError(path, f"cannot read file: {condense(exc)}") from exc


def check_finite(
    path: str | os.PathLike,
    data: np.ndarray,
    names: Sequence[str],
    first_sample: int,
    sfreq: float,
) -> None:
    """Raise RecordingError if ``data`` (channels x samples) holds NaN or Inf."""
    bad = ~np.isfinite(data)
    if bad.any():
        ch, s = np.argwhere(bad)[0]
        t = (first_sample + s) / sfreq
        raise RecordingError(
            path,
            f"non-finite samples (NaN/Inf): {int(bad.sum())} in the data read, first in "
            f"channel {names[ch]!r} at {t:.3f} s (sample {first_sample + s})",
        )
