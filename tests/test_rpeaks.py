"""Streaming R-peaks on real ECG: the same peaks whatever the chunk lengths, NeuroKit2's
peaks, and agreement with the MIT-BIH reference beats."""

import numpy as np
import pytest

from spikewatch.analysis import LOOKAHEAD_S
from spikewatch.config import load_config
from spikewatch.evaluate import match_beats, reference_beats
from spikewatch.io import read_recording
from spikewatch.preprocess import CausalFilter
from spikewatch.rpeaks import RPeakStream

SPAN_S = 180.0


@pytest.fixture(scope="module")
def leads(mitdb):
    """First lead of a few records, filtered as analyze filters it, and the reference beats."""
    cfg = load_config("ecg")
    out = {}
    for name in ("101", "106", "108", "213", "228"):
        rec = read_recording(mitdb / name)
        y = CausalFilter(cfg.preprocessing, rec.sfreq, 1)(rec.get_data(0, SPAN_S, picks=rec.signal_picks[:1]))[0]
        ref = np.round(reference_beats(rec.annotations)[0] * rec.sfreq).astype(np.int64)
        out[name] = (rec.sfreq, y, ref[ref < len(y)])
    return out


def chunked(y, sfreq, bounds, look_s=LOOKAHEAD_S):
    """Push ``y`` cut at ``bounds`` with look-ahead as analyze does; checks each push's peaks."""
    rs, look, got = RPeakStream(sfreq), int(round(look_s * sfreq)), []
    for a, b in zip(bounds[:-1], bounds[1:]):
        peaks = rs.push(y[a:b], a, y[b:b + look] if b < len(y) else None)
        assert np.all((peaks >= a) & (peaks < b)) and np.all(np.diff(peaks) > 0)
        got.append(peaks)
    np.testing.assert_array_equal(np.concatenate(got), rs.result())
    return rs.result()


@pytest.mark.parametrize("name", ["108", "213"])
def test_peaks_do_not_depend_on_chunk_lengths(leads, name):
    sfreq, y, _ = leads[name]
    whole = RPeakStream(sfreq).push(y, 0)
    assert len(whole) > 150
    runs = {}
    for chunk_s in (7.0, 60.0):
        step = int(round(chunk_s * sfreq))
        runs[chunk_s] = chunked(y, sfreq, list(range(0, len(y), step)) + [len(y)])
    cuts = np.cumsum(np.random.default_rng(0).integers(1, 3000, size=len(y) // 1000))
    runs["random"] = chunked(y, sfreq, [0] + [int(c) for c in cuts if c < len(y)] + [len(y)])
    for key, peaks in runs.items():
        np.testing.assert_array_equal(peaks, whole, err_msg=f"chunks {key}")


@pytest.mark.parametrize("name", ["106", "213"])
def test_without_lookahead_chunk_tails_differ(leads, name):
    """The look-ahead is what makes chunks equal the whole run: without it each chunk's tail is
    decided as if the signal ended there."""
    sfreq, y, _ = leads[name]
    whole = RPeakStream(sfreq).push(y, 0)
    step = int(round(3.0 * sfreq))
    blind = chunked(y, sfreq, list(range(0, len(y), step)) + [len(y)], look_s=0.0)
    assert not np.array_equal(blind, whole)


def test_same_peaks_as_neurokit2(leads):
    nk = pytest.importorskip("neurokit2.ecg.ecg_findpeaks")
    for name in ("101", "106", "213", "228"):
        sfreq, y, _ = leads[name]
        ref = np.asarray(nk.ecg_findpeaks(y, sampling_rate=int(round(sfreq)), method="neurokit")["ECG_R_Peaks"])
        np.testing.assert_array_equal(RPeakStream(sfreq).push(y, 0), ref, err_msg=name)


def test_agrees_with_reference_beats(leads):
    """Detections within 0.1 s of the .atr beats, each matched once: pooled Se and PPV."""
    hits = n_ref = n_det = 0
    for sfreq, y, ref in leads.values():
        det = RPeakStream(sfreq).push(y, 0)
        hits += match_beats(ref, det, int(round(0.1 * sfreq)))
        n_ref, n_det = n_ref + len(ref), n_det + len(det)
    assert n_ref > 900
    assert hits / n_ref >= 0.975 and hits / n_det >= 0.975, (hits, n_ref, n_det)


def test_analyze_beats_do_not_depend_on_chunk_s(mitdb):
    from spikewatch.analysis import analyze
    from spikewatch.jobs import resolve_job

    beats = []
    for chunk_s in (7.0, 45.0):
        rec, cfg = resolve_job(mitdb / "108", backend__name="fast", report__html=False,
                               pipeline__chunk_s=chunk_s)
        beats.append(analyze(rec, cfg, stop=100.0).rpeaks)
    assert len(beats[0]) > 80
    np.testing.assert_array_equal(beats[0], beats[1])


@pytest.mark.parametrize("sfreq", [128.0, 250.0, 360.0, 500.0, 1000.0])
def test_lookahead_needed_fits_the_analysis(sfreq):
    assert RPeakStream(sfreq).lookahead_s <= LOOKAHEAD_S


def test_gap_between_chunks_is_refused(leads):
    sfreq, y, _ = leads["106"]
    rs = RPeakStream(sfreq)
    rs.push(y[:1000], 0, y[1000:1720])
    with pytest.raises(ValueError, match="expected 1000"):
        rs.push(y[1001:2000], 1001)
