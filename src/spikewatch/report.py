"""Write one analysis as ``<out>/<recording-id>/``: events, beats, summary.

``events.tsv`` (BIDS-style ``onset duration trial_type score channels``, seconds
from the recording start) with its ``events.json`` sidecar; ``beats.tsv``
(``onset score z``) for ECG; ``summary.json`` with counts, settings, timings
and provenance (input SHA-256, config hash, seed, versions). Patient-identifying
header fields are never written here.
"""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata
from pathlib import Path

import numpy as np

from spikewatch.analysis import AnalysisResult
from spikewatch.config import Config
from spikewatch.io.writers import report_dir, safe_id, write_json, write_tsv

EVENTS_SIDECAR = {
    "onset": {"Description": "Start of the flagged span from the recording start", "Units": "s"},
    "duration": {"Description": "Length of the flagged span", "Units": "s"},
    "trial_type": {
        "Description": "Kind of event",
        "Levels": {"anomaly": "Input the STDP-trained network does not explain (abnormal beat or EEG pattern)"},
    },
    "score": {"Description": "Largest robust z-score of the anomaly score within the event", "Units": "z"},
    "channels": {"Description": "Comma-separated channels whose input activity drove the event"},
}
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


def summary_dict(result: AnalysisResult, rec, cfg: Config, input_sha: str, per_file: dict) -> dict:
    """The ``summary.json`` content (no patient-identifying fields)."""
    dw = result.weights_end - result.weights_start
    t = result.timings
    return {
        "recording_id": result.record_id,
        "input": {"file": Path(rec.path).name, "sha256": input_sha, "files_sha256": per_file},
        "modality": result.modality,
        "sfreq": result.sfreq,
        "channels": result.channels,
        "start_s": result.start_s,
        "duration_s": round(result.duration_s, 4),
        "spikes_per_channel": result.spikes_per_channel,
        "encoding": result.encoding,
        "n_events": len(result.events),
        "n_beats": int(len(result.rpeaks)) if result.modality == "ecg" else None,
        "network": {
            "neuron_spikes": result.neuron_spikes.tolist(),
            "stdp": {
                "enabled": cfg.stdp.enabled,
                "mean_abs_dw": float(np.mean(np.abs(dw))),
                "weights_start": _weights_stats(result.weights_start),
                "weights_end": _weights_stats(result.weights_end),
                "mean_abs_dw_over_time": result.weight_change,
            },
        },
        "timing_s": t,
        "realtime_factor": round(result.duration_s / t["total"], 2) if t.get("total") else None,
        "seed": cfg.seed,
        "backend": cfg.backend.name,
        "config": cfg.model_dump(mode="json"),
        "config_sha256": cfg.digest(),
        "versions": versions(),
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
    """
    files = input_files(rec.path)
    digest, per_file = sha256_files(files)
    with report_dir(out, result.record_id) as tmp:
        write_tsv(tmp / "events.tsv", ["onset", "duration", "trial_type", "score", "channels"],
                  ([f"{e.onset:.4f}", f"{e.duration:.4f}", e.trial_type, f"{e.score:.4f}",
                    ",".join(e.channels) or None] for e in result.events))
        if cfg.report.events_sidecar:
            write_json(tmp / "events.json", EVENTS_SIDECAR)
        if result.modality == "ecg":
            onsets = result.start_s + result.rpeaks / result.sfreq
            write_tsv(tmp / "beats.tsv", ["onset", "score", "z"],
                      ([f"{o:.4f}", f"{s:.6g}", f"{z:.4f}"]
                       for o, s, z in zip(onsets, result.beat_score, result.beat_z)))
        write_json(tmp / "summary.json", summary_dict(result, rec, cfg, digest, per_file))
    return Path(out).resolve() / safe_id(result.record_id)
