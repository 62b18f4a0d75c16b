"""Send-on-delta (delta modulation) encoding of signals into UP/DOWN spikes.

Each channel keeps a reference level ``r``. Whenever the signal rises ``delta``
above it an UP event is emitted and ``r += delta``; whenever it falls ``delta``
below, a DOWN event and ``r -= delta``. Several crossings within one sample give
several events in that step (a count), never dropped.

With ``y = (x - r0) / delta`` the reference is ``r = r0 + delta * q`` where the
integer level ``q`` follows the *play* (backlash) recurrence
``q[n] = clip(q[n-1], floor(y[n]), ceil(y[n]))``. Hence ``|x - r| <= delta`` at
every sample, and the encoder state is just ``(r0, delta, q)`` per channel,
which makes chunked encoding exactly equal to whole-signal encoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from spikewatch.errors import SpikewatchError


@numba.njit(cache=True, nogil=True)
def _play(y, q0, out):  # pragma: no cover - compiled
    """Backlash recurrence over one channel; returns the last level."""
    q = q0
    for n in range(y.shape[0]):
        lo = np.floor(y[n])
        hi = np.ceil(y[n])
        if q < lo:
            q = lo
        elif q > hi:
            q = hi
        out[n] = q
    return q


def robust_scale(x: np.ndarray) -> np.ndarray:
    """Robust amplitude estimate per channel: 1.4826 x median absolute deviation.

    Parameters
    ----------
    x : ndarray, shape (n_channels, n_times)
        Signal.

    Returns
    -------
    ndarray, shape (n_channels,)
        The MAD-based standard deviation; insensitive to sparse large waves
        (QRS complexes, spikes) and to a few artefacts.
    """
    med = np.median(x, axis=1, keepdims=True)
    return 1.4826 * np.median(np.abs(x - med), axis=1)


@dataclass
class DeltaEncoder:
    """Streaming send-on-delta encoder for several channels.

    Parameters
    ----------
    delta : ndarray, shape (n_channels,)
        Threshold per channel, in signal units (volts). Must be > 0.

    Notes
    -----
    The reference starts at the first sample seen. Call :meth:`encode` on
    consecutive chunks; the events equal those of one call on the whole signal.
    """

    delta: np.ndarray
    r0: np.ndarray | None = None
    level: np.ndarray | None = None
    n_seen: int = 0

    def __post_init__(self):
        self.delta = np.asarray(self.delta, dtype=np.float64).ravel()
        if not np.all(np.isfinite(self.delta)) or np.any(self.delta <= 0):
            raise SpikewatchError(
                f"encoding: delta must be finite and > 0 for every channel, got {self.delta}"
            )

    @classmethod
    def calibrate(cls, x: np.ndarray, factor: float, floor: float = 1e-9) -> "DeltaEncoder":
        """Make an encoder whose delta is ``factor`` x the robust amplitude of ``x``.

        Parameters
        ----------
        x : ndarray, shape (n_channels, n_times)
            Calibration signal (e.g. the first minute of the recording).
        factor : float
            Multiplier of :func:`robust_scale`.
        floor : float
            Smallest allowed delta (volts); a flat channel gets this.

        Returns
        -------
        DeltaEncoder
        """
        if not np.isfinite(factor) or factor <= 0:
            raise SpikewatchError(f"encoding: delta_factor must be finite and > 0, got {factor}")
        return cls(np.maximum(factor * robust_scale(x), floor))

    def levels(self, x: np.ndarray) -> np.ndarray:
        """Encode a chunk and return the integer level after every sample.

        Parameters
        ----------
        x : ndarray, shape (n_channels, n_times)

        Returns
        -------
        ndarray of float64, shape (n_channels, n_times)
            Level ``q``; the reconstruction is ``r0 + delta * q``.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != self.delta.shape[0]:
            raise SpikewatchError(
                f"encoding: expected {self.delta.shape[0]} channels, got array of shape {x.shape}"
            )
        if x.shape[1] == 0:
            return np.empty_like(x)
        if self.r0 is None:
            self.r0 = x[:, 0].copy()
            self.level = np.zeros(x.shape[0])
        out = np.empty_like(x)
        y = (x - self.r0[:, None]) / self.delta[:, None]
        for c in range(x.shape[0]):
            self.level[c] = _play(y[c], self.level[c], out[c])
        self.n_seen += x.shape[1]
        return out

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Encode a chunk into UP/DOWN event counts.

        Parameters
        ----------
        x : ndarray, shape (n_channels, n_times)
            The next chunk of the signal.

        Returns
        -------
        ndarray of int32, shape (2 * n_channels, n_times)
            Rows ``2c`` are UP counts and ``2c + 1`` DOWN counts of channel ``c``.
        """
        # the level starts at 0 (reference = first sample)
        prev = np.zeros(self.delta.shape[0]) if self.level is None else self.level.copy()
        q = self.levels(x)
        step = np.diff(q, axis=1, prepend=prev[:, None]).astype(np.int32)
        ev = np.empty((2 * q.shape[0], q.shape[1]), dtype=np.int32)
        ev[0::2] = np.maximum(step, 0)
        ev[1::2] = np.maximum(-step, 0)
        return ev


def decode(events: np.ndarray, delta: np.ndarray, r0: np.ndarray) -> np.ndarray:
    """Rebuild the staircase signal from UP/DOWN event counts.

    Parameters
    ----------
    events : ndarray, shape (2 * n_channels, n_times)
        Output of :meth:`DeltaEncoder.encode` (from the start of the signal).
    delta, r0 : ndarray, shape (n_channels,)
        The encoder's thresholds and initial reference.

    Returns
    -------
    ndarray, shape (n_channels, n_times)
        The reference level after each sample.
    """
    ev = np.asarray(events, dtype=np.int64)
    q = np.cumsum(ev[0::2] - ev[1::2], axis=1)
    return np.asarray(r0)[:, None] + np.asarray(delta)[:, None] * q


def encoding_stats(x: np.ndarray, events: np.ndarray, delta: np.ndarray, r0: np.ndarray,
                   sfreq: float) -> dict:
    """Events per second and reconstruction SNR per channel.

    Parameters
    ----------
    x : ndarray, shape (n_channels, n_times)
        The encoded signal.
    events : ndarray, shape (2 * n_channels, n_times)
        Its events.
    delta, r0 : ndarray
        Encoder parameters.
    sfreq : float
        Sampling rate in Hz.

    Returns
    -------
    dict
        ``events_per_s`` (list per channel), ``snr_db`` (list per channel),
        ``max_abs_error_over_delta`` (list, always <= 1).
    """
    rec = decode(events, delta, r0)
    err = x - rec
    dur = x.shape[1] / sfreq
    sig_p = np.var(x, axis=1)
    err_p = np.mean(err**2, axis=1)
    snr = 10 * np.log10(np.maximum(sig_p, 1e-30) / np.maximum(err_p, 1e-30))
    counts = events.reshape(x.shape[0], 2, -1).sum(axis=(1, 2))
    return {
        "events_per_s": (counts / dur).round(3).tolist(),
        "snr_db": snr.round(2).tolist(),
        "max_abs_error_over_delta": (np.max(np.abs(err), axis=1) / delta).round(4).tolist(),
    }
