"""The Loihi backend on real MIT-BIH data.

* the frozen detector on nengo-loihi's chip emulator flags >= 95 % of the events the
  same frozen detector flags on the reference backend, with few extra (record 213,
  many ventricular beats; learned on 0-60 s, analysed 60-150 s);
* the chip form of the network (bit-plane input axons, one connection per plane) is
  exact: run on the reference simulator it reproduces the reference network's spikes;
* what cannot map is refused up front, naming the object (STDP, neuron type, size, target);
* the chip resource / quantisation / energy report is in summary.json.
"""

from __future__ import annotations

import csv
import json

import nengo
import numpy as np
import pytest

from spikewatch.bundle import learn_bundle, save_bundle
from spikewatch.cli import main
from spikewatch.config import load_config
from spikewatch.errors import NetworkError
from spikewatch.jobs import resolve_job, run_job
from spikewatch.preprocess import CausalFilter
from spikewatch.snn.backends import open_runner
from spikewatch.snn.backends.loihi import LoihiRunner, UnitShaper, axon_spikes, bit_planes, chip_network
from spikewatch.snn.encoding import DeltaEncoder
from spikewatch.snn.network import DetectorNetwork

TRAIN = (0.0, 60.0)
TEST = (60.0, 150.0)


@pytest.fixture(scope="module")
def deployed(mitdb, tmp_path_factory):
    """Record 213 learned with STDP on the reference backend over 0-60 s, saved as a bundle."""
    rec, cfg = resolve_job(mitdb / "213")
    bundle, _ = learn_bundle(rec, cfg, start=TRAIN[0], stop=TRAIN[1])
    folder = save_bundle(bundle, tmp_path_factory.mktemp("bundle") / "213")
    return bundle, folder


def _frozen_net(bundle, **net_changes):
    cfg = bundle.config
    return DetectorNetwork(bundle.n_channels, bundle.sfreq, cfg.network.model_copy(update=net_changes),
                           cfg.stdp.model_copy(update={"enabled": False}), seed=cfg.seed,
                           weights=bundle.weights, weight_scale=bundle.weight_scale)


def _events(folder):
    with open(folder / "events.tsv", newline="") as fh:
        return [(float(r["onset"]), float(r["duration"])) for r in csv.DictReader(fh, delimiter="\t")]


def _overlaps(e, others):
    return any(o[0] <= e[0] + e[1] and e[0] <= o[0] + o[1] for o in others)


def test_emulator_flags_the_reference_events(mitdb, deployed, tmp_path):
    """>= 95 % of the reference backend's events are flagged on the emulator, few extra; summary has the chip report."""
    _, folder = deployed
    outs = {}
    for backend in ("nengo", "loihi"):
        rec, cfg = resolve_job(mitdb / "213", backend__model=str(folder), backend__name=backend,
                               backend__target="sim", report__html=False, report__edf_export=False)
        job = run_job(rec, cfg, tmp_path / backend, start=TEST[0], stop=TEST[1])
        outs[backend] = job.folder
    ref, chip = _events(outs["nengo"]), _events(outs["loihi"])
    assert len(ref) >= 3, f"reference flagged only {len(ref)} events: the comparison would be empty"
    found = sum(_overlaps(e, chip) for e in ref)
    extra = sum(not _overlaps(e, ref) for e in chip)
    assert found >= 0.95 * len(ref), f"emulator flagged {found} of {len(ref)} reference events"
    assert extra <= max(1, 0.05 * len(ref)), f"{extra} extra events on the emulator"

    s = json.loads((outs["loihi"] / "summary.json").read_text())
    rep = s["backend_report"]
    assert s["backend"] == "loihi" and rep["target"] == "sim"
    core = rep["resources"]["cores"][0]
    assert rep["resources"]["fits_one_chip"] and rep["resources"]["n_cores"] == 1
    n = load_config("ecg").network.n_neurons
    assert core["compartments"] == n
    groups = [q for q in rep["quantisation"]["synapses"] if q["kind"] == "recurrent"]
    # input axons = the host's (bit planes + gate units) + n per inhibition synapse group
    assert core["input_axons"] == rep["resources"]["host_input_axons"] + n * len(groups)
    assert 0 < core["synapse_memory_bytes"] <= core["synapse_memory_max_bytes"]
    assert rep["overflows"] == 0
    e = rep["energy"]
    assert e["estimate"] is True and e["per_hour"]["energy_J"] > 0 and e["energy_per_beat_J"] > 0
    assert e["per_hour"]["synaptic_ops"] > e["per_hour"]["input_spikes"]
    assert rep["traffic"]["host_to_chip_spikes_per_s"] > 0 and rep["traffic"]["clipped_events"] >= 0
    assert any("refractory" in n for n in rep["mapping_notes"])
    assert {"bit 0", "bit 1", "bit 2", "bit 3", "recurrent"} <= {q["kind"] for q in rep["quantisation"]["synapses"]}
    assert s["model"]["network_sha256"] and s["config"]["stdp"]["enabled"] is False


def test_chip_form_is_exact_on_the_reference_simulator(mitdb, deployed):
    """The chip form's input coding is exact: bit-plane axons with W * 2**b, strong binary lines
    (the gate) as unit axons of 1/n the weight, strong recurrent connections split into parallel
    groups. Run on the reference simulator with the two chip approximations removed (one synapse
    time constant, whole-step refractory), it reproduces the reference network's spikes."""
    bundle, _ = deployed
    rec, cfg = resolve_job(mitdb / "213")
    y = CausalFilter(cfg.preprocessing, rec.sfreq, 2)(rec.get_data(start=60, stop=70))
    ev = DeltaEncoder(bundle.delta).encode(y)
    assert ev.max() > 1, "segment without multi-event steps would not test the bit planes"
    ann = rec.annotations
    beats = np.array([int(round((o - 60) * rec.sfreq)) for o, d in zip(ann.onset, ann.description)
                      if 60 <= o < 70 and d in ("N", "V", "F", "A", "L", "R")])
    nets = []
    for _ in range(2):
        net = _frozen_net(bundle)
        for conn in net.model.all_connections:  # one synapse everywhere, as on a Loihi compartment
            conn.synapse = net.conn.synapse
        nets.append(net)
    net, net2 = nets
    lag = int(round(cfg.network.gate_delay_s * rec.sfreq))
    rows = net.input_rows(ev, beats=beats, gates=beats + lag)
    with net.simulator() as sim:
        net.feed.push(rows)
        sim.run_steps(rows.shape[1])
        ref = sim.data[net.p_spikes]
    chip = chip_network(net2, count_bits=4)
    for ens in chip.ensembles.values():  # keep the reference refractory (the other chip approximation)
        ens.neuron_type = net2.features.neuron_type
    assert chip.units and not any(u[2] for u in chip.units.values()), "gate should be sent as unshaped units"
    net2.feed.push(rows)
    counts = np.rint(np.array([net2.feed.step(0.0) for _ in range(rows.shape[1])]) * net2.dt).astype(int)
    spikes, clipped = axon_spikes(chip, UnitShaper(chip.units, net2.dt), counts)
    assert clipped == 0
    chip.axons.output.queue.extend(spikes)
    with nengo.Simulator(chip.model, dt=net2.dt, progress_bar=False) as sim:
        sim.run_steps(rows.shape[1])
        got = sim.data[chip.probes[net2.p_spikes]]
    assert ref.sum() > 0
    np.testing.assert_array_equal(got, ref)


def test_gate_preshaping_matches_the_slower_synapse():
    """A binary line through a 20 ms synapse, sent as 1/16 units pre-shaped for a 10 ms synapse:
    the 10 ms filter of the units matches the 20 ms filter of the line, and no unit is lost."""
    dt = 1 / 360
    g = np.zeros((2000, 1), dtype=int)
    g[[100, 400, 420, 1200], 0] = 1
    shaper = UnitShaper({0: (0, 16, (0.02, 0.01))}, dt)
    units = np.concatenate([shaper(g[:700]), shaper(g[700:])])  # chunked: state carried
    assert units.sum() == 16 * g.sum() and units.max() <= 16 and shaper.clipped == 0
    want = nengo.Lowpass(0.02).filt(g / dt, dt=dt)
    got = nengo.Lowpass(0.01).filt(units / 16 / dt, dt=dt)
    assert np.max(np.abs(got - want)) < 0.1 * want.max()
    plain = nengo.Lowpass(0.01).filt(g / dt, dt=dt)  # what a 10 ms synapse alone would give
    assert np.max(np.abs(plain - want)) > 0.5 * want.max()


def test_bit_planes():
    counts = np.array([[0, 1, 2, 3], [7, 15, 16, 40]])
    planes, clipped = bit_planes(counts, 4)
    assert planes.shape == (2, 16) and set(np.unique(planes)) <= {0, 1}
    back = sum(planes[:, b * 4:(b + 1) * 4].astype(int) << b for b in range(4))
    np.testing.assert_array_equal(back, np.minimum(counts, 15))
    assert clipped == (16 - 15) + (40 - 15)


def test_stdp_on_chip_is_refused(deployed):
    """Learning on the chip is refused before nengo-loihi builds anything, naming the connection."""
    bundle, _ = deployed
    cfg = bundle.config
    net = DetectorNetwork(2, bundle.sfreq, cfg.network, cfg.stdp, seed=0, weight_scale=bundle.weight_scale)
    with pytest.raises(NetworkError, match=r"connection 'input': STDP learning cannot run on Loihi"):
        open_runner("loihi", net, 360)


def test_unmappable_networks_are_refused(deployed):
    bundle, _ = deployed
    net = _frozen_net(bundle)
    net.features.neuron_type = nengo.AdaptiveLIF()
    with pytest.raises(NetworkError, match=r"ensemble 'features': neuron type AdaptiveLIF"):
        LoihiRunner(net, 360, target="sim")
    big = DetectorNetwork(2, bundle.sfreq, bundle.config.network.model_copy(update={"n_neurons": 1100}),
                          bundle.config.stdp.model_copy(update={"enabled": False}), seed=0)
    with pytest.raises(NetworkError, match=r"ensemble 'features': 1100 neurons do not fit one Loihi core"):
        LoihiRunner(big, 360, target="sim")
    with pytest.raises(NetworkError, match="NxSDK"):
        LoihiRunner(_frozen_net(bundle), 360, target="loihi")


def test_cli_loihi_without_model_is_a_clear_error(mitdb, tmp_path, capsys):
    rc = main(["analyze", str(mitdb / "213"), "--backend", "loihi", "--stop", "5", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "STDP learning cannot run on Loihi" in err and "Traceback" not in err
