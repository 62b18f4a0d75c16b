"""Causal band-pass / notch filtering with state carried across chunks.

The band-pass is designed by MNE (``mne.filter.create_filter``, IIR Butterworth,
second-order sections) and applied causally with ``scipy.signal.sosfilt`` so a
recording filtered chunk by chunk equals the same recording filtered whole.
"""

from __future__ import annotations

import mne
import numpy as np
from scipy import signal

from spikewatch.config import PreprocessingConfig
from spikewatch.errors import SpikewatchError


class CausalFilter:
    """Stateful band-pass + notch filter for ``n_channels`` channels.

    Parameters
    ----------
    cfg : PreprocessingConfig
        Filter edges and mains frequencies.
    sfreq : float
        Sampling rate (Hz).
    n_channels : int
        Channels filtered together.
    """

    def __init__(self, cfg: PreprocessingConfig, sfreq: float, n_channels: int):
        nyq = sfreq / 2.0
        l_freq = cfg.l_freq if cfg.l_freq else None
        h_freq = cfg.h_freq if cfg.h_freq else None
        if l_freq is not None and h_freq is not None and l_freq >= h_freq:
            raise SpikewatchError(f"preprocessing: l_freq {l_freq} Hz must be below h_freq {h_freq} Hz")
        if l_freq is not None and l_freq >= nyq:
            raise SpikewatchError(
                f"preprocessing: l_freq {l_freq} Hz must be below the Nyquist frequency {nyq:g} Hz")
        if h_freq is not None and h_freq >= nyq * 0.95:
            h_freq = None  # the recording has no content above the edge: nothing to remove
        sections = []
        if l_freq is not None or h_freq is not None:
            filt = mne.filter.create_filter(
                None, sfreq, l_freq, h_freq, method="iir",
                iir_params=dict(order=cfg.filter_order, ftype="butter", output="sos"),
                verbose="error",
            )
            sections.append(filt["sos"])
        for f0 in cfg.notch:
            if 0 < f0 < nyq:
                b, a = signal.iirnotch(f0, Q=30.0, fs=sfreq)
                sections.append(signal.tf2sos(b, a))
        self.sos = np.vstack(sections) if sections else None
        self.n_channels = n_channels
        self._zi = None

    def copy(self) -> "CausalFilter":
        """An independent filter in the same state (to look ahead without advancing)."""
        other = object.__new__(CausalFilter)
        other.sos, other.n_channels = self.sos, self.n_channels
        other._zi = None if self._zi is None else self._zi.copy()
        return other

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Filter the next chunk, shape ``(n_channels, n_times)``."""
        if self.sos is None or x.shape[1] == 0:
            return np.asarray(x, dtype=np.float64)
        if self._zi is None:
            # start from the steady state of the first sample: no onset transient
            zi = signal.sosfilt_zi(self.sos)  # (n_sections, 2), for a unit step
            self._zi = zi[:, None, :] * x[:, 0][None, :, None]
        y, self._zi = signal.sosfilt(self.sos, x, axis=-1, zi=self._zi)
        return y
