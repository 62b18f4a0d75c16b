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

import importlib
from collections.abc import Mapping

from spikewatch.errors import NetworkError
from spikewatch.snn.backends.base import Runner

_WHERE = {"nengo": ("spikewatch.snn.backends.nengo_backend", "NengoRunner"),
          "loihi": ("spikewatch.snn.backends.loihi", "LoihiRunner"),
          "fast": ("spikewatch.snn.backends.fast", "FastRunner")}


class _Backends(Mapping):
    """Runner classes by backend name, each imported when first asked for (nengo-loihi is slow to
    import and only the loihi backend needs it)."""

    def __getitem__(self, name: str) -> type[Runner]:
        module, attr = _WHERE[name]
        return getattr(importlib.import_module(module), attr)

    def __iter__(self):
        return iter(_WHERE)

    def __len__(self) -> int:
        return len(_WHERE)


BACKENDS: Mapping[str, type[Runner]] = _Backends()


def __getattr__(name: str):
    """``FastRunner``, ``LoihiRunner``, ``NengoRunner``: imported on first access."""
    for key, (_, attr) in _WHERE.items():
        if attr == name:
            return BACKENDS[key]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
