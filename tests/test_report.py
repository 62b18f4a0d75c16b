"""The report folder on real recordings: summary, determinism, EDF+ and CSV round trips,
report.html content, privacy of patient header fields, safe ids, atomic writes.

Real data: MIT-BIH 106 (first 60 s; events allowed after 10 s at z >= 2.5 so that
a short segment has events), Bonn S001 (non-integer 173.61 Hz), and two MNE test
files whose headers carry patient fields: ``chtypes_edf.edf`` (EDF, Nihon Kohden
export: name, birth date, equipment, measurement date) and
``multiple_annotation_chans.bdf`` (BDF+, OpenBCI: name code, birth date, equipment).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import mne
import numpy as np
import pytest

from spikewatch.analysis import analyze
from spikewatch.config import CONFIG_DIR, load_config
from spikewatch.errors import SpikewatchError
from spikewatch.io import read_recording
from spikewatch.jobs import resolve_job, run_job
from spikewatch.privacy import PrivacyError, check_folder, phi_fields
from spikewatch.report import TIMING_KEYS, write_outputs
from spikewatch.report_html import _event_signal

ALLOWED_TO_DIFFER = {"timing_s", "realtime_factor", "realtime_factor_by_stage", "report_timing_s"}
PHI_FILES = ["chtypes_edf.edf", "multiple_annotation_chans.bdf"]


def run_cli(*args):
    """The console entry point in a subprocess (real exit code)."""
    return subprocess.run([sys.executable, "-m", "spikewatch", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def read_tsv(path: Path) -> list[dict]:
    lines = path.read_text().splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, ln.split("\t"))) for ln in lines[1:]]


def anomalies(folder: Path) -> list[dict]:
    """The anomaly rows of events.tsv (not the signal_quality spans)."""
    return [e for e in read_tsv(folder / "events.tsv") if e["trial_type"] == "anomaly"]


@pytest.fixture(scope="module")
def cfg_file(tmp_path_factory) -> Path:
    """ECG defaults with events allowed from 10 s at z >= 2.5 (short segments get events)."""
    path = tmp_path_factory.mktemp("cfg") / "ecg_short.yaml"
    path.write_text(f"extends: {CONFIG_DIR / 'ecg.yaml'}\ndetection:\n  warmup_s: 10.0\n  z_threshold: 2.5\n")
    return path


@pytest.fixture(scope="module")
def analysis(mitdb, cfg_file):
    """(recording, config, result) of MIT-BIH 106, first 60 s, in-process."""
    rec, cfg = resolve_job(mitdb / "106", cfg_file)
    return rec, cfg, analyze(rec, cfg, stop=60)


@pytest.fixture(scope="module")
def ecg_runs(analysis, mitdb, cfg_file, tmp_path_factory):
    """The same analysis twice: by the CLI, and in-process (same input, config, seed)."""
    out = tmp_path_factory.mktemp("runs")
    r = run_cli("analyze", mitdb / "106", "--stop", 60, "--config", cfg_file, "--out", out / "a")
    assert r.returncode == 0, r.stderr
    rec, cfg, result = analysis
    write_outputs(result, rec, cfg, out / "b")
    return out / "a" / "106", out / "b" / "106"


# ----------------------------------------------------------------------------- summary

def test_summary_is_complete(ecg_runs, mitdb, cfg_file):
    folder = ecg_runs[0]
    s = json.loads((folder / "summary.json").read_text())
    side = json.loads((folder / "events.json").read_text())  # ECG thresholds the beat score itself
    assert "cosine" in side["score"]["Description"] and side["score"]["Units"] == "arbitrary"
    events = anomalies(folder)
    assert s["recording_id"] == "106" and s["input"]["file"] == "106.hea" and s["input"]["format"] == "wfdb"
    for name in ("106.hea", "106.dat", "106.atr"):
        assert s["input"]["files_sha256"][name] == hashlib.sha256((mitdb / name).read_bytes()).hexdigest()
    combined = "".join(f"{k}:{v}\n" for k, v in sorted(s["input"]["files_sha256"].items()))
    assert s["input"]["sha256"] == hashlib.sha256(combined.encode()).hexdigest()
    assert s["modality"] == "ecg" and s["sfreq"] == 360.0 and s["channels"] == ["MLII", "V1"]
    assert s["duration_s"] == 60.0 and s["start_s"] == 0.0
    assert set(s["spikes_per_channel"]) == {"MLII", "V1"} and min(s["spikes_per_channel"].values()) > 100
    assert s["n_events"] == len(events) >= 1
    assert s["n_beats"] == len(read_tsv(folder / "beats.tsv")) > 60
    stages = {"read", "filter", "encode", "network", "detect", "total"}
    assert stages <= set(s["timing_s"]) and all(v >= 0 for v in s["timing_s"].values())
    assert s["realtime_factor"] == round(60.0 / s["timing_s"]["total"], 2)
    assert set(s["realtime_factor_by_stage"]) <= stages - {"total"}
    # the report's own wall time is kept apart from the analysis timings
    assert set(s["report_timing_s"]) == {"html", "edf"} and all(v > 0 for v in s["report_timing_s"].values())
    assert not {"html", "edf"} & set(s["timing_s"])
    cfg = load_config(cfg_file)
    assert s["config"] == cfg.model_dump(mode="json") and s["config_sha256"] == cfg.digest()
    assert s["seed"] == 0 and s["backend"] == cfg.backend.name
    for pkg in ("spikewatch", "nengo", "nengo-loihi", "mne", "numpy", "prefect"):
        assert s["versions"][pkg] == metadata.version(pkg), pkg
    stdp = s["network"]["stdp"]
    assert stdp["enabled"] and stdp["mean_abs_dw"] > 0
    for key in ("weights_start", "weights_end"):
        assert set(stdp[key]) == {"mean", "std", "min", "max"}
    assert stdp["weights_start"] != stdp["weights_end"]
    assert stdp["mean_abs_dw_over_time"][-1][0] == 60.0
    assert s["privacy"] == {"include_phi": False, "meas_date": "drop"} and s["patient"] is None
    assert s["files"] == sorted(p.name for p in folder.iterdir())
    assert s["edf_export"]["channels"] == ["MLII", "V1"] and s["edf_export"]["start_s"] == 0.0


def test_same_input_config_seed_gives_identical_outputs(ecg_runs):
    """events.tsv byte-identical; summary.json identical apart from timing keys (and the rest too)."""
    a, b = ecg_runs
    assert set(TIMING_KEYS) == ALLOWED_TO_DIFFER
    for name in ("events.tsv", "beats.tsv", "annotations.csv", "events.json", "recording.edf", "report.html"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    sa, sb = (json.loads((f / "summary.json").read_text()) for f in (a, b))
    assert set(sa) == set(sb)
    differ = {k for k in sa if sa[k] != sb[k]}
    assert differ <= ALLOWED_TO_DIFFER, differ
    strip = lambda s: json.dumps({k: v for k, v in s.items() if k not in ALLOWED_TO_DIFFER}, sort_keys=True)  # noqa: E731
    assert strip(sa) == strip(sb)


# --------------------------------------------------------------------- EDF+ and CSV

def test_edf_export_round_trip(ecg_runs, analysis):
    folder = ecg_runs[0]
    rec, _, _ = analysis
    events = anomalies(folder)
    raw = mne.io.read_raw_edf(folder / "recording.edf", preload=True, verbose="error")
    assert raw.ch_names == ["MLII", "V1"] and raw.info["sfreq"] == 360.0
    assert raw.n_times == 60 * 360
    ann = raw.annotations[raw.annotations.description == "spikewatch anomaly"]
    assert len(ann) == len(events) >= 1
    tol = 1 / 360
    np.testing.assert_allclose(ann.onset, [float(e["onset"]) for e in events], atol=tol)
    np.testing.assert_allclose(ann.duration, [float(e["duration"]) for e in events], atol=tol)
    # the signal is the recording's, within 16-bit quantisation of each channel's range
    orig = rec.get_data(stop=60.0, picks=["MLII", "V1"])
    step = np.ptp(orig, axis=1) / 65534
    assert np.all(np.abs(raw.get_data() - orig).max(axis=1) <= 1.01 * step + 1e-12)
    head = (folder / "recording.edf").read_bytes()[:256]
    assert head[8:88].split() == [b"X", b"X", b"X", b"X"]  # no patient field
    assert head[88:168].split()[:2] == [b"Startdate", b"X"]  # no date (meas_date: drop)


def test_annotations_csv_read_by_mne(ecg_runs):
    folder = ecg_runs[0]
    events = read_tsv(folder / "events.tsv")
    ann = mne.read_annotations(folder / "annotations.csv")
    assert list(ann.description) == [f"spikewatch {e['trial_type']}" for e in events]
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    absolute = (ann.orig_time - epoch).total_seconds() + ann.onset  # no date: seconds from the start
    np.testing.assert_allclose(absolute, [float(e["onset"]) for e in events], atol=1e-4)
    np.testing.assert_allclose(ann.duration, [float(e["duration"]) for e in events], atol=1e-6)
    assert [tuple(c) for c in ann.ch_names] == [tuple(e["channels"].split(",")) for e in events]
    num = lambda v: v if v == "n/a" else float(v)  # noqa: E731  (signal_quality spans have no score)
    assert [num(x["score"]) for x in ann.extras] == [num(e["score"]) for e in events]


def test_edf_export_non_integer_sfreq_and_no_html(data_dir, tmp_path):
    """Bonn S001 at 173.61 Hz through the CLI with --no-html: EDF+ keeps the rate and the samples."""
    r = run_cli("analyze", data_dir / "eeg-bonn" / "E_S" / "S001.txt", "--sfreq", 173.61, "--no-html",
                "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    folder = tmp_path / "S001"
    assert not (folder / "report.html").exists()
    s = json.loads((folder / "summary.json").read_text())
    assert "report.html" not in s["files"] and "html" not in s["report_timing_s"]
    raw = mne.io.read_raw_edf(folder / "recording.edf", verbose="error")
    assert abs(raw.info["sfreq"] - 173.61) < 1e-3
    assert raw.n_times >= 4097
    orig = np.loadtxt(data_dir / "eeg-bonn" / "E_S" / "S001.txt") * 1e-6
    got = raw.get_data()[0, :4097]
    assert np.abs(got - orig).max() <= 1.01 * np.ptp(orig) / 65534


# ---------------------------------------------------------------------- report.html

def _images(text: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/(?:png|webp);base64,([^"]+)"', text)]


def test_report_html_content(ecg_runs, analysis, cfg_file, tmp_path):
    from PIL import Image

    folder = ecg_runs[0]
    text = (folder / "report.html").read_text(encoding="utf-8")
    n_events = len(anomalies(folder))
    assert "<title>spikewatch report: 106</title>" in text
    assert not re.search(r"Created on \d{4}-\d\d-\d\d", text)  # no time stamp: deterministic page
    for title in ("Recording and provenance", "Anomaly score over time", "Flagged events", "Network activity",
                  "STDP weights: start, end, change", "STDP weight change over time"):
        assert f">{title}</a>" in text, title
    shown = min(n_events, load_config("ecg").report.max_event_sections)  # the highest-scoring ones
    assert n_events > 0 and len(re.findall(r">Event \d+: ", text)) == shown
    assert "re-encoded from the analysis start" in text  # the first event's warm-up reaches the start
    imgs = _images(text)[1:]  # after MNE's logo: overview, one per event, raster, weights, weight change
    assert len(imgs) == 1 + shown + 3
    for data in imgs:
        with Image.open(io.BytesIO(data)) as im:
            assert im.format in ("PNG", "WEBP") and 300 <= im.size[0] <= 850 and im.size[1] > 150
    # configurable number of event sections; EDF export off
    rec, _, result = analysis
    cfg1 = load_config(cfg_file, report__max_event_sections=1, report__edf_export=False)
    f1 = write_outputs(result, rec, cfg1, tmp_path)
    text1 = (f1 / "report.html").read_text(encoding="utf-8")
    assert len(re.findall(r">Event \d+: ", text1)) == 1
    best = max(result.events, key=lambda e: e.score)
    what = "score" if cfg1.detection.threshold_on == "score" else "z"
    assert f">Event 1: {best.onset:.2f} s, {what} = {best.score:.2f}<" in text1
    assert not (f1 / "recording.edf").exists()


def test_event_spikes_are_the_networks_input(analysis):
    """Re-encoded spikes equal the analysis' input events when the warm-up reaches the start,
    and stay close when they start from a 10 s warm-up."""
    from spikewatch.analysis import ACTIVITY_BIN_S

    rec, cfg, result = analysis
    bins = int(round(ACTIVITY_BIN_S * result.sfreq))
    for (t0, t1), exact_expected in (((2.0, 9.0), True), ((30.0, 40.0), False)):
        times, y, up, down, level, exact = _event_signal(result, rec, cfg, t0, t1, [0, 1])
        assert exact is exact_expected
        assert np.all(np.abs(y - level) <= result.delta[:, None] + 1e-12)  # send-on-delta bound
        i0 = int(round(t0 * result.sfreq))
        b0 = -(-i0 // bins)
        n = (len(times) - (b0 * bins - i0)) // bins
        counts = (up + down)[:, b0 * bins - i0:][:, : n * bins].reshape(2, n, bins).sum(axis=2)
        ref = result.input_activity[:, b0:b0 + n]
        if exact:
            np.testing.assert_array_equal(counts, ref)
        else:
            assert abs(counts.sum() - ref.sum()) <= 0.05 * ref.sum()


# -------------------------------------------------------------------------- privacy

def header_phi(path: Path) -> list[str]:
    """Identifying strings of an EDF/BDF header, found here independently of spikewatch.privacy."""
    head = path.read_bytes()[:168]
    tokens = [t for t in (head[8:88] + b" " + head[88:168]).decode("latin-1").split()
              if len(t) > 2 and t not in ("Startdate",)]
    info = mne.io.read_raw(path, verbose="error").info
    subj = info["subject_info"]
    tokens.append(subj["birthday"].isoformat())
    tokens.append(info["meas_date"].date().isoformat())
    return tokens


def grep_outputs(folder: Path, strings: list[str]) -> dict[str, list[str]]:
    """Which strings occur (case-insensitive) in which output files."""
    hits: dict[str, list[str]] = {}
    for f in sorted(folder.rglob("*")):
        data = f.read_bytes().lower() if f.is_file() else b""
        for s in strings:
            if s.lower().encode("latin-1") in data:
                hits.setdefault(f.name, []).append(s)
    return hits


@pytest.mark.parametrize("name", PHI_FILES)
def test_patient_fields_never_written(data_dir, tmp_path, name):
    path = data_dir / "eeg-mne-testing" / name
    strings = header_phi(path)
    # the files really carry a patient name, a birth date, equipment and a date
    expected = {"chtypes_edf.edf": {"No_Name", "25-JUN-1985", "1985-06-25", "NKC-EEG-1200A_V01.00", "2015-11-19"},
                "multiple_annotation_chans.bdf": {"OPSA614", "01-JAN-2000", "OpenBCI", "COsleep", "2019-12-15"}}
    assert expected[name] <= set(strings), strings
    r = run_cli("analyze", path, "--modality", "eeg", "--stop", 20, "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    folder = tmp_path / Path(name).stem
    written = {p.name for p in folder.iterdir()}
    assert {"report.html", "recording.edf", "summary.json", "annotations.csv", "events.tsv"} <= written
    assert grep_outputs(folder, strings) == {}
    head = (folder / "recording.edf").read_bytes()[:256]
    assert head[8:88].split() == [b"X", b"X", b"X", b"X"] and head[88:168].split()[:2] == [b"Startdate", b"X"]
    s = json.loads((folder / "summary.json").read_text())
    assert s["patient"] is None and s["meas_date"] is None


def test_include_phi_writes_them_where_expected(data_dir, tmp_path):
    path = data_dir / "eeg-mne-testing" / "chtypes_edf.edf"
    rec, cfg = resolve_job(path, None, io__modality="eeg", report__include_phi=True, report__html=False)
    folder = run_job(rec, cfg, tmp_path).folder
    head = (folder / "recording.edf").read_bytes()[:256]
    assert head[8:88].split() == [b"0", b"X", b"25-JUN-1985", b"No_Name"]  # code, sex, birth date, name
    assert head[88:168].split()[:2] == [b"Startdate", b"19-NOV-2015"]
    assert head[168:184] == b"19.11.1519.33.09"
    s = json.loads((folder / "summary.json").read_text())
    assert s["patient"]["subject_info"]["birthday"] == "1985-06-25"
    assert s["meas_date"] == "2015-11-19T19:33:09+00:00" and s["privacy"]["include_phi"] is True
    # the recording's own free-text annotations come along only now
    raw = mne.io.read_raw_edf(folder / "recording.edf", verbose="error")
    assert "starts turning head" in raw.annotations.description


def test_meas_date_shift(data_dir, tmp_path):
    path = data_dir / "eeg-mne-testing" / "chtypes_edf.edf"
    rec, cfg = resolve_job(path, None, io__modality="eeg", report__meas_date="shift", report__html=False)
    folder = run_job(rec, cfg, tmp_path).folder
    s = json.loads((folder / "summary.json").read_text())
    assert s["meas_date"] == "2000-01-01T19:33:09+00:00"  # day moved, time of day kept
    head = (folder / "recording.edf").read_bytes()[:256]
    assert head[88:168].split()[:2] == [b"Startdate", b"01-JAN-2000"] and head[168:184] == b"01.01.0019.33.09"
    assert grep_outputs(folder, header_phi(path)) == {}
    ann = mne.read_annotations(folder / "annotations.csv") if s["n_events"] else None
    assert ann is None or ann.orig_time.date() == dt.date(2000, 1, 1)


def test_privacy_guard_blocks_a_leak(data_dir, tmp_path, analysis, monkeypatch):
    rec = read_recording(data_dir / "eeg-mne-testing" / "chtypes_edf.edf")
    forbidden = phi_fields(rec)
    assert {"No_Name", "1985-06-25", "25-JUN-1985", "2015-11-19"} <= set(forbidden)
    (tmp_path / "ok.txt").write_text("spikewatch anomaly 2000-01-01 X X X X")
    check_folder(tmp_path, forbidden)
    (tmp_path / "leak.txt").write_text("patient: NO_NAME")
    with pytest.raises(PrivacyError) as err:
        check_folder(tmp_path, forbidden)
    assert "leak.txt" in str(err.value) and "patient name" in str(err.value) and "NO_NAME" not in str(err.value)
    # inside write_outputs: a code path that leaked would publish nothing
    import spikewatch.report as report

    rec_e, cfg_e = resolve_job(data_dir / "eeg-mne-testing" / "chtypes_edf.edf", None, io__modality="eeg",
                               report__html=False)
    result = analyze(rec_e, cfg_e)
    monkeypatch.setattr(report, "patient_block", lambda info, cfg: {"name": "No_Name"})
    out = tmp_path / "out"
    with pytest.raises(PrivacyError):
        write_outputs(result, rec_e, cfg_e, out)
    assert list(out.iterdir()) == []


# -------------------------------------------------------------- ids, paths, atomicity

def test_hostile_ids_stay_inside_out(analysis, data_dir, tmp_path):
    rec, _, result = analysis
    cfg = load_config(CONFIG_DIR / "ecg.yaml", report__html=False, report__edf_export=False)
    out = tmp_path / "out"
    result.record_id, saved = "../../escape/..\\evil id", result.record_id
    try:
        folder = write_outputs(result, rec, cfg, out)
    finally:
        result.record_id = saved
    assert folder.parent == out.resolve() and re.fullmatch(r"[A-Za-z0-9._-]+", folder.name)
    assert not folder.name.startswith(".")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert json.loads((folder / "summary.json").read_text())["recording_id"] == folder.name
    # a symlink where the report would go is refused; its target is untouched
    victim = tmp_path / "victim"
    victim.mkdir()
    (out / "106").symlink_to(victim, target_is_directory=True)
    with pytest.raises(SpikewatchError, match="symlink"):
        write_outputs(result, rec, cfg, out)
    assert list(victim.iterdir()) == []
    # a file name made to look like an option / a hidden path / a shell command
    link = tmp_path / ".-rf; $(touch pwned) ..txt"
    link.symlink_to(data_dir / "eeg-bonn" / "E_S" / "S001.txt")
    rec2, cfg2 = resolve_job(link, None, io__sfreq=173.61, report__html=False)
    job = run_job(rec2, cfg2, out)
    assert job.folder.parent == out.resolve() and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", job.folder.name)
    assert not (tmp_path / "pwned").exists()


def test_failed_report_leaves_previous_report_intact(analysis, tmp_path, monkeypatch):
    import spikewatch.report_html as report_html

    rec, cfg, result = analysis
    out = tmp_path / "out"
    folder = write_outputs(result, rec, load_config(CONFIG_DIR / "ecg.yaml", report__html=False), out)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(report_html, "build_html", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_outputs(result, rec, cfg, out)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert sorted(p.name for p in out.iterdir()) == ["106"]  # no half-written folder left
