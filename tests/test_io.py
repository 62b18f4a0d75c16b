"""Reading every real recording in the data folder through spikewatch.io."""

from __future__ import annotations

import collections
import pickle
import re
import shutil
from pathlib import Path

import mne
import numpy as np
import pytest
import scipy.io
import wfdb

from spikewatch.errors import RecordingError
from spikewatch.io import SUPPORTED_EXTENSIONS, Recording, classify_channel, list_recordings, read_recording
from spikewatch.io import wfdb_reader

# Test-side knowledge from the data README: rates of the headerless segments,
# and the modality of each folder.
SFREQ_BY_FOLDER = {"eeg-bonn": 173.61, "eeg-delhi": 200.0, "eeg-michigan-seizure": 100.0}
ECG_FOLDERS = {"mitdb", "svdb", "cudb", "ptbdb", "challenge-2015"}
KNOWN_TYPES = {"ecg", "eeg", "eog", "emg", "stim", "misc"}


def _top_folder(data_dir: Path, path: Path) -> str:
    return path.relative_to(data_dir).parts[0]


def _sfreq_for(data_dir: Path, path: Path) -> float | None:
    return SFREQ_BY_FOLDER.get(_top_folder(data_dir, path))


@pytest.fixture(scope="module")
def recordings(data_dir: Path) -> list[Path]:
    return list_recordings(data_dir)


@pytest.fixture(scope="module")
def rec106(mitdb: Path) -> Recording:
    return read_recording(mitdb / "106")


@pytest.fixture(scope="module")
def edf_path(data_dir: Path) -> Path:
    return data_dir / "eeg-mne-testing" / "test_edf_overlapping_annotations.edf"


# ---------------------------------------------------------------- listing


def test_list_recordings_one_entry_per_recording(data_dir, recordings):
    by_folder = collections.Counter(_top_folder(data_dir, p) for p in recordings)
    assert by_folder == {
        "mitdb": 32,
        "svdb": 1,
        "cudb": 1,
        "ptbdb": 1,
        "challenge-2015": 2,
        "eeg-bonn": 335,
        "eeg-delhi": 99,
        "eeg-michigan-seizure": 1,
        "eeg-mne-testing": 6,
    }
    assert len(set(recordings)) == len(recordings)
    assert data_dir / "eeg-michigan-seizure" in recordings  # folder of channel files
    names = {p.name for p in recordings}
    assert not names & {"README.md", "SHA256SUMS", "RECORDS", "beat_counts_aami.csv", "EEG-README"}
    assert "Datasets Information.txt" not in names  # prose, not numbers
    wfdb_paths = [p for p in recordings if _top_folder(data_dir, p) in ECG_FOLDERS]
    assert all(p.suffix == ".hea" for p in wfdb_paths)
    assert len([p for p in recordings if p.suffix == ".TXT"]) == 67  # Bonn set C


def test_supported_extensions_cover_formats():
    for ext in (".edf", ".bdf", ".gdf", ".fif", ".vhdr", ".set", ".hea", ".txt", ".inp", ".mat", ".csv"):
        assert ext in SUPPORTED_EXTENSIONS


# ---------------------------------------------------------------- whole walk


def test_every_recording_loads(data_dir, recordings):
    """Open every recording and read its first 10-second chunk (never whole records)."""
    failures = []
    for path in recordings:
        folder = _top_folder(data_dir, path)
        try:
            rec = read_recording(path, sfreq=_sfreq_for(data_dir, path))
        except RecordingError as exc:
            # the Sleep-EDF hypnogram holds annotations only: refusing it is correct
            if path.name == "SC4001EC-Hypnogram.edf" and "annotation-only" in str(exc):
                continue
            failures.append(f"{path}: {exc}")
            continue
        try:
            assert 1.0 <= rec.sfreq <= 100_000.0
            assert rec.n_times > 0 and rec.duration > 0
            assert re.fullmatch(r"[A-Za-z0-9._-]+", rec.record_id)
            assert set(rec.ch_types) <= KNOWN_TYPES
            assert rec.signal_picks, "no signal channel"
            assert rec.modality == ("ecg" if folder in ECG_FOLDERS else "eeg")
            start, chunk = next(rec.iter_chunks(10.0))
            assert start == 0
            assert chunk.shape == (len(rec.signal_picks), min(rec.n_times, round(10.0 * rec.sfreq)))
            assert chunk.dtype == np.float64 and np.isfinite(chunk).all()
            assert np.abs(chunk).max() < 0.1  # volts: far below 100 mV for ECG/scalp/intracranial EEG
            if len(rec.annotations):
                assert rec.annotations.onset.min() >= 0
                assert rec.annotations.onset.max() <= rec.duration
        except AssertionError as exc:
            failures.append(f"{path}: {exc}")
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------- WFDB


def test_mitdb_106_metadata(rec106, mitdb):
    assert rec106.format == "wfdb" and rec106.modality == "ecg"
    assert rec106.record_id == "106"
    assert rec106.path == mitdb / "106.hea"
    assert rec106.ch_names == ["MLII", "V1"]
    assert rec106.ch_types == ["ecg", "ecg"]
    assert rec106.signal_picks == ["MLII", "V1"]
    assert rec106.sfreq == 360.0
    assert rec106.n_times == 650000
    assert rec106.duration == pytest.approx(650000 / 360)
    assert not rec106.raw.preload  # lazy
    data = rec106.get_data(0, 10)
    assert data.shape == (2, 3600)
    assert np.abs(data).max() < 0.01  # volts (mV / 1000)
    assert np.abs(data).max() > 1e-4


def test_mitdb_106_annotations_match_atr(rec106, mitdb):
    ann = wfdb.rdann(str(mitdb / "106"), "atr")
    assert len(rec106.annotations) == len(ann.sample)
    counts = collections.Counter(rec106.annotations.description)
    assert counts["V"] == 520  # README table: V class
    assert counts["N"] == 1507
    rhythms = {d for d in counts if d.startswith("(")}
    assert rhythms == {"(B", "(N", "(T", "(VT"}  # README "rhythm labels in .atr"
    # MNE keeps onsets to the microsecond: the sample index is recovered exactly
    np.testing.assert_allclose(rec106.annotations.onset, ann.sample / 360.0, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.round(rec106.annotations.onset * 360).astype(int), ann.sample)
    assert np.all(rec106.annotations.duration == 0)
    assert len(rec106.raw.annotations) == len(ann.sample)


def test_wfdb_samples_in_volts_match_wfdb(rec106, mitdb):
    ref = wfdb.rdrecord(str(mitdb / "106"), sampfrom=1000, sampto=2000).p_signal.T * 1e-3
    np.testing.assert_allclose(rec106.get_data(1000 / 360, 2000 / 360), ref)


@pytest.mark.parametrize("suffix", ["", ".hea", ".dat", ".atr"])
def test_wfdb_record_path_forms(mitdb, suffix):
    rec = read_recording(Path(str(mitdb / "106") + suffix))
    assert rec.record_id == "106" and rec.format == "wfdb"
    assert rec.n_times == 650000 and len(rec.annotations) == 2098


def test_cudb_rhythm_and_episode_marks(data_dir):
    rec = read_recording(data_dir / "cudb" / "cu01")
    counts = collections.Counter(rec.annotations.description)
    assert counts == {"N": 203, "(VF": 1, "[": 1, "]": 1}
    vf = rec.annotations.onset[list(rec.annotations.description).index("(VF")]
    assert vf == pytest.approx(53541 / 250)


def test_svdb_duplicate_names_and_non_beats(data_dir):
    rec = read_recording(data_dir / "svdb" / "800.hea")
    assert rec.ch_names == ["ECG-0", "ECG-1"] and rec.ch_types == ["ecg", "ecg"]
    assert rec.sfreq == 128 and rec.n_times == 230400
    counts = collections.Counter(rec.annotations.description)
    assert (counts["N"], counts["S"], counts["V"], counts["F"]) == (1846, 30, 6, 1)
    assert (counts["~"], counts["|"]) == (28, 10)


def test_ptbdb_two_signal_files(data_dir):
    rec = read_recording(data_dir / "ptbdb" / "s0010_re")
    assert len(rec.ch_names) == 15 and rec.ch_names[-3:] == ["vx", "vy", "vz"]
    assert set(rec.ch_types) == {"ecg"}
    assert rec.sfreq == 1000 and rec.n_times == 38400
    ref = wfdb.rdrecord(str(data_dir / "ptbdb" / "s0010_re"), sampto=500).p_signal.T * 1e-3
    np.testing.assert_allclose(rec.get_data(0, 0.5, picks=rec.ch_names), ref)


def test_challenge_mat_signal_file_and_misc_channels(data_dir):
    rec = read_recording(data_dir / "challenge-2015" / "a103l.mat")  # WFDB, not a MATLAB segment
    assert rec.format == "wfdb" and rec.path.name == "a103l.hea"
    assert rec.ch_names == ["II", "V", "PLETH"]
    assert rec.ch_types == ["ecg", "ecg", "misc"]
    assert rec.signal_picks == ["II", "V"]
    assert rec.n_times == 82500 and rec.sfreq == 250
    assert rec.get_data(0, 1).shape == (2, 250)
    assert "Asystole" in rec.raw.info["description"]  # header comments stay in raw.info


def test_wfdb_invalid_samples_are_interpolated_consistently(data_dir):
    """v102s has a few samples stored as WFDB's invalid value; they must not leak as NaN."""
    rec = read_recording(data_dir / "challenge-2015" / "v102s")
    assert rec.ch_types == ["ecg", "ecg", "misc", "misc"]
    raw_sig = wfdb.rdrecord(str(data_dir / "challenge-2015" / "v102s")).p_signal
    assert np.isnan(raw_sig).any()
    full = rec.get_data(picks=rec.ch_names)
    assert np.isfinite(full).all()
    chunks = np.hstack([d for _, d in rec.iter_chunks(7.3, picks=rec.ch_names)])
    np.testing.assert_array_equal(chunks, full)
    i = int(np.flatnonzero(np.isnan(raw_sig[:, 0]))[0])
    assert min(full[0, i - 1], full[0, i + 1]) <= full[0, i] <= max(full[0, i - 1], full[0, i + 1])


def test_iter_chunks_equals_get_data_wfdb(rec106):
    full = rec106.get_data()
    parts = list(rec106.iter_chunks(60.0))
    assert [s for s, _ in parts] == list(range(0, 650000, 21600))
    np.testing.assert_array_equal(np.hstack([d for _, d in parts]), full)


def test_wfdb_chunked_reading_is_bounded(mitdb, monkeypatch):
    spans = []
    real = wfdb.rdrecord

    def spy(record_name, sampfrom=0, sampto=None, **kwargs):
        spans.append((sampfrom, sampto))
        return real(record_name, sampfrom=sampfrom, sampto=sampto, **kwargs)

    monkeypatch.setattr(wfdb_reader.wfdb, "rdrecord", spy)
    rec = read_recording(mitdb / "106")
    assert spans == []  # opening reads no samples
    chunk = 2 * 360
    for i, (start, data) in enumerate(rec.iter_chunks(2.0)):
        assert data.shape == (2, chunk)
        if i == 4:
            break
    assert len(spans) == 5
    assert all(stop - start <= chunk for start, stop in spans)
    assert spans[-1] == (4 * chunk, 5 * chunk)


def test_wfdb_preload_equals_lazy(mitdb, rec106):
    loaded = read_recording(mitdb / "106", preload=True)
    assert loaded.raw.preload
    np.testing.assert_array_equal(loaded.get_data(100, 110), rec106.get_data(100, 110))


def test_wfdb_channel_selection(mitdb):
    rec = read_recording(mitdb / "106", channels=["V1"])
    assert rec.ch_names == ["V1"]
    full = read_recording(mitdb / "106")
    np.testing.assert_array_equal(rec.get_data(0, 5), full.get_data(0, 5, picks="V1"))
    assert read_recording(mitdb / "106", channels=[1]).ch_names == ["V1"]


def test_recording_pickles(rec106):
    clone = pickle.loads(pickle.dumps(rec106))
    np.testing.assert_array_equal(clone.get_data(5, 6), rec106.get_data(5, 6))


# ---------------------------------------------------------------- EDF / BDF (MNE)


def test_edf_plus_overlapping_annotations(edf_path):
    rec = read_recording(edf_path)
    assert rec.format == "edf" and rec.modality == "eeg"
    assert len(rec.ch_names) == 64 and rec.sfreq == 128
    assert set(rec.ch_types) == {"eeg"}  # BCI2000 labels such as 'Fc5.' are 10-10 names
    assert len(rec.annotations) == 38
    assert set(rec.annotations.description) == {"T0", "T1", "T2"}
    assert rec.duration == pytest.approx(124.0)
    assert not rec.raw.preload


def test_iter_chunks_equals_get_data_edf(edf_path):
    rec = read_recording(edf_path)
    full = rec.get_data()
    np.testing.assert_array_equal(np.hstack([d for _, d in rec.iter_chunks(3.3)]), full)
    loaded = read_recording(edf_path, preload=True)
    np.testing.assert_allclose(loaded.get_data(), full)
    ref = mne.io.read_raw_edf(edf_path, preload=True, verbose="error").get_data()
    np.testing.assert_allclose(full, ref)


def test_bdf_plus_channel_types(data_dir):
    rec = read_recording(data_dir / "eeg-mne-testing" / "multiple_annotation_chans.bdf")
    assert rec.format == "bdf" and rec.modality == "eeg"
    assert rec.sfreq == 125 and len(rec.ch_names) == 19
    assert len(rec.annotations) == 10
    types = dict(zip(rec.ch_names, rec.ch_types))
    assert types["ECG"] == "ecg" and types["EOG"] == "eog" and types["EMG"] == "emg"
    assert types["Trigger"] == "stim" and types["acc1"] == "misc"
    assert set(rec.signal_picks) == {"A1", "A2", "C3", "C4", "F3", "Fz", "F4", "P3", "Pz", "P4", "O1", "O2"}


def test_nihon_kohden_edf_types_and_ecg_override(data_dir):
    path = data_dir / "eeg-mne-testing" / "chtypes_edf.edf"
    rec = read_recording(path)
    types = dict(zip(rec.ch_names, rec.ch_types))
    assert types["EEG Fp1-Ref"] == "eeg" and types["ECG ECG1"] == "ecg"
    assert types["POL DC01"] == "misc" and types["SaO2 X9"] == "misc"
    assert "high amp RDA F4, C4" in rec.annotations.description
    as_ecg = read_recording(path, modality="ecg")
    assert as_ecg.modality == "ecg" and as_ecg.signal_picks == ["ECG ECG1", "ECG ECG2"]


# ---------------------------------------------------------------- segments


def test_bonn_text_segment(data_dir):
    path = data_dir / "eeg-bonn" / "A_Z" / "Z001.txt"
    rec = read_recording(path, sfreq=173.61)
    assert rec.format == "text" and rec.modality == "eeg" and rec.record_id == "Z001"
    assert rec.n_times == 4097 and rec.ch_names == ["ch1"] and rec.ch_types == ["eeg"]
    values = np.array(path.read_text().split(), dtype=float)
    np.testing.assert_allclose(rec.get_data()[0], values * 1e-6)  # µV by default
    np.testing.assert_allclose(read_recording(path, sfreq=173.61, unit="mV").get_data()[0], values * 1e-3)
    assert read_recording(path, sfreq=173.61, modality="ecg").ch_types == ["ecg"]


def test_bonn_uppercase_extension(data_dir):
    rec = read_recording(data_dir / "eeg-bonn" / "C_N" / "N001.TXT", sfreq=173.61)
    assert rec.n_times == 4097


def test_delhi_mat_segment(data_dir):
    path = data_dir / "eeg-delhi" / "ictal" / "ictal1.mat"
    rec = read_recording(path, sfreq=200)
    assert rec.format == "mat" and rec.n_times == 1024 and len(rec.ch_names) == 1
    assert rec.duration == pytest.approx(5.12)
    np.testing.assert_allclose(rec.get_data()[0], scipy.io.loadmat(path)["ictal"][:, 0] * 1e-6)


def test_mat_with_several_arrays_needs_a_choice(data_dir, tmp_path):
    a = scipy.io.loadmat(data_dir / "eeg-delhi" / "ictal" / "ictal1.mat")["ictal"]
    b = scipy.io.loadmat(data_dir / "eeg-delhi" / "interictal" / "interictal1.mat")["interictal"]
    path = tmp_path / "two.mat"
    scipy.io.savemat(path, {"ictal": a, "interictal": b, "note": "two arrays"})
    with pytest.raises(RecordingError, match="several numeric variables .*ictal.*interictal.*mat_variable"):
        read_recording(path, sfreq=200)
    rec = read_recording(path, sfreq=200, mat_variable="interictal")
    np.testing.assert_allclose(rec.get_data()[0], b[:, 0] * 1e-6)
    both = tmp_path / "both.mat"
    scipy.io.savemat(both, {"x": np.hstack([a, b])})  # 1024 x 2: rows are time
    assert read_recording(both, sfreq=200).get_data().shape == (2, 1024)


def test_michigan_channel_folder(data_dir):
    folder = data_dir / "eeg-michigan-seizure"
    rec = read_recording(folder, sfreq=100)
    assert rec.format == "text-multi" and rec.record_id == "eeg-michigan-seizure"
    assert rec.ch_names == [f"ch{i:02d}" for i in range(1, 32)]
    assert rec.get_data().shape == (31, 50000)
    first = np.array((folder / "ch05.inp").read_text().split()[:100], dtype=float) * 1e-6
    np.testing.assert_allclose(rec.get_data(0, 1.0, picks="ch05")[0], first)


def test_michigan_renamed_channels_and_selection(data_dir):
    montage = ["Fp1", "Fp2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "SP1", "SP2", "F7", "F8",
               "T3", "T4", "T5", "T6", "Fz", "Cz", "Pz"] + [f"x{i}" for i in range(22, 32)]  # fmt: skip
    folder = data_dir / "eeg-michigan-seizure"
    rec = read_recording(folder, sfreq=100, ch_names=montage, channels=["T3", "T5", "x22"])
    assert rec.ch_names == ["T3", "T5", "x22"]
    assert rec.ch_types == ["eeg", "eeg", "eeg"]  # unknown names take the modality


def test_csv_table(data_dir, tmp_path):
    a = np.array((data_dir / "eeg-bonn" / "A_Z" / "Z001.txt").read_text().split(), dtype=float)
    b = np.array((data_dir / "eeg-bonn" / "E_S" / "S001.txt").read_text().split(), dtype=float)
    path = tmp_path / "pair.csv"
    path.write_text("Fz,Cz\n" + "\n".join(f"{x:g},{y:g}" for x, y in zip(a, b)) + "\n")
    rec = read_recording(path, sfreq=173.61)
    assert rec.format == "csv" and rec.ch_names == ["Fz", "Cz"] and rec.modality == "eeg"
    np.testing.assert_allclose(rec.get_data(), np.vstack([a, b]) * 1e-6)


def test_record_id_is_sanitised(data_dir, tmp_path):
    path = tmp_path / "my segment (1).txt"
    shutil.copy(data_dir / "eeg-bonn" / "A_Z" / "Z001.txt", path)
    assert read_recording(path, sfreq=173.61).record_id == "my_segment__1_"


def test_sfreq_ignored_for_formats_with_their_own_rate(mitdb):
    assert read_recording(mitdb / "106", sfreq=100).sfreq == 360


# ---------------------------------------------------------------- get_data details


def test_get_data_seconds_and_picks(rec106):
    full = rec106.get_data(0, 20)
    part = rec106.get_data(1.0, 2.5, picks=["V1"])
    np.testing.assert_array_equal(part, full[1:2, 360:900])
    assert rec106.get_data(rec106.duration - 1.0).shape == (2, 360)
    assert rec106.get_data(picks=[0]).shape == (1, 650000)
    with pytest.raises(RecordingError, match="unknown channel.*available: MLII, V1"):
        rec106.get_data(0, 1, picks=["II"])
    with pytest.raises(ValueError):
        rec106.get_data(5, 5)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("MLII", "ecg"), ("V1", "ecg"), ("V", "ecg"), ("II", "ecg"), ("aVR", "ecg"), ("vx", "ecg"),
        ("ECG", "ecg"), ("ECG ECG1", "ecg"), ("Lead I", "ecg"), ("EEG Fp1-Ref", "eeg"), ("Fp1", "eeg"),
        ("T3", "eeg"), ("FP1-F7", "eeg"), ("Fc5.", "eeg"), ("O1-REF", "eeg"), ("Cz", "eeg"), ("A1", "eeg"),
        ("PLETH", "misc"), ("RESP", "misc"), ("ABP", "misc"), ("POL E", "misc"), ("EOG", "eog"),
        ("EMG", "emg"), ("Trigger", "stim"), ("ch01", None), ("Z001", None),
    ],
)  # fmt: skip
def test_classify_channel(name, kind):
    assert classify_channel(name) == kind


def test_classify_channel_units():
    assert classify_channel("Signal 3", "NU") == "misc"
    assert classify_channel("Signal 3", "mV") is None


def test_fif_annotations_relative_to_first_sample(data_dir, tmp_path):
    values = np.array((data_dir / "eeg-bonn" / "E_S" / "S001.txt").read_text().split(), dtype=float) * 1e-6
    info = mne.create_info(["Cz"], 173.61, "eeg")
    raw = mne.io.RawArray(values[None, :], info, first_samp=1000, verbose="error")
    raw.set_meas_date(0)
    onset = raw.first_time + 2.0  # MNE onsets count from meas_date, i.e. include first_samp
    raw.set_annotations(mne.Annotations([onset], [1.0], ["spike"], orig_time=raw.info["meas_date"]))
    path = tmp_path / "seg_raw.fif"
    raw.save(path, verbose="error")
    rec = read_recording(path)
    assert rec.format == "fif" and rec.ch_types == ["eeg"]
    assert rec.annotations.onset == pytest.approx([2.0]) and rec.annotations.orig_time is None
    np.testing.assert_allclose(rec.get_data(), values[None, :], rtol=1e-6)  # stored as float32


def test_list_recordings_in_a_mixed_folder(data_dir, tmp_path):
    (tmp_path / "ecg").mkdir()
    for ext in (".hea", ".dat", ".atr"):
        shutil.copy(data_dir / "mitdb" / f"106{ext}", tmp_path / "ecg" / f"106{ext}")
    (tmp_path / "ecg" / "RECORDS").write_text("106\n")
    (tmp_path / "ecg" / "counts.csv").write_text("record,N\n106,1507\n")
    chans = tmp_path / "patient" / "session"
    chans.mkdir(parents=True)
    for i in (1, 2, 10):
        shutil.copy(data_dir / "eeg-michigan-seizure" / "ch01.inp", chans / f"ch{i}.inp")
    (chans / "README").write_text("montage notes\n")
    segs = tmp_path / "segments"
    segs.mkdir()
    for name in ("Z001.txt", "Z002.txt"):
        shutil.copy(data_dir / "eeg-bonn" / "A_Z" / name, segs / name)
    (segs / "about.txt").write_text("Segments of 23.6 s.\n")
    brainvision = tmp_path / "bv"
    brainvision.mkdir()
    for ext in (".vhdr", ".vmrk", ".eeg"):
        (brainvision / f"x{ext}").write_text("placeholder\n")
    found = list_recordings(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "bv/x.vhdr",
        "ecg/106.hea",
        "patient/session",
        "segments/Z001.txt",
        "segments/Z002.txt",
    ]
    rec = read_recording(chans, sfreq=100)
    assert rec.ch_names == ["ch1", "ch2", "ch10"]  # natural order
    assert list_recordings(segs / "Z001.txt") == [segs / "Z001.txt"]
    with pytest.raises(RecordingError, match="folder not found"):
        list_recordings(tmp_path / "missing")


def test_wfdb_units_converted_to_volts(mitdb, tmp_path):
    for ext in (".dat", ".atr"):
        shutil.copy(mitdb / f"106{ext}", tmp_path / f"106{ext}")
    text = (mitdb / "106.hea").read_text()
    (tmp_path / "106.hea").write_text(text.replace("212 200 11", "212 200/uV 11"))  # same digits, µV gain
    as_uv = read_recording(tmp_path / "106").get_data(0, 1)
    as_mv = read_recording(mitdb / "106").get_data(0, 1)
    np.testing.assert_allclose(as_uv, as_mv * 1e-3)
