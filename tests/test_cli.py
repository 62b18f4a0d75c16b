"""The CLI on real recordings: info, analyze (ECG and EEG), determinism, errors."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from spikewatch.cli import main


def run_cli(*args):
    """Run the console entry point in a subprocess (real exit code, real stderr)."""
    return subprocess.run([sys.executable, "-m", "spikewatch", *map(str, args)],
                          capture_output=True, text=True, timeout=600)


def test_version():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("spikewatch ")


def test_info_mitdb_106(mitdb):
    r = run_cli("info", mitdb / "106")
    assert r.returncode == 0, r.stderr
    assert "360 Hz" in r.stdout and "650000 samples" in r.stdout
    assert "MLII" in r.stdout and "V1" in r.stdout
    assert "V: 520" in r.stdout and "N: 1507" in r.stdout


def test_info_edf_plus_and_bonn(data_dir):
    r = run_cli("info", data_dir / "eeg-mne-testing" / "test_edf_overlapping_annotations.edf")
    assert r.returncode == 0, r.stderr
    assert "128 Hz" in r.stdout and "64:" in r.stdout and "annotations" in r.stdout
    r = run_cli("info", data_dir / "eeg-bonn" / "E_S" / "S001.txt", "--sfreq", "173.61")
    assert r.returncode == 0, r.stderr
    assert "4097 samples" in r.stdout and "eeg" in r.stdout


def test_corrupted_file_exits_2_with_one_line(mitdb, tmp_path):
    for ext in ("hea", "dat", "atr"):
        shutil.copy(mitdb / f"106.{ext}", tmp_path / f"106.{ext}")
    with open(tmp_path / "106.dat", "r+b") as f:
        f.truncate(1000)
    r = run_cli("info", tmp_path / "106")
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "106" in lines[0] and "Traceback" not in r.stderr
    r = run_cli("analyze", tmp_path / "106", "--out", tmp_path / "out")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert not (tmp_path / "out" / "106").exists()


def test_missing_file_and_bad_option(tmp_path):
    r = run_cli("info", tmp_path / "nope.edf")
    assert r.returncode == 2 and "nope.edf" in r.stderr
    r = run_cli("analyze", tmp_path / "nope.edf", "--stat", "3")
    assert r.returncode == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("stdp:\n  enabeld: false\n")
    assert main(["info", str(tmp_path / "x.edf"), "--config", str(bad)]) == 2


@pytest.fixture(scope="module")
def ecg_report(mitdb, tmp_path_factory):
    out = tmp_path_factory.mktemp("ecg")
    r = run_cli("analyze", mitdb / "106", "--stop", 60, "--out", out)
    assert r.returncode == 0, r.stderr
    return out / "106"


def test_analyze_ecg_writes_report(ecg_report, mitdb):
    import wfdb

    for name in ("events.tsv", "events.json", "beats.tsv", "summary.json"):
        assert (ecg_report / name).is_file(), name
    header = (ecg_report / "events.tsv").read_text().splitlines()[0].split("\t")
    assert header == ["onset", "duration", "trial_type", "score", "channels"]
    beats = np.genfromtxt(ecg_report / "beats.tsv", skip_header=1, ndmin=2)  # n/a (bad signal) -> nan
    ann = wfdb.rdann(str(mitdb / "106"), "atr", sampto=60 * 360)
    n_ref = sum(s in "NLRejAaJSVEF/fQ" for s in ann.symbol)
    assert abs(len(beats) - n_ref) <= 2, (len(beats), n_ref)
    summ = json.loads((ecg_report / "summary.json").read_text())
    assert summ["network"]["stdp"]["mean_abs_dw"] > 0  # weights measurably change
    assert summ["input"]["sha256"] and len(summ["config_sha256"]) == 64
    assert summ["modality"] == "ecg" and summ["channels"] == ["MLII", "V1"]
    assert summ["versions"]["nengo"] == "4.1.0"


def test_analyze_same_seed_identical_events(ecg_report, mitdb, tmp_path):
    r = run_cli("analyze", mitdb / "106", "--stop", 60, "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    for name in ("events.tsv", "beats.tsv"):
        assert (tmp_path / "106" / name).read_bytes() == (ecg_report / name).read_bytes()


def test_no_learning_freezes_weights(mitdb, tmp_path):
    r = run_cli("analyze", mitdb / "106", "--stop", 20, "--no-learning", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    summ = json.loads((tmp_path / "106" / "summary.json").read_text())
    assert summ["network"]["stdp"]["enabled"] is False
    assert summ["network"]["stdp"]["mean_abs_dw"] == 0.0


@pytest.mark.parametrize("rel, extra", [
    ("eeg-bonn/E_S/S001.txt", ["--sfreq", "173.61"]),
    ("eeg-delhi/ictal/ictal1.mat", ["--sfreq", "200"]),
    ("eeg-michigan-seizure", ["--sfreq", "100", "--stop", "40"]),
])
def test_analyze_eeg(data_dir, tmp_path, rel, extra):
    r = run_cli("analyze", data_dir / rel, "--out", tmp_path, *extra)
    assert r.returncode == 0, r.stderr
    folder = next(p for p in tmp_path.iterdir() if p.is_dir())
    summ = json.loads((folder / "summary.json").read_text())
    assert summ["modality"] == "eeg"
    assert summ["network"]["stdp"]["mean_abs_dw"] > 0
    assert not (folder / "beats.tsv").exists()
    assert all(v > 0 for v in summ["spikes_per_channel"].values())
