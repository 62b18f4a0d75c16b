"""Loihi backend: the frozen detector on nengo-loihi (chip emulator, or a board).

What runs where
---------------
* **Chip** (one Loihi core): the ``features`` LIF neurons, their input
  synapses (the learned weights, frozen), the lateral inhibition and any other
  neuron-to-neuron or input connection of the network description.
* **Host**: reading, filtering and send-on-delta encoding of the recording,
  R-peak detection and the delay taps (the ``source`` Node: a Python function
  of a data stream, which no chip process can run), the filtered input ``u``
  and the anomaly score (cosines against the weight matrix: dense arithmetic,
  not a spiking computation), events and the report.

Input spikes go straight to input axons. nengo-loihi would route a host
``Node -> neurons`` connection through rate-coding "decode neurons" (and
filter it twice); our input already *is* spikes, so the source is replaced by
a :class:`SpikeAxons` chip process whose spikes are handed to the chip
interface before each chunk runs. A Loihi axon carries at most one spike per
step while send-on-delta can emit several events per sample, so every source
line gets ``count_bits`` axons, one per binary digit of its count, with
weights ``W * 2**b`` (one connection per bit plane): counts up to
``2**count_bits - 1`` arrive exactly, larger ones are clipped and counted.

Anything that cannot map is refused before nengo-loihi sees it
(:func:`check_mappable`), naming the object: learning rules (nengo-loihi
learns only with PES; STDP-learned weights are deployed frozen), unsupported
neuron types, more compartments or input axons than a core holds, synapses
other than ``Lowpass``, decoded connections. What maps only approximately is
listed in :attr:`ChipNetwork.notes` and the report (a Loihi compartment has
one input-current decay, so every synapse into the feature neurons gets the
input synapse's time constant; refractory periods become whole steps).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field

import nengo
import numpy as np

from spikewatch.errors import NetworkError
from spikewatch.snn.backends.base import Runner

with warnings.catch_warnings():  # "not tested with your nengo version": known, the emulator is tested here
    warnings.simplefilter("ignore")
    import nengo_loihi
    from nengo_loihi.builder import Builder as LoihiBuilder
    from nengo_loihi.hardware import HAS_NXSDK
    from nengo_loihi.inputs import ChipProcess, SpikeInput

#: per-core limits of Loihi (Davies et al., IEEE Micro 38(1), 2018, p. 89; as nengo_loihi.block)
MAX_COMPARTMENTS = 1024
MAX_IN_AXONS = 4096
MAX_SYNAPSE_BITS = 16384 * 64  # 128 KB of synaptic memory per core
CORES_PER_CHIP = 128
SUPPORTED_NEURONS = (nengo.LIF, nengo.SpikingRectifiedLinear)


class SpikeAxons(ChipProcess):
    """Input axons on the chip, fed with spikes by the host.

    On nengo-loihi this becomes a ``SpikeInput``; the runner hands it each
    chunk's spikes through the chip interface. On a reference
    ``nengo.Simulator`` it emits the rows queued in :attr:`queue` (one spike =
    ``1/dt``), so the chip form can be checked on the reference simulator.

    Parameters
    ----------
    n_axons : int
        Number of input axons.
    """

    def __init__(self, n_axons: int):
        self.n_axons = int(n_axons)
        self.queue: list = []
        super().__init__(default_size_in=0, default_size_out=self.n_axons)

    def make_step(self, shape_in, shape_out, dt, rng, state):
        queue, zero = self.queue, np.zeros(self.n_axons)

        def step(t):
            return np.asarray(queue.pop(0), dtype=np.float64) / dt if queue else zero

        return step


@LoihiBuilder.register(SpikeAxons)
def build_spike_axons(model, process, node=None):
    """nengo-loihi builder: a ``SpikeInput`` with one axon per output of ``process``."""
    spike_input = SpikeInput(process.n_axons, label=getattr(node, "label", None) or "input axons")
    model.add_input(spike_input)
    return spike_input


def _name(obj) -> str:
    label = getattr(obj, "label", None)
    return f"{type(obj).__name__.lower()} '{label}'" if label else str(obj)


def _base(obj):
    """The Nengo object behind a slice or ``.neurons``."""
    obj = getattr(obj, "obj", obj)  # ObjView
    return getattr(obj, "ensemble", obj)  # Neurons


def _params(neuron_type) -> dict:
    """Constructor parameters of a Nengo neuron type."""
    return {name: getattr(neuron_type, name) for name in ("tau_rc", "tau_ref", "min_voltage", "amplitude")
            if hasattr(neuron_type, name)}


def _index(view, size: int) -> np.ndarray:
    """Indices selected by a (possibly sliced) view of an object of ``size`` outputs."""
    sl = getattr(view, "slice", slice(None))
    return np.arange(size)[sl]


def check_mappable(net, count_bits: int) -> None:
    """Refuse, naming the object, anything of ``net`` the chip cannot run.

    Parameters
    ----------
    net : DetectorNetwork
        The network description.
    count_bits : int
        Axons per source line (bit planes of the event count).

    Raises
    ------
    NetworkError
        A learning rule (STDP on the chip), an unsupported neuron type, more
        neurons or input axons than one core holds, a non-Lowpass synapse, or
        a connection that is neither source -> neurons nor neurons -> neurons.
    """
    model = net.model
    chip_ens = set(model.all_ensembles)
    for ens in model.all_ensembles:
        if type(ens.neuron_type) not in SUPPORTED_NEURONS:  # exact: nengo-loihi would build AdaptiveLIF as LIF
            raise NetworkError(
                f"{_name(ens)}: neuron type {type(ens.neuron_type).__name__} cannot run on Loihi "
                f"(supported: {', '.join(t.__name__ for t in SUPPORTED_NEURONS)})")
        if ens.n_neurons > MAX_COMPARTMENTS:
            raise NetworkError(f"{_name(ens)}: {ens.n_neurons} neurons do not fit one Loihi core "
                               f"({MAX_COMPARTMENTS} compartments); use network.n_neurons <= {MAX_COMPARTMENTS}")
    for node in model.all_nodes:
        if node is not net.source:
            raise NetworkError(f"{_name(node)}: only the input source Node is supported by the chip form")
    n_axons = {ens: 0 for ens in chip_ens}
    for conn in model.all_connections:
        if conn.learning_rule_type is not None:
            rule = type(conn.learning_rule_type).__name__
            raise NetworkError(
                f"connection '{conn.label}': {rule} learning cannot run on Loihi (nengo-loihi learns only "
                "with PES on chip); learn on the reference backend and deploy the frozen weights "
                "(spikewatch deploy PATH --out BUNDLE, then analyze --backend loihi --model BUNDLE)")
        if conn.synapse is not None and not isinstance(conn.synapse, nengo.Lowpass):
            raise NetworkError(f"connection '{conn.label}': synapse {conn.synapse} cannot map to Loihi "
                               "(a compartment has one first-order current filter: Lowpass only)")
        pre, post = _base(conn.pre), _base(conn.post)
        if not isinstance(conn.post_obj, nengo.ensemble.Neurons) or post not in chip_ens:
            raise NetworkError(f"connection '{conn.label}': only connections into neurons can map to Loihi")
        if pre is net.source:
            n_axons[post] += len(_index(conn.pre, net.source.size_out)) * count_bits
        elif isinstance(conn.pre_obj, nengo.ensemble.Neurons) and pre in chip_ens:
            n_axons[post] += conn.pre.size_out
        else:
            raise NetworkError(f"connection '{conn.label}': decoded connections cannot map to the chip form")
    for ens, n in n_axons.items():
        if n > MAX_IN_AXONS:
            raise NetworkError(
                f"{_name(ens)}: {n} input axons exceed the {MAX_IN_AXONS} of one Loihi core "
                f"({count_bits} per source line); use fewer channels or delay taps, or lower backend.count_bits")


@dataclass
class ChipNetwork:
    """The chip form of a :class:`DetectorNetwork` (see module docstring).

    Attributes
    ----------
    model : nengo.Network
        What nengo-loihi builds.
    axons : nengo.Node
        The :class:`SpikeAxons` input node (``count_bits`` planes of the source).
    ensembles : dict
        Original ensemble -> its chip copy.
    inputs : list of (nengo.Connection, int, ndarray)
        Chip connections from the input axons, the bit plane each carries and
        the axons it reads.
    recurrent : list of nengo.Connection
        Chip neuron -> neuron connections.
    probes : dict
        Original neuron probe -> its chip copy.
    notes : list of str
        What maps only approximately.
    """

    model: nengo.Network
    axons: nengo.Node
    ensembles: dict
    inputs: list
    recurrent: list
    probes: dict
    count_bits: int
    source_size: int
    notes: list = field(default_factory=list)


def chip_network(net, count_bits: int) -> ChipNetwork:
    """Translate the (frozen) detector network into its chip form.

    Everything is read from the network's own Nengo objects: neuron types and
    parameters, transforms, synapses, probes. The source Node becomes
    ``count_bits`` planes of input axons; each source connection becomes one
    connection per plane with transform ``T * 2**b``.

    Parameters
    ----------
    net : DetectorNetwork
        The network; every connection must be frozen.
    count_bits : int
        Axons (bit planes) per source line.

    Returns
    -------
    ChipNetwork

    Raises
    ------
    NetworkError
        See :func:`check_mappable`.
    """
    check_mappable(net, count_bits)
    size = net.source.size_out
    tau_chip = net.conn.synapse  # one current decay per compartment: the learned input's
    notes = []
    with nengo.Network(label="spikewatch detector (chip)", seed=net.seed) as model:
        axons = nengo.Node(SpikeAxons(size * count_bits), label="input axons")
        ens_map = {}
        for ens in net.model.all_ensembles:
            neuron_type = ens.neuron_type
            tau_ref = getattr(neuron_type, "tau_ref", 0.0)
            steps = tau_ref / net.dt
            whole = int(np.floor(steps + 1e-9))
            if abs(steps - whole) > 1e-9:
                # Loihi counts refractory time in whole steps. floor (not nengo-loihi's round) keeps
                # the reference LIF's maximum firing rate: at most one spike per 1 + floor(steps) steps.
                neuron_type = type(neuron_type)(**{**_params(neuron_type), "tau_ref": whole * net.dt})
                notes.append(f"{_name(ens)}: refractory period {tau_ref * 1e3:g} ms = {steps:.2f} steps becomes "
                             f"{whole} whole steps on the chip (same maximum firing rate)")
            ens_map[ens] = nengo.Ensemble(ens.n_neurons, ens.dimensions, neuron_type=neuron_type,
                                          gain=ens.gain, bias=ens.bias, label=ens.label)
        inputs, recurrent = [], []
        for conn in net.model.all_connections:
            post = ens_map[_base(conn.post)].neurons
            w = np.asarray(conn.transform.init, dtype=np.float64)
            tau_conn = conn.synapse.tau if conn.synapse is not None else 0.0
            tau_new = tau_chip.tau if tau_chip is not None else 0.0
            if abs(tau_conn - tau_new) > 1e-12:
                notes.append(f"connection '{conn.label}': synapse {tau_conn * 1e3:g} ms becomes "
                             f"{tau_new * 1e3:g} ms (a Loihi compartment has one input-current decay)")
            if _base(conn.pre) is net.source:
                idx = _index(conn.pre, size)
                if w.ndim < 2:
                    w = np.eye(len(idx)) * w if w.ndim == 0 else np.diag(w)
                for b in range(count_bits):
                    ax_idx = b * size + idx
                    c = nengo.Connection(axons[ax_idx.tolist()], post, transform=w * 2.0**b,
                                         synapse=tau_chip, label=f"{conn.label} (bit {b})")
                    inputs.append((c, b, ax_idx))
            else:
                pre = ens_map[_base(conn.pre)].neurons
                recurrent.append(nengo.Connection(pre, post, transform=w, synapse=tau_chip, label=conn.label))
        probes = {}
        for probe in net.model.all_probes:
            if _base(probe.target) is net.source:
                continue  # the filtered input is computed on the host
            target = ens_map[_base(probe.target)].neurons
            probes[probe] = nengo.Probe(target, synapse=probe.synapse)
    return ChipNetwork(model, axons, ens_map, inputs, recurrent, probes, count_bits, size, notes)


def bit_planes(counts: np.ndarray, count_bits: int) -> tuple[np.ndarray, int]:
    """Split event counts into ``count_bits`` binary planes.

    Parameters
    ----------
    counts : ndarray of int, shape (n_steps, n_lines)
    count_bits : int

    Returns
    -------
    planes : ndarray of uint8, shape (n_steps, count_bits * n_lines)
        Columns ``b * n_lines ... (b + 1) * n_lines`` hold bit ``b`` of the counts.
    clipped : int
        Events lost because a count exceeded ``2**count_bits - 1``.
    """
    top = (1 << count_bits) - 1
    c = np.asarray(counts, dtype=np.int64)
    clipped = int(np.maximum(c - top, 0).sum())
    c = np.clip(c, 0, top)
    planes = np.concatenate([(c >> b) & 1 for b in range(count_bits)], axis=1).astype(np.uint8)
    return planes, clipped


class LoihiRunner(Runner):
    """Runs the frozen detector on nengo-loihi.

    Parameters
    ----------
    net : DetectorNetwork
        The network; its STDP must be disabled (weights frozen).
    block_steps : int
        See :class:`~spikewatch.snn.backends.base.Runner`.
    target : {"auto", "sim", "loihi", "simreal"}
        ``sim``: nengo-loihi's chip emulator; ``loihi``: a board through
        Intel's NxSDK; ``auto``: the board if NxSDK is installed, else the
        emulator; ``simreal``: the emulator in floating point, without
        discretisation (a diagnostic that isolates what quantisation changes).
    count_bits : int
        Axons per source line (counts up to ``2**count_bits - 1`` per step).

    Attributes
    ----------
    counters : dict
        Input spikes, clipped events, neuron spikes, synaptic operations,
        steps and host CPU time, accumulated over the run (for the energy
        estimate and the host<->chip traffic).
    """

    name = "loihi"

    def __init__(self, net, block_steps: int, target: str = "auto", count_bits: int = 4):
        super().__init__(net, block_steps)
        if target == "auto":
            target = "loihi" if HAS_NXSDK else "sim"
        if target == "loihi" and not HAS_NXSDK:
            raise NetworkError("backend.target 'loihi' needs Intel's NxSDK, which is not installed; "
                               "use target 'sim' (the chip emulator) or 'auto'")
        if target not in ("sim", "loihi", "simreal"):
            raise NetworkError(f"backend.target '{target}' unknown; use auto, sim or loihi")
        self.target = target
        self.count_bits = int(count_bits)
        self.chip = chip_network(net, self.count_bits)
        self._w = np.asarray(net.conn.transform.init, dtype=np.float64).copy()
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.sim = nengo_loihi.Simulator(self.chip.model, dt=net.dt, seed=net.seed, target=target,
                                                 progress_bar=False)
        except (nengo.exceptions.NengoException, AssertionError, ValueError) as exc:
            msg = " ".join(str(exc).split()) or type(exc).__name__
            raise NetworkError(f"nengo-loihi cannot map the detector network: {msg}") from None
        self.build_s = time.perf_counter() - t0
        self._iface = self.sim.sims["loihi" if target == "loihi" else "emulator"]
        self._spike_input = self.sim.model.objs[self.chip.axons]["out"]
        self._p_act = self.chip.probes[net.p_act]
        self._p_spikes = self.chip.probes[net.p_spikes]
        # the filtered input: same filter as the reference probe, on the host
        probe = net.p_input
        self._u_index = _index(probe.target, net.source.size_out)
        shape = (len(self._u_index),)
        self._u_filter = probe.synapse.make_step(
            shape, shape, net.dt, rng=None, state=probe.synapse.make_state(shape, shape, net.dt))
        self._u_prev = np.zeros(shape)
        self._fan_in, self._fan_rec = self._fanouts()
        self.counters = dict.fromkeys(["steps", "input_spikes", "clipped_events", "neuron_spikes",
                                       "synaptic_ops", "cpu_s", "wall_s"], 0)

    @classmethod
    def configure(cls, net, block_steps: int, backend) -> "LoihiRunner":
        """Open a runner from the ``backend`` config section (``target``, ``count_bits``)."""
        return cls(net, block_steps, target=backend.target, count_bits=backend.count_bits)

    def _fanouts(self) -> tuple[np.ndarray, np.ndarray]:
        """Synapses reached by one spike on each input axon / each neuron (synaptic ops per spike)."""
        size = self.chip.source_size
        fan_in = np.zeros(size * self.count_bits, dtype=np.int64)
        for conn, _, ax_idx in self.chip.inputs:
            syn = self.sim.model.objs[conn]["weights"]
            for k, axon in enumerate(ax_idx):
                fan_in[axon] += syn.axon_weights_indices(k)[0].size
        fan_rec = np.zeros(self.net.net.n_neurons, dtype=np.int64)
        for conn in self.chip.recurrent:
            syn = self.sim.model.objs[conn]["weights"]
            for k in range(syn.n_axons):
                fan_rec[k] += syn.axon_weights_indices(k)[0].size
        return fan_in, fan_rec

    def weights(self) -> np.ndarray:
        return self._w.copy()

    def _simulate(self, events):
        net, n = self.net, events.shape[1]
        c0, w0 = time.process_time(), time.perf_counter()
        net.feed.push(events)
        rows = np.empty((n, net.source.size_out))
        u = np.empty((n, len(self._u_index)))
        for k in range(n):
            rows[k] = net.feed.step(0.0)
            # a reference probe sees the Node output of the previous step: same here
            u[k] = self._u_filter(0.0, self._u_prev)
            self._u_prev = rows[k, self._u_index]
        planes, clipped = bit_planes(np.rint(rows * net.dt).astype(np.int64), self.count_bits)
        spikes = [(self._spike_input, self.steps + k + 1, np.flatnonzero(planes[k]))
                  for k in np.flatnonzero(planes.any(axis=1))]
        self._iface.host2chip(spikes, [])
        self.sim.run_steps(n)
        a = np.array(self.sim.data[self._p_act])
        s = np.rint(np.asarray(self.sim.data[self._p_spikes]) * net.dt).astype(np.int64)
        self.sim.clear_probes()
        c = self.counters
        c["steps"] += n
        c["input_spikes"] += int(planes.sum())
        c["clipped_events"] += clipped
        c["neuron_spikes"] += int(s.sum())
        c["synaptic_ops"] += int(planes.sum(axis=0) @ self._fan_in + s.sum(axis=0) @ self._fan_rec)
        c["cpu_s"] += time.process_time() - c0
        c["wall_s"] += time.perf_counter() - w0
        return u, a, s

    def report(self, n_beats: int | None = None) -> dict:
        """Chip resources, quantisation, host<->chip traffic and energy estimate of this run.

        Parameters
        ----------
        n_beats : int, optional
            Beats analysed (ECG), for the energy per beat.

        Returns
        -------
        dict
            See :func:`spikewatch.loihi_report.runner_report`.
        """
        from spikewatch.loihi_report import runner_report

        return runner_report(self, n_beats=n_beats)

    def close(self) -> None:
        if not self.sim.closed:
            self.sim.close()
