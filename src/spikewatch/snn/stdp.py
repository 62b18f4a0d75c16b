"""Pair-based STDP: the Nengo learning-rule frontend and its reference math.

:class:`STDP` is the user-facing rule (a :class:`nengo.learning_rules.LearningRuleType`,
like :class:`nengo.BCM` or :class:`nengo.Oja`); :mod:`spikewatch.snn.builder`
turns it into a simulator operator. All of the per-step arithmetic lives in
:func:`stdp_step`, a pure numpy function, so that any other simulator
(e.g. a compiled one) can call or mirror exactly the same math and be checked
against it.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from nengo.connection import ConnectionLearningRuleTypeParam
from nengo.exceptions import ValidationError
from nengo.learning_rules import LearningRuleType
from nengo.node import Node
from nengo.params import Default, EnumParam, NumberParam

__all__ = ["STDP", "stdp_step"]


class _RealParam(NumberParam):
    """A `NumberParam` that rejects NaN (and infinities if ``finite``)."""

    def __init__(self, name, finite=True, **kwargs):
        self.finite = finite
        super().__init__(name, **kwargs)

    def coerce(self, instance, num):  # pylint: disable=arguments-renamed
        if isinstance(num, (int, float, np.number)) and (
            math.isnan(num) or (self.finite and math.isinf(num))
        ):
            kind = "finite" if self.finite else "a number (not NaN)"
            raise ValidationError(
                f"Must be {kind}; got {num}", attr=self.name, obj=instance
            )
        return super().coerce(instance, num)


class STDP(LearningRuleType):
    r"""Pair-based (all-to-all) spike-timing-dependent plasticity.

    Modifies the full weight matrix of a connection ``pre -> post.neurons``
    where ``pre`` is either a `nengo.Node` emitting spike trains or
    ``ens.neurons``. For a pre spike at time :math:`t_{pre}` and a post spike
    at :math:`t_{post}`, with :math:`\Delta t = t_{post} - t_{pre}`, each
    pair changes the weight by

    .. math::

       \Delta w = \eta A_+ e^{-\Delta t / \tau_+} \quad (\Delta t > 0), \qquad
       \Delta w = \eta A_- e^{\Delta t / \tau_-} \quad (\Delta t < 0),

    with :math:`A_- < 0` (depression), :math:`\eta` the ``learning_rate`` and
    the result kept within ``[w_min, w_max]``. All pairs are summed (all-to-all
    interaction), implemented with exponential traces: a pre trace
    :math:`x_i` per pre input (time constant :math:`\tau_+`) and a post trace
    :math:`y_j` per post neuron (time constant :math:`\tau_-`).

    Per simulator step of length ``dt``, with spike counts
    ``pre_counts = pre_activity * dt`` and ``post_counts = post_activity * dt``
    (a Node output of ``k / dt`` is ``k`` spikes):

    1. traces decay: ``x *= exp(-dt / tau_plus)``, ``y *= exp(-dt / tau_minus)``;
    2. ``delta = learning_rate * (a_plus * outer(post_counts, x)
       + a_minus * outer(y, pre_counts))``, using the traces *before* this
       step's spikes are added, so spikes in the same step do not pair
       (:math:`\Delta t = 0` gives no change);
    3. traces accumulate: ``x += pre_counts``, ``y += post_counts``;
    4. heterosynaptic depression (if ``a_decay > 0``): every weight of a neuron
       that spikes decays towards ``w_min``, ``delta -= learning_rate * a_decay
       * post_counts[:, None] * (w - w_min)``; with hard bounds and this term,
       a neuron's weights converge to ``(a_plus / a_decay)`` times the mean pre
       trace at its spikes: the average input pattern it responds to;
    5. bounds: ``"hard"`` clips, ``delta = clip(w + delta, w_min, w_max) - w``;
       ``"soft"`` first scales the potentiation term by
       ``(w_max - w) / (w_max - w_min)`` and the depression term by
       ``(w - w_min) / (w_max - w_min)``, then applies the same clip.

    A pre spike at step ``i`` and a post spike at step ``j`` thus give
    :math:`\Delta t = (j - i)\,dt` exactly. As for every Nengo learning rule,
    the delta computed in one step is added to the weights at the start of the
    next step. Weights that start outside ``[w_min, w_max]`` are clipped into
    range on the first step. The bounds are exact only if STDP is the sole
    rule modifying the connection.

    To switch learning off, build the connection without this rule.

    Parameters
    ----------
    a_plus : float, optional
        Potentiation amplitude per pre-before-post pair; must be > 0.
    a_minus : float, optional
        Depression amplitude per post-before-pre pair; must be < 0.
    tau_plus : float, optional
        Pre-trace (potentiation window) time constant in seconds; > 0.
    tau_minus : float, optional
        Post-trace (depression window) time constant in seconds; > 0.
    w_min : float, optional
        Lower weight bound; must be < ``w_max``.
    w_max : float, optional
        Upper weight bound.
    bounds : {"hard", "soft"}, optional
        How the bounds are enforced (see above). ``"soft"`` requires finite
        bounds.
    a_decay : float, optional
        Heterosynaptic depression per post spike (fraction of ``w - w_min``
        lost by every weight of the spiking neuron); >= 0, default 0 (off).
        Non-zero values require a finite ``w_min``.
    learning_rate : float, optional
        Overall multiplier of every weight change (>= 0). With the default
        1.0, ``a_plus`` and ``a_minus`` are the per-pair amplitudes. Unlike
        Nengo's rate-based rules, it is *not* multiplied by ``dt``.

    Attributes
    ----------
    a_plus, a_minus, tau_plus, tau_minus, w_min, w_max, a_decay : float
        As given.
    bounds : str
        ``"hard"`` or ``"soft"``.
    learning_rate : float
        As given.

    Notes
    -----
    Probeable signals: ``"pre_trace"`` (shape ``(n_pre,)``), ``"post_trace"``
    (shape ``(n_post,)``) and ``"delta"`` (shape ``(n_post, n_pre)``). A probed
    trace holds its value at the end of the step, i.e. after the decay and
    after adding that step's spikes.

    Nengo itself only accepts a neural pre for rules that modify weights;
    importing this module relaxes that check for `STDP` alone, so a spike
    train `nengo.Node` can be the pre (every other rule is checked as before).
    Pre activity is read from the connection's input (after ``pre_slice``),
    post activity from ``post.neurons`` output (after ``post_slice``).
    Non-spiking neurons give fractional "counts" (rate times ``dt``).

    Examples
    --------
    >>> import nengo
    >>> import numpy as np
    >>> import spikewatch.snn  # registers the builder
    >>> from spikewatch.snn.stdp import STDP
    >>> with nengo.Network() as net:
    ...     a = nengo.Ensemble(20, 1)
    ...     b = nengo.Ensemble(10, 1)
    ...     conn = nengo.Connection(
    ...         a.neurons, b.neurons, transform=np.full((10, 20), 0.5),
    ...         learning_rule_type=STDP(),
    ...     )
    """

    modifies = "weights"
    probeable = ("pre_trace", "post_trace", "delta")

    learning_rate = _RealParam("learning_rate", low=0, readonly=True, default=1.0)
    a_plus = _RealParam("a_plus", low=0, low_open=True, readonly=True, default=0.01)
    a_minus = _RealParam(
        "a_minus", high=0, high_open=True, readonly=True, default=-0.0105
    )
    tau_plus = _RealParam("tau_plus", low=0, low_open=True, readonly=True, default=0.02)
    tau_minus = _RealParam(
        "tau_minus", low=0, low_open=True, readonly=True, default=0.02
    )
    w_min = _RealParam("w_min", finite=False, readonly=True, default=0.0)
    w_max = _RealParam("w_max", finite=False, readonly=True, default=1.0)
    bounds = EnumParam("bounds", values=("hard", "soft"), readonly=True, default="hard")
    a_decay = _RealParam("a_decay", low=0, readonly=True, default=0.0)

    def __init__(
        self,
        a_plus=Default,
        a_minus=Default,
        tau_plus=Default,
        tau_minus=Default,
        w_min=Default,
        w_max=Default,
        bounds=Default,
        learning_rate=Default,
        a_decay=Default,
    ):
        super().__init__(learning_rate, size_in=0)
        self.a_plus = a_plus
        self.a_minus = a_minus
        self.tau_plus = tau_plus
        self.tau_minus = tau_minus
        self.w_min = w_min
        self.w_max = w_max
        self.bounds = bounds
        self.a_decay = a_decay

        if self.a_decay > 0 and not math.isfinite(self.w_min):
            raise ValidationError(
                "Heterosynaptic depression (a_decay > 0) needs a finite w_min",
                attr="a_decay",
                obj=self,
            )
        if not self.w_min < self.w_max:
            raise ValidationError(
                f"w_min ({self.w_min}) must be less than w_max ({self.w_max})",
                attr="w_min",
                obj=self,
            )
        if self.bounds == "soft" and not (
            math.isfinite(self.w_min) and math.isfinite(self.w_max)
        ):
            raise ValidationError(
                "Soft bounds need finite w_min and w_max", attr="bounds", obj=self
            )


def _allow_node_pre():
    """Let `STDP` (only) learn on connections whose pre is a `nengo.Node`.

    Nengo's ``Connection`` validation requires a neural pre for every rule
    that modifies weights, because its own rules read pre *neuron* activity.
    STDP reads the connection's input signal instead, so a Node emitting
    spike trains is a valid pre. The check is wrapped, not replaced: every
    other rule and pre type goes through Nengo's original check. Idempotent.
    """
    original = ConnectionLearningRuleTypeParam.check_pre
    if getattr(original, "_allows_stdp_node_pre", False):
        return

    @functools.wraps(original)
    def check_pre(self, conn, rule):
        if isinstance(rule, STDP) and isinstance(conn.pre_obj, Node):
            return
        original(self, conn, rule)

    check_pre._allows_stdp_node_pre = True
    ConnectionLearningRuleTypeParam.check_pre = check_pre


_allow_node_pre()


def stdp_step(
    weights,
    pre_counts,
    post_counts,
    pre_trace,
    post_trace,
    *,
    a_plus,
    a_minus,
    tau_plus,
    tau_minus,
    w_min,
    w_max,
    soft,
    learning_rate,
    dt,
    a_decay=0.0,
    out=None,
):
    """Advance the STDP traces by one step and return the weight change.

    This is the reference implementation of one :class:`STDP` step (see its
    docstring for the semantics). The traces are updated **in place**.

    Parameters
    ----------
    weights : (n_post, n_pre) ndarray
        Current weights (with all earlier deltas applied); read only.
    pre_counts : (n_pre,) ndarray
        Pre spikes in this step (pre activity times ``dt``).
    post_counts : (n_post,) ndarray
        Post spikes in this step (post activity times ``dt``).
    pre_trace : (n_pre,) ndarray
        Pre trace ``x``; decayed with ``tau_plus`` and incremented in place.
    post_trace : (n_post,) ndarray
        Post trace ``y``; decayed with ``tau_minus`` and incremented in place.
    a_plus, a_minus : float
        Pair amplitudes (``a_plus > 0``, ``a_minus < 0``).
    tau_plus, tau_minus : float
        Trace time constants in seconds.
    w_min, w_max : float
        Weight bounds.
    soft : bool
        Use soft (multiplicative) bounds instead of hard clipping only.
    learning_rate : float
        Overall multiplier of the weight change.
    dt : float
        Step length in seconds.
    a_decay : float
        Heterosynaptic depression per post spike (0: off).
    out : (n_post, n_pre) ndarray, optional
        Array to write the weight change into.

    Returns
    -------
    delta : (n_post, n_pre) ndarray
        The weight change for this step (``out`` if given), such that
        ``weights + delta`` lies within ``[w_min, w_max]``.
    """
    pre_trace *= math.exp(-dt / tau_plus)
    post_trace *= math.exp(-dt / tau_minus)

    # pre-before-post pairs (post spike now, earlier pre spikes in x) and
    # post-before-pre pairs (pre spike now, earlier post spikes in y)
    ltp = (learning_rate * a_plus) * np.outer(post_counts, pre_trace)
    ltd = (learning_rate * a_minus) * np.outer(post_trace, pre_counts)
    if soft:
        span = w_max - w_min
        ltp *= (w_max - weights) / span
        ltd *= (weights - w_min) / span
    target = weights + ltp + ltd
    if a_decay:  # every weight of a spiking neuron decays towards w_min
        target = target - (learning_rate * a_decay) * (post_counts[:, None] * (weights - w_min))
    target = np.clip(target, w_min, w_max)

    pre_trace += pre_counts
    post_trace += post_counts

    if out is None:
        return target - weights
    np.subtract(target, weights, out=out)
    return out
