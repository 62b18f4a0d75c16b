"""The signal-quality check (spikewatch.quality) on real recordings and on bad spans made from them.

Real data: MIT-BIH 213 (no noise marks in its .atr) made bad on purpose (a lead
held flat, heavy noise, saturation, a lead off); MIT-BIH 106 and 116, whose
annotators marked noise ('~') where the check finds it (noise on V1, a saturated
MLII); a copy of 106 with a gap of WFDB invalid samples; the Michigan seizure EEG.

The analysis tests check that bad spans become ``signal_quality`` events, that
no beat in or just after them is scored or flagged, and that the network's
weights do not move while its input is cut.
"""

from __future__ import annotations

import json
import re

import mne
import numpy as np
import pytest
import wfdb

from spikewatch.analysis import analyze
from spikewatch.config import load_config
from spikewatch.io import read_recording
from spikewatch.jobs import resolve_job
from spikewatch.quality import SignalQuality, input_memory_s, window_features
from spikewatch.report import write_outputs

SFREQ = 360.0
#: (start, stop, channel, reason) of the bad spans made in 213 (after the 60 s calibration)
BAD = [(70.0, 80.0, "MLII", "flat"), (85.0, 90.0, "V1", "noise"), (95.0, 100.0, "MLII", "clipped"),
       (105.0, 110.0, "V1", "flat")]
STOP = 120.0


def spoil(x: np.ndarray, names: list[str]) -> np.ndarray:
    """Apply :data:`BAD` to real signal ``x`` (channels x samples, volts)."""
    x = x.copy()
    rng = np.random.default_rng(7)
    for a, b, ch, kind in BAD:
        c, sl = names.index(ch), slice(int(a * SFREQ), int(b * SFREQ))
        if kind == "flat" and ch == "MLII":  # amplifier holds the last value
            x[c, sl] = x[c, sl.start - 1]
        elif kind == "flat":  # lead off: 0 V
            x[c, sl] = 0.0
        elif kind == "noise":  # electrode motion / muscle: 0.5 mV white noise on top of the ECG
            x[c, sl] += rng.normal(0.0, 0.5e-3, sl.stop - sl.start)
        else:  # saturated: everything above the span's median is pinned at that rail
            x[c, sl] = np.minimum(x[c, sl], np.median(x[c, sl]))
    return x


def stream(cfg_quality, x: np.ndarray, names, chunk: int, cal_s: float = 60.0) -> SignalQuality:
    """Feed ``x`` chunk by chunk with one window of look-ahead, as analysis.analyze does."""
    n = x.shape[1]
    q = SignalQuality(cfg_quality, SFREQ, names, n, x[:, : int(cal_s * SFREQ)])
    for a in range(0, n, chunk):
        b = min(a + chunk, n)
        q.push(x[:, a: min(b + q.lookahead, n)], a, b - a)
    return q


@pytest.fixture(scope="module")
def rec213(mitdb):
    return read_recording(mitdb / "213")


@pytest.fixture(scope="module")
def spoilt_fif(rec213, tmp_path_factory):
    """213, 0-120 s, with the BAD spans, saved as FIF (float64) and read back by the real reader."""
    names = ["MLII", "V1"]
    x = spoil(rec213.get_data(0, STOP, picks=names), names)
    raw = mne.io.RawArray(x, mne.create_info(names, SFREQ, "ecg"), verbose="error")
    path = tmp_path_factory.mktemp("spoilt") / "213bad_raw.fif"
    raw.save(path, fmt="double", verbose="error")
    return path


@pytest.fixture(scope="module")
def runs(spoilt_fif):
    """The spoilt recording analysed with the quality check on and off (5 s chunks: weight snapshots)."""
    out = {}
    for on in (True, False):
        rec, cfg = resolve_job(spoilt_fif, None, io__modality="ecg", pipeline__chunk_s=5.0,
                               quality__enabled=on)
        out[on] = (rec, cfg, analyze(rec, cfg))
    return out


# ------------------------------------------------------------------ the check on its own


def test_synthetic_bad_spans_are_found_with_their_reason(rec213):
    names = ["MLII", "V1"]
    x = spoil(rec213.get_data(0, STOP, picks=names), names)
    q = stream(load_config("ecg").quality, x, names, chunk=int(300 * SFREQ))
    spans = [(s.onset, s.onset + s.duration, s.reasons) for s in q.spans()]
    assert spans == [(a, b, {ch: [kind]}) for a, b, ch, kind in BAD]


@pytest.mark.parametrize("chunk_s", [1.0, 7.3, 60.0, 1000.0])
def test_chunking_does_not_change_the_result(rec213, chunk_s):
    names = ["MLII", "V1"]
    x = spoil(rec213.get_data(0, STOP, picks=names), names)
    cfg = load_config("ecg").quality
    whole = stream(cfg, x, names, chunk=x.shape[1])
    part = stream(cfg, x, names, chunk=int(round(chunk_s * SFREQ)))
    assert np.array_equal(part.flags, whole.flags) and part.done == whole.done == 120


def test_push_refuses_missing_lookahead(rec213):
    x = rec213.get_data(0, 10, picks=["MLII"])
    q = SignalQuality(load_config("ecg").quality, SFREQ, ["MLII"], x.shape[1], x)
    with pytest.raises(ValueError, match="one window past the chunk"):
        q.push(x[:, :500], 0, 500)  # the window 360-720 is not complete


def test_clean_record_is_not_flagged(rec213):
    """213 carries no noise mark: 300 s of it give no bad window (VT and F beats included)."""
    x = rec213.get_data(0, 300)
    q = stream(load_config("ecg").quality, x, rec213.signal_picks, chunk=int(300 * SFREQ))
    assert q.done == 300 and not q.bad_windows().any()


def _noisy_leads(record: str, stop_s: float) -> np.ndarray:
    """Per lead and 1 s window: inside a '~' span marking that lead noisy (annotation subtype bits)."""
    ann = wfdb.rdann(record, "atr")
    sym, sub, smp = np.array(ann.symbol), np.array(ann.subtype), np.array(ann.sample)
    n = int(stop_s)
    out = np.zeros((2, n), bool)
    marks = np.flatnonzero(sym == "~")
    for k, i in enumerate(marks):
        end = smp[marks[k + 1]] if k + 1 < len(marks) else 650000
        for c in range(2):
            if sub[i] == -1 or (sub[i] >> c) & 1:
                out[c, smp[i] // 360: -(-end // 360)] = True
    return out[:, :n]


@pytest.mark.parametrize("name, start, stop, channel, reason", [
    ("106", 0.0, 60.0, "V1", "noise"),  # annotators: V1 noisy from 0.2 s to 38 s
    ("116", 960.0, 1020.0, "MLII", "clipped"),  # MLII pinned at the ADC's bottom rail around 1002 s
])
def test_flags_fall_in_the_annotators_noise_marks(mitdb, name, start, stop, channel, reason):
    rec = read_recording(mitdb / name)
    x = rec.get_data(start, stop)
    q = stream(load_config("ecg").quality, x, rec.signal_picks, chunk=x.shape[1])
    spans = q.spans()
    assert spans and all(s.reasons == {channel: [reason]} for s in spans), spans
    marked = _noisy_leads(str(mitdb / name), stop)[rec.signal_picks.index(channel), int(start):]
    flagged = q.flags[:, rec.signal_picks.index(channel)].astype(bool)
    assert marked[flagged].all()  # every flagged second lies in a span the annotators marked noisy on that lead


def test_wfdb_gap_of_invalid_samples_is_flat(mitdb, tmp_path):
    """WFDB 'invalid sample' codes (a signal gap) are interpolated by the reader; the check calls the gap flat."""
    src = wfdb.rdrecord(str(mitdb / "106"), sampto=int(90 * SFREQ), physical=False)
    d = src.d_signal.copy()
    d[int(70 * SFREQ): int(74 * SFREQ), 1] = -2048  # format 212's invalid value: V1 missing 70-74 s
    wfdb.wrsamp("gap", fs=SFREQ, units=src.units, sig_name=src.sig_name, d_signal=d, fmt=src.fmt,
                adc_gain=src.adc_gain, baseline=src.baseline, write_dir=str(tmp_path))
    rec = read_recording(tmp_path / "gap")
    x = rec.get_data()
    assert np.isfinite(x).all()
    q = stream(load_config("ecg").quality, x, rec.signal_picks, chunk=x.shape[1])
    gap = [s for s in q.spans() if s.onset >= 60]
    assert [(s.onset, s.duration, s.reasons) for s in gap] == [(70.0, 4.0, {"V1": ["flat"]})]


def test_eeg_seizure_is_not_called_noise(data_dir):
    """EEG line length rises 5-18 fold in the Michigan seizure: the EEG defaults have no line-length rule,
    and only short saturations of the channels the provider marks corrupted (SP1/SP2 = ch11/ch12) are flagged."""
    rec = read_recording(data_dir / "eeg-michigan-seizure", sfreq=100)
    x = rec.get_data()
    cfg = load_config("eeg")
    assert cfg.quality.noise_ratio is None
    sf = rec.sfreq
    n = x.shape[1]
    q = SignalQuality(cfg.quality, sf, rec.ch_names, n, x[:, : int(60 * sf)])
    q.push(x, 0, n)
    assert q.bad_windows().sum() <= 5
    assert {ch for s in q.spans() for ch in s.channels} <= {"ch11", "ch12"}
    ecg_rules = cfg.quality.model_copy(update={"noise_ratio": 3.0})
    q2 = SignalQuality(ecg_rules, sf, rec.ch_names, n, x[:, : int(60 * sf)])
    q2.push(x, 0, n)
    assert q2.bad_windows()[360:].mean() > 0.5  # what the ECG rule would have done to the seizure


def test_features_and_exclusion_arithmetic():
    x = np.array([[0, 1, 1, 1, 5, 5, 5, 5, 2, 0.0]])
    f = window_features(x)
    assert f["ptp"][0] == 5 and f["curv"][0] == 4 and f["ll"][0] == pytest.approx(10 / 9)
    assert f["clip"][0] == pytest.approx(0.4)  # the run of four 5s; 0 (min) never repeats
    cfg = load_config("ecg").quality
    sig = np.tile(np.sin(np.linspace(0, 20 * np.pi, 3600)), (1, 1))
    q = SignalQuality(cfg, 360.0, ["a"], 3600, sig)
    q.flags[[2, 4], 0] = 1  # windows 2 and 4 bad (steps 720-1079, 1440-1799)
    q.done = 10
    lo = np.array([0, 700, 1080, 1200, 1300, 1900, 2300])
    hi = lo + 40
    # memory 0.5 s = 180 steps: exclusions end at 1260 and 1980
    assert q.excluded(lo, hi, 0.5).tolist() == [False, True, True, True, False, True, False]
    assert q.excluded(lo, hi, 0.0).tolist() == [False, True, False, False, False, False, False]


def test_input_memory_covers_the_longest_delays():
    ecg, eeg = load_config("ecg").network, load_config("eeg").network
    assert input_memory_s(ecg) == pytest.approx(0.16 + 2.1 + 5 * 0.02)
    assert input_memory_s(eeg) == pytest.approx(0.2 + 5 * 0.02)  # longest tap + 5 score-filter constants


# ------------------------------------------------------------------ through the analysis


def test_bad_spans_become_signal_quality_events(runs):
    rec, cfg, res = runs[True]
    got = [(e.onset, e.duration, e.trial_type, e.channels) for e in res.quality_events]
    assert got == [(a, b - a, "signal_quality", [ch]) for a, b, ch, _ in BAD]
    assert all(np.isnan(e.score) for e in res.quality_events)
    q = res.quality
    assert q["n_spans"] == 4 and q["bad_s"] == 25.0
    assert q["bad_s_by_channel"]["MLII"] == {"flat": 10.0, "clipped": 5.0, "noise": 0.0}
    assert q["bad_s_by_channel"]["V1"] == {"flat": 5.0, "clipped": 0.0, "noise": 5.0}
    assert runs[False][2].quality_events == [] and runs[False][2].quality == {"enabled": False}


def test_nothing_in_or_just_after_bad_spans_is_scored(runs):
    rec, cfg, res = runs[True]
    memory = input_memory_s(cfg.network)
    t = res.rpeaks / res.sfreq
    w0, w1 = cfg.detection.beat_window_s
    inside = np.zeros(len(t), bool)
    for a, b, _, _ in BAD:
        inside |= (t + w1 >= a) & (t + w0 < b + memory)
    assert inside.sum() >= 10
    assert np.isnan(res.beat_z[inside]).all() and np.isnan(res.beat_score[inside]).all()
    assert np.isfinite(res.beat_z[~inside]).all()
    assert res.quality["excluded_beats"] == inside.sum()
    for e in res.events:  # no anomaly overlaps a bad span
        assert not any(e.onset < b and e.onset + e.duration > a for a, b, _, _ in BAD), e
    assert len(res.events) >= 1  # the record's own ectopic beats are still flagged


def test_weights_do_not_move_while_input_is_cut(runs):
    """Chunk 75-80 s lies inside the flat MLII span (70-80 s) past every delay tap: not one weight changes.
    Without the check the network keeps learning there (V1 still drives it), and learns in clean chunks."""
    def chunk_change(res, t0, t1):
        snap = dict(res.weight_snapshots)
        return float(np.abs(snap[t1] - snap[t0]).max())

    with_check, without = runs[True][2], runs[False][2]
    assert chunk_change(with_check, 75.0, 80.0) == 0.0
    assert chunk_change(with_check, 110.0, 115.0) > 0  # learning on clean signal
    assert chunk_change(without, 75.0, 80.0) > 0
    assert chunk_change(with_check, 55.0, 60.0) == chunk_change(without, 55.0, 60.0)  # same run before the spans


def test_report_shows_the_spans(runs, tmp_path):
    rec, cfg, res = runs[True]
    cfg = cfg.model_copy(update={"report": cfg.report.model_copy(update={"edf_export": False})})
    folder = write_outputs(res, rec, cfg, tmp_path)
    rows = [ln.split("\t") for ln in (folder / "events.tsv").read_text().splitlines()[1:]]
    quality_rows = [r for r in rows if r[2] == "signal_quality"]
    assert [(float(r[0]), float(r[1]), r[3], r[4]) for r in quality_rows] == [
        (a, b - a, "n/a", ch) for a, b, ch, _ in BAD]
    assert [float(r[0]) for r in rows] == sorted(float(r[0]) for r in rows)
    side = json.loads((folder / "events.json").read_text())
    assert "signal_quality" in side["trial_type"]["Levels"]
    summ = json.loads((folder / "summary.json").read_text())
    assert summ["n_signal_quality_events"] == 4 and summ["n_events"] == len(res.events)
    assert summ["signal_quality"]["spans"][0]["reasons"] == {"MLII": ["flat"]}
    beats = (folder / "beats.tsv").read_text().splitlines()[1:]
    assert sum(ln.endswith("\tn/a\tn/a") for ln in beats) == summ["signal_quality"]["excluded_beats"]
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert "4 unusable span(s), 25 s" in html
    assert re.search(r"V1: noise", html) and re.search(r"MLII: clipped", html)
    ann = mne.read_annotations(folder / "annotations.csv")
    assert list(ann.description).count("spikewatch signal_quality") == 4


def test_eeg_windows_in_bad_signal_are_not_scored(data_dir, tmp_path):
    """EEG path: Bonn S001 with its electrode held flat for 5 s; the 1 s windows there and within the
    network's input memory after it get no score or z, and the span is a signal_quality event."""
    values = np.loadtxt(data_dir / "eeg-bonn" / "E_S" / "S001.txt") * 1e-6
    sf = 173.61
    a, b = int(round(10 * sf)), int(round(15 * sf))
    values[a:b] = values[a - 1]
    raw = mne.io.RawArray(values[None, :], mne.create_info(["T5"], sf, "eeg"), verbose="error")
    path = tmp_path / "S001flat_raw.fif"
    raw.save(path, fmt="double", verbose="error")
    rec, cfg = resolve_job(path, None)
    res = analyze(rec, cfg)
    (ev,) = res.quality_events
    win = res.quality["window_s"]
    assert ev.trial_type == "signal_quality" and ev.channels == ["T5"]
    # the windows at the edges hold part signal, part the stuck value at their extreme: "clipped"
    assert res.quality["spans"][0]["reasons"]["T5"][0] == "flat"
    assert set(res.quality["spans"][0]["reasons"]["T5"]) <= {"flat", "clipped"}
    assert abs(ev.onset - 10.0) <= win and abs(ev.onset + ev.duration - 15.0) <= win
    memory = input_memory_s(cfg.network)
    on = res.window_onsets
    hit = (on + cfg.detection.window_s > ev.onset) & (on < ev.onset + ev.duration + memory)
    assert hit.sum() >= 5 and np.isnan(res.window_z[hit]).all() and np.isnan(res.window_score[hit]).all()
    assert np.isfinite(res.window_z[~hit]).all()
    assert res.quality["excluded_windows"] == hit.sum()
