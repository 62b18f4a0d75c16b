"""The pinned environment holds: nengo-loihi's emulator builds and runs a model."""

import warnings

import nengo
import numpy as np


def test_numpy_pinned_below_2():
    assert np.__version__ == "1.26.4"


def test_nengo_loihi_simulator_builds_and_runs_tiny_model():
    import nengo_loihi

    with nengo.Network(seed=1) as model:
        stim = nengo.Node(0.5)
        ens = nengo.Ensemble(20, 1)
        nengo.Connection(stim, ens)
        probe = nengo.Probe(ens, synapse=0.02)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with nengo_loihi.Simulator(model, target="sim", progress_bar=False) as sim:
            sim.run(0.3)
    decoded = sim.data[probe][-50:].mean()
    assert 0.3 < decoded < 0.7, decoded
