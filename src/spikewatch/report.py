"""Write one analysis as ``<out>/<recording-id>/``.

``events.tsv`` (BIDS-style ``onset duration trial_type score channels``, seconds
from the recording start) with its ``events.json`` sidecar; ``beats.tsv``
(``onset score z``) for ECG; ``annotations.csv`` (the events as MNE reads
them); ``recording.edf`` (EDF+ copy of the analysed span with the events as
annotations, ``report.edf_export``); ``report.html`` (plots, ``report.html``);
``summary.json`` with counts, settings, timings and provenance (input SHA-256,
config hash, seed, versions, STDP summary).

Everything is assembled in a temporary folder and renamed into place when
complete. Patient-identifying header fields reach no file unless
``report.include_phi`` (see :mod:`spikewatch.privacy`); the finished folder is
scanned for them before it is published.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import platform
import time
import warnings
from importlib import metadata
from pathlib import Path

import mne
import numpy as np

from spikewatch.analysis import AnalysisResult
from spikewatch.config import Config
from spikewatch.errors import SpikewatchError
from spikewatch.io.writers import atomic_write_text, report_dir, safe_id, write_json, write_tsv
from spikewatch.privacy import check_folder, export_info, output_meas_date, patient_block, phi_fields

EVENTS_SIDECAR = {
    "onset": {"Description": "Start of the flagged span from the recording start", "Units": "s"},
    "duration": {"Description": "Length of the flagged span", "Units": "s"},
    "trial_type": {
        "Description": "Kind of event",
        "Levels": {"anomaly": "Input the STDP-trained network does not explain (abnormal beat or EEG pattern)",
                   "signal_quality": "Unusable signal (flat, clipped or very noisy channel): not scored, "
                                     "not learned from (the network gets no input during it)"},
    },
    "score": {"Description": "Largest robust z-score of the anomaly score within the event "
                             "(n/a for signal_quality)", "Units": "z"},
    "channels": {"Description": "Comma-separated channels whose input activity drove the event "
                                "(signal_quality: the unusable channels)"},
}


def events_sidecar(cfg: Config) -> dict:
    """The ``events.json`` column descriptions, with the score the config thresholds.

    Parameters
    ----------
    cfg : Config
        Its ``detection.threshold_on`` says what the ``score`` column holds.

    Returns
    -------
    dict
    """
    out = {k: dict(v) for k, v in EVENTS_SIDECAR.items()}
    if cfg.detection.threshold_on == "score":
        out["score"] = {"Description": "Largest anomaly score of the flagged beats/windows within the event "
                                       "(1 - cosine with the familiar learned pattern for the 'familiar' score; "
                                       "n/a for signal_quality)", "Units": "arbitrary"}
    return out


#: summary.json keys holding wall times (they differ between identical runs)
TIMING_KEYS = ("timing_s", "realtime_factor", "realtime_factor_by_stage", "report_timing_s")
EDF_NAME = "recording.edf"
EDF_LABEL_LEN = 16  # EDF signal labels are 16 characters
VERSIONED = ["spikewatch", "nengo", "nengo-loihi", "mne", "numpy", "scipy", "wfdb", "prefect", "neurokit2"]
_HASH_SUFFIXES = {".hea", ".dat", ".atr", ".mat", ".xyz"}


def input_files(path: str | Path) -> list[Path]:
    """Files that make up a recording (a WFDB record has several; a channel folder all of them).

    Parameters
    ----------
    path : path-like
        What the user gave: a file, a WFDB ``.hea`` or stem, or a folder.

    Returns
    -------
    list of pathlib.Path
        Sorted, existing files.
    """
    p = Path(path)
    if p.is_dir():
        return sorted(f for f in p.iterdir() if f.is_file())
    stem = p.with_suffix("") if p.suffix.lower() in _HASH_SUFFIXES else p
    if stem.with_suffix(".hea").is_file():
        return sorted(f for f in stem.parent.glob(stem.name + ".*")
                      if f.suffix.lower() in _HASH_SUFFIXES and f.stem == stem.name)
    return [p]


def sha256_files(files: list[Path]) -> tuple[str, dict]:
    """SHA-256 per file and a combined digest over ``name:hash`` lines."""
    per = {}
    for f in files:
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        per[f.name] = h.hexdigest()
    combined = hashlib.sha256("".join(f"{k}:{v}\n" for k, v in sorted(per.items())).encode()).hexdigest()
    return combined, per


def versions() -> dict:
    """Installed versions of the packages that shape the results."""
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _weights_stats(w: np.ndarray) -> dict:
    return {"mean": float(w.mean()), "std": float(w.std()), "min": float(w.min()), "max": float(w.max())}


def edf_labels(names: list[str]) -> list[str]:
    """Channel names shortened to EDF's 16 characters, kept unique."""
    out: list[str] = []
    for n in names:
        lab = n[:EDF_LABEL_LEN]
        k = 1
        while lab in out:
            suffix = f"~{k}"
            lab = n[: EDF_LABEL_LEN - len(suffix)] + suffix
            k += 1
        out.append(lab)
    return out


def all_events(result: AnalysisResult) -> list:
    """Anomaly and signal-quality events of an analysis, by onset."""
    return sorted(result.events + result.quality_events, key=lambda e: (e.onset, e.trial_type))


def _num(value: float, fmt: str) -> str:
    """A number as written in the TSV/CSV files; ``n/a`` when it is missing (NaN)."""
    return format(value, fmt) if np.isfinite(value) else "n/a"


def event_description(event) -> str:
    """Annotation text of an event in ``annotations.csv`` and ``recording.edf``."""
    return f"spikewatch {event.trial_type}"


def annotations_csv(result: AnalysisResult, rec, cfg: Config) -> str:
    """The events as an MNE annotations CSV (``mne.read_annotations`` reads it).

    Onsets are absolute times as MNE writes them: the measurement date allowed
    by the privacy settings (or 1970-01-01 when it is dropped, MNE's convention
    for no date) plus the event's seconds from the recording start. Extra
    columns: ``score`` (see :func:`events_sidecar`) and ``ch_names`` (the event's channels).
    """
    ev = all_events(result)
    ann = mne.Annotations([e.onset for e in ev], [e.duration for e in ev], [event_description(e) for e in ev],
                          orig_time=output_meas_date(rec.raw.info["meas_date"], cfg.report))
    df = ann.to_data_frame(time_format="datetime")
    # ch_names as MNE's reader parses them (':'-joined); MNE's own writer puts a tuple repr here
    df["ch_names"] = [":".join(c.replace(":", "{COLON}") for c in e.channels) for e in ev]
    df["score"] = [_num(e.score, ".4f") for e in ev]
    buf = io.StringIO()
    df.to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


def export_edf(path: Path, result: AnalysisResult, rec, cfg: Config) -> dict:
    """Write the analysed span and channels as EDF+ with the events as annotations.

    Parameters
    ----------
    path : pathlib.Path
        Destination (inside the report folder being assembled).
    result : AnalysisResult
        The analysis (span, channels, events).
    rec : spikewatch.io.Recording
        The recording (read for the span).
    cfg : Config
        Privacy settings (``report.include_phi``, ``report.meas_date``).

    Returns
    -------
    dict
        What was exported: file, start in the recording, channel labels.

    Notes
    -----
    The header is built from an allow-list (:func:`spikewatch.privacy.export_info`):
    without ``include_phi`` the patient field is ``X X X X`` and the start date
    follows ``report.meas_date``. Annotation onsets count from the file's first
    sample, i.e. from ``start_s`` of the recording. The recording's own
    annotations (free text) are copied only with ``include_phi``.
    """
    sfreq = result.sfreq
    stop = result.start_s + result.n_steps / sfreq
    data = rec.get_data(start=result.start_s, stop=stop, picks=result.channels)
    labels = edf_labels(result.channels)
    info = export_info(rec.raw.info, labels, [result.modality] * len(labels), cfg.report)
    if info["meas_date"] is not None:
        info.set_meas_date(info["meas_date"] + dt.timedelta(seconds=result.start_s))
    events = all_events(result)
    onset = [e.onset - result.start_s for e in events]
    desc = [event_description(e) for e in events]
    dur = [e.duration for e in events]
    per_record = int(np.floor(sfreq))
    if sfreq != per_record and data.shape[1] % per_record:
        # MNE writes records of floor(sfreq) samples at a non-integer rate but does not pad the last one
        pad = per_record - data.shape[1] % per_record
        onset.append(data.shape[1] / sfreq)
        dur.append(pad / sfreq)
        desc.append("BAD_ACQ_SKIP")
        data = np.pad(data, ((0, 0), (0, pad)), mode="edge")
    raw = mne.io.RawArray(data, info, verbose="error")
    if cfg.report.include_phi:
        own = rec.annotations
        keep = (own.onset >= result.start_s) & (own.onset < stop)
        onset += list(own.onset[keep] - result.start_s)
        dur += list(own.duration[keep])
        desc += list(own.description[keep])
    raw.set_annotations(mne.Annotations(onset, dur, desc, orig_time=None))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mne.export.export_raw(path, raw, fmt="edf", physical_range="channelwise", add_ch_type=False,
                                  overwrite=True, verbose="error")
    except (ValueError, RuntimeError) as exc:
        raise SpikewatchError(f"{rec.path}: cannot export EDF+ copy: {' '.join(str(exc).split())}") from None
    return {"file": path.name, "start_s": result.start_s, "duration_s": round(result.duration_s, 4),
            "channels": labels}


def summary_dict(result: AnalysisResult, rec, cfg: Config, input_sha: str, per_file: dict) -> dict:
    """The ``summary.json`` content (identifying fields only with ``report.include_phi``).

    Parameters
    ----------
    result : AnalysisResult
        The analysis.
    rec : spikewatch.io.Recording
        The recording.
    cfg : Config
        The resolved config.
    input_sha : str
        Combined SHA-256 of the input files.
    per_file : dict
        SHA-256 per input file.

    Returns
    -------
    dict
        Keys in :data:`TIMING_KEYS` hold wall times; everything else is the
        same for the same input, config and seed.
    """
    dw = result.weights_end - result.weights_start
    t = result.timings
    meas = output_meas_date(rec.raw.info["meas_date"], cfg.report)
    files = ["events.tsv", "annotations.csv", "summary.json"]
    files += ["events.json"] if cfg.report.events_sidecar else []
    files += ["beats.tsv"] if result.modality == "ecg" else []
    files += [EDF_NAME] if cfg.report.edf_export else []
    files += ["report.html"] if cfg.report.html else []
    return {
        "recording_id": safe_id(result.record_id),
        "input": {"file": Path(rec.path).name, "format": rec.format, "sha256": input_sha,
                  "files_sha256": per_file},
        "modality": result.modality,
        "sfreq": result.sfreq,
        "channels": result.channels,
        "start_s": result.start_s,
        "duration_s": round(result.duration_s, 4),
        "meas_date": meas.isoformat() if meas is not None else None,
        "spikes_per_channel": result.spikes_per_channel,
        "encoding": result.encoding,
        "n_events": len(result.events),
        "n_signal_quality_events": len(result.quality_events),
        "signal_quality": result.quality or None,
        "n_beats": int(len(result.rpeaks)) if result.modality == "ecg" else None,
        "network": {
            "neuron_spikes": result.neuron_spikes.tolist(),
            "stdp": {
                "enabled": cfg.stdp.enabled,
                "mean_abs_dw": float(np.mean(np.abs(dw))),
                "weights_start": _weights_stats(result.weights_start),
                "weights_end": _weights_stats(result.weights_end),
                "mean_abs_dw_over_time": result.weight_change,
                "weight_scale": result.weight_scale,
            },
        },
        "timing_s": t,
        "realtime_factor": round(result.duration_s / t["total"], 2) if t.get("total") else None,
        "realtime_factor_by_stage": {k: round(result.duration_s / v, 1) for k, v in sorted(t.items())
                                     if k != "total" and v > 0},
        "seed": cfg.seed,
        "backend": cfg.backend.name,
        "backend_report": result.backend_report or None,  # Loihi: chip resources, quantisation, energy
        "model": result.model or None,  # the deployed bundle analysed with, if any
        "config": cfg.model_dump(mode="json"),
        "config_sha256": cfg.digest(),
        "versions": versions(),
        "privacy": {"include_phi": cfg.report.include_phi,
                    "meas_date": "kept" if cfg.report.include_phi else cfg.report.meas_date},
        "patient": patient_block(rec.raw.info, cfg.report),
        "edf_export": None,
        "files": sorted(files),
    }


def write_outputs(result: AnalysisResult, rec, cfg: Config, out: str | Path) -> Path:
    """Write the report folder of one analysis, atomically.

    Parameters
    ----------
    result : AnalysisResult
        Output of :func:`spikewatch.analysis.analyze`.
    rec : spikewatch.io.Recording
        The analysed recording (for its files and name).
    cfg : Config
        The resolved config.
    out : path-like
        Output root; the report goes to ``out/<recording-id>/``.

    Returns
    -------
    pathlib.Path
        The report folder.

    Raises
    ------
    spikewatch.privacy.PrivacyError
        A finished file still holds a patient-identifying header field
        (nothing is published).
    """
    files = input_files(rec.path)
    digest, per_file = sha256_files(files)
    forbidden = phi_fields(rec, cfg.report)
    summary = summary_dict(result, rec, cfg, digest, per_file)
    with report_dir(out, result.record_id) as tmp:
        write_tsv(tmp / "events.tsv", ["onset", "duration", "trial_type", "score", "channels"],
                  ([f"{e.onset:.4f}", f"{e.duration:.4f}", e.trial_type, _num(e.score, ".4f"),
                    ",".join(e.channels) or None] for e in all_events(result)))
        if cfg.report.events_sidecar:
            write_json(tmp / "events.json", events_sidecar(cfg))
        if result.modality == "ecg":
            onsets = result.start_s + result.rpeaks / result.sfreq
            write_tsv(tmp / "beats.tsv", ["onset", "score", "z"],
                      ([f"{o:.4f}", _num(s, ".6g"), _num(z, ".4f")]
                       for o, s, z in zip(onsets, result.beat_score, result.beat_z)))
        atomic_write_text(tmp / "annotations.csv", annotations_csv(result, rec, cfg))
        report_t = {}
        if cfg.report.edf_export:
            t = time.perf_counter()
            summary["edf_export"] = export_edf(tmp / EDF_NAME, result, rec, cfg)
            report_t["edf"] = round(time.perf_counter() - t, 4)
        if cfg.report.html:
            from spikewatch.report_html import build_html  # matplotlib only when needed

            t = time.perf_counter()
            atomic_write_text(tmp / "report.html", build_html(result, rec, cfg, summary, tmp))
            report_t["html"] = round(time.perf_counter() - t, 4)
        summary["report_timing_s"] = report_t
        write_json(tmp / "summary.json", summary)
        check_folder(tmp, forbidden)
    return Path(out).resolve() / safe_id(result.record_id)
