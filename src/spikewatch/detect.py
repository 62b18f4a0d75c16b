"""From the network's anomaly score to beats and events.

* R-peaks come from :class:`spikewatch.rpeaks.RPeakStream` (NeuroKit2's
  ``neurokit`` method as a causal stream: the same peaks whatever the chunks).
* Beats (ECG) or fixed windows (EEG) get a score and a causal robust z-score
  against a running baseline (median and IQR of the preceding ``baseline_s``
  seconds). Either is thresholded (:func:`detection_level`): the score itself
  when it is scale-free (ECG: a cosine mismatch), else the z-score, which
  adapts the threshold to each patient (EEG).
* Flagged beats/windows become events: spans merged when closer than
  ``merge_gap_s`` or, with ``merge_consecutive``, when no unflagged item lies
  between them; dropped when shorter than ``min_duration_s``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from spikewatch.config import DetectionConfig
from spikewatch.rpeaks import RPeakStream  # noqa: F401  (re-exported: detect.RPeakStream)


@dataclass
class Event:
    """One flagged span."""

    onset: float
    duration: float
    score: float
    channels: list[str]
    trial_type: str = "anomaly"


def beat_scores(score: np.ndarray, rpeaks: np.ndarray, sfreq: float, window_s, stat: str = "max") -> np.ndarray:
    """Anomaly score of each beat: ``stat`` of the score within ``window_s`` of its R-peak.

    Parameters
    ----------
    score : ndarray, shape (n_steps,)
        Anomaly score per step.
    rpeaks : ndarray of int
        R-peak samples.
    sfreq : float
        Sampling rate (Hz).
    window_s : (float, float)
        Window relative to the R-peak (s).
    stat : {"max", "min", "mean"}
        Reduction over the window.

    Returns
    -------
    ndarray, shape (n_beats,)
    """
    lo = np.clip(rpeaks + int(round(window_s[0] * sfreq)), 0, len(score))
    hi = np.clip(rpeaks + int(round(window_s[1] * sfreq)) + 1, 0, len(score))
    reduce = {"max": np.max, "min": np.min, "mean": np.mean}[stat]
    out = np.zeros(len(rpeaks))
    for i, (a, b) in enumerate(zip(lo, hi)):
        if b > a:
            out[i] = reduce(score[a:b])
    return out


def window_scores(score: np.ndarray, sfreq: float, window_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean score in consecutive windows; returns ``(onsets_s, scores)``."""
    n = max(int(round(window_s * sfreq)), 1)
    m = len(score) // n
    if m == 0:
        return np.zeros(1), np.array([float(np.mean(score))]) if len(score) else np.zeros(0)
    scores = score[: m * n].reshape(m, n).mean(axis=1)
    return np.arange(m) * n / sfreq, scores


def robust_z(values: np.ndarray, times: np.ndarray, baseline_s: float, min_count: int = 10) -> np.ndarray:
    """Causal robust z-score against the preceding ``baseline_s`` seconds.

    Parameters
    ----------
    values : ndarray
        Scores, one per beat or window.
    times : ndarray
        Their times (s), increasing.
    baseline_s : float
        Length of the running baseline.
    min_count : int
        Fewer earlier values than this give z = 0 (no baseline yet).

    Returns
    -------
    ndarray
        ``(value - median) / sigma`` with ``sigma = IQR / 1.349`` floored
        at 5 % of the median magnitude.
    """
    if len(values) == 0:
        return np.zeros(0)
    s = pd.Series(np.asarray(values, float), index=pd.to_timedelta(np.asarray(times, float), unit="s"))
    roll = s.rolling(pd.Timedelta(seconds=baseline_s), closed="left", min_periods=min_count)
    med = roll.median().to_numpy()
    iqr = (roll.quantile(0.75) - roll.quantile(0.25)).to_numpy()
    sigma = np.maximum(iqr / 1.349, 0.05 * np.abs(med))
    sigma = np.where(sigma > 0, sigma, np.nan)
    z = (s.to_numpy() - med) / sigma
    return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)


def detection_level(scores: np.ndarray, z: np.ndarray, cfg: DetectionConfig) -> tuple[np.ndarray, float, str]:
    """The per-item value that is thresholded, the threshold and its name.

    Parameters
    ----------
    scores, z : ndarray
        Per-beat/window scores and their robust z-scores.
    cfg : DetectionConfig
        ``threshold_on`` picks ``z`` (against ``z_threshold``) or the score
        itself (against ``score_threshold``).

    Returns
    -------
    level : ndarray
    threshold : float
    name : str
        ``"z"`` or ``"score"``.
    """
    if cfg.threshold_on == "score":
        return np.asarray(scores, float), cfg.score_threshold, "score"
    return np.asarray(z, float), cfg.z_threshold, "z"


def make_events(times: np.ndarray, z: np.ndarray, span_s, cfg: DetectionConfig,
                channels_for=None, threshold: float | None = None) -> list[Event]:
    """Merge flagged items into events.

    Parameters
    ----------
    times : ndarray
        Reference time of each beat/window (s).
    z : ndarray
        The thresholded value of each item (robust z-scores, or scores: see
        :func:`detection_level`); NaN (unscored) is never flagged.
    span_s : (float, float)
        Span of one flagged item relative to its time (s).
    cfg : DetectionConfig
        Threshold, merging (``merge_gap_s``; ``merge_consecutive``: runs of
        adjacent flagged items) and duration rules.
    channels_for : callable, optional
        ``channels_for(onset, offset) -> list[str]`` naming the channels involved.
    threshold : float, optional
        Flag items above this value (default ``cfg.z_threshold``).

    Returns
    -------
    list of Event
    """
    thr = cfg.z_threshold if threshold is None else threshold
    with np.errstate(invalid="ignore"):
        flagged = np.flatnonzero((z > thr) & (times >= cfg.warmup_s))
    events: list[Event] = []
    cur, prev = None, -2
    for i in flagged:
        on, off = max(times[i] + span_s[0], 0.0), times[i] + span_s[1]
        run = cfg.merge_consecutive and i == prev + 1  # no unflagged item between
        prev = i
        if cur is not None and (run or on - cur[1] <= cfg.merge_gap_s):
            cur[1] = max(cur[1], off)
            cur[2] = max(cur[2], z[i])
        else:
            if cur is not None:
                events.append(cur)
            cur = [on, off, z[i]]
    if cur is not None:
        events.append(cur)
    out = []
    for on, off, sc in events:
        if off - on < cfg.min_duration_s:
            continue
        chans = channels_for(on, off) if channels_for else []
        out.append(Event(round(on, 4), round(off - on, 4), round(float(sc), 4), chans))
    return out
