"""The :class:`Recording` every later stage consumes: an MNE raw plus reference labels."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import mne
import numpy as np

from spikewatch.errors import RecordingError
from spikewatch.io._checks import check_finite, condense

Picks = str | int | Sequence[str | int] | None


def safe_record_id(name: str) -> str:
    """Turn a file or folder name into an id made of ``[A-Za-z0-9._-]`` only.

    Parameters
    ----------
    name : str
        Usually the file stem (``'106'``, ``'Datasets Information'``).

    Returns
    -------
    str
        Other characters become ``_``; leading dots/dashes are dropped so the id
        is never a hidden file name or a command-line option.
    """
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".-")
    return cleaned or "recording"


def resolve_picks(path: str | Path, ch_names: Sequence[str], picks: Picks) -> list[int]:
    """Turn channel names and/or indices into positions, rejecting unknown ones.

    Parameters
    ----------
    path : path-like
        Recording (named in the error).
    ch_names : sequence of str
        Available channels.
    picks : str, int or sequence of str/int
        Wanted channels.

    Returns
    -------
    list of int
        Positions in ``ch_names``, in the requested order.
    """
    if isinstance(picks, (str, int, np.integer)):
        picks = [picks]
    index = {name: i for i, name in enumerate(ch_names)}
    out, unknown = [], []
    for p in picks:  # type: ignore[union-attr]
        if isinstance(p, (int, np.integer)) and not isinstance(p, bool):
            if -len(ch_names) <= p < len(ch_names):
                out.append(int(p) % len(ch_names))
            else:
                unknown.append(str(p))
        elif isinstance(p, str) and p in index:
            out.append(index[p])
        else:
            unknown.append(repr(p))
    if unknown:
        raise RecordingError(
            path, f"unknown channel(s) {', '.join(unknown)}; available: {', '.join(ch_names)}"
        )
    if len(set(out)) != len(out):
        raise RecordingError(path, "the same channel is selected twice")
    return out


@dataclass(eq=False, repr=False)
class Recording:
    """One recording, read lazily where the format allows it.

    Parameters
    ----------
    raw : mne.io.BaseRaw
        Signals in volts (``misc`` channels keep their physical unit), with
        channel types set. Subject details and the measurement date stay in
        ``raw.info``; do not print them.
    annotations : mne.Annotations
        Reference labels: WFDB ``atr`` labels or the file's own EDF+/BDF+
        annotations. Onsets are seconds from the first sample.
    path : pathlib.Path
        The file (WFDB: the ``.hea``; multi-file text: the folder) read.
    record_id : str
        Safe identifier (``[A-Za-z0-9._-]``), normally the file stem.
    format : str
        ``'wfdb'``, ``'text'``, ``'csv'``, ``'mat'``, ``'text-multi'`` or the
        MNE format's extension (``'edf'``, ``'bdf'``, ``'fif'``, ...).
    modality : {'ecg', 'eeg'}
        What the recording is; :attr:`signal_picks` are its channels of that type.
    """

    raw: mne.io.BaseRaw
    annotations: mne.Annotations
    path: Path
    record_id: str
    format: str
    modality: str

    @property
    def sfreq(self) -> float:
        """Sampling rate in Hz."""
        return float(self.raw.info["sfreq"])

    @property
    def ch_names(self) -> list[str]:
        """All channel names, in file order."""
        return list(self.raw.ch_names)

    @property
    def ch_types(self) -> list[str]:
        """MNE channel type of each channel (``'ecg'``, ``'eeg'``, ``'misc'``, ...)."""
        return list(self.raw.get_channel_types())

    @property
    def signal_picks(self) -> list[str]:
        """Names of the channels whose type is the recording's modality."""
        return [n for n, t in zip(self.raw.ch_names, self.raw.get_channel_types()) if t == self.modality]

    @property
    def n_times(self) -> int:
        """Number of samples per channel."""
        return int(self.raw.n_times)

    @property
    def duration(self) -> float:
        """Length in seconds (``n_times / sfreq``)."""
        return self.n_times / self.sfreq

    def _picks(self, picks: Picks) -> list[int]:
        if picks is None:
            picks = self.signal_picks
        idx = resolve_picks(self.path, self.raw.ch_names, picks)
        if not idx:
            raise ValueError("no channels selected")
        return idx

    def _read(self, idx: list[int], start: int, stop: int) -> np.ndarray:
        try:
            # raw[picks, start:stop] is what get_data returns here, without get_data building the
            # whole time axis on every call (O(n_times): seconds per chunk on a 24-hour recording)
            data = self.raw[np.asarray(idx, dtype=int), start:stop][0]
        except RecordingError:
            raise
        except Exception as exc:  # a reader failing on a damaged file (short data, bad tags, ...)
            raise RecordingError(self.path, f"cannot read samples {start}-{stop}: {condense(exc)}") from exc
        data = np.asarray(data, dtype=np.float64)
        check_finite(self.path, data, [self.raw.ch_names[i] for i in idx], start, self.sfreq)
        return data

    def get_data(
        self, start: float | None = None, stop: float | None = None, picks: Picks = None
    ) -> np.ndarray:
        """Read samples between two times.

        Parameters
        ----------
        start, stop : float or None
            Times in seconds from the first sample; ``None`` means the start /
            the end. ``stop`` is clipped to the end of the recording.
        picks : str, int, sequence of str/int, or None
            Channels by name or position; ``None`` means :attr:`signal_picks`.

        Returns
        -------
        numpy.ndarray, shape (n_channels, n_samples)
            float64 samples in volts.

        Raises
        ------
        RecordingError
            Unknown channel, or NaN/Inf in the samples read.
        """
        idx = self._picks(picks)
        first = 0 if start is None else int(round(float(start) * self.sfreq))
        last = self.n_times if stop is None else min(int(round(float(stop) * self.sfreq)), self.n_times)
        if first < 0 or first >= last:
            raise ValueError(
                f"empty or invalid time span start={start!r} stop={stop!r} "
                f"(recording lasts {self.duration:.3f} s)"
            )
        return self._read(idx, first, last)

    def iter_chunks(self, seconds: float, picks: Picks = None) -> Iterator[tuple[int, np.ndarray]]:
        """Read the recording window by window, never all at once.

        Parameters
        ----------
        seconds : float
            Window length; the last window may be shorter.
        picks : str, int, sequence of str/int, or None
            As in :meth:`get_data`.

        Yields
        ------
        start_sample : int
            Index of the window's first sample.
        data : numpy.ndarray, shape (n_channels, n_window)
            float64 samples in volts.
        """
        step = int(round(float(seconds) * self.sfreq))
        if step < 1:
            raise ValueError(f"chunk length {seconds!r} s is shorter than one sample")
        idx = self._picks(picks)
        for first in range(0, self.n_times, step):
            yield first, self._read(idx, first, min(first + step, self.n_times))

    def __repr__(self) -> str:
        return (
            f"<Recording {self.record_id} ({self.format}, {self.modality}): "
            f"{len(self.ch_names)} ch, {self.sfreq:g} Hz, {self.n_times} samples, "
            f"{len(self.annotations)} annotations>"
        )
