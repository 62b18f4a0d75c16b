"""Tests of the pair-based STDP rule (spikewatch.snn.stdp / spikewatch.snn.builder).

Spikes are forced at chosen steps: the pre side is a Node emitting ``k / dt``
at one step (or a relay of ``SpikingRectifiedLinear`` neurons driven that
way); the post side is a ``SpikingRectifiedLinear`` neuron with gain 1 and
bias 0 driven by a ``k / dt`` pulse through ``synapse=None``, so it fires
``k`` spikes in exactly that step and never spontaneously. Step ``n``
(1-based, ``t = n * dt``) is probe row ``n - 1``. Every test checks the
probed spike steps before checking weights.
"""

from __future__ import annotations

import math

import nengo
import numpy as np
import pytest
from nengo.exceptions import BuildError, ValidationError

import spikewatch.snn  # noqa: F401  (registers the builder)
from spikewatch.snn.stdp import STDP, stdp_step

DT = 0.001
A_PLUS = 0.01
A_MINUS = -0.0105
TAU_PLUS = 0.02
TAU_MINUS = 0.03  # differs from TAU_PLUS so a mix-up of the two would show


def pulses(events, size=1):
    """Node output: ``events`` maps step -> count (or per-dim counts)."""
    table = {
        step: np.broadcast_to(np.asarray(k, float), (size,)) / DT
        for step, k in events.items()
    }
    zero = np.zeros(size)

    def output(t):
        return table.get(int(round(t / DT)), zero)

    return output


def relay(n, label):
    """``n`` neurons that spike ``k`` times in a step when driven by ``k / dt``."""
    return nengo.Ensemble(
        n,
        1,
        neuron_type=nengo.SpikingRectifiedLinear(),
        gain=np.ones(n),
        bias=np.zeros(n),
        label=label,
    )


def run_pair(
    pre_events,
    post_events,
    rule=None,
    w0=0.0,
    pre_neurons=False,
    t_end=0.3,
):
    """Simulate one pre input and one post neuron with forced spikes.

    Returns ``(sim, probes)`` with probes ``pre``, ``post`` (spike outputs),
    ``w`` (weights), ``x``, ``y`` (traces) and ``delta``.
    """
    rule = rule or STDP(
        a_plus=A_PLUS,
        a_minus=A_MINUS,
        tau_plus=TAU_PLUS,
        tau_minus=TAU_MINUS,
        w_min=-1.0,
        w_max=1.0,
    )
    with nengo.Network(seed=1) as net:
        pre_drive = nengo.Node(pulses(pre_events))
        if pre_neurons:
            pre_ens = relay(1, "pre")
            nengo.Connection(pre_drive, pre_ens.neurons, synapse=None)
            pre = pre_ens.neurons
        else:
            pre = pre_drive
        post = relay(1, "post")
        nengo.Connection(nengo.Node(pulses(post_events)), post.neurons, synapse=None)
        conn = nengo.Connection(
            pre, post.neurons, transform=[[w0]], synapse=None, learning_rule_type=rule
        )
        probes = {
            "pre": nengo.Probe(pre),
            "post": nengo.Probe(post.neurons),
            "w": nengo.Probe(conn, "weights"),
            "x": nengo.Probe(conn.learning_rule, "pre_trace"),
            "y": nengo.Probe(conn.learning_rule, "post_trace"),
            "delta": nengo.Probe(conn.learning_rule, "delta"),
        }
    sim = nengo.Simulator(net, dt=DT, progress_bar=False)
    with sim:
        sim.run(t_end)
    return sim, probes


def spike_steps(sim, probe):
    """1-based steps with spikes, and the counts there."""
    counts = sim.data[probe][:, 0] * DT
    rows = np.flatnonzero(counts)
    return list(rows + 1), list(np.round(counts[rows], 9))


def total_change(sim, probes, w0=0.0):
    """Weight change over the run, including the last computed delta."""
    return sim.data[probes["w"]][-1, 0, 0] + sim.data[probes["delta"]][-1, 0, 0] - w0


@pytest.mark.parametrize("lag_ms", [2, 5, 10, 20, 40])
@pytest.mark.parametrize("pre_neurons", [False, True], ids=["node", "neurons"])
def test_potentiation_window(lag_ms, pre_neurons):
    """Pre at step 20, post lag_ms later: dw = A+ exp(-dt_ms / tau+)."""
    sim, p = run_pair({20: 1}, {20 + lag_ms: 1}, pre_neurons=pre_neurons)
    assert spike_steps(sim, p["pre"]) == ([20], [1.0])
    assert spike_steps(sim, p["post"]) == ([20 + lag_ms], [1.0])
    expected = A_PLUS * math.exp(-lag_ms * DT / TAU_PLUS)
    assert total_change(sim, p) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("lag_ms", [2, 5, 10, 20, 40])
@pytest.mark.parametrize("pre_neurons", [False, True], ids=["node", "neurons"])
def test_depression_window(lag_ms, pre_neurons):
    """Post at step 20, pre lag_ms later: dw = A- exp(-dt_ms / tau-)."""
    sim, p = run_pair({20 + lag_ms: 1}, {20: 1}, pre_neurons=pre_neurons)
    assert spike_steps(sim, p["pre"]) == ([20 + lag_ms], [1.0])
    assert spike_steps(sim, p["post"]) == ([20], [1.0])
    expected = A_MINUS * math.exp(-lag_ms * DT / TAU_MINUS)
    assert total_change(sim, p) == pytest.approx(expected, rel=1e-9)


def test_simultaneous_spikes_do_not_pair():
    sim, p = run_pair({20: 1}, {20: 1})
    assert spike_steps(sim, p["pre"])[0] == spike_steps(sim, p["post"])[0] == [20]
    assert np.all(sim.data[p["delta"]] == 0)
    assert np.all(sim.data[p["w"]] == 0)


def test_delta_is_computed_at_the_later_spike_and_applied_next_step():
    """The delta appears in the step of the second spike; weights follow a step later."""
    sim, p = run_pair({20: 1}, {25: 1})
    delta = sim.data[p["delta"]][:, 0, 0]
    w = sim.data[p["w"]][:, 0, 0]
    assert list(np.flatnonzero(delta) + 1) == [25]
    assert np.all(w[:25] == 0)  # rows 0..24 = steps 1..25
    assert np.all(w[25:] == delta[24])


def test_all_to_all_pairs_sum():
    """Every earlier pre spike pairs with a post spike, and vice versa."""
    sim, p = run_pair({10: 1, 20: 1, 60: 1}, {25: 1, 50: 1})
    assert spike_steps(sim, p["pre"])[0] == [10, 20, 60]
    assert spike_steps(sim, p["post"])[0] == [25, 50]
    ltp = sum(
        A_PLUS * math.exp(-(post - pre) * DT / TAU_PLUS)
        for post in (25, 50)
        for pre in (10, 20)
    )
    ltd = sum(A_MINUS * math.exp(-(60 - post) * DT / TAU_MINUS) for post in (25, 50))
    assert total_change(sim, p) == pytest.approx(ltp + ltd, rel=1e-9)


def test_counts_above_one_are_multiple_spikes():
    """A Node output of 3/dt is 3 pre spikes; a post drive of 2/dt gives 2 spikes."""
    sim, p = run_pair({20: 3}, {30: 2})
    assert spike_steps(sim, p["pre"]) == ([20], [3.0])
    assert spike_steps(sim, p["post"]) == ([30], [2.0])
    expected = 3 * 2 * A_PLUS * math.exp(-10 * DT / TAU_PLUS)
    assert total_change(sim, p) == pytest.approx(expected, rel=1e-9)

    sim, p = run_pair({40: 3}, {30: 1})
    expected = 3 * A_MINUS * math.exp(-10 * DT / TAU_MINUS)
    assert total_change(sim, p) == pytest.approx(expected, rel=1e-9)


def test_learning_rate_scales_changes():
    rule = STDP(a_plus=A_PLUS, tau_plus=TAU_PLUS, w_min=-1.0, learning_rate=0.5)
    sim, p = run_pair({20: 1}, {25: 1}, rule=rule)
    expected = 0.5 * A_PLUS * math.exp(-5 * DT / TAU_PLUS)
    assert total_change(sim, p) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("pre_neurons", [False, True], ids=["node", "neurons"])
def test_traces_decay_exponentially(pre_neurons):
    sim, p = run_pair({20: 1}, {50: 2}, pre_neurons=pre_neurons, t_end=0.2)
    x = sim.data[p["x"]][:, 0]
    y = sim.data[p["y"]][:, 0]
    assert np.all(x[:19] == 0) and np.all(y[:49] == 0)
    m = np.arange(len(x) - 19)
    np.testing.assert_allclose(x[19:], np.exp(-m * DT / TAU_PLUS), rtol=1e-9)
    m = np.arange(len(y) - 49)
    np.testing.assert_allclose(y[49:], 2 * np.exp(-m * DT / TAU_MINUS), rtol=1e-9)


def periodic_pairs(n_pairs, lag, period=200, first=10):
    """Events for ``n_pairs`` pairs with post - pre = ``lag`` steps, ``period`` apart."""
    starts = [first + i * period for i in range(n_pairs)]
    pre = {s + max(-lag, 0): 1 for s in starts}
    post = {s + max(lag, 0): 1 for s in starts}
    return pre, post


# Bounds tests use negative weights: the rectified post neuron ignores the
# learned (inhibitory) input, so exactly the forced spikes occur.
W_MIN, W_MAX = -0.6, -0.3


@pytest.mark.parametrize("bounds", ["hard", "soft"])
def test_bounds_under_repeated_potentiation(bounds):
    rule = STDP(a_plus=0.05, a_minus=-0.05, w_min=W_MIN, w_max=W_MAX, bounds=bounds)
    pre, post = periodic_pairs(60, lag=2)
    sim, p = run_pair(pre, post, rule=rule, w0=-0.5, t_end=12.0)
    assert spike_steps(sim, p["pre"])[0] == sorted(pre)
    assert spike_steps(sim, p["post"])[0] == sorted(post)
    w = sim.data[p["w"]][:, 0, 0]
    if bounds == "hard":
        assert w.max() == W_MAX  # reached exactly, never exceeded
        assert w[-1] == W_MAX
    else:
        assert w.max() < W_MAX  # approached, never reached
        assert W_MAX - w[-1] < 1e-3
        # first pair: potentiation scaled by (w_max - w) / (w_max - w_min)
        step = np.flatnonzero(np.diff(w))[0]
        assert w[step + 1] - w[step] == pytest.approx(
            0.05 * math.exp(-2 * DT / 0.02) * (W_MAX + 0.5) / (W_MAX - W_MIN), rel=1e-9
        )


@pytest.mark.parametrize("bounds", ["hard", "soft"])
def test_bounds_under_repeated_depression(bounds):
    rule = STDP(a_plus=0.05, a_minus=-0.05, w_min=W_MIN, w_max=W_MAX, bounds=bounds)
    pre, post = periodic_pairs(60, lag=-2)
    sim, p = run_pair(pre, post, rule=rule, w0=-0.4, t_end=12.0)
    assert spike_steps(sim, p["pre"])[0] == sorted(pre)
    assert spike_steps(sim, p["post"])[0] == sorted(post)
    w = sim.data[p["w"]][:, 0, 0]
    if bounds == "hard":
        assert w.min() == W_MIN
        assert w[-1] == W_MIN
    else:
        assert w.min() > W_MIN
        assert w[-1] - W_MIN < 1e-3
        step = np.flatnonzero(np.diff(w))[0]
        assert w[step + 1] - w[step] == pytest.approx(
            -0.05 * math.exp(-2 * DT / 0.02) * (-0.4 - W_MIN) / (W_MAX - W_MIN), rel=1e-9
        )


def test_weights_outside_bounds_are_clipped_on_first_step():
    rule = STDP(w_min=0.0, w_max=1.0)
    sim, p = run_pair({}, {}, rule=rule, w0=1.5, t_end=0.01)
    w = sim.data[p["w"]][:, 0, 0]
    assert w[0] == 1.5 and np.all(w[1:] == 1.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(a_minus=0.01),
        dict(a_minus=0.0),
        dict(a_plus=-0.01),
        dict(a_plus=0.0),
        dict(tau_plus=0.0),
        dict(tau_minus=-0.02),
        dict(w_min=1.0, w_max=1.0),
        dict(w_min=2.0, w_max=1.0),
        dict(bounds="sideways"),
        dict(bounds="soft", w_max=math.inf),
        dict(learning_rate=-1.0),
        dict(a_plus=math.nan),
        dict(tau_minus=math.inf),
        dict(w_min=math.nan),
    ],
)
def test_invalid_parameters_raise(kwargs):
    with pytest.raises(ValidationError):
        STDP(**kwargs)


def test_defaults_and_metadata():
    rule = STDP()
    assert (rule.a_plus, rule.a_minus, rule.tau_plus, rule.tau_minus) == (0.01, -0.0105, 0.02, 0.02)
    assert (rule.w_min, rule.w_max, rule.bounds, rule.learning_rate) == (0.0, 1.0, "hard", 1.0)
    assert rule.modifies == "weights"
    assert rule.probeable == ("pre_trace", "post_trace", "delta")
    assert STDP(bounds="SOFT").bounds == "soft"
    assert STDP(w_min=-math.inf, w_max=math.inf).w_max == math.inf  # hard: unbounded ok
    assert STDP() == STDP() and STDP() != STDP(a_plus=0.02)
    with pytest.raises(nengo.exceptions.ReadonlyError):
        rule.a_plus = 0.5


def test_node_pre_allowed_only_for_stdp():
    """spikewatch lets STDP (and only STDP) learn on Node -> Neurons connections."""
    with nengo.Network():
        node = nengo.Node(np.zeros(2))
        ens = nengo.Ensemble(3, 1)
        nengo.Connection(
            node, ens.neurons, transform=np.zeros((3, 2)), learning_rule_type=STDP()
        )
        with pytest.raises(ValidationError):
            nengo.Connection(
                node, ens.neurons, transform=np.zeros((3, 2)), learning_rule_type=nengo.BCM()
            )


def test_decoded_pre_is_a_build_error():
    with nengo.Network() as net:
        a = nengo.Ensemble(5, 1)
        b = nengo.Ensemble(4, 1)
        nengo.Connection(
            a, b, solver=nengo.solvers.LstsqL2(weights=True), learning_rule_type=STDP()
        )
    with pytest.raises(BuildError, match="Node or Neurons pre"):
        nengo.Simulator(net, dt=DT, progress_bar=False)


def test_stdp_step_reference():
    """The pure function on hand-computed values, traces updated in place."""
    w = np.array([[0.5, 0.5]])
    x = np.array([1.0, 0.0])
    y = np.array([2.0])
    kw = dict(
        a_plus=0.1, a_minus=-0.2, tau_plus=0.01, tau_minus=0.02, w_min=0.0, w_max=1.0,
        learning_rate=1.0, dt=0.001,
    )
    d = stdp_step(w, np.array([0.0, 1.0]), np.array([1.0]), x, y, soft=False, **kw)
    dx, dy = math.exp(-0.1), math.exp(-0.05)
    np.testing.assert_allclose(d, [[0.1 * dx, -0.2 * 2 * dy]])
    np.testing.assert_allclose(x, [dx, 1.0])
    np.testing.assert_allclose(y, [2 * dy + 1.0])

    x, y, out = np.array([1.0, 0.0]), np.array([2.0]), np.empty((1, 2))
    got = stdp_step(w, np.array([0.0, 1.0]), np.array([1.0]), x, y, soft=True, out=out, **kw)
    assert got is out
    np.testing.assert_allclose(out, [[0.1 * dx * 0.5, -0.2 * 2 * dy * 0.5]])


def test_heterosynaptic_depression_reference():
    """a_decay: every weight of a spiking neuron loses a_decay * (w - w_min), once per spike."""
    w = np.array([[0.5, 0.3], [0.2, 0.4]])
    kw = dict(a_plus=0.1, a_minus=-0.2, tau_plus=0.01, tau_minus=0.02, w_min=0.1, w_max=1.0,
              learning_rate=0.5, dt=0.001, soft=False)
    post = np.array([1.0, 0.0])
    d0 = stdp_step(w, np.zeros(2), post, np.array([1.0, 0.0]), np.zeros(2), **kw)
    d1 = stdp_step(w, np.zeros(2), post, np.array([1.0, 0.0]), np.zeros(2), a_decay=0.2, **kw)
    np.testing.assert_allclose(d1 - d0, [[-0.5 * 0.2 * 0.4, -0.5 * 0.2 * 0.2], [0.0, 0.0]])


def test_heterosynaptic_depression_converges_to_the_mean_pattern():
    """Hard bounds + a_decay: the weights of a neuron spiking once per pattern converge to
    (a_plus / a_decay) x the mean pre trace at its spikes (the average pattern)."""
    rng = np.random.default_rng(0)
    template = np.array([0.2, 1.0, 0.5, 0.0, 0.8, 0.3])
    patterns = np.clip(template + rng.normal(0.0, 0.05, size=(200, 6)), 0.0, None)
    w, y = np.full((1, 6), 0.5), np.zeros(1)
    kw = dict(a_plus=0.02, a_minus=-1e-9, tau_plus=0.01, tau_minus=0.02, w_min=0.0, w_max=10.0,
              learning_rate=1.0, dt=0.001, soft=False, a_decay=0.05)
    for _ in range(10):
        for x in patterns:
            trace = x * math.exp(kw["dt"] / kw["tau_plus"])  # equals x after this step's decay
            w = w + stdp_step(w, np.zeros(6), np.ones(1), trace, y, **kw)
    np.testing.assert_allclose(w[0], 0.4 * patterns.mean(axis=0), rtol=0.05, atol=0.005)


def test_a_decay_needs_a_finite_lower_bound():
    with pytest.raises(ValidationError, match="finite w_min"):
        STDP(a_decay=0.1, w_min=-np.inf)


@pytest.mark.parametrize("bounds", ["hard", "soft"])
def test_random_network_learns_within_bounds(bounds):
    """20 Poisson pre inputs -> 10 LIF neurons; the simulator equals a numpy replay."""
    rng = np.random.RandomState(3)
    n_pre, n_post, n_steps = 20, 10, 1000
    spikes = (rng.rand(n_steps, n_pre) < 40 * DT).astype(float)
    w0 = rng.uniform(0.2, 0.8, size=(n_post, n_pre))
    rule = STDP(a_plus=0.02, a_minus=-0.021, w_min=0.0, w_max=1.0, bounds=bounds)
    with nengo.Network(seed=3) as net:
        pre = nengo.Node(lambda t: spikes[int(round(t / DT)) - 1] / DT)
        post = nengo.Ensemble(
            n_post, 1, neuron_type=nengo.LIF(), max_rates=nengo.dists.Uniform(20, 40),
            intercepts=nengo.dists.Uniform(-0.5, 0.5),
        )
        conn = nengo.Connection(
            pre, post.neurons, transform=w0 * 0.05, synapse=0.005, learning_rule_type=rule
        )
        p_post = nengo.Probe(post.neurons)
        p_w = nengo.Probe(conn, "weights")
    with nengo.Simulator(net, dt=DT, progress_bar=False) as sim:
        sim.run(n_steps * DT)

    w = sim.data[p_w]
    post_counts = sim.data[p_post] * DT
    assert post_counts.sum() > 50
    assert np.all(np.isfinite(w))
    assert w.min() >= 0.0 and w.max() <= 1.0
    changed = np.abs(w[-1] - w0 * 0.05)
    assert np.mean(changed > 1e-6) > 0.5

    # replay: probe row k holds the weights after the deltas of steps < k
    ref, x, y = w0 * 0.05, np.zeros(n_pre), np.zeros(n_post)
    params = dict(
        a_plus=0.02, a_minus=-0.021, tau_plus=0.02, tau_minus=0.02, w_min=0.0, w_max=1.0,
        soft=bounds == "soft", learning_rate=1.0, dt=DT,
    )
    for k in range(n_steps):
        np.testing.assert_allclose(w[k], ref, rtol=0, atol=1e-12)
        ref = ref + stdp_step(ref, spikes[k], post_counts[k], x, y, **params)
