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
step while send-on-delta can emit several events per sample, so every
UP/DOWN line gets ``count_bits`` axons, one per binary digit of its count, with
weights ``W * 2**b`` (one connection per bit plane): counts up to
``2**count_bits - 1`` arrive exactly, larger ones are clipped and counted.
Lines of fixed amplitude (a beat train of ``rhythm_count`` spikes, a gate of
one) get axons only for the bits of that amplitude (:func:`line_masks`), so no
plane inflates their weights and, with them, the weight scale of the core.

Anything that cannot map is refused before nengo-loihi sees it
(:func:`check_mappable`), naming the object: learning rules (nengo-loihi
learns only with PES; STDP-learned weights are deployed frozen), unsupported
neuron types, more compartments or input axons than a core holds, synapses
other than ``Lowpass``, decoded connections. What does not map one to one is
handled and listed in :attr:`ChipNetwork.notes` and the report: a compartment
has one input-current decay (the learned input's), so a slower input synapse
(the gate) is pre-shaped on the host (:class:`UnitShaper`) and a faster
recurrent one (the inhibition) is approximated; refractory periods become
whole steps (floor, keeping the maximum rate); a strong connection is split
into parallel synapse groups, as far as the 21-bit accumulator allows, so the
core's one weight scale still resolves the small learned input weights.
"""

from __future__ import annotations

import copy
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
#: strong connections are split until their weights are at most this x the largest learned input weight
WEIGHT_RANGE = 2.0
#: units per spike of a line whose synapse is slower than the chip's (pre-shaped on the host);
#: 16 keeps a unit weight representable next to the core's largest weight
SHAPE_UNITS = 16
Q_BITS = 21  # synaptic accumulator of a Loihi compartment (nengo_loihi.builder.discretize.Q_BITS)


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
            masks = line_masks(net, count_bits)[_index(conn.pre, net.source.size_out)]
            n_axons[post] += sum(bin(int(m)).count("1") for m in masks)
        elif isinstance(conn.pre_obj, nengo.ensemble.Neurons) and pre in chip_ens:
            n_axons[post] += conn.pre.size_out
        else:
            raise NetworkError(f"connection '{conn.label}': decoded connections cannot map to the chip form")
    for ens, n in n_axons.items():
        if n > MAX_IN_AXONS:
            raise NetworkError(
                f"{_name(ens)}: {n} input axons exceed the {MAX_IN_AXONS} of one Loihi core "
                f"(up to {count_bits} per source line); use fewer channels or delay taps, or lower "
                "backend.count_bits")


@dataclass
class ChipNetwork:
    """The chip form of a :class:`DetectorNetwork` (see module docstring).

    Attributes
    ----------
    model : nengo.Network
        What nengo-loihi builds.
    axons : nengo.Node
        The :class:`SpikeAxons` input node: ``count_bits`` planes of the
        source (plane ``b`` of line ``i`` is axon ``b * source_size + i``),
        then the unit axons of the unit lines.
    ensembles : dict
        Original ensemble -> its chip copy.
    inputs : list of (nengo.Connection, int or None, ndarray)
        Chip connections from the input axons, the bit plane each carries
        (None for unit axons) and the axons it reads.
    recurrent : list of nengo.Connection
        Chip neuron -> neuron connections.
    probes : dict
        Original neuron probe -> its chip copy.
    masks : ndarray of int
        Bit planes per source line (0 for unit lines).
    units : dict
        Unit line -> ``(first axon, n_units, (tau_from, tau_to) or None)``: a
        binary line of a strong or slow connection, sent as up to ``n_units``
        spikes of ``1 / n_units`` its weight, pre-shaped on the host when its
        synapse is slower than the chip's.
    notes : list of str
        What maps only approximately, and how.
    """

    model: nengo.Network
    axons: nengo.Node
    ensembles: dict
    inputs: list
    recurrent: list
    probes: dict
    count_bits: int
    source_size: int
    masks: np.ndarray
    units: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    @property
    def n_input_axons(self) -> int:
        """Input axons actually connected (plane bits in use plus unit axons)."""
        return int(sum(bin(int(m)).count("1") for m in self.masks) + sum(u[1] for u in self.units.values()))


def chip_network(net, count_bits: int) -> ChipNetwork:
    """Translate the (frozen) detector network into its chip form.

    Everything is read from the network's own Nengo objects: neuron types and
    parameters, transforms, synapses, probes. The source Node becomes input
    axons: ``count_bits`` bit planes per UP/DOWN line (transform ``T * 2**b``
    on plane ``b``), or, for the binary lines of a connection that is much
    stronger than the learned input or has a slower synapse than the chip's
    (the gate), ``SHAPE_UNITS`` unit axons of ``T / SHAPE_UNITS`` each.
    Strong neuron -> neuron connections (lateral inhibition) are split into
    parallel synapse groups. Both keep the learned input weights resolved
    under the core's one weight scale per compartment group.

    Parameters
    ----------
    net : DetectorNetwork
        The network; every connection must be frozen.
    count_bits : int
        Axons (bit planes) per UP/DOWN line.

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
    masks = line_masks(net, count_bits)
    tau_chip = net.conn.synapse  # one current decay per compartment: the learned input's
    t_chip = tau_chip.tau if tau_chip is not None else 0.0
    notes = []

    def dense(conn, n_in):
        w = np.asarray(conn.transform.init, dtype=np.float64)
        return np.eye(n_in) * w if w.ndim == 0 else (np.diag(w) if w.ndim == 1 else w)

    # the largest learned input weight on any plane sets the range the others must respect
    src_conns = [c for c in net.model.all_connections if _base(c.pre) is net.source]
    idx_of = {c: _index(c.pre, size) for c in src_conns}
    w_in = dense(net.conn, len(idx_of[net.conn]))
    top = max((np.abs(w_in[:, (masks[idx_of[net.conn]] >> b) & 1 == 1]).max(initial=0.0) * 2.0**b
               for b in range(count_bits)), default=0.0)
    # ... but not below what keeps the worst step (every input line at its largest count, every
    # neuron spiking) inside half the 21-bit synaptic accumulator: the scale is 255 / largest weight
    worst = sum(np.abs(dense(c, len(idx_of[c]))) @ np.maximum(line_counts(net, count_bits)[idx_of[c]], 1)
                for c in src_conns)
    for c in net.model.all_connections:
        if c not in idx_of:
            worst = worst + np.abs(dense(c, c.pre.size_out)).sum(axis=1)
    floor = float(np.max(worst)) * 255 * 64 / 2.0 ** (Q_BITS - 1)
    limit = max(WEIGHT_RANGE * top, floor)
    users = {}
    for c in src_conns:
        for i in idx_of[c]:
            users[int(i)] = users.get(int(i), 0) + 1
    units, base = {}, size * count_bits
    for c in src_conns:
        if c is net.conn:
            continue
        idx, w = idx_of[c], dense(c, len(idx_of[c]))
        t_c = c.synapse.tau if c.synapse is not None else 0.0
        strong = top > 0 and np.abs(w).max(initial=0.0) > limit
        slow = t_c > t_chip + 1e-12
        if (strong or slow) and np.all(masks[idx] == 1) and all(users[int(i)] == 1 for i in idx):
            n_units = SHAPE_UNITS if slow else int(np.ceil(np.abs(w).max() / limit))
            for i in idx:
                units[int(i)] = (base, n_units, (t_c, t_chip) if slow else None)
                base += n_units
                masks[i] = 0
            if slow:
                notes.append(f"connection '{c.label}': synapse {t_c * 1e3:g} ms realised with the chip's "
                             f"{t_chip * 1e3:g} ms by pre-shaping each spike on the host into {n_units} "
                             f"spikes of 1/{n_units} the weight")
            else:
                notes.append(f"connection '{c.label}': each spike sent as {n_units} spikes of 1/{n_units} "
                             "the weight, so the core's weight scale still resolves the learned input weights")
        elif abs(t_c - t_chip) > 1e-12:
            notes.append(f"connection '{c.label}': synapse {t_c * 1e3:g} ms becomes {t_chip * 1e3:g} ms "
                         "(a Loihi compartment has one input-current decay)")

    with nengo.Network(label="spikewatch detector (chip)", seed=net.seed) as model:
        axons = nengo.Node(SpikeAxons(base), label="input axons")
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
            if _base(conn.pre) is net.source:
                idx, w = idx_of[conn], dense(conn, len(idx_of[conn]))
                unit = np.array([int(i) in units for i in idx], dtype=bool)
                if unit.any():
                    ax = np.concatenate([units[int(i)][0] + np.arange(units[int(i)][1]) for i in idx[unit]])
                    wu = np.concatenate([np.repeat(w[:, [j]], units[int(i)][1], axis=1) / units[int(i)][1]
                                         for j, i in zip(np.flatnonzero(unit), idx[unit])], axis=1)
                    c = nengo.Connection(axons[ax.tolist()], post, transform=wu, synapse=tau_chip,
                                         label=f"{conn.label} (units)")
                    inputs.append((c, None, ax))
                for b in range(count_bits):
                    use = np.flatnonzero(((masks[idx] >> b) & 1) & ~unit)  # lines whose counts have bit b
                    if len(use):
                        ax_idx = b * size + idx[use]
                        c = nengo.Connection(axons[ax_idx.tolist()], post, transform=w[:, use] * 2.0**b,
                                             synapse=tau_chip, label=f"{conn.label} (bit {b})")
                        inputs.append((c, b, ax_idx))
            else:
                w = dense(conn, conn.pre.size_out)
                t_c = conn.synapse.tau if conn.synapse is not None else 0.0
                if abs(t_c - t_chip) > 1e-12:
                    notes.append(f"connection '{conn.label}': synapse {t_c * 1e3:g} ms becomes {t_chip * 1e3:g} ms "
                                 "(a Loihi compartment has one input-current decay)")
                k = int(np.ceil(np.abs(w).max() / limit)) if top > 0 and np.abs(w).max(initial=0.0) > limit else 1
                if k > 1:
                    notes.append(f"connection '{conn.label}': split into {k} parallel synapse groups of 1/{k} the "
                                 "weight, so the core's weight scale still resolves the learned input weights")
                pre = ens_map[_base(conn.pre)].neurons
                for j in range(k):
                    recurrent.append(nengo.Connection(pre, post, transform=w / k, synapse=tau_chip,
                                                      label=conn.label if k == 1 else f"{conn.label} [{j + 1}/{k}]"))
        probes = {}
        for probe in net.model.all_probes:
            if _base(probe.target) is net.source:
                continue  # the filtered input is computed on the host
            target = ens_map[_base(probe.target)].neurons
            probes[probe] = nengo.Probe(target, synapse=probe.synapse)
    return ChipNetwork(model, axons, ens_map, inputs, recurrent, probes, count_bits, size, masks, units, notes)


class UnitShaper:
    """Host side of the unit lines: counts -> unit spikes per step, with carried state.

    A binary line of a connection with synapse ``tau_from`` is sent to a chip
    whose synapse is ``tau_to < tau_from``: each step's value ``g`` is passed
    through the ratio of the two first-order filters (as Nengo discretises
    them), ``x[n] = k (g[n] - a_to g[n-1]) + a_from x[n-1]`` with
    ``k = (1 - a_from) / (1 - a_to)``, so that the chip's filter of ``x``
    equals the reference filter of ``g``; ``x`` is then quantised into whole
    units by error feedback (running sum rounded), which keeps every unit of
    the total. Without shaping a count ``c`` becomes ``c * n_units`` units.

    Parameters
    ----------
    units : dict
        As :attr:`ChipNetwork.units`.
    dt : float
        Step (s).
    """

    def __init__(self, units: dict, dt: float):
        self.lines = np.array(sorted(units), dtype=np.int64)
        self.base = np.array([units[i][0] for i in self.lines], dtype=np.int64)
        self.n = np.array([units[i][1] for i in self.lines], dtype=np.int64)
        self.filters = []
        for i in self.lines:
            taus = units[i][2]
            if taus is None:
                self.filters.append(None)
                continue
            a_from, a_to = np.exp(-dt / taus[0]), np.exp(-dt / taus[1])
            k = (1 - a_from) / (1 - a_to)
            self.filters.append(((np.array([k, -k * a_to]), np.array([1.0, -a_from])), np.zeros(1)))
        self.cum = np.zeros(len(self.lines))  # running sum of x (units)
        self.clipped = 0

    def __call__(self, counts: np.ndarray) -> np.ndarray:
        """Unit spikes per step and unit line, shape ``(n_steps, n_lines)`` (int)."""
        from scipy.signal import lfilter

        out = np.zeros((counts.shape[0], len(self.lines)), dtype=np.int64)
        for j, (line, n, filt) in enumerate(zip(self.lines, self.n, self.filters)):
            g = counts[:, line].astype(np.float64)
            if filt is None:
                want = np.rint(g * n).astype(np.int64)
            else:
                (b, a), zi = filt
                x, zf = lfilter(b, a, g, zi=zi)
                zi[:] = zf
                run = self.cum[j] + np.cumsum(x) * n
                q = np.floor(run + 0.5)
                want = np.diff(q, prepend=np.floor(self.cum[j] + 0.5)).astype(np.int64)
                self.cum[j] = run[-1] if len(run) else self.cum[j]
            out[:, j] = np.minimum(want, n)
            self.clipped += int(np.maximum(want - n, 0).sum())
        return out


def line_masks(net, count_bits: int) -> np.ndarray:
    """Bit planes each source line needs: the bits of :func:`line_counts`.

    Returns
    -------
    ndarray of int, shape (source size,)
        Bit mask of the planes per source line.
    """
    return line_counts(net, count_bits)


def line_counts(net, count_bits: int) -> np.ndarray:
    """The largest count each source line can carry in a step (UP/DOWN lines: ``2**count_bits - 1``).

    The network itself is asked: its ``input_rows`` with every UP/DOWN count at
    ``2**count_bits - 1`` and a beat and a gate at every step, passed through a
    copy of its delay-tap feed, give each source line's largest count (all
    bits for UP/DOWN lines, the bits of ``rhythm_count`` for the beat train,
    bit 0 for the gate). A line's count is 0 or that value (a beat train), or
    anything up to it (UP/DOWN), so its bits are the bit planes it needs.

    Returns
    -------
    ndarray of int, shape (source size,)
    """
    top = (1 << count_bits) - 1
    feed = copy.deepcopy(net.feed)
    depth = max(int(np.max(d)) for _, d in feed.groups) + 1
    steps = np.arange(depth)
    rows = net.input_rows(np.full((2 * net.n_channels, depth), top), beats=steps, gates=steps)
    feed.push(rows)
    for _ in range(depth):
        out = feed.step(0.0)
    return np.minimum(np.rint(out * net.dt).astype(np.int64), top)


def bit_planes(counts: np.ndarray, count_bits: int, masks=None) -> tuple[np.ndarray, int]:
    """Split event counts into ``count_bits`` binary planes.

    Parameters
    ----------
    counts : ndarray of int, shape (n_steps, n_lines)
    count_bits : int
    masks : ndarray of int, shape (n_lines,), optional
        Planes available per line (see :func:`line_masks`); default all.

    Returns
    -------
    planes : ndarray of uint8, shape (n_steps, count_bits * n_lines)
        Columns ``b * n_lines ... (b + 1) * n_lines`` hold bit ``b`` of the counts.
    clipped : int
        Events lost: counts above ``2**count_bits - 1``, or not representable
        with a line's planes.
    """
    top = (1 << count_bits) - 1
    m = np.full(np.shape(counts)[-1], top) if masks is None else np.asarray(masks, dtype=np.int64)
    c0 = np.maximum(np.asarray(counts, dtype=np.int64), 0)
    c = np.minimum(c0, m) & m
    clipped = int((c0 - c).sum())
    planes = np.concatenate([(c >> b) & 1 for b in range(count_bits)], axis=1).astype(np.uint8)
    return planes, clipped


def axon_spikes(chip: ChipNetwork, shaper: UnitShaper, counts: np.ndarray) -> tuple[np.ndarray, int]:
    """Spikes of every input axon for a chunk of source-line counts.

    Parameters
    ----------
    chip : ChipNetwork
    shaper : UnitShaper
        Carries the pre-shaping state of the unit lines across chunks.
    counts : ndarray of int, shape (n_steps, source size)
        Events per step and source line (the source Node output times ``dt``).

    Returns
    -------
    spikes : ndarray of uint8, shape (n_steps, n_axons)
        Bit planes first (see :func:`bit_planes`), then the unit axons.
    clipped : int
        Events that could not be sent (counts beyond a line's planes or units).
    """
    counts = np.array(counts, dtype=np.int64)
    before = shaper.clipped
    units = shaper(counts)  # unit lines: the binary lines of strong or slow connections (the gate)
    counts[:, shaper.lines] = 0
    planes, clipped = bit_planes(counts, chip.count_bits, chip.masks)
    out = np.zeros((counts.shape[0], chip.axons.output.n_axons), dtype=np.uint8)
    out[:, :planes.shape[1]] = planes
    for j, (base, n) in enumerate(zip(shaper.base, shaper.n)):
        out[:, base:base + n] = np.arange(n)[None, :] < units[:, [j]]
    return out, clipped + shaper.clipped - before


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
        if target != "simreal":
            for conn in [c for c, _, _ in self.chip.inputs] + self.chip.recurrent:
                syn = self.sim.model.objs[conn]["weights"]
                if np.any(conn.transform.init) and not any(np.any(w) for w in syn.weights):
                    self.sim.close()
                    raise NetworkError(f"connection '{conn.label}': every weight rounds to 0 on the chip "
                                       "(far below the core's largest weight)")
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
        self._shaper = UnitShaper(self.chip.units, net.dt)
        self.counters = dict.fromkeys(["steps", "input_spikes", "clipped_events", "neuron_spikes",
                                       "synaptic_ops", "overflows", "cpu_s", "wall_s"], 0)

    @classmethod
    def configure(cls, net, block_steps: int, backend) -> "LoihiRunner":
        """Open a runner from the ``backend`` config section (``target``, ``count_bits``)."""
        return cls(net, block_steps, target=backend.target, count_bits=backend.count_bits)

    def _fanouts(self) -> tuple[np.ndarray, np.ndarray]:
        """Synapses reached by one spike on each input axon / each neuron (synaptic ops per spike)."""
        fan_in = np.zeros(self.chip.axons.output.n_axons, dtype=np.int64)
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
        ax, clipped = axon_spikes(self.chip, self._shaper, np.rint(rows * net.dt).astype(np.int64))
        spikes = [(self._spike_input, self.steps + k + 1, np.flatnonzero(ax[k]))
                  for k in np.flatnonzero(ax.any(axis=1))]
        self._iface.host2chip(spikes, [])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.sim.run_steps(n)
        self.counters["overflows"] += sum("Overflow" in str(w.message) for w in caught)
        a = np.array(self.sim.data[self._p_act])
        s = np.rint(np.asarray(self.sim.data[self._p_spikes]) * net.dt).astype(np.int64)
        self.sim.clear_probes()
        c = self.counters
        c["steps"] += n
        per_axon = ax.sum(axis=0, dtype=np.int64)
        c["input_spikes"] += int(per_axon.sum())
        c["clipped_events"] += clipped
        c["neuron_spikes"] += int(s.sum())
        c["synaptic_ops"] += int(per_axon @ self._fan_in + s.sum(axis=0) @ self._fan_rec)
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
