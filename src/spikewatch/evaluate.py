"""Scoring events against reference annotations (labels are used only here).

ECG (AAMI EC57 classes, beat by beat)
    A reference beat is *detected* if its annotated time lies within an event
    widened by ``tol`` (0.15 s) on both sides; an event is a true positive if its
    widened window holds an S, V or F beat. Per record and gross (paced records,
    recognised by their paced-beat labels, excluded from gross figures): V-, S-,
    F-beat sensitivity, event PPV, false events per hour, share of N beats inside
    events, and beat-level ROC AUC of the per-beat score from ``beats.tsv``.
EEG
    Segment-level ROC AUC for labelled segment sets, and SzCORE event scoring
    (``timescoring``) for continuous recordings with reference seizure events.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from spikewatch.errors import SpikewatchError

AAMI = {"N": "NLRej", "S": "AaJS", "V": "VE", "F": "F", "Q": "/fQ"}
SYMBOL_CLASS = {s: c for c, syms in AAMI.items() for s in syms}
PACED_SYMBOLS = set("/f")
ABNORMAL = ("S", "V", "F")


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney U), ties counted half; None if one class is empty."""
    scores = np.asarray(scores, float)
    positive = np.asarray(positive, bool)
    n1, n0 = int(positive.sum()), int((~positive).sum())
    if n1 == 0 or n0 == 0:
        return None
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def read_tsv(path: Path) -> list[dict]:
    """Rows of a TSV file with a header, as dicts of strings."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f, delimiter="\t"))
    except OSError as exc:
        raise SpikewatchError(f"{path}: cannot read: {exc.strerror or exc}") from None


def match_beats(ref: np.ndarray, det: np.ndarray, tol: int) -> int:
    """Reference beats with a detection within ``tol`` samples, each detection used once.

    Parameters
    ----------
    ref, det : ndarray of int
        Reference and detected beat samples, both sorted.
    tol : int
        Tolerance (samples).

    Returns
    -------
    int
        Matched pairs (true positives).
    """
    i = j = hits = 0
    while i < len(ref) and j < len(det):
        if det[j] < ref[i] - tol:
            j += 1
        elif det[j] > ref[i] + tol:
            i += 1
        else:
            hits += 1
            i += 1
            j += 1
    return hits


def reference_beats(annotations) -> tuple[np.ndarray, np.ndarray]:
    """Beat times (s) and AAMI classes from a recording's annotations.

    Parameters
    ----------
    annotations : mne.Annotations
        WFDB beat labels as read by :func:`spikewatch.io.read_recording`.

    Returns
    -------
    times : ndarray of float
    classes : ndarray of str
        One of N, S, V, F, Q per beat; non-beat labels are dropped.
    """
    keep = [(o, SYMBOL_CLASS[d]) for o, d in zip(annotations.onset, annotations.description)
            if d in SYMBOL_CLASS]
    if not keep:
        return np.zeros(0), np.zeros(0, dtype="<U1")
    t, c = zip(*keep)
    return np.asarray(t, float), np.asarray(c)


def is_paced(annotations) -> bool:
    """A record is paced if at least a tenth of its beats carry paced labels (``/``, ``f``)."""
    desc = [d for d in annotations.description if d in SYMBOL_CLASS]
    return bool(desc) and sum(d in PACED_SYMBOLS for d in desc) >= 0.1 * len(desc)


@dataclass
class EcgScore:
    """Counts behind the ECG figures of one record (additive across records)."""

    record_id: str
    hours: float
    paced: bool
    beats: dict = field(default_factory=lambda: dict.fromkeys(AAMI, 0))
    detected: dict = field(default_factory=lambda: dict.fromkeys(AAMI, 0))
    events: int = 0
    true_events: int = 0
    auc_abnormal: float | None = None
    auc_v: float | None = None

    def figures(self) -> dict:
        """Sensitivities, PPV, false events/hour, N share, AUCs (percent where usual)."""
        return figures(self.beats, self.detected, self.events, self.true_events, self.hours,
                       self.auc_abnormal, self.auc_v)


def _pct(a: int, b: int) -> float | None:
    return round(100.0 * a / b, 2) if b else None


def figures(beats, detected, events, true_events, hours, auc_abnormal=None, auc_v=None) -> dict:
    """The reported figures from additive counts."""
    return {
        "V_Se": _pct(detected["V"], beats["V"]),
        "S_Se": _pct(detected["S"], beats["S"]),
        "F_Se": _pct(detected["F"], beats["F"]),
        "event_PPV": _pct(true_events, events),
        "false_events_per_h": round((events - true_events) / hours, 2) if hours else None,
        "N_flagged_pct": _pct(detected["N"], beats["N"]),
        "beat_AUC_SVF_vs_N": None if auc_abnormal is None else round(auc_abnormal, 4),
        "beat_AUC_V_vs_N": None if auc_v is None else round(auc_v, 4),
        "events": events,
        "beats_V": beats["V"], "beats_S": beats["S"], "beats_F": beats["F"], "beats_N": beats["N"],
    }


def score_ecg(record_id: str, events: list[tuple[float, float]], beat_onsets: np.ndarray,
              beat_scores: np.ndarray, ref_times: np.ndarray, ref_classes: np.ndarray,
              span: tuple[float, float], paced: bool, tol: float = 0.15) -> EcgScore:
    """Score one ECG record.

    Parameters
    ----------
    record_id : str
        For the table.
    events : list of (onset, duration)
        Flagged spans (s from the recording start).
    beat_onsets, beat_scores : ndarray
        Detected beats and their scores (from ``beats.tsv``).
    ref_times, ref_classes : ndarray
        Reference beats (:func:`reference_beats`).
    span : (float, float)
        Analysed span (s); reference beats outside it are ignored.
    paced : bool
        Whether the record is paced (excluded from gross figures).
    tol : float
        Tolerance around events (s).

    Returns
    -------
    EcgScore
    """
    inside = (ref_times >= span[0]) & (ref_times < span[1])
    t, c = ref_times[inside], ref_classes[inside]
    sc = EcgScore(record_id, (span[1] - span[0]) / 3600.0, paced)
    ev = np.asarray(events, float).reshape(-1, 2)
    lo, hi = ev[:, 0] - tol, ev[:, 0] + ev[:, 1] + tol
    order = np.argsort(lo)
    lo, hi = lo[order], hi[order]
    # beat i is inside event j iff lo[j] <= t[i] <= hi[j]; events are sorted and rarely overlap
    j = np.searchsorted(lo, t, side="right") - 1
    hit = np.zeros(len(t), bool)
    for back in range(3):  # also check a couple of earlier events (merged spans may overlap)
        jj = j - back
        ok = jj >= 0
        hit[ok] |= t[ok] <= hi[jj[ok]]
    for cls in AAMI:
        m = c == cls
        sc.beats[cls] = int(m.sum())
        sc.detected[cls] = int((hit & m).sum())
    abn = np.isin(c, ABNORMAL)
    sc.events = len(ev)
    for a, b in zip(lo, hi):
        k0, k1 = np.searchsorted(t, a, "left"), np.searchsorted(t, b, "right")
        sc.true_events += bool(abn[k0:k1].any())
    # beat-level AUC: each reference beat takes the score of the nearest detected beat (<= tol)
    if len(beat_onsets) and len(t):
        k = np.clip(np.searchsorted(beat_onsets, t), 1, len(beat_onsets) - 1)
        near = np.where(np.abs(beat_onsets[k] - t) < np.abs(beat_onsets[k - 1] - t), k, k - 1)
        s = np.asarray(beat_scores)[near]
        matched = (np.abs(beat_onsets[near] - t) <= tol) & np.isfinite(s)  # unscored (bad signal) beats out
        nm = matched & (c == "N")
        am = matched & abn
        sc.auc_abnormal = roc_auc(np.r_[s[am], s[nm]], np.r_[np.ones(am.sum(), bool), np.zeros(nm.sum(), bool)])
        vm = matched & (c == "V")
        sc.auc_v = roc_auc(np.r_[s[vm], s[nm]], np.r_[np.ones(vm.sum(), bool), np.zeros(nm.sum(), bool)])
    return sc


def gross(scores: list[EcgScore]) -> dict:
    """Gross figures over non-paced records (counts summed, then ratios)."""
    use = [s for s in scores if not s.paced]
    beats = {k: sum(s.beats[k] for s in use) for k in AAMI}
    det = {k: sum(s.detected[k] for s in use) for k in AAMI}
    return figures(beats, det, sum(s.events for s in use), sum(s.true_events for s in use),
                   sum(s.hours for s in use))


def load_report(folder: Path) -> dict:
    """The parts of a report folder needed for scoring."""
    folder = Path(folder)
    summ_path = folder / "summary.json"
    try:
        summary = json.loads(summ_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SpikewatchError(f"{summ_path}: not a spikewatch report ({exc})") from None
    events = [(float(r["onset"]), float(r["duration"])) for r in read_tsv(folder / "events.tsv")
              if r.get("trial_type", "anomaly") == "anomaly"]  # not the signal_quality spans
    beats = read_tsv(folder / "beats.tsv") if (folder / "beats.tsv").is_file() else []
    num = lambda v: float("nan") if v == "n/a" else float(v)  # noqa: E731  (n/a: beat in bad signal)
    return {
        "summary": summary,
        "events": events,
        "beat_onsets": np.array([float(r["onset"]) for r in beats]),
        "beat_z": np.array([num(r["z"]) for r in beats]),
        "beat_score": np.array([num(r["score"]) for r in beats]),
    }


def evaluate_ecg_report(rec, folder: Path, tol: float = 0.15) -> EcgScore:
    """Score the report in ``folder`` against the annotations of recording ``rec``."""
    rep = load_report(folder)
    summ = rep["summary"]
    t, c = reference_beats(rec.annotations)
    if len(t) == 0:
        raise SpikewatchError(f"{rec.path}: no beat annotations to score against")
    span = (summ["start_s"], summ["start_s"] + summ["duration_s"])
    return score_ecg(rec.record_id, rep["events"], rep["beat_onsets"], rep["beat_score"], t, c,
                     span, is_paced(rec.annotations), tol)


def segment_auc(scores: dict[str, float], positive: set[str]) -> float | None:
    """ROC AUC of segment scores, ``positive`` naming the positive segments."""
    keys = sorted(scores)
    return roc_auc(np.array([scores[k] for k in keys]), np.array([k in positive for k in keys]))


def szcore_events(ref_events: list[tuple[float, float]], hyp_events: list[tuple[float, float]],
                  duration_s: float) -> dict:
    """SzCORE event scoring (``timescoring`` defaults) of seizure events.

    Parameters
    ----------
    ref_events, hyp_events : list of (onset, duration)
        Reference seizures and detected events (s).
    duration_s : float
        Recording length (s).

    Returns
    -------
    dict
        Sensitivity, precision, F1, false positives per 24 h, counts.
    """
    from timescoring import scoring
    from timescoring.annotations import Annotation

    fs = 10
    n = int(round(duration_s * fs))

    def ann(evts):
        return Annotation([(float(o), float(min(o + d, duration_s))) for o, d in evts], fs, n)

    sc = scoring.EventScoring(ann(ref_events), ann(hyp_events))
    return {
        "sensitivity": None if np.isnan(sc.sensitivity) else round(float(sc.sensitivity), 4),
        "precision": None if np.isnan(sc.precision) else round(float(sc.precision), 4),
        "f1": None if np.isnan(sc.f1) else round(float(sc.f1), 4),
        "fp_per_24h": round(float(sc.fpRate), 3),
        "ref_events": int(sc.refTrue), "true_positives": int(sc.tp), "false_positives": int(sc.fp),
    }
