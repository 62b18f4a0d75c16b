"""Reference backend: ``nengo.Simulator``."""

from __future__ import annotations

import numpy as np

from spikewatch.snn.backends.base import Runner


class NengoRunner(Runner):
    """Runs the network on the reference ``nengo.Simulator``."""

    name = "nengo"

    def __init__(self, net, block_steps: int):
        super().__init__(net, block_steps)
        self.sim = net.simulator()
        self._wsig = self.sim.model.sig[net.conn]["weights"]
        self._last_w = None

    def weights(self) -> np.ndarray:
        if self.sim.closed:
            return self._last_w.copy()
        return np.array(self.sim.signals[self._wsig], dtype=np.float64)

    def _simulate(self, events):
        net, sim = self.net, self.sim
        net.feed.push(events)
        sim.run_steps(events.shape[1])
        u = sim.data[net.p_input]
        a = sim.data[net.p_act]
        spikes = np.rint(sim.data[net.p_spikes] * net.dt).astype(np.int64)
        sim.clear_probes()
        return u, a, spikes

    def close(self) -> None:
        if not self.sim.closed:
            self._last_w = self.weights()
            self.sim.close()
