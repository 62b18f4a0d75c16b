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
from spikewatch.snn.backends import fast as fast_mod
from spikewatch.snn.backends.fast import FastRunner
from spikewatch.snn.backends.nengo_backend import NengoRunner
from spikewatch.snn.encoding import DeltaEncoder
from spikewatch.snn.network import DetectorNetwork, anomaly_score


BEATS = set("NLRejAaJSVEF/fQ")


def _events(path, seconds, cfg, **read):
    """Filtered, delta-encoded UP/DOWN counts of the first ``seconds`` of a real record,
    and its annotated beats (samples; none for EEG)."""
    rec, _ = resolve_job(path, **read)
    x = rec.get_data(stop=seconds)
    y = CausalFilter(cfg.preprocessing, rec.sfreq, x.shape[0])(x)
    enc = DeltaEncoder.calibrate(y[:, : int(20 * rec.sfreq)], cfg.encoding.delta_factor)
    ann = rec.annotations
    beats = np.array([int(round(o * rec.sfreq)) for o, d in zip(ann.onset, ann.description)
                      if d in BEATS and o < seconds], dtype=np.int64)
    return rec.sfreq, enc.encode(y), beats


def _rows(net, ev, sfreq, beats):
    """The Node's input rows as analysis builds them: UP/DOWN counts, then the beat
    train and the gate train when the network has those inputs."""
    rows = [ev]
    if getattr(net, "rhythm_steps", None):
        beat_row = np.zeros((1, ev.shape[1]), np.int32)
        beat_row[0, beats] = net.net.rhythm_count
        rows.append(beat_row)
    if getattr(net, "gated", False):
        gate = np.zeros((1, ev.shape[1]), np.int32)
        if len(beats):
            at = beats + int(round(net.net.gate_delay_s * sfreq))
        else:  # EEG: a clock gate every second
            at = np.arange(int(sfreq) - 1, ev.shape[1], int(sfreq))
        gate[0, at[at < ev.shape[1]]] = 1
        rows.append(gate)
    out = np.vstack(rows)
    assert out.shape[0] == net.feed.n_rows
    return out


def _network(cfg, sfreq, ev, **kw):
    # weights in units of 1 / (input event rate over all taps), as analysis calibrates them
    taps = len({int(round(d * sfreq)) for d in cfg.network.delays_s})
    scale = 1.0 / max(float(ev.sum()) * sfreq / ev.shape[1] * taps, 1.0)
    return DetectorNetwork(ev.shape[0] // 2, sfreq, cfg.network, cfg.stdp, seed=cfg.seed, weight_scale=scale, **kw)


def _run(runner, ev, bounds=None):
    bounds = bounds or [0, ev.shape[1]]
    out = [runner.run(ev[:, a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    return np.concatenate([s for s, _ in out]), np.concatenate([c for _, c in out]), runner.weights()


def _assert_equivalent(cfg, sfreq, ev, beats, min_spikes=50):
    block = int(round(sfreq))
    ref = NengoRunner(_network(cfg, sfreq, ev), block)
    fast = FastRunner(_network(cfg, sfreq, ev), block)
    rows = _rows(ref.net, ev, sfreq, beats)
    np.testing.assert_array_equal(fast.weights(), ref.weights())
    s_ref, c_ref, w_ref = _run(ref, rows)
    s_fast, c_fast, w_fast = _run(fast, rows)
    ref.close()
    assert c_ref.sum() > min_spikes, "feature neurons hardly fired: the comparison would be empty"
    if cfg.stdp.enabled:
        assert np.abs(w_ref - ref.net.initial_weights).max() > 0, "STDP never changed a weight"
    np.testing.assert_array_equal(c_fast, c_ref)  # spike trains, step by step
    np.testing.assert_allclose(w_fast, w_ref, rtol=1e-9, atol=0)
    np.testing.assert_allclose(s_fast, s_ref, rtol=1e-6, atol=1e-12)
    return fast, w_fast


@pytest.mark.parametrize("record", ["106", "213"])
def test_fast_equals_nengo_on_mitdb(mitdb, record):
    cfg = load_config("ecg")
    sfreq, ev, beats = _events(mitdb / record, 40.0, cfg)
    fast, _ = _assert_equivalent(cfg, sfreq, ev, beats)
    compiled = ("unexplained", "mismatch", "familiar")
    assert fast.score_in_loop == (getattr(cfg.network, "score", "unexplained") in compiled)


def test_python_score_path_equals_nengo(mitdb, monkeypatch):
    """With the score left to Runner.run (as for a score mode the loop does not know)."""
    monkeypatch.setattr(fast_mod, "compiled_score", lambda net: fast_mod.K.SCORE_NONE)
    cfg = load_config("ecg")
    sfreq, ev, beats = _events(mitdb / "106", 30.0, cfg)
    fast, _ = _assert_equivalent(cfg, sfreq, ev, beats)
    assert not fast.score_in_loop


@pytest.mark.parametrize("mode", ["unexplained", "mismatch", "familiar"])
def test_compiled_score_equals_anomaly_score(mode):
    rng = np.random.default_rng(3)
    u, a, w = rng.random((200, 30)), rng.random((200, 8)) * (rng.random((200, 8)) > 0.3), rng.random((8, 30))
    a[::9] = 0.0
    u[::13] = 0.0
    for ref, m in ((0, 30), (5, 12)):  # familiar: the familiar neuron and the leading inputs compared
        got = np.empty(200)
        fast_mod.K.score_rows(u, a, w, fast_mod.K.SCORE_MODES[mode], got, ref, m)
        want = (anomaly_score(u[:, :m], a, w[:, :m], mode, ref) if mode == "familiar"
                else anomaly_score(u, a, w, mode))
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_fast_equals_nengo_without_learning(mitdb):
    cfg = load_config("ecg", stdp__enabled=False)
    sfreq, ev, beats = _events(mitdb / "106", 20.0, cfg)
    fast, w_fast = _assert_equivalent(cfg, sfreq, ev, beats, min_spikes=10)
    np.testing.assert_array_equal(w_fast, fast.net.initial_weights)


def test_fast_equals_nengo_on_michigan_eeg(data_dir):
    cfg = load_config("eeg")
    sfreq, ev, beats = _events(data_dir / "eeg-michigan-seizure", 30.0, cfg, io__sfreq=100.0)
    assert ev.shape[0] == 62
    _assert_equivalent(cfg, sfreq, ev, beats)


@pytest.mark.skipif("gate_weight" not in NetworkConfig.model_fields, reason="network has no gate input")
def test_fast_equals_nengo_with_other_inputs_and_score(mitdb):
    """Other beat/gate settings, the other score formula, plain (hard) weight bounds."""
    other = {"unexplained": "mismatch", "mismatch": "unexplained", "familiar": "mismatch"}[
        load_config("ecg").network.score]
    cfg = load_config("ecg", network__gate_weight=2.0, network__rhythm_delays_s=[0.3, 0.6, 0.9],
                      network__score=other, stdp__bounds="hard")
    sfreq, ev, beats = _events(mitdb / "106", 30.0, cfg)
    _assert_equivalent(cfg, sfreq, ev, beats)


def test_fast_equals_nengo_with_heterosynaptic_depression_and_familiar_score(mitdb):
    """STDP with a_decay (hard bounds), several neurons, the 'familiar' score on the event taps."""
    cfg = load_config("ecg", network__n_neurons=4, network__score="familiar", network__score_inputs="events",
                      network__familiarity_tau_s=5.0, stdp__bounds="hard", stdp__a_decay=0.05,
                      stdp__a_plus=0.00125, stdp__a_minus=-0.0001, stdp__w_max=3.0)
    sfreq, ev, beats = _events(mitdb / "106", 40.0, cfg)
    fast, w = _assert_equivalent(cfg, sfreq, ev, beats)
    assert fast.score_in_loop  # the familiar score on a leading block of inputs runs in the loop
    assert fast.familiarity.sum() > 0


def test_stuck_level_is_exact():
    from spikewatch.snn.backends._kernels import stuck_level

    for a in (0.574, 0.757, 0.8706, 0.9945, 0.999):
        level = stuck_level(a)
        assert level > 0 and level * a == level and -level * a == -level
        above = np.nextafter(level, 1.0)
        assert above * a != above  # the first value that still decays


def test_fast_equals_nengo_across_silence(mitdb):
    """Real input, 40 s without any input, real input again: filters, synapses and traces
    decay to their stuck subnormal values and get parked, then the input brings them back.
    Short post traces (so they reach that level within the silence) and some zero or
    subnormal initial weights (the exact path for weights a parked trace could move)."""
    cfg = load_config("ecg", stdp__tau_minus=0.02)
    sfreq, ev, beats = _events(mitdb / "106", 40.0, cfg)
    half = ev.shape[1] // 2
    gap = int(40 * sfreq)
    ev2 = np.concatenate([ev[:, :half], np.zeros((ev.shape[0], gap), ev.dtype), ev[:, half:]], axis=1)
    beats2 = np.concatenate([beats[beats < half], beats[beats >= half] + gap])
    base = _network(cfg, sfreq, ev)
    w0 = base.initial_weights.copy()
    w0[::5, ::7] = 0.0
    w0[1::5, ::7] = 1e-310
    block = int(round(sfreq))
    ref = NengoRunner(_network(cfg, sfreq, ev, weights=w0), block)
    fast = FastRunner(_network(cfg, sfreq, ev, weights=w0), block)
    rows = _rows(ref.net, ev2, sfreq, beats2)
    s_ref, c_ref, w_ref = _run(ref, rows)
    ref.close()
    cut = half + gap * 3 // 4  # a chunk border late in the silence
    first = fast.run(rows[:, :cut])
    parked = {k: int(np.count_nonzero(fast._state[k])) for k in ("fu_park", "fa_park", "x_park", "y_park", "syn_park")}
    assert all(parked.values()), f"nothing parked in some state: {parked}"
    second = fast.run(rows[:, cut:])
    s_fast, c_fast, w_fast = np.concatenate([first[0], second[0]]), np.concatenate([first[1], second[1]]), fast.weights()
    assert c_ref[half + gap:].sum() > 10, "the network did not wake up after the silence"
    np.testing.assert_array_equal(c_fast, c_ref)
    np.testing.assert_array_equal(w_fast, w_ref)
    np.testing.assert_allclose(s_fast, s_ref, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("in_loop", [True, False])
def test_chunked_equals_whole_on_fast(mitdb, monkeypatch, in_loop):
    if not in_loop:
        monkeypatch.setattr(fast_mod, "compiled_score", lambda net: fast_mod.K.SCORE_NONE)
    cfg = load_config("ecg")
    sfreq, ev, beats = _events(mitdb / "106", 60.0, cfg)
    block = int(round(sfreq))
    runner = FastRunner(_network(cfg, sfreq, ev), block)
    rows = _rows(runner.net, ev, sfreq, beats)
    whole = _run(runner, rows)
    # borders inside score blocks and inside the longest delay, a one-step chunk, an empty chunk
    cuts = [0, 1, 999, 999, 4000, 4001, 13337, 20000, ev.shape[1]]
    parts = _run(FastRunner(_network(cfg, sfreq, ev), block), rows, cuts)
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
    sfreq, ev, _ = _events(mitdb / "106", 30.0, cfg)
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
    want = np.add.reduceat(spikes.T.astype(np.int64), np.arange(0, spikes.shape[0], bin_len), axis=1)
    np.testing.assert_array_equal(got, want)
