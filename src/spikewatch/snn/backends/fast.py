"""Compiled backend: the detector network simulated by one numba loop per chunk.

Like nengo-ocl or nengo-dl, this is another simulator of the *same* Nengo model.
:class:`FastRunner` builds ``net.model`` with nengo's own builder
(``nengo.builder.Model``) and reads every parameter from the built model: LIF
``tau_rc``/``tau_ref``/``min_voltage``/``amplitude``, initial voltages, gains and
biases, the weights of every connection into the neurons, synapse and probe
filter coefficients as nengo discretises them, the STDP rule on the learned
connection, and the source Node's delay taps (measured from the Node's own
output, then checked against it on random input). It then runs, in one
:func:`spikewatch.snn.backends._kernels.run_chunk` call per chunk, the operators
nengo would run, in nengo's order. Anything the loop does not implement
(another neuron type, neuron noise, a connection function or non-Dense
transform, a higher-order synapse, another learning rule, an extra object or
operator) is refused with a :class:`~spikewatch.errors.NetworkError` naming it.

The anomaly score of each step is computed in the loop too, with the formula of
:func:`spikewatch.snn.network.anomaly_score` for the network's score mode; the
compiled formula is checked against that function once per process, and for a
mode it does not reproduce the runner hands the probed input/activity and the
weight snapshots to :meth:`Runner.run <spikewatch.snn.backends.base.Runner.run>`,
which computes the score in Python exactly as for the nengo backend.

Equivalence with ``nengo.Simulator``: the Node output, the synapse and probe
filters, the STDP traces and weight changes use nengo's float operations in
nengo's order, so given the same spikes they are bit-identical. Only the
membrane input and voltage can differ, in the last bits: nengo's ``W @ s`` goes
through BLAS (its own summation order) and sums the connections into the
neurons in its graph order, and on the step after a spike (partial refractory
step) and at each spike time ``expm1``/``log1p`` come from the C library where
numpy uses its SIMD versions (equal for ~85 % of arguments here, else one unit
in the last place). Such ~1e-16 relative differences change a spike only if a
voltage lands that close to the threshold; the equivalence test and the
benchmark compare whole spike trains and have not seen it happen. The compiled
score sums in its own order (~1e-16 relative) before rounding to float32.
"""

from __future__ import annotations

import copy
import math

import nengo
import numpy as np
from nengo.builder import Model
from nengo.builder.neurons import SimNeurons
from nengo.builder.operator import Copy, DotInc, ElementwiseInc, Reset, SimPyFunc, TimeUpdate
from nengo.builder.probe import SimProbe
from nengo.builder.processes import SimProcess
from nengo.cache import NoDecoderCache
from nengo.ensemble import Neurons
from nengo.synapses import LinearFilter

from spikewatch.errors import NetworkError
from spikewatch.snn.backends import _kernels as K
from spikewatch.snn.backends.base import Runner
from spikewatch.snn.builder import SimSTDP
from spikewatch.snn.network import anomaly_score
from spikewatch.snn.stdp import STDP

#: nengo operators the compiled loop reproduces (anything else is refused)
SUPPORTED_OPERATORS = (TimeUpdate, Reset, Copy, DotInc, ElementwiseInc, SimNeurons, SimProcess,
                       SimPyFunc, SimProbe, SimSTDP)
#: longest Node delay the feed measurement looks for (s)
MAX_DELAY_S = 30.0


def _refuse(what: str, reason: str) -> NetworkError:
    return NetworkError(f"fast backend: {what}: {reason}")


def first_order(syn, n: int, dt: float, what: str) -> tuple[float, float] | None:
    """Coefficients of nengo's one-state filter step ``x = x * a + b * u``.

    Parameters
    ----------
    syn : nengo.synapses.Synapse or None
        The synapse (None: no filtering).
    n : int
        Signal size.
    dt : float
        Simulator step (s).
    what : str
        Object named in the error.

    Returns
    -------
    (a, b) or None
        Exactly the ``a`` and ``b`` of the ``LinearFilter.OneX`` step nengo makes.

    Raises
    ------
    NetworkError
        If the synapse is not a first-order linear filter without passthrough.
    """
    if syn is None:
        return None
    if not isinstance(syn, LinearFilter):
        raise _refuse(what, f"synapse {syn} is not a nengo LinearFilter")
    state = syn.make_state((n,), (n,), dt)
    step = syn.make_step((n,), (n,), dt, None, state)
    if not isinstance(step, LinearFilter.OneX):
        raise _refuse(what, f"synapse {syn} is not a first-order filter without passthrough "
                            "(only Lowpass-like synapses are implemented)")
    if np.any(state["X"] != 0):
        raise _refuse(what, f"synapse {syn} starts from a nonzero state")
    return float(step.a), float(step.b)


def _indices(sl, size: int, what: str) -> np.ndarray:
    try:
        return np.arange(size, dtype=np.int64)[sl].reshape(-1)
    except (IndexError, TypeError, ValueError):
        raise _refuse(what, f"slice {sl!r} is not implemented") from None


def measure_feed(feed, n_rows: int, n_out: int, dt: float, sfreq: float, what: str):
    """Which input row and delay each output of the source Node carries.

    The Node must emit ``rows[r_k][t - d_k] / dt`` at output ``k``. This is
    measured on a copy of the feed (an impulse on every row at once, with a
    distinct height per row) and then checked bit for bit on random counts.

    Parameters
    ----------
    feed : object
        The Node's output owner: ``push(rows)`` and ``step(t)``.
    n_rows, n_out : int
        Rows pushed per step; Node output size.
    dt, sfreq : float
        Step (s) and rate (Hz).
    what : str
        Object named in the error.

    Returns
    -------
    rows, delays : int64 arrays of shape (n_out,)

    Raises
    ------
    NetworkError
        If the Node output is not such a delayed copy of its input rows.
    """
    probe = copy.deepcopy(feed)
    max_steps = int(MAX_DELAY_S * sfreq) + 1
    row = np.full(n_out, -1, np.int64)
    delay = np.full(n_out, -1, np.int64)
    impulse = np.zeros((n_rows, 1))
    impulse[:, 0] = np.arange(1, n_rows + 1)
    zeros = np.zeros((n_rows, 1))
    heights = np.arange(1, n_rows + 1) / dt
    for t in range(max_steps):
        probe.push(impulse if t == 0 else zeros)
        y = np.asarray(probe.step((t + 1) * dt), dtype=np.float64)
        if y.shape != (n_out,):
            raise _refuse(what, f"output of shape {y.shape}, expected ({n_out},)")
        for k in np.flatnonzero(y):
            hit = np.flatnonzero(heights == y[k])
            if delay[k] >= 0 or hit.size != 1:
                raise _refuse(what, "output is not a delayed copy of its input rows / dt")
            row[k], delay[k] = hit[0], t
        if np.all(delay >= 0):
            break
    else:
        raise _refuse(what, f"some outputs never follow an input row within {MAX_DELAY_S:g} s")
    # check on random counts, bit for bit, against the formula the loop uses
    check = copy.deepcopy(feed)
    n = int(delay.max()) + 64
    rng = np.random.default_rng(0)
    rows_in = rng.integers(0, 4, size=(n_rows, n)).astype(np.float64)
    check.push(rows_in)
    for t in range(n):
        got = np.asarray(check.step((t + 1) * dt), dtype=np.float64)
        src = t - delay
        want = np.where(src >= 0, rows_in[row, np.maximum(src, 0)], 0.0) / dt
        if not np.array_equal(got, want):
            raise _refuse(what, "output is not a delayed copy of its input rows / dt")
    return row, delay


class FastSpec:
    """Constants of the compiled loop, read from ``net`` and its built Nengo model.

    Parameters
    ----------
    net : DetectorNetwork
        The network; ``net.model`` is built with ``nengo.builder.Model``.

    Raises
    ------
    NetworkError
        If the model holds anything the compiled loop does not implement.
    """

    def __init__(self, net):
        model = net.model
        dt = self.dt = float(net.dt)
        if np.dtype(nengo.rc.float_dtype) != np.float64:
            raise _refuse("nengo rc", f"float_dtype {nengo.rc.float_dtype} (float64 only)")
        src, ens = net.source, net.features
        for kind, objs in (("nodes", [src]), ("ensembles", [ens]), ("networks", []),
                           ("probes", [net.p_input, net.p_act, net.p_spikes])):
            extra = [o for o in getattr(model, f"all_{kind}") if all(o is not x for x in objs)]
            if extra:
                raise _refuse(f"network '{model.label}'", f"unexpected {kind}: {', '.join(map(str, extra))}")

        # --- source Node: delayed copies of the pushed rows
        feed = getattr(src.output, "__self__", None)
        self.n_rows = getattr(feed, "n_rows", getattr(feed, "n_inputs", None))
        if feed is None or not isinstance(self.n_rows, int) or src.size_in != 0:
            raise _refuse(f"node '{src.label}'", "output must be the network's EventFeed.step")
        self.n_out = int(src.size_out)
        self.out_row, self.out_delay = measure_feed(feed, self.n_rows, self.n_out, dt, float(net.sfreq),
                                                    f"node '{src.label}'")
        self.depth = int(self.out_delay.max()) + 2  # calendar ring: a value and its reset one step later

        # --- neurons
        lif = ens.neuron_type
        if type(lif) is not nengo.LIF:
            raise _refuse(f"ensemble '{ens.label}'", f"neuron type {lif} is not implemented (nengo.LIF only)")
        if ens.noise is not None:
            raise _refuse(f"ensemble '{ens.label}'", "neuron noise is not implemented")
        bm = Model(dt=dt, label=f"{model}, dt={dt:f}", decoder_cache=NoDecoderCache())
        with np.errstate(divide="ignore"):  # nengo's max-rate bookkeeping for gain 1 / bias 0
            bm.build(model)
        for op in bm.operators:
            if not isinstance(op, SUPPORTED_OPERATORS) or (
                    isinstance(op, SimProcess) and not isinstance(op.process, LinearFilter)):
                raise _refuse(f"operator {op}", "not implemented by the compiled loop")
        built = bm.params[ens]
        self.n_post = ens.n_neurons
        self.gain = np.array(built.gain, dtype=np.float64)
        self.bias = np.array(built.bias, dtype=np.float64)
        self.v0 = np.array(bm.sig[ens.neurons]["voltage"].initial_value, dtype=np.float64)
        self.rt0 = np.array(bm.sig[ens.neurons]["refractory_time"].initial_value, dtype=np.float64)
        self.tau_rc, self.tau_ref = float(lif.tau_rc), float(lif.tau_ref)
        self.min_voltage, self.amplitude = float(lif.min_voltage), float(lif.amplitude)
        # nengo evaluates expm1(-delta_t / tau_rc) with numpy; a full step is the common case
        self.expm1_dt = float(np.expm1(-np.full(self.n_post, dt) / self.tau_rc)[0])

        # --- connections into the neurons (the learned one, fixed Node inputs, recurrent ones)
        def is_neurons(obj):
            return isinstance(obj, Neurons) and obj.ensemble is ens

        self.conns = []
        for conn in model.all_connections:
            what = f"connection '{conn.label}'"
            if not is_neurons(conn.post_obj):
                raise _refuse(what, "only connections into the feature neurons are implemented")
            if conn.function is not None:
                raise _refuse(what, "a connection function is not implemented")
            if type(conn.transform) is not nengo.Dense:
                raise _refuse(what, f"transform {type(conn.transform).__name__} is not implemented (Dense only)")
            post = _indices(conn.post_slice, self.n_post, what)
            if not np.array_equal(post, np.arange(self.n_post)):
                raise _refuse(what, "a post slice is not implemented")
            if conn.pre_obj is src:
                kind, pre = K.PRE_NODE, _indices(conn.pre_slice, self.n_out, what)
            elif is_neurons(conn.pre_obj):
                kind, pre = K.PRE_NEURONS, _indices(conn.pre_slice, self.n_post, what)
            else:
                raise _refuse(what, f"pre {conn.pre_obj} is not implemented")
            weights = np.array(bm.sig[conn]["weights"].initial_value, dtype=np.float64)
            if weights.shape != (self.n_post, pre.size):
                raise _refuse(what, f"weights of shape {weights.shape}, expected a full "
                                    f"{(self.n_post, pre.size)} matrix")
            ab = first_order(conn.synapse, self.n_post, dt, what)
            if ab is None and kind == K.PRE_NEURONS:
                raise _refuse(what, "a neuron-to-neuron connection needs a synapse")
            if conn is not net.conn and conn.learning_rule_type is not None:
                raise _refuse(what, "learning is only implemented on the network's input connection")
            self.conns.append(dict(conn=conn, kind=kind, pre=pre, weights=weights, ab=ab))
        learned = [i for i, c in enumerate(self.conns) if c["conn"] is net.conn]
        if len(learned) != 1 or self.conns[learned[0]]["kind"] != K.PRE_NODE:
            raise _refuse(f"connection '{net.conn.label}'", "the input connection must come from the source Node")
        self.learned = learned[0]
        self.w0 = self.conns[self.learned]["weights"]
        self.n_pre = self.w0.shape[1]
        l_idx = self.conns[self.learned]["pre"]
        if np.unique(l_idx).size != l_idx.size:
            raise _refuse(f"connection '{net.conn.label}'", "a pre slice repeating Node outputs is not implemented")
        self.l_of = np.full(self.n_out, -1, np.int64)
        self.l_of[l_idx] = np.arange(l_idx.size)
        rule = net.conn.learning_rule_type
        self.learn = rule is not None
        if rule is None:
            self.c_plus = self.c_minus = self.c_decay = 0.0
            self.w_min, self.w_max, self.soft = -np.inf, np.inf, False
            self.decay_pre = self.decay_post = 1.0
        elif type(rule) is STDP:
            # the constants spikewatch.snn.stdp.stdp_step computes
            self.c_plus = rule.learning_rate * rule.a_plus
            self.c_minus = rule.learning_rate * rule.a_minus
            self.c_decay = rule.learning_rate * rule.a_decay
            self.w_min, self.w_max = float(rule.w_min), float(rule.w_max)
            self.soft = rule.bounds == "soft"
            self.decay_pre = math.exp(-dt / rule.tau_plus)
            self.decay_post = math.exp(-dt / rule.tau_minus)
        else:
            raise _refuse(f"connection '{net.conn.label}'",
                          f"learning rule {rule} is not implemented (spikewatch STDP only)")

        # --- probes: filtered input, filtered activity, spikes
        p_in, p_act, p_spk = net.p_input, net.p_act, net.p_spikes
        if p_in.obj is not src or p_in.attr != "output":
            raise _refuse(f"probe {p_in}", "must probe the source Node output")
        self.u_idx = _indices(p_in.slice if p_in.slice is not None else slice(None), self.n_out, f"probe {p_in}")
        if np.unique(self.u_idx).size != self.u_idx.size:
            raise _refuse(f"probe {p_in}", "a slice repeating Node outputs is not implemented")
        self.u_of = np.full(self.n_out, -1, np.int64)
        self.u_of[self.u_idx] = np.arange(self.u_idx.size)
        for p in (p_act, p_spk):
            if not is_neurons(p.obj) or p.attr not in ("output", "spikes") or p.slice is not None:
                raise _refuse(f"probe {p}", "must probe the whole output of the feature neurons")
        self.syn_u = first_order(p_in.synapse, self.u_idx.size, dt, f"probe {p_in}")
        self.syn_a = first_order(p_act.synapse, self.n_post, dt, f"probe {p_act}")
        if p_spk.synapse is not None:
            raise _refuse(f"probe {p_spk}", "the spike probe must have no synapse")

    def arrays(self, block_steps: int, score_mode: int, score_cols: int | None = None,
               familiarity_tau_s: float = 300.0) -> dict:
        """Constant arrays of the compiled loop, keyed by :func:`_kernels.run_chunk` argument.

        ``score_cols``: leading probe columns the ``familiar`` score compares (default all);
        ``familiarity_tau_s``: its memory, as in :class:`~spikewatch.snn.backends.base.Runner`.
        """
        f = np.zeros(K.N_FPAR)
        f[K.F_FAM_DECAY] = float(np.exp(-block_steps * self.dt / familiarity_tau_s))
        f[K.F_DT], f[K.F_TAU_RC], f[K.F_TAU_REF] = self.dt, self.tau_rc, self.tau_ref
        f[K.F_MIN_V], f[K.F_AMP], f[K.F_EXPM1_DT] = self.min_voltage, self.amplitude, self.expm1_dt
        f[K.F_A_U], f[K.F_B_U] = self.syn_u or (0.0, 0.0)
        f[K.F_A_A], f[K.F_B_A] = self.syn_a or (0.0, 0.0)
        f[K.F_C_PLUS], f[K.F_C_MINUS], f[K.F_C_DECAY] = self.c_plus, self.c_minus, self.c_decay
        f[K.F_W_MIN], f[K.F_W_MAX] = self.w_min, self.w_max
        f[K.F_DECAY_PRE], f[K.F_DECAY_POST] = self.decay_pre, self.decay_post
        f[K.F_STUCK_U], f[K.F_STUCK_A] = K.stuck_level(f[K.F_A_U]), K.stuck_level(f[K.F_A_A])
        f[K.F_STUCK_PRE], f[K.F_STUCK_POST] = K.stuck_level(self.decay_pre), K.stuck_level(self.decay_post)
        i = np.zeros(K.N_IPAR, dtype=np.int64)
        i[K.I_U_SYN], i[K.I_A_SYN] = self.syn_u is not None, self.syn_a is not None
        i[K.I_LEARN], i[K.I_SOFT], i[K.I_LEARNED_CONN] = self.learn, self.soft, self.learned
        i[K.I_SCORE], i[K.I_BLOCK] = score_mode, block_steps
        i[K.I_SCORE_COLS] = self.u_idx.size if score_cols is None else score_cols
        fixed = [np.zeros(0) if k == self.learned else c["weights"].ravel() for k, c in enumerate(self.conns)]
        by_row = np.lexsort((self.out_delay, np.arange(self.n_out), self.out_row))  # row, output
        return dict(
            r_off=np.searchsorted(self.out_row[by_row], np.arange(self.n_rows + 1)).astype(np.int64),
            r_k=by_row.astype(np.int64), r_d=self.out_delay[by_row].astype(np.int64), l_of=self.l_of,
            fpar=f, ipar=i, gain=self.gain, bias=self.bias,
            c_kind=np.array([c["kind"] for c in self.conns], np.int64),
            c_idx_off=np.cumsum([0] + [c["pre"].size for c in self.conns]).astype(np.int64),
            c_idx=np.concatenate([c["pre"] for c in self.conns]).astype(np.int64),
            c_w_off=np.cumsum([0] + [x.size for x in fixed]).astype(np.int64),
            c_w=np.concatenate(fixed),
            c_syn=np.array([c["ab"] is not None for c in self.conns], np.int64),
            c_ab=np.array([c["ab"] or (0.0, 0.0) for c in self.conns], np.float64).reshape(-1, 2),
            u_idx=self.u_idx, u_of=self.u_of,
            c_stuck=np.array([K.stuck_level(c["ab"][0]) if c["ab"] else 0.0 for c in self.conns], np.float64),
        )


def _reference_score(net):
    """The score function ``f(u, a, w, ref, m)`` and mode :meth:`Runner.run` uses for ``net``
    (``ref``: the familiar neuron, ``m``: the leading inputs compared, for ``familiar``)."""
    mode = getattr(net.net, "score", None)
    if mode is None:  # a network config without score modes: the function's only formula
        return (lambda u, a, w, ref, m: anomaly_score(u, a, w)), "unexplained"
    if mode == "familiar":
        return (lambda u, a, w, ref, m: anomaly_score(u[:, :m], a, w[:, :m], mode, ref)), mode
    return (lambda u, a, w, ref, m: anomaly_score(u, a, w, mode)), mode


_SCORE_CHECKED: dict = {}


def compiled_score(net) -> int:
    """The loop's score mode for ``net`` if it reproduces :func:`anomaly_score`, else ``SCORE_NONE``.

    The compiled formula is compared once per process with the Python function
    on random inputs (including steps without input or activity and a zero
    weight row); if they ever disagree (the Python formula changed), the
    runner falls back to computing the score in Python from the probes.
    """
    ref, mode = _reference_score(net)
    code = K.SCORE_MODES.get(mode, K.SCORE_NONE)
    if code == K.SCORE_NONE:
        return code
    key = (mode, anomaly_score.__code__)
    if key not in _SCORE_CHECKED:
        rng = np.random.default_rng(7)
        u = rng.random((64, 12)) * (rng.random((64, 1)) > 0.1)
        a = rng.random((64, 5)) * (rng.random((64, 5)) > 0.4)
        a[::7] = 0.0
        w = rng.random((5, 12))
        w[1] = 0.0
        ok = True
        for r, m in ((0, 12), (2, 7), (1, 5)):  # the familiar neuron and the compared inputs (familiar only)
            got = np.empty(64)
            K.score_rows(u, a, w, code, got, r, m)
            ok &= bool(np.allclose(got, ref(u, a, w, r, m), rtol=1e-12, atol=1e-12))
        _SCORE_CHECKED[key] = ok
    return code if _SCORE_CHECKED[key] else K.SCORE_NONE


class FastRunner(Runner):
    """Runs the network's Nengo model in a compiled loop (see the module docstring).

    Attributes
    ----------
    spec : FastSpec
        What was read from the model.
    score_in_loop : bool
        Whether the anomaly score is computed in the compiled loop (the score
        mode is one it reproduces) or in Python by :meth:`Runner.run`.
    """

    name = "fast"

    def __init__(self, net, block_steps: int):
        super().__init__(net, block_steps)
        spec = self.spec = FastSpec(net)
        n, p = spec.n_post, spec.n_pre
        cols = getattr(net, "score_cols", slice(None))
        mode = compiled_score(net) if spec.u_idx.size == p else K.SCORE_NONE
        if cols != slice(None) and not (mode == K.SCORE_FAMILIAR and cols.start in (0, None) and cols.step is None):
            mode = K.SCORE_NONE  # the loop compares a leading block of inputs, for 'familiar' only
        m = p if cols == slice(None) else len(range(p)[cols])
        self.score_in_loop = mode != K.SCORE_NONE
        tau = net.net.familiarity_tau_s if hasattr(net.net, "familiarity_tau_s") else 300.0
        self._const = spec.arrays(self.block_steps, mode, m, tau)
        self._trace_const = dict(self._const, ipar=spec.arrays(self.block_steps, K.SCORE_NONE, m, tau)["ipar"])
        self._wt = spec.w0.T.copy()  # (n_pre, n_neurons): the loop reads weights by pre input
        depth = spec.depth
        self._state = dict(
            syn=np.zeros((len(spec.conns), n)), wt=self._wt, delta=np.zeros((p, n)),
            trow=np.zeros(n, np.uint8), tcol=np.zeros(p, np.uint8), ist=np.zeros(K.N_ISTATE, np.int64),
            q_k=np.zeros((depth, 2 * spec.n_out), np.int64), q_v=np.zeros((depth, 2 * spec.n_out)),
            q_n=np.zeros(depth, np.int64), s=np.zeros(spec.n_out), pre=np.zeros(p),
            act=np.zeros(p, np.int64), is_act=np.zeros(p, np.uint8),
            fu_park=np.zeros(spec.u_idx.size), fa_park=np.zeros(n), x_park=np.zeros(p), y_park=np.zeros(n),
            syn_park=np.zeros((len(spec.conns), n)),
            v=spec.v0.copy(), rt=spec.rt0.copy(), fu=np.zeros(spec.u_idx.size), fa=np.zeros(n),
            xtr=np.zeros(p), ytr=np.zeros(n), wn=np.zeros((n, p)), fam=self.familiarity, bspk=self._block_spikes,
        )
        # weights nengo would clip on its first step make that step dense
        inside = (spec.w_min <= spec.w0) & (spec.w0 <= spec.w_max)
        self._state["ist"][K.S_DENSE] = int(spec.learn and not np.all(inside))
        self._pending = None  # (u, a, counts, {step: weights}, first step) of the chunk in run()

    def weights(self) -> np.ndarray:
        if self._pending is not None:  # inside Runner.run(): the weights at the current step
            return self._pending[3][self.steps].T.copy()
        return self._wt.T.copy()

    def _advance(self, events: np.ndarray, snap_at: np.ndarray, score: bool):
        ev = np.ascontiguousarray(events, dtype=np.float64)
        spec = self.spec
        if ev.ndim != 2 or ev.shape[0] != spec.n_rows:
            raise NetworkError(f"fast backend: events of shape {ev.shape}, expected ({spec.n_rows}, n_steps)")
        n = ev.shape[1]
        snaps = np.empty((snap_at.size, spec.n_pre, spec.n_post))
        counts = np.empty((n, spec.n_post), np.int16)
        if score:
            u, a, sc = np.empty((0, spec.u_idx.size)), np.empty((0, spec.n_post)), np.empty(n, np.float32)
        else:
            u, a, sc = np.empty((n, spec.u_idx.size)), np.empty((n, spec.n_post)), np.empty(0, np.float32)
        self._state["ist"][K.S_STEP] = self.steps
        K.run_chunk(ev, **(self._const if score else self._trace_const), **self._state, snap_at=snap_at,
                    snaps=snaps, u_out=u, a_out=a, counts=counts, score=sc)
        return u, a, counts, snaps, sc

    def _simulate(self, events):
        if self._pending is not None:  # inside Runner.run(): hand out the next slice of the chunk
            u, a, counts, _, first = self._pending
            k = events.shape[1]
            i = self.steps - first
            return u[i:i + k], a[i:i + k], counts[i:i + k]
        u, a, counts, _, _ = self._advance(events, np.zeros(0, np.int64), False)
        return u, a, counts.astype(np.int64)

    def run(self, events: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Feed a chunk of input rows (same contract as :meth:`Runner.run`).

        The whole chunk is simulated by one compiled call. With
        :attr:`score_in_loop` the score comes out of it too (score blocks as in
        :meth:`Runner.run`); otherwise the call records the probes and the
        weights at every score-block start and :meth:`Runner.run` computes the
        score from those arrays.
        """
        n = events.shape[1]
        if self.score_in_loop:
            _, _, counts, _, score = self._advance(events, np.zeros(0, np.int64), True)
            self.steps += n
            return score, counts
        first = self.steps
        at = np.arange(first, first + n)
        at = at[(at % self.block_steps == 0) | (at == first)] - first
        u, a, counts, snaps, _ = self._advance(events, at.astype(np.int64), False)
        self._pending = (u, a, counts, {first + int(t): w for t, w in zip(at, snaps)}, first)
        try:
            return super().run(events)
        finally:
            self._pending = None
