"""The detector network: UP/DOWN trains -> STDP-learning LIF layer with competition.

One Nengo model is the single description of the network:

* ``source`` (Node, size ``2 C D``): the UP/DOWN event counts of the ``C``
  channels, each seen at ``D`` delay taps (temporal context), as spike trains
  of height ``count / dt``;
* ``features`` (Ensemble of LIF neurons, addressed through ``.neurons``): input
  weights ``W`` (``N x 2CD``) learned online by :class:`~spikewatch.snn.STDP`;
  all-to-all lateral inhibition makes neurons compete, so each becomes selective
  to one recurring pattern of the recording (normal beats, background EEG).

The anomaly score at each step (:func:`anomaly_score`) compares the filtered
input ``u`` with the learned weights ``W_i``: ``"familiar"`` (ECG) takes
``1 - cos(W_f, u)`` with ``f`` the neuron that fired most over the last
``familiarity_tau_s`` (the pattern the recording usually shows), optionally on
the UP/DOWN taps only (``score_inputs``); ``"unexplained"`` (EEG) takes
``|u|_1 * (1 - match)`` with ``match = sum_i a_i cos(W_i, u) / sum_i a_i`` over
the filtered feature activity ``a`` (0 when no neuron fires): input the network
does not recognise. ``gain_spread`` gives the neurons a fixed ladder of
excitability, so that one of them takes the usual pattern.
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
    """FIFO of input chunks consumed one step at a time by the source Node.

    Rows of a pushed chunk are split into *groups*, each seen at its own delay
    taps (e.g. the UP/DOWN trains at QRS-scale lags, the beat train at
    RR-scale lags). The Node output is, group after group and tap after tap,
    ``rows[n - d] / dt``; if ``gate`` is set, the last row of every chunk is a
    gate train appended undelayed as the final output element.

    Parameters
    ----------
    groups : list of (int, sequence of int)
        ``(n_rows, delays_in_steps)`` per group, in row order.
    dt : float
        Simulator step (s).
    gate : bool
        Whether chunks carry a trailing gate row.
    """

    def __init__(self, groups, dt: float, gate: bool = False):
        self.groups = [(int(n), np.asarray(sorted(set(int(x) for x in d)), dtype=int)) for n, d in groups]
        self.dt = dt
        self.gate = gate
        self.n_rows = sum(n for n, _ in self.groups) + int(gate)
        self._chunks: deque = deque()
        self._pos = 0
        depth = max(int(d.max()) for _, d in self.groups) + 1
        self._hist = np.zeros((depth, self.n_rows))  # ring buffer of past steps
        self._head = 0
        self._index = []  # (tap row indices into the ring, column slice) per group
        r = 0
        for n, d in self.groups:
            self._index.append((d, slice(r, r + n)))
            r += n
        self.size_pre = sum(n * len(d) for n, d in self.groups)
        self.size_out = self.size_pre + int(gate)
        self._out = np.zeros(self.size_out)

    def push(self, rows: np.ndarray) -> None:
        """Queue a chunk, shape ``(n_rows, n_steps)``."""
        rows = np.asarray(rows, dtype=np.float64)
        if rows.shape[0] != self.n_rows:
            raise ValueError(f"expected {self.n_rows} input rows, got {rows.shape[0]}")
        self._chunks.append(np.ascontiguousarray(rows.T))

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
        k = 0
        for d, cols in self._index:
            block = self._hist[(self._head - d) % depth, cols].ravel()
            self._out[k:k + block.size] = block
            k += block.size
        if self.gate:
            self._out[k] = row[-1]
        return self._out / self.dt


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
        self.rhythm_steps = sorted({int(round(d * self.sfreq)) for d in self.net.rhythm_delays_s})
        groups = [(2 * self.n_channels, self.delay_steps)]
        if self.rhythm_steps:
            groups.append((1, self.rhythm_steps))
        self.gated = self.net.gate_weight > 0
        self.feed = EventFeed(groups, self.dt, gate=self.gated)
        self.n_pre = self.feed.size_pre
        # the inputs the score compares (all, or the UP/DOWN taps without the rhythm input)
        n_events = 2 * self.n_channels * len(self.delay_steps)
        self.score_cols = slice(None) if self.net.score_inputs == "all" else slice(0, n_events)
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
            self.source = nengo.Node(self.feed.step, size_out=self.feed.size_out, label="source")
            pre = self.source[: self.n_pre] if self.gated else self.source
            self.features = nengo.Ensemble(
                self.net.n_neurons, 1,
                neuron_type=nengo.LIF(tau_rc=self.net.tau_rc, tau_ref=self.net.tau_ref),
                gain=self._gains(), bias=nengo.dists.Choice([0.0]),
                label="features",
            )
            rule = None
            if self.stdp.enabled:
                k = self.weight_scale
                rule = STDP(
                    a_plus=self.stdp.a_plus * k, a_minus=self.stdp.a_minus * k,
                    tau_plus=self.stdp.tau_plus, tau_minus=self.stdp.tau_minus,
                    w_min=self.stdp.w_min * k, w_max=self.stdp.w_max * k, bounds=self.stdp.bounds,
                    a_decay=self.stdp.a_decay,
                )
            self.conn = nengo.Connection(
                pre, self.features.neurons, transform=w0,
                synapse=nengo.Lowpass(self.net.synapse_s) if self.net.synapse_s > 0 else None,
                learning_rule_type=rule, label="input",
            )
            n = self.net.n_neurons
            self.inhib = nengo.Connection(
                self.features.neurons, self.features.neurons,
                transform=-self.net.inhibition * (np.ones((n, n)) - np.eye(n)),
                synapse=nengo.Lowpass(0.005), label="lateral inhibition",
            )
            if self.gated:
                # the gate (beat or clock train) briefly excites every feature neuron:
                # the best-matching one fires first and inhibits the others
                self.gate = nengo.Connection(
                    self.source[self.n_pre:], self.features.neurons,
                    transform=np.full((n, 1), self.net.gate_weight),
                    synapse=nengo.Lowpass(self.net.gate_synapse_s), label="gate",
                )
            tau = self.net.score_tau_s
            self.p_input = nengo.Probe(pre, synapse=nengo.Lowpass(tau))
            self.p_act = nengo.Probe(self.features.neurons, synapse=nengo.Lowpass(tau))
            self.p_spikes = nengo.Probe(self.features.neurons)
        self.model = model

    def _gains(self):
        """LIF gains: 1 for every neuron, or a fixed ladder from 1 down to ``1 - gain_spread``."""
        n, spread = self.net.n_neurons, self.net.gain_spread
        if spread == 0 or n == 1:
            return nengo.dists.Choice([1.0])
        return nengo.dists.Samples(1.0 - spread * np.arange(n) / (n - 1))

    def input_rows(self, events: np.ndarray, beats=(), gates=()) -> np.ndarray:
        """Stack a chunk's inputs in the order the source Node expects.

        Parameters
        ----------
        events : ndarray, shape (2 * n_channels, n_steps)
            UP/DOWN counts.
        beats : sequence of int
            Steps (within the chunk) of R-peaks, for the rhythm input.
        gates : sequence of int
            Steps (within the chunk) of gate spikes.

        Returns
        -------
        ndarray of int32, shape (feed.n_rows, n_steps)
        """
        n = events.shape[1]
        rows = [np.asarray(events, dtype=np.int32)]
        if self.rhythm_steps:
            rhythm = np.zeros((1, n), np.int32)
            np.add.at(rhythm[0], np.asarray(beats, dtype=np.int64), self.net.rhythm_count)
            rows.append(rhythm)
        if self.gated:
            gate = np.zeros((1, n), np.int32)
            np.add.at(gate[0], np.asarray(gates, dtype=np.int64), 1)
            rows.append(gate)
        return np.vstack(rows) if len(rows) > 1 else rows[0]

    def simulator(self, **kwargs) -> nengo.Simulator:
        """A reference ``nengo.Simulator`` for this network."""
        return nengo.Simulator(self.model, dt=self.dt, seed=self.seed, progress_bar=False, **kwargs)

    @property
    def inhibition_synapse_s(self) -> float:
        """Time constant of the lateral-inhibition synapse (s)."""
        return self.inhib.synapse.tau


def weight_scale_for(events: np.ndarray, sfreq: float, net: NetworkConfig,
                     beats: np.ndarray | None = None) -> float:
    """Simulator weight per config weight unit for calibration ``events``.

    Parameters
    ----------
    events : ndarray, shape (2 * n_channels, n_steps)
        UP/DOWN counts of the calibration period.
    sfreq : float
        Sampling rate (Hz).
    net : NetworkConfig
        Gives the delay taps (and the rhythm input, if any).
    beats : ndarray, optional
        R-peaks found in the calibration period (for the rhythm input).

    Returns
    -------
    float
        ``1 / R`` with ``R`` the total input event rate over all inputs and
        taps (events/s), so that weights of order 1 drive a neuron near threshold.
    """
    dur = max(events.shape[1], 1) / sfreq
    taps = len({int(round(d * sfreq)) for d in net.delays_s})
    rate = float(events.sum()) / dur * taps
    if net.rhythm_delays_s and beats is not None:
        rtaps = len({int(round(d * sfreq)) for d in net.rhythm_delays_s})
        rate += len(beats) * net.rhythm_count / dur * rtaps
    return 1.0 / max(rate, 1.0)


def anomaly_score(u: np.ndarray, a: np.ndarray, w: np.ndarray, mode: str = "unexplained",
                  ref: int = 0) -> np.ndarray:
    """Anomaly score per step from the input, the network activity and the weights.

    Parameters
    ----------
    u : ndarray, shape (n_steps, n_pre)
        Filtered input spike trains.
    a : ndarray, shape (n_steps, n_neurons)
        Filtered feature-neuron activity.
    w : ndarray, shape (n_neurons, n_pre)
        Input weights.
    mode : {"unexplained", "mismatch", "familiar"}
        ``"familiar"``: ``1 - cos(W_ref, u)``, how badly the input matches
        the pattern of neuron ``ref`` (the runner passes the most familiar
        neuron: the one that spiked most over the last
        ``familiarity_tau_s``), whatever the current winner.
        ``"mismatch"``: ``1 - cos(W_k, u)`` with ``k`` the currently most
        active neuron (the network's winner; 1 when no neuron is active): how
        badly the pattern the network chose matches the input, whatever its
        size. ``"unexplained"``: ``|u|_1 * (1 - match)`` with ``match`` the
        activity-weighted cosine over all neurons: the amount of input the
        learned patterns do not explain.
    ref : int
        The familiar neuron (``"familiar"`` mode only).

    Returns
    -------
    ndarray, shape (n_steps,)
    """
    u = np.maximum(u, 0.0)
    wn = w / np.maximum(np.linalg.norm(w, axis=1, keepdims=True), 1e-12)
    un = np.linalg.norm(u, axis=1)
    if mode == "familiar":
        return 1.0 - (u @ wn[ref]) / np.maximum(un, 1e-12)
    a = np.maximum(a, 0.0)
    total = a.sum(axis=1)
    if mode == "mismatch":
        k = np.argmax(a, axis=1)
        cos = np.einsum("ij,ij->i", u, wn[k]) / np.maximum(un, 1e-12)
        return np.where(total > 0, 1.0 - cos, 1.0)
    cos = (u @ wn.T) / np.maximum(un, 1e-12)[:, None]
    match = np.where(total > 0, (a * cos).sum(axis=1) / np.maximum(total, 1e-12), 0.0)
    return u.sum(axis=1) * (1.0 - match)
