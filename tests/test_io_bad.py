"""Broken input must give a one-line RecordingError naming the file, never a traceback from mne/wfdb/scipy.

Broken files are made in tmp_path from copies of the real recordings.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import mne
import numpy as np
import pytest
import scipy.io

from spikewatch.errors import RecordingError, SpikewatchError
from spikewatch.io import read_recording


def check_error(exc_info: pytest.ExceptionInfo, name: str) -> str:
    """The error is a SpikewatchError whose message is one line naming ``name``."""
    err = exc_info.value
    assert isinstance(err, RecordingError) and isinstance(err, SpikewatchError)
    msg = str(err)
    assert "\n" not in msg and "\r" not in msg
    assert name in msg, msg
    assert err.reason and msg.endswith(err.reason)
    return msg


def fails(path: Path, name: str | None = None, match: str | None = None, **kwargs) -> str:
    with pytest.raises(RecordingError) as info:
        read_recording(path, **kwargs)
    msg = check_error(info, name or Path(path).name)
    if match is not None:
        assert match in msg, msg
    return msg


# ---------------------------------------------------------------- WFDB


@pytest.fixture
def rec_dir(mitdb: Path, tmp_path: Path) -> Path:
    """A private copy of mitdb record 106."""
    for ext in (".hea", ".dat", ".atr"):
        shutil.copy(mitdb / f"106{ext}", tmp_path / f"106{ext}")
        os.chmod(tmp_path / f"106{ext}", 0o644)
    return tmp_path


def patch_record_line(rec_dir: Path, new: str) -> Path:
    hea = rec_dir / "106.hea"
    hea.write_text(hea.read_text().replace("106 2 360 650000", new, 1))
    return hea


def test_copy_is_readable(rec_dir):
    assert read_recording(rec_dir / "106").n_times == 650000


def test_wfdb_truncated_dat(rec_dir):
    dat = rec_dir / "106.dat"
    with dat.open("r+b") as fh:
        fh.truncate(1_000_000)
    fails(rec_dir / "106", "106.dat", "truncated: header declares 650000 samples")


def test_wfdb_missing_dat(rec_dir):
    (rec_dir / "106.dat").unlink()
    fails(rec_dir / "106.hea", "106.hea", "signal file '106.dat' named in the header is missing")


def test_wfdb_header_claims_huge_length(rec_dir):
    patch_record_line(rec_dir, "106 2 360 900000000000")  # would be terabytes if allocated
    fails(rec_dir / "106", "106.dat", "truncated")


@pytest.mark.parametrize("fs", ["0", "-360", "1e9", "0.5", "nan", "inf", "abc"])
def test_wfdb_bad_sampling_rate(rec_dir, fs):
    patch_record_line(rec_dir, f"106 2 {fs} 650000")
    fails(rec_dir / "106", "106.hea", "sampling rate")


def test_wfdb_header_not_utf8(rec_dir):
    hea = rec_dir / "106.hea"
    hea.write_bytes(hea.read_bytes().replace(b"# Inderal", b"# Ind\xe9ral"))
    fails(hea, "106.hea", "not UTF-8")


def test_wfdb_header_random_bytes(rec_dir):
    (rec_dir / "106.hea").write_bytes(np.random.default_rng(0).bytes(300))
    fails(rec_dir / "106.hea", "106.hea")


def test_wfdb_header_garbage_text(rec_dir):
    (rec_dir / "106.hea").write_text("this is not a header\n")
    fails(rec_dir / "106.hea", "106.hea", "record line")


def test_wfdb_header_empty(rec_dir):
    (rec_dir / "106.hea").write_bytes(b"")
    fails(rec_dir / "106", "106.hea", "empty file")


def test_wfdb_multisegment_unsupported(rec_dir):
    patch_record_line(rec_dir, "106/2 2 360 650000")
    fails(rec_dir / "106", "106.hea", "multi-segment")


def test_wfdb_corrupt_annotations(rec_dir):
    (rec_dir / "106.atr").write_bytes(np.random.default_rng(1).bytes(5000))
    fails(rec_dir / "106", "106.atr")


def test_wfdb_unknown_channel(rec_dir):
    msg = fails(rec_dir / "106", "106.hea", channels=["II"])
    assert "available: MLII, V1" in msg


def test_wfdb_no_usable_channel_for_forced_modality(rec_dir):
    fails(rec_dir / "106", "106.hea", "no usable eeg channel", modality="eeg")


def test_wfdb_ch_names_wrong_length(rec_dir):
    fails(rec_dir / "106", "106.hea", "ch_names has 1 names", ch_names=["a"])


# ---------------------------------------------------------------- EDF / BDF


@pytest.fixture
def edf(data_dir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "eeg.edf"
    shutil.copy(data_dir / "eeg-mne-testing" / "test_edf_overlapping_annotations.edf", dst)
    os.chmod(dst, 0o644)
    return dst


def patch_bytes(path: Path, offset: int, new: bytes) -> None:
    with path.open("r+b") as fh:
        fh.seek(offset)
        fh.write(new)


def test_edf_copy_is_readable(edf):
    assert len(read_recording(edf).ch_names) == 64


def test_edf_truncated(edf):
    with edf.open("r+b") as fh:
        fh.truncate(edf.stat().st_size // 2)
    fails(edf, "eeg.edf", "truncated: header declares")


def test_edf_header_only(edf):
    with edf.open("r+b") as fh:
        fh.truncate(100)
    fails(edf, "eeg.edf", "truncated")


def test_edf_header_n_records_patched(edf):
    patch_bytes(edf, 236, b"99999999")
    fails(edf, "eeg.edf", "header declares 99999999 data records")


def test_edf_header_field_garbage(edf):
    patch_bytes(edf, 252, b"x#!?")  # number of signals
    fails(edf, "eeg.edf", "corrupt EDF/BDF header")


def test_edf_absurd_record_duration(edf):
    patch_bytes(edf, 244, b"0.000001")  # 160 samples per 1 µs record
    fails(edf, "eeg.edf", "sampling rate")


def test_edf_random_bytes(tmp_path):
    path = tmp_path / "noise.edf"
    path.write_bytes(np.random.default_rng(2).bytes(20_000))
    fails(path, "noise.edf", "not a valid EDF file")


def test_edf_annotation_only(data_dir):
    name = "SC4001EC-Hypnogram.edf"
    fails(data_dir / "eeg-mne-testing" / name, name, "annotation-only")


def test_bdf_truncated(data_dir, tmp_path):
    path = tmp_path / "cut.bdf"
    data = (data_dir / "eeg-mne-testing" / "multiple_annotation_chans.bdf").read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    fails(path, "cut.bdf", "truncated")


def test_bdf_named_edf(data_dir, tmp_path):
    path = tmp_path / "wrong.edf"
    shutil.copy(data_dir / "eeg-mne-testing" / "multiple_annotation_chans.bdf", path)
    fails(path, "wrong.edf", "bad version field")


def test_fif_random_bytes(tmp_path):
    path = tmp_path / "noise_raw.fif"
    path.write_bytes(np.random.default_rng(3).bytes(4096))
    fails(path, "noise_raw.fif", "cannot read FIF")


# ---------------------------------------------------------------- generic


@pytest.mark.parametrize("name", ["empty.edf", "empty.txt", "empty.mat", "empty.bdf", "empty.fif"])
def test_empty_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"")
    fails(path, name, "empty file", sfreq=100)


def test_missing_file(tmp_path):
    fails(tmp_path / "nothing.edf", "nothing.edf", "file not found")


def test_missing_record_name(tmp_path):
    fails(tmp_path / "999", "999", "file not found")


def test_unknown_extension(tmp_path):
    path = tmp_path / "data.xyz"
    path.write_bytes(b"1 2 3\n")
    msg = fails(path, "data.xyz", "unsupported file type '.xyz'")
    assert "supported: .edf, .bdf" in msg and "WFDB records (.hea or record name)" in msg


def test_no_extension(tmp_path):
    path = tmp_path / "blob"
    path.write_bytes(b"1 2 3\n")
    fails(path, "blob", "unsupported file type")


@pytest.mark.parametrize("content", [None, "README"])
def test_directory_without_recording(tmp_path, content):
    folder = tmp_path / "folder"
    folder.mkdir()
    if content:
        (folder / content).write_text("just notes\n")
    fails(folder, "folder", "is a directory", sfreq=100)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file(data_dir, tmp_path):
    path = tmp_path / "locked.txt"
    shutil.copy(data_dir / "eeg-bonn" / "A_Z" / "Z001.txt", path)
    path.chmod(0)
    try:
        fails(path, "locked.txt", "permission denied", sfreq=173.61)
    finally:
        path.chmod(0o644)


def test_unreadable_file_reported(data_dir, tmp_path, monkeypatch):
    """Same check without relying on file modes (tests may run as root)."""
    from spikewatch.io import _checks

    path = tmp_path / "locked.edf"
    shutil.copy(data_dir / "eeg-mne-testing" / "subsecond_starttime.edf", path)
    monkeypatch.setattr(_checks.os, "access", lambda p, mode: Path(p) != path)
    fails(path, "locked.edf", "permission denied")


# ---------------------------------------------------------------- segments


@pytest.fixture
def bonn_copy(data_dir: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "seg.txt"
    shutil.copy(data_dir / "eeg-bonn" / "A_Z" / "Z001.txt", dst)
    os.chmod(dst, 0o644)
    return dst


def test_text_without_sfreq(bonn_copy):
    fails(bonn_copy, "seg.txt", "sampling rate unknown: pass sfreq (CLI --sfreq / config io.sfreq)")


@pytest.mark.parametrize("sfreq", [0, -173.61, float("nan"), float("inf"), 1e6, 0.5, "fast"])
def test_text_bad_sfreq(bonn_copy, sfreq):
    fails(bonn_copy, "seg.txt", "invalid sampling rate", sfreq=sfreq)


@pytest.mark.parametrize("token", ["nan", "inf", "-Inf"])
def test_text_non_finite(bonn_copy, token):
    values = bonn_copy.read_text().split()
    values[100] = token
    bonn_copy.write_text("\n".join(values))
    fails(bonn_copy, "seg.txt", "non-finite samples", sfreq=173.61)


def test_text_non_numeric(bonn_copy):
    values = bonn_copy.read_text().split()
    values[7] = "12a"
    bonn_copy.write_text("\n".join(values))
    fails(bonn_copy, "seg.txt", "non-numeric value '12a' (value 8)", sfreq=173.61)


def test_text_random_bytes(tmp_path):
    path = tmp_path / "noise.txt"
    path.write_bytes(np.random.default_rng(4).bytes(2000))
    fails(path, "noise.txt", sfreq=100)


def test_mat_random_bytes(tmp_path):
    path = tmp_path / "noise.mat"
    path.write_bytes(np.random.default_rng(5).bytes(2000))
    fails(path, "noise.mat", "cannot read MATLAB file", sfreq=200)


def test_mat_without_numeric_array(tmp_path):
    path = tmp_path / "text.mat"
    scipy.io.savemat(path, {"label": "ictal"})
    fails(path, "text.mat", "no numeric 1-D/2-D array", sfreq=200)


def test_mat_unknown_variable(data_dir, tmp_path):
    path = tmp_path / "one.mat"
    shutil.copy(data_dir / "eeg-delhi" / "ictal" / "ictal1.mat", path)
    fails(path, "one.mat", "numeric variables: ictal", sfreq=200, mat_variable="eeg")


def test_channel_folder_with_odd_length(data_dir, tmp_path):
    folder = tmp_path / "chans"
    folder.mkdir()
    for i in (1, 2, 3):
        shutil.copy(data_dir / "eeg-michigan-seizure" / f"ch0{i}.inp", folder / f"ch0{i}.inp")
    odd = folder / "ch02.inp"
    odd.write_text("\n".join(odd.read_text().split()[:-5]))
    fails(folder, "ch02.inp", "has 49995 samples", sfreq=100)


def test_channel_folder_readme_ignored(data_dir, tmp_path):
    folder = tmp_path / "chans"
    folder.mkdir()
    for i in (1, 2):
        shutil.copy(data_dir / "eeg-michigan-seizure" / f"ch0{i}.inp", folder / f"ch0{i}.inp")
    shutil.copy(data_dir / "eeg-michigan-seizure" / "EEG-README", folder / "EEG-README")
    (folder / "notes.txt").write_text("recorded on a Tuesday\n")
    assert read_recording(folder, sfreq=100).ch_names == ["ch01", "ch02"]


# ---------------------------------------------------------------- NaN in lazily read data


@pytest.fixture
def fif_with_nan(data_dir: Path, tmp_path: Path) -> Path:
    values = np.array((data_dir / "eeg-bonn" / "A_Z" / "Z001.txt").read_text().split(), dtype=float) * 1e-6
    values[3000] = np.nan
    raw = mne.io.RawArray(values[None, :], mne.create_info(["Fz"], 173.61, "eeg"), verbose="error")
    path = tmp_path / "nan_raw.fif"
    raw.save(path, verbose="error")
    return path


def test_nan_found_when_preloading(fif_with_nan):
    fails(fif_with_nan, "nan_raw.fif", "non-finite samples", preload=True)


def test_nan_found_in_lazy_reads(fif_with_nan):
    rec = read_recording(fif_with_nan)  # opening does not read samples
    assert rec.get_data(0, 10).shape == (1, 1736)
    with pytest.raises(RecordingError) as info:
        rec.get_data()
    check_error(info, "nan_raw.fif")
    assert "channel 'Fz'" in str(info.value)
    with pytest.raises(RecordingError) as info:
        for _ in rec.iter_chunks(5.0):
            pass
    check_error(info, "nan_raw.fif")


def test_invalid_arguments_are_value_errors(data_dir):
    with pytest.raises(ValueError):
        read_recording(data_dir / "mitdb" / "106", modality="emg")
    with pytest.raises(ValueError):
        read_recording(data_dir / "eeg-bonn" / "A_Z" / "Z001.txt", sfreq=173.61, unit="kV")
