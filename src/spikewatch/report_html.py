"""``report.html``: one analysis as plots, built with :class:`mne.Report`.

Sections: an overview (anomaly score over time with the flagged events, beat
or window z-scores against the threshold, the events table, recording and
provenance facts), one section per flagged event (highest score first,
``report.max_event_sections`` of them: the filtered signal with its UP/DOWN
spikes and the score), the network's activity (feature-neuron raster, input
events per channel) and learning (STDP weights at the start and end, their
change, mean absolute change over time).

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot
state, no display needed). The page is deterministic: the only time stamp MNE
writes (its footer) is replaced, so the same analysis gives the same bytes.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import mne
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from spikewatch import __version__
from spikewatch.analysis import ACTIVITY_BIN_S, AnalysisResult
from spikewatch.config import Config
from spikewatch.detect import detection_level
from spikewatch.preprocess import CausalFilter
from spikewatch.snn.encoding import DeltaEncoder

#: seconds re-encoded before an event window so filter and encoder settle
EVENT_WARMUP_S = 10.0
#: longest stretch of signal drawn for one event (s)
MAX_EVENT_VIEW_S = 30.0
#: channels drawn per event (the event's own channels first, then the others in order)
MAX_EVENT_CHANNELS = 4
_MAX_POINTS = 4000  # score samples drawn in the overview (max-pooled)
_MAX_COLS = 1500  # time columns of the raster images
_WIDTH_IN = 8.5  # mne.Report shows images up to 850 px wide at 100 dpi
_FOOTER_DATE = re.compile(r"Created on \d{4}-\d\d-\d\d \d\d:\d\d:\d\d via")
_UNITS = {"ecg": (1e3, "mV"), "eeg": (1e6, "µV")}


def _figure(height_in: float, nrows: int = 1, ncols: int = 1, hspace_in: float = 0.3, right_in: float = 0.2,
            **kw):
    """A figure on the Agg canvas with fixed margins (constrained layout costs seconds per report)."""
    fig = Figure(figsize=(_WIDTH_IN, height_in), dpi=100)
    FigureCanvasAgg(fig)
    bottom, top = 0.5 / height_in, 1 - 0.3 / height_in
    axes_h = (height_in * (top - bottom) - hspace_in * (nrows - 1)) / nrows
    fig.subplots_adjust(left=1.0 / _WIDTH_IN, right=1 - right_in / _WIDTH_IN, bottom=bottom, top=top,
                        hspace=hspace_in / max(axes_h, 0.1))
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def _pool_max(x: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """Max over consecutive groups so at most ``n`` values remain; returns (values, group)."""
    g = max(1, -(-len(x) // n))
    m = len(x) // g
    head = x[: m * g].reshape(m, g).max(axis=1) if m else np.zeros(0, x.dtype)
    if len(x) > m * g:
        head = np.r_[head, x[m * g:].max()]
    return head, g


def _pool_sum(a: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """Sum consecutive columns so at most ``n`` remain; returns (array, group)."""
    g = max(1, -(-a.shape[1] // n))
    pad = (-a.shape[1]) % g
    if pad:
        a = np.pad(a, ((0, 0), (0, pad)))
    return a.reshape(a.shape[0], -1, g).sum(axis=2), g


def _shade_events(ax, events, color="tab:red", alpha=0.18, **kw):
    for e in events:
        ax.axvspan(e.onset, e.onset + max(e.duration, 0.05), color=color, alpha=alpha, lw=0, **kw)
        kw.pop("label", None)  # one legend entry


def _shade_quality(ax, result: AnalysisResult, label: bool = False):
    """Hatch the spans of unusable signal (not scored, not learned from)."""
    _shade_events(ax, result.quality_events, color="0.45", alpha=0.25, hatch="///",
                  label="unusable signal (not scored)" if label and result.quality_events else None)


def _detection_series(result: AnalysisResult, cfg: Config):
    """(times from the recording start, thresholded value, label) of the scored items."""
    if result.modality == "ecg":
        level, _, _ = detection_level(result.beat_score, result.beat_z, cfg.detection)
        return result.start_s + result.rpeaks / result.sfreq, level, "beat"
    level, _, _ = detection_level(result.window_score, result.window_z, cfg.detection)
    return result.start_s + result.window_onsets + cfg.detection.window_s / 2, level, "window"


def overview_figure(result: AnalysisResult, cfg: Config) -> Figure:
    """Anomaly score over time with flagged events, and the z-scores against the threshold.

    Parameters
    ----------
    result : AnalysisResult
        The analysis.
    cfg : Config
        Its config (threshold, warm-up).

    Returns
    -------
    matplotlib.figure.Figure
    """
    fig, ax = _figure(4.6, 2, 1, hspace_in=0.45, sharex=True)
    a1, a2 = ax[0, 0], ax[1, 0]
    env, g = _pool_max(np.asarray(result.score, float), _MAX_POINTS)
    t = result.start_s + (np.arange(len(env)) * g + g / 2) / result.sfreq
    a1.plot(t, env, lw=0.6, color="0.25")
    a1.set_ylabel("anomaly score\n(max per %.2g s)" % (g / result.sfreq))
    end = result.start_s + result.duration_s
    warm = min(result.start_s + cfg.detection.warmup_s, end)
    for a in (a1, a2):
        a.axvspan(result.start_s, warm, color="0.85", lw=0, label="warm-up (no events)" if a is a2 else None)
        _shade_events(a, result.events)
        _shade_quality(a, result, label=a is a2)
    times, z, kind = _detection_series(result, cfg)
    item_score = result.beat_score if result.modality == "ecg" else result.window_score
    a1.plot(times[:len(item_score)], item_score, ".", ms=2.5, color="tab:orange", label=f"{kind} score")
    a1.legend(loc="upper right", fontsize=7, frameon=False)
    _, thr, what = detection_level(np.zeros(0), np.zeros(0), cfg.detection)
    flagged = z > thr
    a2.plot(times[~flagged], z[~flagged], ".", ms=2.5, color="tab:blue", label=f"{kind} {what}")
    a2.plot(times[flagged], z[flagged], "v", ms=5, color="tab:red", label=f"{kind} {what} > threshold")
    a2.axhline(thr, color="tab:red", ls="--", lw=1, label=f"threshold {what} = {thr:g}")
    a2.set_ylabel(f"robust z of\n{kind} scores" if what == "z" else f"{kind} score\n(thresholded)")
    a2.set_xlabel("time from the recording start (s)")
    a2.set_xlim(result.start_s, end)
    a2.legend(loc="lower left", bbox_to_anchor=(0, 1), fontsize=7, ncols=4, frameon=False)
    bad = (f"; {len(result.quality_events)} span(s) of unusable signal, hatched grey"
           if result.quality_events else "")
    a1.set_title(f"{len(result.events)} flagged event(s), shaded red{bad}", fontsize=9, loc="left")
    return fig


def _event_signal(result: AnalysisResult, rec, cfg: Config, t0: float, t1: float, chans: list[int]):
    """Filtered signal and re-encoded UP/DOWN events of ``chans`` between t0 and t1.

    The window is re-read from the recording with a warm-up of up to
    :data:`EVENT_WARMUP_S` before it (never before the analysis start), filtered
    causally and encoded with the analysis' delta. Returns
    ``(times, y, up, down, level, exact)``; ``exact`` is True when the warm-up
    reaches the analysis start, where the re-encoding equals the analysis'.
    """
    sfreq = result.sfreq
    s_start = int(round(result.start_s * sfreq))
    i0 = max(s_start, int(round((t0 - EVENT_WARMUP_S) * sfreq)))  # first sample re-encoded
    i_win = max(int(round(t0 * sfreq)), i0)
    names = [result.channels[i] for i in chans]
    x = rec.get_data(start=i0 / sfreq, stop=t1, picks=names)
    y = CausalFilter(cfg.preprocessing, sfreq, len(chans))(x)
    enc = DeltaEncoder(result.delta[chans])
    ev = enc.encode(y)
    level = enc.r0[:, None] + enc.delta[:, None] * np.cumsum(ev[0::2] - ev[1::2], axis=1)
    skip = i_win - i0
    times = (i0 + np.arange(x.shape[1])) / sfreq
    return (times[skip:], y[:, skip:], ev[0::2, skip:], ev[1::2, skip:], level[:, skip:], i0 == s_start)


def event_figure(result: AnalysisResult, rec, cfg: Config, event) -> tuple[Figure, bool, float]:
    """Signal around one event with its UP/DOWN spikes, and the score.

    Parameters
    ----------
    result : AnalysisResult
        The analysis.
    rec : spikewatch.io.Recording
        The recording (the window is re-read lazily).
    cfg : Config
        Its config (filter, threshold).
    event : spikewatch.detect.Event
        The flagged event.

    Returns
    -------
    fig : matplotlib.figure.Figure
    exact : bool
        Whether the spikes are exactly the analysis' (warm-up from the analysis start).
    warmup : float
        Seconds re-encoded before the window.
    """
    sfreq = result.sfreq
    pad = 2.0 if result.modality == "ecg" else 5.0
    end = result.start_s + result.duration_s
    t0 = max(result.start_s, event.onset - pad)
    t1 = min(end, event.onset + event.duration + pad, t0 + MAX_EVENT_VIEW_S)
    t1 = max(t1, min(end, t0 + 2.0 / sfreq))  # at least two samples
    idx = {n: i for i, n in enumerate(result.channels)}
    own = [idx[c] for c in event.channels if c in idx]
    chans = (own + [i for i in range(len(result.channels)) if i not in own])[:MAX_EVENT_CHANNELS]
    times, y, up, down, level, exact = _event_signal(result, rec, cfg, t0, t1, chans)
    scale, unit = _UNITS.get(result.modality, (1e6, "µV"))
    fig, ax = _figure(1.25 * len(chans) + 1.6, len(chans) + 1, 1, sharex=True,
                      gridspec_kw={"height_ratios": [1.0] * len(chans) + [0.9]})
    for row, c in enumerate(chans):
        a = ax[row, 0]
        a.plot(times, y[row] * scale, lw=0.7, color="0.2", label="filtered signal")
        a.step(times, level[row] * scale, where="post", lw=0.5, color="tab:orange", alpha=0.8,
               label="send-on-delta reconstruction")
        u, d = up[row] > 0, down[row] > 0
        ms = 3.2 if u.sum() + d.sum() < 300 else 1.6  # dense EEG windows: smaller markers
        a.plot(times[u], y[row, u] * scale, "^", ms=ms, color="tab:green", label="UP spike")
        a.plot(times[d], y[row, d] * scale, "v", ms=ms, color="tab:purple", label="DOWN spike")
        _shade_events(a, [event])
        a.set_ylabel(f"{result.channels[c]}\n({unit})", fontsize=8)
        if row == 0:
            a.legend(loc="upper left", fontsize=7, ncols=4, frameon=False)
    a = ax[-1, 0]
    i0 = int(round(times[0] * sfreq)) - int(round(result.start_s * sfreq))
    sc = np.asarray(result.score[i0:i0 + len(times)], float)
    a.plot(times[:len(sc)], sc, lw=0.7, color="0.25")
    _shade_events(a, [event])
    if result.modality == "ecg":
        bt, bz, _ = _detection_series(result, cfg)
        sel = (bt >= times[0]) & (bt <= times[-1])
        for tb, zb in zip(bt[sel], bz[sel]):
            _, thr, what = detection_level(np.zeros(0), np.zeros(0), cfg.detection)
            hit = zb > thr
            a.axvline(tb, color="tab:red" if hit else "tab:blue", lw=0.8, alpha=0.6)
            a.annotate(f"{what} {zb:.2f}" if what == "score" else f"z {zb:.1f}", (tb, 1), xycoords=("data", "axes fraction"), fontsize=6,
                       ha="center", va="bottom", color="tab:red" if hit else "tab:blue")
    a.set_ylabel("anomaly\nscore", fontsize=8)
    a.set_xlabel("time from the recording start (s)")
    a.set_xlim(times[0], times[-1])
    return fig, exact, float(t0 - max(result.start_s, t0 - EVENT_WARMUP_S))


def raster_figure(result: AnalysisResult) -> Figure:
    """Feature-neuron spikes and input UP+DOWN events per channel over time.

    Parameters
    ----------
    result : AnalysisResult
        The analysis (binned activity at ``ACTIVITY_BIN_S``).

    Returns
    -------
    matplotlib.figure.Figure
    """
    n_ch = result.input_activity.shape[0]
    fig, ax = _figure(5.2, 2, 1, right_in=0.45, sharex=True, gridspec_kw={"height_ratios": [1.4, 1.0]})
    end = result.start_s + result.duration_s
    for a, data, label, cmap in ((ax[0, 0], result.neuron_activity, "feature neuron", "Greys"),
                                 (ax[1, 0], result.input_activity, "input channel", "viridis")):
        pooled, g = _pool_sum(np.asarray(data, float), _MAX_COLS)
        if label == "input channel":  # channels differ in rate: show each against its own median
            pooled = np.log1p(pooled / (np.median(pooled, axis=1, keepdims=True) + 1.0))
        im = a.imshow(pooled, aspect="auto", interpolation="nearest", cmap=cmap,
                      extent=(result.start_s, end, pooled.shape[0] - 0.5, -0.5))
        cb = fig.colorbar(im, ax=a, pad=0.01, fraction=0.04)
        cb.set_label("spikes per %.2g s" % (g * ACTIVITY_BIN_S) if label != "input channel"
                     else "log(1 + events / median)", fontsize=7)
        a.set_ylabel(label + "s")
        for e in result.events:
            a.plot([e.onset, e.onset + max(e.duration, 0.05)], [-0.5, -0.5], color="tab:red", lw=4,
                   solid_capstyle="butt", clip_on=False)
    if n_ch <= 16:
        ax[1, 0].set_yticks(range(n_ch), result.channels, fontsize=7)
    ax[1, 0].set_xlabel("time from the recording start (s)")
    ax[0, 0].set_title("red bars: flagged events", fontsize=8, loc="left")
    return fig


def weights_figure(result: AnalysisResult, cfg: Config) -> Figure:
    """STDP input weights at the start and end of the run and their change.

    Parameters
    ----------
    result : AnalysisResult
        The analysis (weights in simulator units, divided by ``weight_scale``).
    cfg : Config
        Network config (delay taps, for the column labels).

    Returns
    -------
    matplotlib.figure.Figure
    """
    s = result.weight_scale or 1.0
    w0, w1 = result.weights_start / s, result.weights_end / s
    dw = w1 - w0
    fig, ax = _figure(6.4, 3, 1, hspace_in=0.4, right_in=0.45, sharex=True)
    lim = max(float(np.max(np.abs(dw))), 1e-12)
    vmax = max(float(w0.max()), float(w1.max()), 1e-12)
    n_in = 2 * len(result.channels)
    delays = sorted({int(round(d * result.sfreq)) for d in cfg.network.delays_s})
    n_taps = len(delays)
    n_rhythm = w0.shape[1] - n_taps * n_in
    for a, w, title, kw in ((ax[0, 0], w0, "weights at the start (random, seeded)", dict(cmap="magma", vmin=0, vmax=vmax)),
                            (ax[1, 0], w1, "weights at the end", dict(cmap="magma", vmin=0, vmax=vmax)),
                            (ax[2, 0], dw, "change (end − start)", dict(cmap="RdBu_r", vmin=-lim, vmax=lim))):
        im = a.imshow(w, aspect="auto", interpolation="nearest", **kw)
        cb = fig.colorbar(im, ax=a, pad=0.01, fraction=0.04)
        cb.set_label("weight (config units)", fontsize=7)
        a.set_title(title, fontsize=9, loc="left")
        a.set_ylabel("neuron")
        for k in range(1, n_taps + 1):  # tap blocks of the UP/DOWN inputs, then the beat train
            a.axvline(k * n_in - 0.5, color="w" if a is not ax[2, 0] else "0.5", lw=0.6)
    ticks = [k * n_in + n_in / 2 - 0.5 for k in range(n_taps)]
    labels = [f"{d / result.sfreq * 1e3:.0f}" for d in delays]
    if n_rhythm:
        ticks.append(n_taps * n_in + n_rhythm / 2 - 0.5)
        labels.append("RR taps")
    ax[2, 0].set_xticks(ticks, labels, fontsize=6)
    ax[2, 0].set_xlabel(f"input: delay tap (ms) × {len(result.channels)} channel(s) × UP/DOWN"
                        + (", then the beat train at RR-scale lags" if n_rhythm else ""))
    return fig


def change_figure(result: AnalysisResult) -> Figure:
    """Mean absolute weight change since the start, per neuron and overall, over time.

    Parameters
    ----------
    result : AnalysisResult
        The analysis (``weight_snapshots`` after each chunk).

    Returns
    -------
    matplotlib.figure.Figure
    """
    s = result.weight_scale or 1.0
    t = np.r_[0.0, [ts for ts, _ in result.weight_snapshots]] + result.start_s
    per = np.array([np.zeros(result.weights_start.shape[0])] +
                   [np.mean(np.abs(w - result.weights_start), axis=1) / s for _, w in result.weight_snapshots])
    fig, ax = _figure(2.6)
    a = ax[0, 0]
    a.plot(t, per, color="tab:blue", lw=0.6, alpha=0.45)
    a.plot(t, per.mean(axis=1), "o-", color="k", lw=1.6, ms=3, label="all neurons")
    a.plot([], [], color="tab:blue", lw=0.6, label="one neuron")
    a.set_xlabel("time from the recording start (s)")
    a.set_ylabel("mean |Δw| since start\n(config units)")
    a.legend(fontsize=7, frameon=False, loc="upper left")
    return fig


NOWRAP = ' class="text-nowrap"'


def _table(rows, header=None) -> str:
    out = ['<table class="table table-sm table-striped w-auto small">']
    if header:
        out.append("<thead><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr></thead>")
    out.append("<tbody>")
    for r in rows:
        cells = [f"<td{NOWRAP if k == 0 else ''}>{html.escape(str(v))}</td>" for k, v in enumerate(r)]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _facts_html(result: AnalysisResult, summary: dict) -> str:
    v = summary["versions"]
    pr = summary["privacy"]
    phi = ("included (--include-phi)" if pr["include_phi"] else
           f"removed; measurement date: {pr['meas_date']}")
    rows = [
        ("recording", f"{summary['recording_id']} ({summary['input']['file']}, {summary['input']['format']})"),
        ("input SHA-256", summary["input"]["sha256"]),
        ("modality", result.modality),
        ("analysed span", f"{result.start_s:.2f}–{result.start_s + result.duration_s:.2f} s "
                          f"({result.duration_s:.1f} s at {result.sfreq:g} Hz)"),
        ("channels", ", ".join(result.channels)),
        ("flagged events", len(result.events)),
    ]
    q = result.quality or {}
    if q.get("enabled"):
        kind = "beats" if result.modality == "ecg" else "windows"
        excluded = q.get(f"excluded_{kind}", 0)
        rows.append(("signal quality", f"{q['n_spans']} unusable span(s), {q['bad_s']:g} s; {excluded} {kind} "
                                       "not scored; no input to the network (no learning) during them"))
    elif q:
        rows.append(("signal quality", "check off (quality.enabled: false)"))
    if result.modality == "ecg":
        rows.append(("beats", len(result.rpeaks)))
    rows += [
        ("config SHA-256", summary["config_sha256"]),
        ("seed / backend", f"{summary['seed']} / {summary['backend']}"),
        ("STDP", "on" if summary["config"]["stdp"]["enabled"] else "off (ablation)"),
        ("versions", ", ".join(f"{k} {v[k]}" for k in ("spikewatch", "nengo", "nengo-loihi", "mne", "numpy")
                               if v.get(k))),
        ("patient-identifying fields", phi),
    ]
    links = " · ".join(f'<a href="{html.escape(f)}">{html.escape(f)}</a>' for f in summary["files"]
                       if f != "report.html")
    return (_table(rows) + f"<p class='small'>Files of this report: {links}. Wall times are in summary.json "
            "(kept out of this page so the same analysis gives the same page).</p>")


def _quality_html(result: AnalysisResult, limit: int = 200) -> str:
    """Table of the signal_quality spans with the reason per channel."""
    spans = (result.quality or {}).get("spans", [])
    if not result.quality_events:
        return ""
    rows = []
    for e, sp in list(zip(result.quality_events, spans))[:limit]:
        why = "; ".join(f"{ch}: {', '.join(r)}" for ch, r in sp["reasons"].items())
        rows.append((f"{e.onset:.3f}", f"{e.duration:.3f}", why))
    more = (f"<p class='small'>First {limit} of {len(result.quality_events)} spans; all are in events.tsv "
            "(trial_type signal_quality).</p>" if len(result.quality_events) > limit else "")
    return ("<p class='small'>Unusable signal (flat: lead off or gap; clipped: saturated; noise: line length "
            "far above the calibration period's). The network got no input during these spans, so it learned "
            "nothing from them, and beats/windows in them or just after them were not scored.</p>"
            + _table(rows, ["onset (s)", "duration (s)", "channel: reason"]) + more)


def _events_html(result: AnalysisResult, shown: int, what: str = "z", limit: int = 200) -> str:
    if not result.events:
        return "<p>No event was flagged.</p>" + _quality_html(result)
    rows = [(f"{e.onset:.3f}", f"{e.duration:.3f}", e.trial_type, f"{e.score:.2f}", ", ".join(e.channels))
            for e in result.events[:limit]]
    more = (f"<p class='small'>First {limit} of {len(result.events)} events; all are in events.tsv.</p>"
            if len(result.events) > limit else "")
    note = (f"<p class='small'>The event sections below show the {shown} highest-scoring of "
            f"{len(result.events)} events (report.max_event_sections).</p>")
    return (_table(rows, ["onset (s)", "duration (s)", "type", f"score ({what})", "channels"]) + more + note
            + _quality_html(result))


def build_html(result: AnalysisResult, rec, cfg: Config, summary: dict, scratch: str | Path) -> str:
    """Build ``report.html`` and return its text.

    Parameters
    ----------
    result : AnalysisResult
        The analysis.
    rec : spikewatch.io.Recording
        The recording (event windows are re-read from it).
    cfg : Config
        The resolved config (``report.max_event_sections`` events get a section).
    summary : dict
        ``summary.json`` content (facts shown in the overview).
    scratch : path-like
        Folder for MNE's temporary file (inside the report being written).

    Returns
    -------
    str
        The HTML page, deterministic for a given analysis.
    """
    rid = summary["recording_id"]
    # WebP (lossless) set explicitly: smaller and faster than PNG, and independent of MNE's config
    rep = mne.Report(title=f"spikewatch report: {rid}", image_format="webp", verbose="error")
    _, thr, what = detection_level(np.zeros(0), np.zeros(0), cfg.detection)
    kind = "beat" if result.modality == "ecg" else f"{cfg.detection.window_s:g} s window"
    rule = (f"robust z-score of each {kind}'s score against the previous {cfg.detection.baseline_s:g} s; "
            f"{kind}s above z = {thr:g}" if what == "z" else
            f"each {kind}'s score (1 - cosine between the {kind} and the familiar learned pattern); "
            f"{kind}s above {thr:g}")
    ranked = sorted(result.events, key=lambda e: (-e.score, e.onset))[: cfg.report.max_event_sections]

    rep.add_figure(
        overview_figure(result, cfg), title="Anomaly score over time", section="Overview",
        caption=(f"Top: the network's anomaly score (score mode '{cfg.network.score}'), max-pooled, "
                 f"and each {kind}'s score (orange). Bottom: {rule} are flagged and merged "
                 f"into events (red spans). Grey: warm-up ({cfg.detection.warmup_s:g} s) while the network "
                 f"first learns the recording, when no event is reported. Hatched grey: unusable signal "
                 f"(signal quality check), not scored and not learned from."))
    rep.add_html(_events_html(result, len(ranked), what), title="Flagged events", section="Overview")
    rep.add_html(_facts_html(result, summary), title="Recording and provenance", section="Overview")

    for k, e in enumerate(ranked, 1):
        fig, exact, warm = event_figure(result, rec, cfg, e)
        how = ("re-encoded from the analysis start, so they are exactly the spikes the network received"
               if exact else
               f"re-encoded from a {warm:.0f} s warm-up before the window with the analysis' delta; the "
               f"network saw the same signal encoded from the analysis start, so individual spikes may "
               f"differ slightly in phase")
        rep.add_figure(
            fig, title=f"Event {k}: {e.onset:.2f} s, {what} = {e.score:.2f}", section="Events",
            caption=(f"Event at {e.onset:.3f} s lasting {e.duration:.3f} s (largest {what} {e.score:.2f}; "
                     f"channels {', '.join(e.channels) or 'n/a'}). Each channel is band-passed as in the "
                     f"analysis ({cfg.preprocessing.l_freq}–{cfg.preprocessing.h_freq} Hz, causal); green ▲ / "
                     f"purple ▼ mark its UP / DOWN send-on-delta spikes, {how}. Bottom: the anomaly "
                     f"score" + (f" with R-peaks and their beat {'z-scores' if what == 'z' else 'scores'}."
                                 if result.modality == "ecg" else ".")))

    rep.add_figure(
        raster_figure(result), title="Network activity", section="Network",
        caption=(f"Top: spikes of the {result.neuron_activity.shape[0]} feature neurons (competing through "
                 f"lateral inhibition) per time bin. Bottom: UP+DOWN input events per channel relative to "
                 f"the channel's median rate. Red bars: flagged events."))
    rep.add_figure(
        weights_figure(result, cfg), title="STDP weights: start, end, change", section="Learning",
        caption=("Input weights of every feature neuron (rows) from every delayed UP/DOWN input (columns), "
                 "in config weight units (1 ≈ the calibration input driving a neuron to threshold; bounds "
                 f"[{cfg.stdp.w_min:g}, {cfg.stdp.w_max:g}]). STDP "
                 + ("potentiates inputs that precede a neuron's spikes and depresses inputs that follow them."
                    if cfg.stdp.enabled else "was off (ablation): the weights stay at their initial values.")))
    rep.add_figure(
        change_figure(result), title="STDP weight change over time", section="Learning",
        caption=(f"Mean absolute weight change since the start, per neuron (thin) and over all weights "
                 f"(black), sampled after each chunk of {cfg.pipeline.chunk_s:g} s."))

    tmp = Path(scratch) / ".report.mne.html"
    try:
        rep.save(tmp, open_browser=False, overwrite=True, verbose="error")
        text = tmp.read_text(encoding="utf-8")
    finally:
        tmp.unlink(missing_ok=True)
    return _FOOTER_DATE.sub(f"Created by spikewatch {html.escape(__version__)} via", text)

