"""The analysis pipeline as one pure function: recording -> result.

recording -> causal filter -> send-on-delta spikes -> STDP network (online
learning) -> anomaly score -> beats / windows -> events. Everything streams in
chunks of ``pipeline.chunk_s`` seconds with all state carried across chunk
borders, so memory stays bounded by the chunk size (plus the per-step score).
The CLI and the Prefect flows both call :func:`analyze`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from spikewatch.config import Config
from spikewatch.detect import (Event, RPeakStream, beat_scores, detection_level, make_events,
                               robust_z, window_scores)
from spikewatch.errors import RecordingError, SpikewatchError
from spikewatch.preprocess import CausalFilter
from spikewatch.quality import SignalQuality, input_memory_s
from spikewatch.snn.backends import open_runner
from spikewatch.snn.encoding import DeltaEncoder
from spikewatch.snn.network import DetectorNetwork, weight_scale_for

ACTIVITY_BIN_S = 0.1  # resolution of the per-channel input activity kept for events
LOOKAHEAD_S = 2.0  # signal read past each chunk so R-peaks near its end are found in time


@dataclass
class AnalysisResult:
    """Everything :func:`analyze` learned about one recording."""

    record_id: str
    modality: str
    sfreq: float
    channels: list[str]
    start_s: float
    n_steps: int
    delta: np.ndarray
    spikes_per_channel: dict
    encoding: dict
    score: np.ndarray
    events: list[Event]
    rpeaks: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    beat_score: np.ndarray = field(default_factory=lambda: np.zeros(0))
    beat_z: np.ndarray = field(default_factory=lambda: np.zeros(0))
    window_onsets: np.ndarray = field(default_factory=lambda: np.zeros(0))
    window_score: np.ndarray = field(default_factory=lambda: np.zeros(0))
    window_z: np.ndarray = field(default_factory=lambda: np.zeros(0))
    neuron_spikes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    #: feature-neuron spikes per ACTIVITY_BIN_S bin, shape (n_neurons, n_bins)
    neuron_activity: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int32))
    #: UP+DOWN events per channel per ACTIVITY_BIN_S bin, shape (n_channels, n_bins)
    input_activity: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.int32))
    #: (time_s, weights) after each chunk, weights in simulator units
    weight_snapshots: list = field(default_factory=list)
    #: simulator weight per config weight unit (see DetectorNetwork)
    weight_scale: float = 1.0
    weights_start: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    weights_end: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    weight_change: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    #: what the backend reports about itself (Loihi: chip resources, quantisation, energy)
    backend_report: dict = field(default_factory=dict)
    #: provenance of the deployed bundle analysed with (empty when learning online)
    model: dict = field(default_factory=dict)
    #: spans of unusable signal (trial_type "signal_quality"; score NaN), see spikewatch.quality
    quality_events: list[Event] = field(default_factory=list)
    #: the quality check's settings, references and figures (summary.json "signal_quality")
    quality: dict = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        """Analysed duration in seconds."""
        return self.n_steps / self.sfreq


def _accumulate_bins(acc: np.ndarray, counts: np.ndarray, i0: int, bin_len: int) -> None:
    """Add per-step ``counts`` (rows x steps, starting at step ``i0``) into ``acc`` bins."""
    n = counts.shape[1]
    if n == 0:
        return
    first, last = i0 // bin_len, (i0 + n - 1) // bin_len
    starts = np.arange(first, last + 1) * bin_len - i0  # chunk-relative start of each bin
    starts[0] = 0
    acc[:, first:last + 1] += np.add.reduceat(counts, starts, axis=1, dtype=acc.dtype)


def _span(rec, start: float | None, stop: float | None) -> tuple[int, int]:
    n = rec.n_times
    s0 = 0 if start is None else int(round(start * rec.sfreq))
    s1 = n if stop is None else min(int(round(stop * rec.sfreq)), n)
    if not 0 <= s0 < s1:
        raise RecordingError(rec.path, f"empty analysis span start={start} stop={stop} "
                                       f"(recording is {n / rec.sfreq:.1f} s)")
    return s0, s1


def analyze(rec, cfg: Config, *, start: float | None = None, stop: float | None = None,
            progress=None, bundle=None) -> AnalysisResult:
    """Run the whole detector over a recording (or a span of it).

    Parameters
    ----------
    rec : spikewatch.io.Recording
        The recording (read lazily, chunk by chunk).
    cfg : Config
        Resolved configuration; each stage reads its own section.
    start, stop : float, optional
        Span to analyse, in seconds from the recording start.
    progress : callable, optional
        ``progress(done_s, total_s)`` called after each chunk.
    bundle : spikewatch.bundle.Bundle, optional
        A deployed network: its frozen weights, delta and weight scale are used
        instead of online STDP and calibration (learning off).

    Returns
    -------
    AnalysisResult
    """
    t_all = time.perf_counter()
    timings = dict.fromkeys(["read", "filter", "encode", "network", "detect"], 0.0)
    picks = list(cfg.io.channels) if cfg.io.channels else list(rec.signal_picks)
    if not picks:
        raise RecordingError(rec.path, f"no {rec.modality} channel to analyse")
    sfreq = float(rec.sfreq)
    s0, s1 = _span(rec, start, stop)
    chunk = max(int(round(cfg.pipeline.chunk_s * sfreq)), 1)
    n_ch = len(picks)

    def read(a: int, b: int) -> np.ndarray:
        t = time.perf_counter()
        x = rec.get_data(start=a / sfreq, stop=b / sfreq, picks=picks)
        timings["read"] += time.perf_counter() - t
        return x

    stdp, weights = cfg.stdp, None
    if bundle is not None:  # frozen deployed network: no calibration, no learning
        bundle.check_recording(str(rec.path), [rec.ch_names[p] if isinstance(p, int) else p for p in picks],
                               sfreq)
        bundle.check_config(cfg)
        encoder = DeltaEncoder(bundle.delta.copy())
        scale, weights = bundle.weight_scale, bundle.weights
        stdp = cfg.stdp.model_copy(update={"enabled": False})
    else:
        # --- calibrate delta on the first calibration_s of filtered signal
        cal_end = min(s1, s0 + max(int(round(cfg.encoding.calibration_s * sfreq)), 1))
        t = time.perf_counter()
        cal = CausalFilter(cfg.preprocessing, sfreq, n_ch)(read(s0, cal_end))
        encoder = DeltaEncoder.calibrate(cal, cfg.encoding.delta_factor)
        cal_beats = None
        if rec.modality == "ecg" and cfg.network.rhythm_delays_s:
            cal_beats = RPeakStream(sfreq).push(cal[0], 0)
        scale = weight_scale_for(DeltaEncoder(encoder.delta).encode(cal), sfreq, cfg.network, cal_beats)
        timings["encode"] += time.perf_counter() - t

    filt = CausalFilter(cfg.preprocessing, sfreq, n_ch)
    net = DetectorNetwork(n_ch, sfreq, cfg.network, stdp, seed=cfg.seed, weight_scale=scale, weights=weights)
    is_ecg = rec.modality == "ecg"
    rstream = RPeakStream(sfreq) if is_ecg else None
    n_total = s1 - s0
    quality = None
    if cfg.quality.enabled:  # reference: the raw calibration period (also with a bundle)
        t = time.perf_counter()
        q_end = min(s1, s0 + max(int(round(cfg.encoding.calibration_s * sfreq)), 1))
        labels = [rec.ch_names[p] if isinstance(p, int) else p for p in picks]
        quality = SignalQuality(cfg.quality, sfreq, labels, n_total, read(s0, q_end))
        timings["encode"] += time.perf_counter() - t
    score = np.empty(n_total, dtype=np.float32)
    bin_len = max(int(round(ACTIVITY_BIN_S * sfreq)), 1)
    n_bins = -(-n_total // bin_len)
    activity = np.zeros((n_ch, n_bins), dtype=np.int32)
    neuron_activity = np.zeros((cfg.network.n_neurons, n_bins), dtype=np.int32)
    snapshots = []
    ev_count = np.zeros(n_ch, dtype=np.int64)
    neuron_spikes = np.zeros(cfg.network.n_neurons, dtype=np.int64)
    sig_pow = np.zeros(n_ch)
    err_pow = np.zeros(n_ch)
    weight_change = []

    t = time.perf_counter()
    runner = open_runner(cfg.backend.name, net, block_steps=max(int(round(sfreq)), 1), backend=cfg.backend)
    timings["network"] += time.perf_counter() - t
    w_start = runner.weights()
    look = int(round(LOOKAHEAD_S * sfreq)) if is_ecg else 0
    gate_lag = int(round(cfg.network.gate_delay_s * sfreq))
    clock = max(int(round(cfg.detection.window_s * sfreq)), 1)
    pending_gates = np.zeros(0, np.int64)  # gate steps (span-relative) not yet fed
    try:
        for a in range(s0, s1, chunk):
            b = min(a + chunk, s1)
            ahead = max(look, quality.lookahead if quality is not None else 0)
            xl = read(a, min(b + ahead, s1))
            x = xl[:, : b - a]
            t = time.perf_counter()
            y = filt(x)
            y_look = filt.copy()(xl[:, b - a: b - a + look]) if look and xl.shape[1] > b - a else None
            timings["filter"] += time.perf_counter() - t
            i0 = a - s0

            beats = np.zeros(0, np.int64)
            if rstream is not None:  # beats first: they drive the gate and rhythm inputs
                t = time.perf_counter()
                beats = rstream.push(y[0], i0, None if y_look is None else y_look[0]) - i0
                timings["detect"] += time.perf_counter() - t

            t = time.perf_counter()
            prev = np.zeros(n_ch) if encoder.level is None else encoder.level.copy()
            ev = encoder.encode(y)
            q = prev[:, None] + np.cumsum(ev[0::2] - ev[1::2], axis=1)
            rec_sig = encoder.r0[:, None] + encoder.delta[:, None] * q
            centred = y - y.mean(axis=1, keepdims=True)
            sig_pow += (centred**2).sum(axis=1)
            err_pow += ((y - rec_sig) ** 2).sum(axis=1)
            per_ch = ev[0::2] + ev[1::2]
            ev_count += per_ch.sum(axis=1)
            _accumulate_bins(activity, per_ch, i0, bin_len)
            now = np.zeros(0, np.int64)
            if net.gated:
                if is_ecg:
                    pending_gates = np.concatenate([pending_gates, beats + i0 + gate_lag])
                else:  # EEG: a clock gate at the end of every score window
                    first = -(-(i0 + 1) // clock) * clock - 1
                    pending_gates = np.concatenate([pending_gates, np.arange(first, i0 + (b - a), clock)])
                now = pending_gates[(pending_gates >= i0) & (pending_gates < i0 + (b - a))] - i0
                pending_gates = pending_gates[pending_gates >= i0 + (b - a)]
            ev_in = net.input_rows(ev, beats, now)
            if quality is not None:  # unusable signal: no input at all, so nothing is learned from it
                bad = quality.push(xl, i0, b - a)
                if bad.any():
                    ev_in = ev_in.copy()
                    ev_in[:, bad] = 0
            timings["encode"] += time.perf_counter() - t

            t = time.perf_counter()
            sc, spikes = runner.run(ev_in)
            score[i0:i0 + (b - a)] = sc
            neuron_spikes += spikes.sum(axis=0)
            _accumulate_bins(neuron_activity, spikes.T, i0, bin_len)
            w_now = runner.weights()
            weight_change.append([round((b - s0) / sfreq, 3), float(np.mean(np.abs(w_now - w_start)))])
            snapshots.append(((b - s0) / sfreq, w_now))
            timings["network"] += time.perf_counter() - t

            if progress is not None:
                progress((b - s0) / sfreq, n_total / sfreq)
        w_end = runner.weights()
    finally:
        runner.close()

    t = time.perf_counter()
    det = cfg.detection
    names = [rec.ch_names[p] if isinstance(p, int) else p for p in picks]
    typical = np.median(activity, axis=1) + 1e-9

    def channels_for(on: float, off: float) -> list[str]:
        lo, hi = int(on / ACTIVITY_BIN_S), max(int(np.ceil(off / ACTIVITY_BIN_S)), int(on / ACTIVITY_BIN_S) + 1)
        excess = activity[:, lo:hi].mean(axis=1) / typical
        return [names[i] for i in np.flatnonzero(excess >= 0.5 * excess.max())] if excess.max() > 0 else names

    result = AnalysisResult(
        record_id=rec.record_id, modality=rec.modality, sfreq=sfreq, channels=names,
        start_s=s0 / sfreq, n_steps=n_total, delta=encoder.delta.copy(),
        spikes_per_channel={n: int(c) for n, c in zip(names, ev_count)},
        encoding={
            "delta_V": encoder.delta.tolist(),
            "events_per_s": (ev_count / (n_total / sfreq)).round(3).tolist(),
            "snr_db": (10 * np.log10(np.maximum(sig_pow, 1e-30) / np.maximum(err_pow, 1e-30))).round(2).tolist(),
        },
        score=score, events=[], neuron_spikes=neuron_spikes,
        weights_start=w_start, weights_end=w_end, weight_change=weight_change,
        neuron_activity=neuron_activity, input_activity=activity, weight_snapshots=snapshots,
        weight_scale=scale, model=bundle.summary() if bundle is not None else {},
    )
    memory = input_memory_s(cfg.network)

    def scored(values: np.ndarray, times: np.ndarray, lo: np.ndarray, hi: np.ndarray):
        """(scores, z): items whose score steps lo..hi meet bad signal get NaN and stay out of the baseline."""
        keep = np.ones(len(values), bool) if quality is None else ~quality.excluded(lo, hi, memory)
        values = np.where(keep, values, np.nan)
        z = np.full(len(values), np.nan)
        z[keep] = robust_z(values[keep], times[keep], det.baseline_s)
        return values, z, int((~keep).sum())

    if is_ecg:
        rp = rstream.result()
        result.rpeaks = rp
        bs = beat_scores(score, rp, sfreq, det.beat_window_s, det.beat_stat)
        w0, w1 = (int(round(w * sfreq)) for w in det.beat_window_s)
        result.beat_score, result.beat_z, n_out = scored(bs, rp / sfreq, rp + w0, rp + w1)
        level, thr, _ = detection_level(result.beat_score, result.beat_z, det)
        result.events = make_events(rp / sfreq, level, det.event_span_s, det, channels_for, thr)
    else:
        on, ws = window_scores(score, sfreq, det.window_s)
        first = np.round(on * sfreq).astype(np.int64)
        width = max(int(round(det.window_s * sfreq)), 1)
        result.window_onsets = on
        result.window_score, result.window_z, n_out = scored(ws, on, first, first + width - 1)
        level, thr, _ = detection_level(result.window_score, result.window_z, det)
        result.events = make_events(on, level, (0.0, det.window_s), det, channels_for, thr)
    if quality is not None:
        result.quality_events = [Event(round(sp.onset + result.start_s, 4), sp.duration, float("nan"), sp.channels,
                                       "signal_quality") for sp in quality.spans()]
        result.quality = quality.summary(n_out, "beat" if is_ecg else "window", memory)
    else:
        result.quality = {"enabled": False}
    for e in result.events:  # events are reported relative to the recording start
        e.onset = round(e.onset + result.start_s, 4)
    timings["detect"] += time.perf_counter() - t
    if hasattr(runner, "report"):  # e.g. Loihi: chip resources, quantisation, energy per beat
        result.backend_report = runner.report(n_beats=len(result.rpeaks) if is_ecg else None)
    timings["total"] = time.perf_counter() - t_all
    result.timings = {k: round(v, 4) for k, v in timings.items()}
    if not np.all(np.isfinite(score)):
        raise SpikewatchError(f"{rec.path}: non-finite anomaly score (network diverged)")
    return result
