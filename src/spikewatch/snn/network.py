"""The detector network: UP/DOWN trains -> STDP-learning LIF layer with competition.

One Nengo model is the single description of the network:

* ``source`` (Node, size ``2 C D``): the UP/DOWN event counts of the ``C``
  channels, each seen at ``D`` delay taps (temporal context), as spike trains
  of height ``count / dt``;
* ``features`` (Ensemble of LIF neurons, addressed through ``.neurons``): input
  weights ``W`` (``N x 2CD``) learned online by :class:`~spikewatch.snn.STDP`;
  all-to-all lateral inhibition makes neurons compete, so each becomes selective
  to one recurring pattern of the recording (normal beats, background EEG).

The anomaly score at each step measures how poorly the learned patterns
explain the current input: with ``u`` the filtered input, ``a`` the filtered
feature activity and ``W_i`` neuron ``i``'s weights,
``match = sum_i a_i cos(W_i, u) / sum_i a_i`` (0 when no neuron fires) and
``score = |u|_1 * (1 - match)``: input the network does not recognise.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import nengo
import numpy as np

import spikewatch.snn  # noqa: F401  (registers the STDP builder)
from spikewatch.config import NetworkConfig, STDPConfig
from spikewatch.snn.stdp import STDP


class EventFeed:
    """FIFO of event-count chunks consumed one step at a time by the source Node.

    Parameters
    ----------
    n_inputs : int
        Rows of each chunk (``2 * n_channels``).
    delays : sequence of int
        Delay taps in steps; the Node emits ``events[:, n - d]`` for each tap.
    dt : float
        Simulator step (s).
    """

    def __init__(self, n_inputs: int, delays, dt: float):
        self.n_inputs = n_inputs
        self.delays = np.asarray(delays, dtype=int)
        self.dt = dt
        self._chunks: deque = deque()
        self._pos = 0
        depth = int(self.delays.max()) + 1
        self._hist = np.zeros((depth, n_inputs))  # ring buffer of past steps
        self._head = 0
        self.size_out = n_inputs * len(self.delays)

    def push(self, events: np.ndarray) -> None:
        """Queue a chunk of event counts, shape ``(n_inputs, n_steps)``."""
        self._chunks.append(np.ascontiguousarray(np.asarray(events, dtype=np.float64).T))

    def pending(self) -> int:
        """Steps queued and not yet consumed."""
        return sum(len(c) for c in self._chunks) - self._pos

    def step(self, t: float) -> np.ndarray:
        """Next output vector (called by the Node once per step)."""
        chunk = self._chunks[0]
        row = chunk[self._pos]
        self._pos += 1
        if self._pos == len(chunk):
            self._chunks.popleft()
            self._pos = 0
        depth = self._hist.shape[0]
        self._head = (self._head + 1) % depth
        self._hist[self._head] = row
        idx = (self._head - self.delays) % depth
        return self._hist[idx].ravel() / self.dt


@dataclass
class DetectorNetwork:
    """Builds and runs the detector network on a chosen Nengo simulator.

    Parameters
    ----------
    n_channels : int
        Channels analysed (each gives an UP and a DOWN train).
    sfreq : float
        Sampling rate; the network runs at ``dt = 1 / sfreq``.
    net : NetworkConfig
        Network section of the config.
    stdp : STDPConfig
        STDP section of the config (``enabled=False`` freezes the weights).
    seed : int
        Seed for the initial weights and the simulator.
    weights : ndarray, optional
        Initial weights (e.g. from a learned bundle) instead of random ones,
        in simulator units (already multiplied by ``weight_scale``).
    weight_scale : float
        Simulator weight per config weight unit: ``1 / R`` with ``R`` the total
        input event rate (events/s over all inputs and taps) of the calibration
        period, so weights of order 1 drive the neurons near threshold whatever
        the modality or event rate. STDP amplitudes and bounds are scaled too.
    """

    n_channels: int
    sfreq: float
    net: NetworkConfig
    stdp: STDPConfig
    seed: int = 0
    weights: np.ndarray | None = None
    weight_scale: float = 1.0
    model: nengo.Network = field(init=False, repr=False)

    def __post_init__(self):
        self.dt = 1.0 / self.sfreq
        self.delay_steps = sorted({int(round(d * self.sfreq)) for d in self.net.delays_s})
        n_in = 2 * self.n_channels
        self.feed = EventFeed(n_in, self.delay_steps, self.dt)
        self.n_pre = self.feed.size_out
        rng = np.random.default_rng(self.seed)
        if self.weights is None:
            hi = self.net.w_init * self.stdp.w_max * self.weight_scale
            w0 = rng.uniform(0, hi, size=(self.net.n_neurons, self.n_pre))
        else:
            w0 = np.asarray(self.weights, dtype=np.float64)
            if w0.shape != (self.net.n_neurons, self.n_pre):
                raise ValueError(f"weights shape {w0.shape} != {(self.net.n_neurons, self.n_pre)}")
        self.initial_weights = w0.copy()
        with nengo.Network(label="spikewatch detector", seed=self.seed) as model:
            self.source = nengo.Node(self.feed.step, size_out=self.n_pre, label="source")
            self.features = nengo.Ensemble(
                self.net.n_neurons, 1,
                neuron_type=nengo.LIF(tau_rc=self.net.tau_rc, tau_ref=self.net.tau_ref),
                gain=nengo.dists.Choice([1.0]), bias=nengo.dists.Choice([0.0]),
                label="features",
            )
            rule = None
            if self.stdp.enabled:
                k = self.weight_scale
                rule = STDP(
                    a_plus=self.stdp.a_plus * k, a_minus=self.stdp.a_minus * k,
                    tau_plus=self.stdp.tau_plus, tau_minus=self.stdp.tau_minus,
                    w_min=self.stdp.w_min * k, w_max=self.stdp.w_max * k, bounds=self.stdp.bounds,
                )
            self.conn = nengo.Connection(
                self.source, self.features.neurons, transform=w0,
                synapse=nengo.Lowpass(self.net.synapse_s) if self.net.synapse_s > 0 else None,
                learning_rule_type=rule, label="input",
            )
            n = self.net.n_neurons
            self.inhib = nengo.Connection(
                self.features.neurons, self.features.neurons,
                transform=-self.net.inhibition * (np.ones((n, n)) - np.eye(n)),
                synapse=nengo.Lowpass(0.005), label="lateral inhibition",
            )
            tau = self.net.score_tau_s
            self.p_input = nengo.Probe(self.source, synapse=nengo.Lowpass(tau))
            self.p_act = nengo.Probe(self.features.neurons, synapse=nengo.Lowpass(tau))
            self.p_spikes = nengo.Probe(self.features.neurons)
        self.model = model

    def simulator(self, **kwargs) -> nengo.Simulator:
        """A reference ``nengo.Simulator`` for this network."""
        return nengo.Simulator(self.model, dt=self.dt, seed=self.seed, progress_bar=False, **kwargs)

    @property
    def inhibition_synapse_s(self) -> float:
        """Time constant of the lateral-inhibition synapse (s)."""
        return self.inhib.synapse.tau


def weight_scale_for(events: np.ndarray, sfreq: float, n_taps: int) -> float:
    """Simulator weight per config weight unit for calibration ``events``.

    Parameters
    ----------
    events : ndarray, shape (2 * n_channels, n_steps)
        UP/DOWN counts of the calibration period.
    sfreq : float
        Sampling rate (Hz).
    n_taps : int
        Delay taps per input.

    Returns
    -------
    float
        ``1 / R`` with ``R`` the total event rate over all inputs and taps (events/s).
    """
    rate = float(events.sum()) * sfreq / max(events.shape[1], 1) * n_taps
    return 1.0 / max(rate, 1.0)


def anomaly_score(u: np.ndarray, a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Unexplained input per step.

    Parameters
    ----------
    u : ndarray, shape (n_steps, n_pre)
        Filtered input spike trains.
    a : ndarray, shape (n_steps, n_neurons)
        Filtered feature-neuron activity.
    w : ndarray, shape (n_neurons, n_pre)
        Input weights.

    Returns
    -------
    ndarray, shape (n_steps,)
        ``|u|_1 * (1 - match)`` with ``match`` the activity-weighted cosine
        between the input and each neuron's weights (see module docstring).
    """
    u = np.maximum(u, 0.0)
    wn = w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)
    un = np.linalg.norm(u, axis=1)
    cos = (u @ wn.T) / np.maximum(un, 1e-12)[:, None]
    a = np.maximum(a, 0.0)
    total = a.sum(axis=1)
    match = np.where(total > 0, (a * cos).sum(axis=1) / np.maximum(total, 1e-12), 0.0)
    return u.sum(axis=1) * (1.0 - match)
