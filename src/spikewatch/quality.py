"""Signal quality: spans of unusable signal, kept out of anomaly scoring and STDP learning.

The raw signal of every channel is cut into fixed windows of ``quality.window_s``
seconds aligned to the start of the analysed span. Each window is compared with
the same channel's *calibration period* (the first ``encoding.calibration_s``
seconds, the median over its windows), so lead gains and patients do not matter:

* **flat** (disconnected lead, dead amplifier, a gap the reader interpolated):
  peak-to-peak range, or largest second difference (curvature; 0 on a constant
  or a straight interpolated line), at most ``flat_ratio`` x the calibration's;
* **clipped** (saturated amplifier, ADC rail): at least ``clip_fraction`` of the
  window sits in runs of >= 3 equal samples at the window's maximum or minimum;
* **noise** (electrode motion, muscle, mains on a loose lead): line length (mean
  absolute first difference) above ``noise_ratio`` x the calibration's
  (``noise_ratio: null`` turns this off, as in the EEG defaults: seizures raise
  EEG line length 5-18 fold).

Windows are evaluated once, each as soon as it is complete (the analysis reads at
most one window past each chunk), so the result does not depend on the chunking.
A window in which any channel is bad is a bad window; consecutive bad windows
form one ``signal_quality`` event. During bad windows the network gets no input
(no UP/DOWN events, no beat train, no gate): nothing drives its neurons, so
STDP learns nothing from the noise. Beats and windows whose score is read during
a bad span or within the network's input memory after it (its longest delay
taps and synaptic filtering, :func:`input_memory_s`) get no score and no z.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spikewatch.config import NetworkConfig, QualityConfig

#: reasons in the order they are tested (a window gets the first that applies)
REASONS = ("flat", "clipped", "noise")
_FLAT, _CLIPPED, _NOISE = 1, 2, 4
_BITS = dict(zip(REASONS, (_FLAT, _CLIPPED, _NOISE)))
#: shortest run of equal samples counted as sitting at a rail
CLIP_RUN = 3


def input_memory_s(net: NetworkConfig) -> float:
    """How long (s) a stretch of missing input still shapes the network's score.

    The longest delay tap of the UP/DOWN trains plus the longest of the beat
    train, plus five time constants of the input synapse / score filter.

    Parameters
    ----------
    net : NetworkConfig
        The network section of the config.

    Returns
    -------
    float
    """
    return (max(net.delays_s, default=0.0) + max(net.rhythm_delays_s, default=0.0)
            + 5.0 * max(net.synapse_s, net.score_tau_s))


def _run_fraction(mask: np.ndarray, k: int) -> np.ndarray:
    """Fraction of each row's samples lying in runs of at least ``k`` True values."""
    n, w = mask.shape
    if w < k:
        return np.zeros(n)
    c = np.concatenate([np.zeros((n, 1), np.int64), np.cumsum(mask, axis=1)], axis=1)
    start = (c[:, k:] - c[:, :-k]) == k  # start[:, j]: mask[j:j + k] all True
    cs = np.concatenate([np.zeros((n, 1), np.int64), np.cumsum(start, axis=1)], axis=1)
    j = np.arange(w)
    lo, hi = np.clip(j - k + 1, 0, w - k + 1), np.clip(j + 1, 0, w - k + 1)
    return ((cs[:, hi] - cs[:, lo]) > 0).mean(axis=1)


def window_features(x: np.ndarray) -> dict[str, np.ndarray]:
    """Quality features of equal-length windows.

    Parameters
    ----------
    x : ndarray, shape (n_windows, n_samples)
        One channel's windows (or any stack of them); fewer than 3 samples give
        zero curvature (and fewer than 2 zero line length).

    Returns
    -------
    dict
        ``ptp`` (range), ``curv`` (largest absolute second difference), ``ll``
        (mean absolute first difference), ``clip`` (fraction of samples in runs
        of >= 3 equal values at the window's maximum or minimum); each of shape
        ``(n_windows,)``.
    """
    x = np.asarray(x, dtype=np.float64)
    hi, lo = x.max(axis=1, keepdims=True), x.min(axis=1, keepdims=True)
    d1 = np.diff(x, axis=1)
    return {
        "ptp": (hi - lo)[:, 0],
        "curv": np.abs(np.diff(d1, axis=1)).max(axis=1, initial=0.0),
        "ll": np.abs(d1).sum(axis=1) / max(d1.shape[1], 1),
        "clip": np.minimum(_run_fraction(x == hi, CLIP_RUN) + _run_fraction(x == lo, CLIP_RUN), 1.0),
    }


@dataclass
class QualitySpan:
    """One span of consecutive bad windows (times from the analysis start)."""

    onset: float
    duration: float
    channels: list[str]
    #: channel -> reasons found in the span (subset of :data:`REASONS`)
    reasons: dict[str, list[str]] = field(default_factory=dict)


class SignalQuality:
    """Window-by-window quality check of one analysis, fed chunk by chunk.

    Parameters
    ----------
    cfg : QualityConfig
        Thresholds and window length.
    sfreq : float
        Sampling rate (Hz).
    channels : list of str
        Channel names (rows of the data pushed).
    n_steps : int
        Length of the analysed span (samples); windows are aligned to its start.
    calibration : ndarray, shape (n_channels, n_cal)
        Raw signal of the calibration period (the span's first seconds).

    Notes
    -----
    Memory: one byte per window and channel (86 400 per channel for 24 h at
    1 s windows) plus the chunk being checked.
    """

    def __init__(self, cfg: QualityConfig, sfreq: float, channels: list[str], n_steps: int,
                 calibration: np.ndarray):
        self.cfg = cfg
        self.sfreq = float(sfreq)
        self.channels = list(channels)
        self.n_steps = int(n_steps)
        self.win = max(int(round(cfg.window_s * sfreq)), CLIP_RUN)
        self.n_win = -(-self.n_steps // self.win)
        self.flags = np.zeros((self.n_win, len(self.channels)), np.uint8)
        self.done = 0  # windows evaluated so far
        cal = np.asarray(calibration, dtype=np.float64)
        m = cal.shape[1] // self.win
        blocks = cal[:, : m * self.win].reshape(cal.shape[0], m, self.win) if m else cal[:, None, :]
        self.reference = {}
        for key in ("ptp", "curv", "ll"):
            self.reference[key] = np.array([float(np.median(window_features(b)[key])) for b in blocks])

    @property
    def lookahead(self) -> int:
        """Samples past a chunk's end that :meth:`push` needs (one window)."""
        return self.win

    def _classify(self, feats: dict[str, np.ndarray], ch: int) -> np.ndarray:
        ref = {k: v[ch] for k, v in self.reference.items()}
        r = self.cfg.flat_ratio
        flat = (feats["ptp"] <= r * ref["ptp"]) | (feats["curv"] <= r * ref["curv"])
        clipped = ~flat & (feats["clip"] >= self.cfg.clip_fraction)
        noise = np.zeros_like(flat)
        if self.cfg.noise_ratio is not None and ref["ll"] > 0:
            noise = ~flat & ~clipped & (feats["ll"] > self.cfg.noise_ratio * ref["ll"])
        return (flat * _FLAT | clipped * _CLIPPED | noise * _NOISE).astype(np.uint8)

    def push(self, x: np.ndarray, i0: int, n: int) -> np.ndarray:
        """Check the windows overlapping steps ``[i0, i0 + n)`` and return their bad steps.

        Parameters
        ----------
        x : ndarray, shape (n_channels, m)
            Raw signal from step ``i0`` on, ``m >= n``: the chunk plus up to
            :attr:`lookahead` samples after it (fewer only at the span's end).
        i0 : int
            Span-relative step of ``x[:, 0]``; the previous call ended here.
        n : int
            Length of the chunk.

        Returns
        -------
        ndarray of bool, shape (n,)
            Steps of the chunk inside a bad window (any channel).
        """
        last = min(-(-(i0 + n) // self.win), self.n_win)  # windows overlapping the chunk
        if self.done < last:
            first = self.done
            avail = i0 + x.shape[1]
            if avail < min(last * self.win, self.n_steps):
                raise ValueError(f"quality check needs the signal up to step {min(last * self.win, self.n_steps)}"
                                 f" (one window past the chunk), got up to {avail}")
            full_end = min(last, avail // self.win)  # complete windows available
            if full_end > first:
                seg = x[:, first * self.win - i0: full_end * self.win - i0]
                for ch in range(x.shape[0]):
                    blocks = seg[ch].reshape(full_end - first, self.win)
                    self.flags[first:full_end, ch] = self._classify(window_features(blocks), ch)
            if full_end < last:  # the span's last, shorter window: judged only if at least half a window
                tail = x[:, full_end * self.win - i0: self.n_steps - i0]
                if 2 * tail.shape[1] >= self.win:
                    for ch in range(x.shape[0]):
                        self.flags[full_end, ch] = self._classify(window_features(tail[ch][None, :]), ch)[0]
            self.done = last
        steps = np.arange(i0, i0 + n) // self.win
        return self.flags[steps].any(axis=1)

    def bad_windows(self) -> np.ndarray:
        """Boolean per window: some channel is bad."""
        return self.flags[: self.done].any(axis=1)

    def spans(self) -> list[QualitySpan]:
        """Consecutive bad windows as spans, with the bad channels and why."""
        bad = self.bad_windows().astype(np.int8)
        edges = np.flatnonzero(np.diff(np.r_[0, bad, 0]))
        out = []
        for a, b in zip(edges[0::2], edges[1::2]):
            f = np.bitwise_or.reduce(self.flags[a:b], axis=0)
            reasons = {self.channels[c]: [r for r in REASONS if f[c] & _BITS[r]]
                       for c in range(len(self.channels)) if f[c]}
            end = min(b * self.win, self.n_steps)
            out.append(QualitySpan(round(a * self.win / self.sfreq, 4), round((end - a * self.win) / self.sfreq, 4),
                                   list(reasons), reasons))
        return out

    def excluded(self, lo: np.ndarray, hi: np.ndarray, memory_s: float) -> np.ndarray:
        """Which items (beats or windows) overlap a bad span or the input memory after it.

        Parameters
        ----------
        lo, hi : ndarray of int
            First and last span-relative step of each item's score window.
        memory_s : float
            How long after a bad span the network's input still lacks it
            (:func:`input_memory_s`).

        Returns
        -------
        ndarray of bool
        """
        lo, hi = np.asarray(lo, np.int64), np.asarray(hi, np.int64)
        bad = self.bad_windows().astype(np.int8)
        edges = np.flatnonzero(np.diff(np.r_[0, bad, 0]))
        if not len(edges):
            return np.zeros(len(lo), bool)
        mem = int(np.ceil(memory_s * self.sfreq))
        starts = edges[0::2] * self.win
        ends = np.minimum(edges[1::2] * self.win, self.n_steps) + mem  # exclusive
        keep = np.r_[True, starts[1:] > ends[:-1]]  # merge spans whose memory reaches the next one
        starts, ends = starts[keep], np.maximum.reduceat(ends, np.flatnonzero(keep))
        k = np.searchsorted(starts, hi, side="right") - 1  # last span starting at or before hi
        out = np.zeros(len(lo), bool)
        ok = k >= 0
        out[ok] = ends[k[ok]] > lo[ok]
        return out

    def summary(self, n_excluded: int, kind: str, memory_s: float) -> dict:
        """Figures for ``summary.json``: settings, references, bad seconds per channel and reason."""
        per = {}
        for c, name in enumerate(self.channels):
            f = self.flags[: self.done, c]
            per[name] = {r: round(float((f & _BITS[r]).astype(bool).sum() * self.win / self.sfreq), 3)
                         for r in REASONS}
        spans = self.spans()
        return {
            "enabled": True,
            "window_s": round(self.win / self.sfreq, 6),
            "reference": {k: dict(zip(self.channels, (float(f"{v:.6g}") for v in vals)))
                          for k, vals in self.reference.items()},
            "n_spans": len(spans),
            "bad_s": round(sum(s.duration for s in spans), 3),
            "bad_s_by_channel": per,
            "input_memory_s": round(memory_s, 4),
            f"excluded_{kind}s": int(n_excluded),
            "spans": [{"onset": s.onset, "duration": s.duration, "reasons": s.reasons} for s in spans],
        }
