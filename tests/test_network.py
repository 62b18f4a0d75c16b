"""The detector network on real ECG: STDP changes weights, learning can be switched off,
runs are deterministic per seed, and chunked runs equal whole runs."""

import numpy as np
import pytest
import wfdb

from spikewatch.config import load_config
from spikewatch.detect import RPeakStream
from spikewatch.preprocess import CausalFilter
from spikewatch.snn.backends import open_runner
from spikewatch.snn.encoding import DeltaEncoder
from spikewatch.snn.network import DetectorNetwork, EventFeed, weight_scale_for


@pytest.fixture(scope="module")
def ecg_events(mitdb):
    rec = wfdb.rdrecord(str(mitdb / "106"), sampto=int(20 * 360))
    x = rec.p_signal.T * 1e-3
    cfg = load_config("ecg")
    y = CausalFilter(cfg.preprocessing, rec.fs, 2)(x)
    enc = DeltaEncoder.calibrate(y, cfg.encoding.delta_factor)
    beats = RPeakStream(rec.fs).push(y[0], 0)
    return cfg, float(rec.fs), (enc.encode(y), beats)


def _run(cfg, sfreq, inputs, seed=0, chunks=(None,)):
    events, beats = inputs
    scale = weight_scale_for(events, sfreq, cfg.network, beats)
    net = DetectorNetwork(events.shape[0] // 2, sfreq, cfg.network, cfg.stdp, seed=seed, weight_scale=scale)
    gates = beats + int(round(cfg.network.gate_delay_s * sfreq))
    events = net.input_rows(events, beats, gates[gates < events.shape[1]])
    runner = open_runner("nengo", net, block_steps=360)
    w0 = runner.weights()
    scores, counts = [], 0
    bounds = [0, events.shape[1]] if chunks == (None,) else list(chunks) + [events.shape[1]]
    for a, b in zip(bounds[:-1], bounds[1:]):
        s, c = runner.run(events[:, a:b])
        scores.append(s)
        counts = counts + c.sum(axis=0)
    runner.close()
    w1 = runner.weights()
    return np.concatenate(scores), counts, w0, w1


def test_stdp_changes_weights_and_stays_in_bounds(ecg_events):
    cfg, sfreq, ev = ecg_events
    score, counts, w0, w1 = _run(cfg, sfreq, ev)
    assert counts.sum() > 0, "feature neurons never fired"
    assert np.mean(np.abs(w1 - w0)) > 1e-5
    scale = weight_scale_for(ev[0], sfreq, cfg.network, ev[1])
    assert w1.min() >= cfg.stdp.w_min * scale - 1e-12 and w1.max() <= cfg.stdp.w_max * scale + 1e-12
    assert np.all(np.isfinite(score)) and score.max() > 0


def test_no_learning_keeps_weights(ecg_events):
    cfg, sfreq, ev = ecg_events
    frozen = cfg.model_copy(update={"stdp": cfg.stdp.model_copy(update={"enabled": False})})
    _, counts, w0, w1 = _run(frozen, sfreq, ev)
    np.testing.assert_array_equal(w0, w1)


def test_same_seed_same_output_other_seed_differs(ecg_events):
    cfg, sfreq, ev = ecg_events
    a = _run(cfg, sfreq, ev, seed=3)
    b = _run(cfg, sfreq, ev, seed=3)
    c = _run(cfg, sfreq, ev, seed=4)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[3], b[3])
    assert not np.array_equal(a[3], c[3])


def test_chunked_run_equals_whole_run(ecg_events):
    cfg, sfreq, ev = ecg_events
    whole = _run(cfg, sfreq, ev)
    chunked = _run(cfg, sfreq, ev, chunks=(0, 1000, 1001, 4000))
    np.testing.assert_allclose(whole[0], chunked[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(whole[3], chunked[3])


def test_event_feed_delays():
    feed = EventFeed([(2, [0, 2])], dt=0.5)
    feed.push(np.array([[1, 0, 0, 0], [0, 3, 0, 0]]))
    rows = np.array([feed.step(0) for _ in range(4)]) * 0.5
    # taps: (delay 0: ch0, ch1), (delay 2: ch0, ch1)
    np.testing.assert_array_equal(rows[:, :2], [[1, 0], [0, 3], [0, 0], [0, 0]])
    np.testing.assert_array_equal(rows[:, 2:], [[0, 0], [0, 0], [1, 0], [0, 3]])
