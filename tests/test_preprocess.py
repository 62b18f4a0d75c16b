"""Tests of the causal band-pass / notch filter (spikewatch.preprocess) on real ECG.

MIT-BIH windows are read directly with wfdb (volts). Checked: chunked
filtering equals whole filtering bit for bit, channels are independent, the
default 0.5-40 Hz band-pass removes baseline wander and keeps the QRS band,
a 60 Hz notch removes added mains hum, and bad edges raise SpikewatchError.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import wfdb
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from spikewatch.config import PreprocessingConfig
from spikewatch.errors import SpikewatchError
from spikewatch.preprocess import CausalFilter

FS = 360.0


def read_ecg(mitdb: Path, record: str, start_s: float, seconds: float) -> np.ndarray:
    """A window of a MIT-BIH record, shape (2, n), volts."""
    a = int(start_s * FS)
    rec = wfdb.rdrecord(str(mitdb / record), sampfrom=a, sampto=a + int(seconds * FS))
    return rec.p_signal.T * 1e-3


def band_power(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Welch power per channel in [lo, hi] Hz (DC bin excluded), 60 s segments."""
    f, p = signal.welch(x, FS, nperseg=int(60 * FS), axis=-1)
    sel = (f > 0) & (f >= lo) & (f <= hi)
    return p[:, sel].sum(axis=1)


def lockin_amplitude(x: np.ndarray, f0: float) -> np.ndarray:
    """Amplitude of the ``f0`` sinusoid in each channel (complex demodulation)."""
    t = np.arange(x.shape[1]) / FS
    return 2 * np.abs((x * np.exp(-2j * np.pi * f0 * t)).mean(axis=1))


def chunks(x: np.ndarray, sizes: list[int]):
    """Split ``x`` along time with chunk lengths taken cyclically from ``sizes``."""
    pos, i = 0, 0
    while pos < x.shape[1]:
        yield x[:, pos:pos + sizes[i % len(sizes)]]
        pos += sizes[i % len(sizes)]
        i += 1


@pytest.fixture(scope="module")
def ecg106(mitdb) -> np.ndarray:
    """Two minutes of record 106 (both leads, PVCs included)."""
    return read_ecg(mitdb, "106", 600, 120)


@settings(max_examples=15, deadline=None)
@given(sizes=st.lists(st.one_of(st.just(1), st.integers(1, 50), st.integers(1, 20000)),
                      min_size=1, max_size=20),
       notch=st.sampled_from([[], [60.0], [50.0, 60.0]]))
def test_chunked_equals_whole(ecg106, sizes, notch):
    """Filtering chunk by chunk with one filter equals filtering the whole window exactly."""
    cfg = PreprocessingConfig(notch=notch)
    whole = CausalFilter(cfg, FS, 2)(ecg106)
    filt = CausalFilter(cfg, FS, 2)
    parts = [filt(c) for c in chunks(ecg106, sizes)]
    assert all(p.shape == c.shape for p, c in zip(parts, chunks(ecg106, sizes)))
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)
    assert not np.allclose(whole, ecg106)  # it does filter


def test_empty_chunk_is_harmless(ecg106):
    """An empty chunk (first or later) returns an empty array and changes nothing."""
    filt = CausalFilter(PreprocessingConfig(), FS, 2)
    parts = [filt(ecg106[:, :0]), filt(ecg106[:, :500]), filt(ecg106[:, 500:500]), filt(ecg106[:, 500:])]
    assert [p.shape for p in parts] == [(2, 0), (2, 500), (2, 0), (2, ecg106.shape[1] - 500)]
    whole = CausalFilter(PreprocessingConfig(), FS, 2)(ecg106)
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), whole)


def test_channels_are_independent(ecg106):
    """Filtering both leads together equals filtering each lead alone."""
    cfg = PreprocessingConfig(notch=[60.0])
    both = CausalFilter(cfg, FS, 2)(ecg106)
    for c in range(2):
        alone = CausalFilter(cfg, FS, 1)(ecg106[c:c + 1])
        np.testing.assert_array_equal(both[c:c + 1], alone)


def test_dc_offset_gives_no_onset_transient(ecg106):
    """Starting from the first sample's steady state, an electrode DC offset leaves no trace.

    The band-pass rejects DC, so adding 0.3 V to the leads must not change the
    output at any sample (a zero-state start would ring for seconds).
    """
    cfg = PreprocessingConfig(notch=[60.0])
    y = CausalFilter(cfg, FS, 2)(ecg106)
    y_off = CausalFilter(cfg, FS, 2)(ecg106 + 0.3)
    np.testing.assert_allclose(y_off, y, rtol=0, atol=1e-9)


@pytest.mark.parametrize("record", ["101", "207", "232"])
def test_bandpass_removes_wander_keeps_qrs(mitdb, record):
    """0.5-40 Hz: power below 0.3 Hz drops > 10 dB, 5-15 Hz power stays within 1 dB."""
    x = read_ecg(mitdb, record, 300, 300)
    y = CausalFilter(PreprocessingConfig(), FS, 2)(x)
    settle = int(10 * FS)
    x, y = x[:, settle:], y[:, settle:]
    x = x - x.mean(axis=1, keepdims=True)  # the DC offset is not wander
    low_x, low_y = band_power(x, 0.0, 0.3), band_power(y, 0.0, 0.3)
    qrs_x, qrs_y = band_power(x, 5.0, 15.0), band_power(y, 5.0, 15.0)
    assert np.all(low_x > 0)
    assert np.all(low_y < 0.1 * low_x), low_y / low_x
    assert np.all((qrs_y > 0.79 * qrs_x) & (qrs_y < 1.26 * qrs_x)), qrs_y / qrs_x


def test_notch_removes_added_mains(ecg106):
    """A 1 mV 60 Hz sinusoid added to real ECG loses > 20 dB more with notch=[60] than without."""
    t = np.arange(ecg106.shape[1]) / FS
    hum = 1e-3 * np.sin(2 * np.pi * 60.0 * t + 0.3)
    x = ecg106 + hum
    settle = int(5 * FS)
    with_notch = CausalFilter(PreprocessingConfig(notch=[60.0]), FS, 2)(x)[:, settle:]
    without = CausalFilter(PreprocessingConfig(notch=[]), FS, 2)(x)[:, settle:]
    a_with, a_without = lockin_amplitude(with_notch, 60.0), lockin_amplitude(without, 60.0)
    assert np.all(20 * np.log10(a_without / a_with) > 20.0), (a_without, a_with)
    # and the notch leaves the QRS band alone
    np.testing.assert_allclose(band_power(with_notch, 5, 15), band_power(without, 5, 15), rtol=0.05)


def test_notch_above_nyquist_is_ignored(ecg106):
    """A mains frequency the sampling rate cannot represent adds no section."""
    y_plain = CausalFilter(PreprocessingConfig(notch=[]), FS, 2)(ecg106)
    y_high = CausalFilter(PreprocessingConfig(notch=[200.0]), FS, 2)(ecg106)
    np.testing.assert_array_equal(y_high, y_plain)


def test_no_filter_passes_through(ecg106):
    """No edges and no notch: the signal comes back unchanged."""
    cfg = PreprocessingConfig(l_freq=None, h_freq=None, notch=[])
    np.testing.assert_array_equal(CausalFilter(cfg, FS, 2)(ecg106), ecg106)


@pytest.mark.parametrize("l_freq,h_freq", [(40.0, 40.0), (50.0, 10.0), (15.0, 14.9)])
def test_inverted_band_raises(l_freq, h_freq):
    """l_freq >= h_freq is refused with SpikewatchError naming l_freq."""
    with pytest.raises(SpikewatchError, match="l_freq"):
        CausalFilter(PreprocessingConfig(l_freq=l_freq, h_freq=h_freq), FS, 2)


@pytest.mark.parametrize("l_freq,h_freq", [(60.0, 70.0), (50.0, None)])
def test_high_pass_above_nyquist_raises(l_freq, h_freq):
    """At 100 Hz sampling a high-pass at or above 50 Hz is a user error, reported as such."""
    with pytest.raises(SpikewatchError):
        CausalFilter(PreprocessingConfig(l_freq=l_freq, h_freq=h_freq), 100.0, 1)
