"""Simulator backends: the same :class:`~spikewatch.snn.network.DetectorNetwork`
runs on any of them.

A backend opens a *runner* on a network; ``runner.run(events)`` feeds a chunk of
UP/DOWN counts and returns the per-step anomaly score and the feature-neuron
spike counts; state (membranes, synapses, traces, weights) persists between
calls, so chunked runs equal whole runs.

* ``nengo``: the reference ``nengo.Simulator``.
* ``loihi``: nengo-loihi (chip emulator, or a board with NxSDK); frozen weights only.
* ``fast``: the same Nengo model simulated by a compiled (numba) loop, checked
  against ``nengo`` by ``tests/test_fast_backend.py``.
"""

from __future__ import annotations

from spikewatch.errors import NetworkError
from spikewatch.snn.backends.base import Runner
from spikewatch.snn.backends.fast import FastRunner
from spikewatch.snn.backends.loihi import LoihiRunner
from spikewatch.snn.backends.nengo_backend import NengoRunner

BACKENDS: dict[str, type[Runner]] = {"nengo": NengoRunner}
BACKENDS["loihi"] = LoihiRunner
BACKENDS["fast"] = FastRunner


def open_runner(name: str, net, block_steps: int, backend=None) -> Runner:
    """Open a runner of backend ``name`` on ``net``.

    Parameters
    ----------
    name : str
        Backend name (see :data:`BACKENDS`).
    net : DetectorNetwork
        The network to simulate.
    block_steps : int
        Steps between the weight snapshots used by the score (aligned to the
        start of the run).
    backend : BackendConfig, optional
        Backend config section; a runner class with a ``configure`` classmethod
        reads its options from it (e.g. the Loihi target).

    Returns
    -------
    Runner
    """
    try:
        cls = BACKENDS[name]
    except KeyError:
        raise NetworkError(f"backend '{name}' unknown; available: {', '.join(BACKENDS)}") from None
    if backend is not None and hasattr(cls, "configure"):
        return cls.configure(net, block_steps, backend)
    return cls(net, block_steps)


__all__ = ["BACKENDS", "FastRunner", "LoihiRunner", "NengoRunner", "Runner", "open_runner"]
