"""The runner interface every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from spikewatch.snn.network import anomaly_score


class Runner(ABC):
    """One open simulation of a :class:`~spikewatch.snn.network.DetectorNetwork`.

    Parameters
    ----------
    net : DetectorNetwork
        The network (its Nengo model is the single description).
    block_steps : int
        Steps between the weight snapshots used by the score. Blocks are
        aligned to the start of the run, so chunking never changes the score.
    """

    name = "abstract"

    def __init__(self, net, block_steps: int):
        self.net = net
        self.block_steps = max(int(block_steps), 1)
        self.steps = 0  # steps simulated so far
        self._w_block = None
        # familiarity: each neuron's spike count, decaying with familiarity_tau_s, updated at
        # every block start (blocks are aligned to the run start, so chunking never matters)
        n = net.net.n_neurons
        self.familiarity = np.zeros(n)
        self._block_spikes = np.zeros(n)
        tau = net.net.familiarity_tau_s if hasattr(net.net, "familiarity_tau_s") else 300.0
        self._fam_decay = float(np.exp(-self.block_steps * net.dt / tau))
        self._ref = 0

    @abstractmethod
    def weights(self) -> np.ndarray:
        """Current input weight matrix, shape ``(n_neurons, n_pre)`` (a copy)."""

    @abstractmethod
    def _simulate(self, events: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Advance ``events.shape[1]`` steps.

        Returns filtered input ``u`` (steps x n_pre), filtered activity ``a``
        (steps x n_neurons) and spike counts per step (steps x n_neurons).
        """

    def close(self) -> None:
        """Release the simulator."""

    def run(self, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Feed a chunk of UP/DOWN counts through the network.

        Parameters
        ----------
        events : ndarray, shape (2 * n_channels, n_steps)

        Returns
        -------
        score : ndarray of float32, shape (n_steps,)
            Anomaly score per step.
        spikes : ndarray of int16, shape (n_steps, n_neurons)
            Feature-neuron spikes per step.
        """
        n_steps = events.shape[1]
        score = np.empty(n_steps, dtype=np.float32)
        counts = np.zeros((n_steps, self.net.net.n_neurons), dtype=np.int16)
        done = 0
        while done < n_steps:
            k = min(self.block_steps - self.steps % self.block_steps, n_steps - done)
            if self.steps % self.block_steps == 0 or self._w_block is None:
                self._w_block = self.weights()
                if self.steps % self.block_steps == 0 and self.steps > 0:
                    self.familiarity *= self._fam_decay  # in place: a compiled loop may share the arrays
                    self.familiarity += self._block_spikes
                    self._block_spikes[:] = 0
                self._ref = int(np.argmax(self.familiarity))
            u, a, spikes = self._simulate(events[:, done:done + k])
            cols = getattr(self.net, "score_cols", slice(None))
            score[done:done + k] = anomaly_score(u[:, cols], a, self._w_block[:, cols], self.net.net.score,
                                                 self._ref)
            counts[done:done + k] = spikes
            self._block_spikes += spikes.sum(axis=0)
            done += k
            self.steps += k
        return score, counts

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
