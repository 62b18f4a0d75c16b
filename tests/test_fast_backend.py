"""The compiled ``fast`` backend against the reference ``nengo.Simulator``, on real records.

Equivalence is checked on MIT-BIH segments (record 106: normal beats with PVCs and
ventricular runs; record 213: many ventricular and fusion beats) and on a segment of
the 31-channel Michigan EEG: identical spike trains, identical weights and scores
(the fast loop repeats nengo's float operations; see ``spikewatch.snn.backends.fast``
for the only places where the last bits of the membrane input may differ), identical
``events.tsv`` through ``analyze``, and chunked runs equal to whole runs.
"""

from __future__ import annotations

import nengo
import numpy as np
import pytest

from spikewatch.analysis import analyze
from spikewatch.config import NetworkConfig, load_config
from spikewatch.errors import NetworkError
from spikewatch.jobs import resolve_job
from spikewatch.preprocess import CausalFilter
from spikewatch.report import write_outputs
from spikewatch.snn.backends import BACKENDS, open_runner
from spikewatch.snn.backends.fast import FastRunner
from spikewatch.snn.backends.nengo_backend import NengoRunner
from spikewatch.snn.encoding import DeltaEncoder
from spikewatch.snn.network import DetectorNetwork


def _events(path, seconds, cfg, **read):
    """Filtered, delta-encoded UP/DOWN counts of the first ``seconds`` of a real record."""
    rec, _ = resolve_job(path, **read)
    x = rec.get_data(stop=seconds)
    y = CausalFilter(cfg.preprocessing, rec.sfreq, x.shape[0])(x)
    enc = DeltaEncoder.calibrate(y[:, : int(20 * rec.sfreq)], cfg.encoding.delta_factor)
    return rec.sfreq, enc.encode(y)


def _network(cfg, sfreq, ev, **kw):
    # weights in units of 1 / (input event rate over all taps), as analysis calibrates them
    taps = len({int(round(d * sfreq)) for d in cfg.network.delays_s})
    scale = 1.0 / max(float(ev.sum()) * sfreq / ev.shape[1] * taps, 1.0)
    return DetectorNetwork(ev.shape[0] // 2, sfreq, cfg.network, cfg.stdp, seed=cfg.seed, weight_scale=scale, **kw)


def _run(runner, ev, bounds=None):
    bounds = bounds or [0, ev.shape[1]]
    out = [runner.run(ev[:, a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    return np.concatenate([s for s, _ in out]), np.concatenate([c for _, c in out]), runner.weights()


def _assert_equivalent(cfg, sfreq, ev, **net_kw):
    block = int(round(sfreq))
    ref = NengoRunner(_network(cfg, sfreq, ev, **net_kw), block)
    fast = FastRunner(_network(cfg, sfreq, ev, **net_kw), block)
    np.testing.assert_array_equal(fast.weights(), ref.weights())
    s_ref, c_ref, w_ref = _run(ref, ev)
    s_fast, c_fast, w_fast = _run(fast, ev)
    ref.close()
    assert c_ref.sum() > 50, "feature neurons hardly fired: the comparison would be empty"
    assert np.abs(w_ref - ref.net.initial_weights).max() > 0, "STDP never changed a weight"
    np.testing.assert_array_equal(c_fast, c_ref)  # spike trains, step by step
    np.testing.assert_allclose(w_fast, w_ref, rtol=1e-9, atol=0)
    np.testing.assert_allclose(s_fast, s_ref, rtol=1e-6, atol=1e-12)
    return s_fast, c_fast, w_fast


@pytest.mark.parametrize("record", ["106", "213"])
def test_fast_equals_nengo_on_mitdb(mitdb, record):
    cfg = load_config("ecg")
    sfreq, ev = _events(mitdb / record, 40.0, cfg)
    _assert_equivalent(cfg, sfreq, ev)


def test_fast_equals_nengo_without_learning(mitdb):
    cfg = load_config("ecg", stdp__enabled=False)
    sfreq, ev = _events(mitdb / "106", 20.0, cfg)
    block = int(round(sfreq))
    ref = NengoRunner(_network(cfg, sfreq, ev), block)
    fast = FastRunner(_network(cfg, sfreq, ev), block)
    s_ref, c_ref, w_ref = _run(ref, ev)
    s_fast, c_fast, w_fast = _run(fast, ev)
    np.testing.assert_array_equal(c_fast, c_ref)
    np.testing.assert_array_equal(w_fast, w_ref)
    np.testing.assert_array_equal(w_fast, fast.net.initial_weights)
    np.testing.assert_allclose(s_fast, s_ref, rtol=1e-6, atol=1e-12)


def test_fast_equals_nengo_on_michigan_eeg(data_dir):
    cfg = load_config("eeg")
    sfreq, ev = _events(data_dir / "eeg-michigan-seizure", 30.0, cfg, io__sfreq=100.0)
    assert ev.shape[0] == 62
    _assert_equivalent(cfg, sfreq, ev)


@pytest.mark.skipif("gate_weight" not in NetworkConfig.model_fields, reason="network has no gate input")
def test_fast_equals_nengo_with_gate_and_rhythm_inputs(mitdb):
    """Extra Node rows (beat train at RR-scale taps, gate) and another fixed input connection."""
    cfg = load_config("ecg", network__gate_weight=2.0, network__rhythm_delays_s=[0.3, 0.6, 0.9])
    sfreq, ev = _events(mitdb / "106", 30.0, cfg)
    rng = np.random.default_rng(1)
    beats = np.zeros((1, ev.shape[1]), np.int32)
    beats[0, np.sort(rng.choice(ev.shape[1], 40, replace=False))] = 4
    gate = np.roll(beats > 0, 36).astype(np.int32)
    rows = np.vstack([ev, beats, gate])
    net = _network(cfg, sfreq, ev)
    assert net.feed.n_rows == rows.shape[0]
    block = int(round(sfreq))
    ref, fast = NengoRunner(net, block), FastRunner(_network(cfg, sfreq, ev), block)
    s_ref, c_ref, w_ref = _run(ref, rows)
    s_fast, c_fast, w_fast = _run(fast, rows)
    np.testing.assert_array_equal(c_fast, c_ref)
    np.testing.assert_allclose(w_fast, w_ref, rtol=1e-9, atol=0)
    np.testing.assert_allclose(s_fast, s_ref, rtol=1e-6, atol=1e-12)


def test_chunked_equals_whole_on_fast(mitdb):
    cfg = load_config("ecg")
    sfreq, ev = _events(mitdb / "106", 60.0, cfg)
    block = int(round(sfreq))
    whole = _run(FastRunner(_network(cfg, sfreq, ev), block), ev)
    # borders inside score blocks, a one-step chunk, an empty chunk
    cuts = [0, 1, 999, 999, 4000, 4001, 13337, 20000, ev.shape[1]]
    parts = _run(FastRunner(_network(cfg, sfreq, ev), block), ev, cuts)
    for a, b in zip(whole, parts):
        np.testing.assert_array_equal(a, b)


def test_events_tsv_identical_through_analyze(mitdb, tmp_path):
    """The whole pipeline with backend nengo vs fast writes the same events.tsv and beats.tsv."""
    over = dict(detection__warmup_s=10.0, detection__z_threshold=2.0, detection__baseline_s=30.0,
                encoding__calibration_s=20.0, pipeline__chunk_s=25.0)
    texts = {}
    for backend in ("nengo", "fast"):
        rec, cfg = resolve_job(mitdb / "106", backend__name=backend, **over)
        result = analyze(rec, cfg, stop=75.0)
        folder = write_outputs(result, rec, cfg, tmp_path / backend)
        texts[backend] = [(folder / f).read_text() for f in ("events.tsv", "beats.tsv")]
        if backend == "fast":
            n_events = len(result.events)
    assert n_events >= 2, "no events to compare"
    assert texts["fast"] == texts["nengo"]


def test_fast_is_registered_and_selectable():
    assert BACKENDS["fast"] is FastRunner
    assert load_config("ecg", backend__name="fast").backend.name == "fast"


def _small_net():
    cfg = load_config("ecg")
    ev = np.zeros((4, 10), np.int32)
    ev[:, ::3] = 1
    return cfg, _network(cfg, 360.0, ev)


@pytest.mark.parametrize("change, message", [
    (lambda n: setattr(n.features, "neuron_type", nengo.AdaptiveLIF()), "ensemble 'features'"),
    (lambda n: setattr(n.conn, "synapse", nengo.Alpha(0.01)), "connection 'input'"),
    (lambda n: setattr(n.features, "noise", nengo.processes.WhiteNoise()), "neuron noise"),
    (lambda n: setattr(n.source, "output", lambda t: np.ones(n.source.size_out)), "node 'source'"),
])
def test_unsupported_models_are_refused(change, message):
    _, net = _small_net()
    change(net)
    with pytest.raises(NetworkError, match=message):
        open_runner("fast", net, block_steps=360)


def test_extra_objects_are_refused():
    _, net = _small_net()
    with net.model:
        nengo.Node(0.5, label="stray")
    with pytest.raises(NetworkError, match="unexpected nodes"):
        open_runner("fast", net, block_steps=360)


def test_wrong_event_rows_are_refused():
    _, net = _small_net()
    runner = open_runner("fast", net, block_steps=360)
    with pytest.raises(NetworkError, match="events of shape"):
        runner.run(np.zeros((3, 10)))


def test_activity_bins_equal_the_add_at_definition(mitdb):
    """analysis._accumulate_bins (reduceat, for speed) adds exactly what np.add.at did, chunk by chunk."""
    from spikewatch.analysis import _accumulate_bins

    cfg = load_config("ecg")
    sfreq, ev = _events(mitdb / "106", 30.0, cfg)
    per_ch = ev[0::2] + ev[1::2]
    bin_len = 36
    n_bins = -(-per_ch.shape[1] // bin_len)
    want = np.zeros((2, n_bins), np.int32)
    np.add.at(want.T, np.arange(per_ch.shape[1]) // bin_len, per_ch.T.astype(np.int32))
    for cuts in ([0, per_ch.shape[1]], [0, 1, 35, 36, 1000, 1001, 5000, per_ch.shape[1]]):
        got = np.zeros_like(want)
        for a, b in zip(cuts[:-1], cuts[1:]):
            _accumulate_bins(got, per_ch[:, a:b], a, bin_len)
        np.testing.assert_array_equal(got, want)
    spikes = np.random.default_rng(0).integers(0, 2, size=(per_ch.shape[1], 24)).astype(np.int16)
    got = np.zeros((24, n_bins), np.int32)
    _accumulate_bins(got, spikes.T, 0, bin_len)
    np.testing.assert_array_equal(got, np.add.reduceat(spikes.T.astype(np.int64), np.arange(0, spikes.shape[0], bin_len), axis=1))
