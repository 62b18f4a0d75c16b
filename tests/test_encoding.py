"""Tests of send-on-delta encoding (spikewatch.snn.encoding) on real recordings.

Signals are short windows of MIT-BIH records and Bonn EEG segments, read
directly (wfdb / numpy, in volts) and band-passed with the causal
:class:`~spikewatch.preprocess.CausalFilter` as the pipeline does. Checked: the
reconstruction bound ``|x - decode| <= delta``, chunked == whole encoding,
multi-crossing counts against an event-by-event reference loop, the
statistics, gain invariance of :meth:`DeltaEncoder.calibrate` and validation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spikewatch.config import PreprocessingConfig
from spikewatch.errors import SpikewatchError
from spikewatch.preprocess import CausalFilter
from spikewatch.snn.encoding import DeltaEncoder, decode, encoding_stats, robust_scale

MITDB_FS = 360.0
BONN_FS = 173.61
ECG_RECORDS = ["101", "106", "207", "232"]  # all listed in mitdb/RECORDS
BONN_SEGMENTS = ["E_S/S001.txt", "A_Z/Z001.txt"]  # ictal, healthy
SOURCES = ECG_RECORDS + BONN_SEGMENTS
ECG_LEN = 650000  # samples per MIT-BIH record
BONN_LEN = 4097  # samples per Bonn segment
#: float slack on the bound: only rounding of ``r0 + delta * q`` is allowed
TOL = 1e-9

HYP = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def read_ecg(mitdb: Path, record: str, start: int = 0, n: int = int(60 * MITDB_FS)) -> np.ndarray:
    """``n`` samples of a MIT-BIH record from ``start``, shape (2, n), volts."""
    rec = wfdb.rdrecord(str(mitdb / record), sampfrom=start, sampto=start + n)
    return rec.p_signal.T * 1e-3


def read_bonn(data_dir: Path, segment: str) -> np.ndarray:
    """One Bonn segment, shape (1, 4097), volts (the text is in microvolts)."""
    return np.loadtxt(data_dir / "eeg-bonn" / segment)[None, :] * 1e-6


def bandpass(x: np.ndarray, sfreq: float) -> np.ndarray:
    """The default causal band-pass of the pipeline."""
    return CausalFilter(PreprocessingConfig(), sfreq, x.shape[0])(x)


def window(data_dir: Path, source: str, offset: float, seconds: float) -> tuple[np.ndarray, float]:
    """Band-passed window of ``seconds`` at relative position ``offset`` in [0, 1]."""
    if source in ECG_RECORDS:
        n = int(seconds * MITDB_FS)
        start = int(offset * (ECG_LEN - n))
        return bandpass(read_ecg(data_dir / "mitdb", source, start, n), MITDB_FS), MITDB_FS
    n = min(int(seconds * BONN_FS), BONN_LEN)
    start = int(offset * (BONN_LEN - n))
    x = read_bonn(data_dir, source)[:, start:start + n]
    return bandpass(x, BONN_FS), BONN_FS


def encode_in_chunks(enc: DeltaEncoder, x: np.ndarray, sizes: list[int]) -> np.ndarray:
    """Encode ``x`` with chunk lengths taken cyclically from ``sizes``."""
    out, pos, i = [], 0, 0
    while pos < x.shape[1]:
        step = sizes[i % len(sizes)]
        out.append(enc.encode(x[:, pos:pos + step]))
        pos += step
        i += 1
    return np.concatenate(out, axis=1)


def reference_events(x: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Event-by-event send-on-delta: one UP per ``delta`` risen, one DOWN per ``delta`` fallen.

    Independent of the numba recurrence: the reference level steps one
    ``delta`` at a time while the signal is at least ``delta`` away from it.
    """
    r0 = x[:, 0]
    y = (x - r0[:, None]) / delta[:, None]
    ev = np.zeros((2 * x.shape[0], x.shape[1]), dtype=np.int64)
    for c in range(x.shape[0]):
        q = 0
        for n, v in enumerate(y[c].tolist()):
            while v - q >= 1:
                q += 1
                ev[2 * c, n] += 1
            while q - v >= 1:
                q -= 1
                ev[2 * c + 1, n] += 1
    return ev


chunk_sizes = st.lists(st.one_of(st.just(1), st.integers(1, 7), st.integers(1, 3000)),
                       min_size=1, max_size=25)


@HYP
@given(source=st.sampled_from(SOURCES), offset=st.floats(0, 1),
       factor=st.floats(0.05, 3.0), sizes=chunk_sizes)
def test_reconstruction_within_delta(data_dir, source, offset, factor, sizes):
    """|signal - decode(events)| <= delta at every sample and channel, chunked or not."""
    x, _ = window(data_dir, source, offset, 20.0)
    enc = DeltaEncoder.calibrate(x, factor)
    ev = encode_in_chunks(enc, x, sizes)
    assert ev.shape == (2 * x.shape[0], x.shape[1])
    assert ev.min() >= 0
    err = np.abs(x - decode(ev, enc.delta, enc.r0))
    assert np.all(err <= enc.delta[:, None] * (1 + TOL)), (err.max(axis=1) / enc.delta)
    # the staircase is not trivially flat: the signal does cross thresholds
    assert ev.sum() > 0


@HYP
@given(source=st.sampled_from(SOURCES), offset=st.floats(0, 1),
       factor=st.floats(0.05, 3.0), sizes=chunk_sizes)
def test_chunked_equals_whole(data_dir, source, offset, factor, sizes):
    """Encoding chunk by chunk with one encoder yields exactly the whole-signal events."""
    x, _ = window(data_dir, source, offset, 20.0)
    whole_enc = DeltaEncoder.calibrate(x, factor)
    whole = whole_enc.encode(x)
    enc = DeltaEncoder(whole_enc.delta)
    chunked = encode_in_chunks(enc, x, sizes)
    np.testing.assert_array_equal(chunked, whole)
    np.testing.assert_array_equal(enc.level, whole_enc.level)
    np.testing.assert_array_equal(enc.r0, whole_enc.r0)
    assert enc.n_seen == whole_enc.n_seen == x.shape[1]


def test_single_sample_chunks_equal_whole(mitdb):
    """The extreme stream: one sample per call, on 10 s of both leads of record 106."""
    x = bandpass(read_ecg(mitdb, "106", 360 * 300, 3600), MITDB_FS)
    whole_enc = DeltaEncoder.calibrate(x, 0.3)
    whole = whole_enc.encode(x)
    enc = DeltaEncoder(whole_enc.delta)
    ones = np.concatenate([enc.encode(x[:, i:i + 1]) for i in range(x.shape[1])], axis=1)
    np.testing.assert_array_equal(ones, whole)


def test_empty_chunks_change_nothing(mitdb):
    """An empty chunk (also as the first one) neither emits events nor moves the reference.

    Uses the raw (unfiltered) signal, whose first sample is far from 0 V, so a
    reference taken from anything but the first real sample would show.
    """
    x = read_ecg(mitdb, "106", 0, 3600)
    whole_enc = DeltaEncoder.calibrate(x, 0.5)
    whole = whole_enc.encode(x)
    enc = DeltaEncoder(whole_enc.delta)
    parts = [enc.encode(x[:, :0]), enc.encode(x[:, :1000]), enc.encode(x[:, 1000:1000]),
             enc.encode(x[:, 1000:])]
    assert [p.shape for p in parts] == [(4, 0), (4, 1000), (4, 0), (4, x.shape[1] - 1000)]
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)
    np.testing.assert_array_equal(enc.r0, x[:, 0])


@pytest.mark.parametrize("source", ["106", "E_S/S001.txt"])
@pytest.mark.parametrize("factor", [0.1, 0.5, 2.0])
def test_matches_event_by_event_reference(data_dir, source, factor):
    """The counts equal those of a plain loop emitting one event per delta crossed."""
    x, _ = window(data_dir, source, 0.4, 8.0)
    enc = DeltaEncoder.calibrate(x, factor)
    np.testing.assert_array_equal(enc.encode(x), reference_events(x, enc.delta))


def test_multiple_crossings_in_one_sample_are_counted(mitdb):
    """A step of +-3.5 delta gives a count > 1 in that sample; no event is dropped."""
    x = bandpass(read_ecg(mitdb, "106", 360 * 120, 3600), MITDB_FS)
    delta = 0.5 * robust_scale(x)
    up_at, down_at = 1234, 2345
    x[0, up_at:] += 3.5 * delta[0]
    x[1, down_at:] -= 3.5 * delta[1]
    enc = DeltaEncoder(delta)
    ev = enc.encode(x)

    # floor(a + 3.5) - ceil(a) >= 2 for any a: at least two crossings in one step
    assert ev[0, up_at] >= 2 and ev[1, up_at] == 0
    assert ev[3, down_at] >= 2 and ev[2, down_at] == 0
    np.testing.assert_array_equal(ev, reference_events(x, delta))

    # UP minus DOWN, accumulated, is the encoder's level at every sample
    levels = DeltaEncoder(delta).levels(x)
    np.testing.assert_array_equal(np.cumsum(ev[0::2] - ev[1::2], axis=1), levels)
    np.testing.assert_array_equal(levels[:, -1], enc.level)
    err = np.abs(x - decode(ev, delta, enc.r0))
    assert np.all(err <= delta[:, None] * (1 + TOL))


@pytest.mark.parametrize("record", ["101", "106", "232"])
def test_encoding_stats_ecg(mitdb, record):
    """Factor 0.5 on one minute of ECG: SNR > 10 dB, error <= delta, plausible rates."""
    x = bandpass(read_ecg(mitdb, record, 360 * 600), MITDB_FS)
    enc = DeltaEncoder.calibrate(x, 0.5)
    ev = enc.encode(x)
    stats = encoding_stats(x, ev, enc.delta, enc.r0, MITDB_FS)
    dur = x.shape[1] / MITDB_FS
    assert stats["snr_db"] == pytest.approx(
        (10 * np.log10(x.var(axis=1) / np.mean((x - decode(ev, enc.delta, enc.r0)) ** 2, axis=1))).tolist(),
        abs=0.01)
    for c in range(x.shape[0]):
        assert stats["snr_db"][c] > 10.0
        assert 0.5 <= stats["max_abs_error_over_delta"][c] <= 1.0
        # beats cross thresholds many times a second, yet far fewer than one event per sample
        assert 5.0 < stats["events_per_s"][c] < MITDB_FS
        assert stats["events_per_s"][c] == pytest.approx(ev[2 * c:2 * c + 2].sum() / dur, abs=1e-3)


@pytest.mark.parametrize("source", ["106", "E_S/S001.txt", "A_Z/Z001.txt"])
def test_smaller_delta_more_events_higher_snr(data_dir, source):
    """Rate falls and SNR falls as the factor grows (0.1 -> 0.5 -> 2)."""
    x, fs = window(data_dir, source, 0.2, 20.0)
    rates, snrs = [], []
    for factor in (0.1, 0.5, 2.0):
        enc = DeltaEncoder.calibrate(x, factor)
        s = encoding_stats(x, enc.encode(x), enc.delta, enc.r0, fs)
        rates.append(s["events_per_s"][0])
        snrs.append(s["snr_db"][0])
    assert rates[0] > rates[1] > rates[2] > 0
    assert snrs[0] > snrs[1] > snrs[2]


@pytest.mark.parametrize("gain", [10.0, 1e-3])
@pytest.mark.parametrize("source", ["106", "E_S/S001.txt"])
def test_calibrated_events_are_gain_invariant(data_dir, source, gain):
    """Scaling a recording changes delta by the same gain and leaves the events unchanged."""
    x, _ = window(data_dir, source, 0.5, 20.0)
    a = DeltaEncoder.calibrate(x, 0.5)
    b = DeltaEncoder.calibrate(gain * x, 0.5)
    np.testing.assert_allclose(b.delta, gain * a.delta, rtol=1e-12)
    ev = a.encode(x)
    np.testing.assert_array_equal(b.encode(gain * x), ev)
    assert ev.sum() > 0


def test_robust_scale_ignores_sparse_large_waves(mitdb):
    """The MAD estimate barely moves when a few huge artefacts are added, unlike the std."""
    x = bandpass(read_ecg(mitdb, "101", 360 * 60), MITDB_FS)
    spiked = x.copy()
    spiked[:, ::500] += 0.05  # 50 mV spikes in 0.2 % of the samples
    np.testing.assert_allclose(robust_scale(spiked), robust_scale(x), rtol=0.05)
    assert np.all(spiked.std(axis=1) > 3 * x.std(axis=1))


def test_calibrate_flat_channel_gets_floor(mitdb):
    """A flat channel next to a real one gets the floor delta and emits nothing."""
    x = bandpass(read_ecg(mitdb, "106", 0, 3600), MITDB_FS)[:1]
    x = np.vstack([x, np.full_like(x, 1e-3)])
    enc = DeltaEncoder.calibrate(x, 0.5, floor=1e-9)
    assert enc.delta[1] == 1e-9 and enc.delta[0] > 1e-6
    ev = enc.encode(x)
    assert ev[2:].sum() == 0 and ev[:2].sum() > 0


@pytest.mark.parametrize("delta", [0.0, -1e-5, np.nan, np.inf, [1e-5, 0.0], [np.nan, 1e-5]])
def test_invalid_delta_raises(delta):
    """delta must be finite and > 0 on every channel."""
    with pytest.raises(SpikewatchError, match="delta"):
        DeltaEncoder(delta)


@pytest.mark.parametrize("factor", [0.0, -0.5, np.nan])
def test_calibrate_invalid_factor_raises(mitdb, factor):
    """A non-positive or NaN factor is a user error, not a silent 1 nV delta."""
    x = bandpass(read_ecg(mitdb, "106", 0, 3600), MITDB_FS)
    with pytest.raises(SpikewatchError):
        DeltaEncoder.calibrate(x, factor)


def test_wrong_channel_count_raises(mitdb):
    """Chunks must be 2-D with one row per delta, before and after the first chunk."""
    x = bandpass(read_ecg(mitdb, "106", 0, 3600), MITDB_FS)
    enc = DeltaEncoder.calibrate(x, 0.5)
    with pytest.raises(SpikewatchError, match="channels"):
        enc.encode(x[:1])
    with pytest.raises(SpikewatchError, match="channels"):
        enc.encode(x[0])
    first = enc.encode(x[:, :100])
    with pytest.raises(SpikewatchError, match="channels"):
        enc.encode(np.vstack([x, x[:1]])[:, 100:200])
    # the rejected chunk left the state untouched
    rest = enc.encode(x[:, 100:])
    np.testing.assert_array_equal(np.concatenate([first, rest], axis=1),
                                  DeltaEncoder(enc.delta).encode(x))
