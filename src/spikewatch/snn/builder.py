"""Nengo reference-simulator backend of :class:`spikewatch.snn.stdp.STDP`.

Mirrors ``nengo/builder/learning_rules.py``: :class:`SimSTDP` is the operator
and :func:`build_stdp` the function registered with `nengo.builder.Builder`.
Importing this module (``import spikewatch.snn`` does) registers the builder.
"""

from __future__ import annotations

import numpy as np
from nengo.builder import Builder, Operator, Signal
from nengo.builder.connection import slice_signal
from nengo.ensemble import Neurons
from nengo.exceptions import BuildError
from nengo.node import Node

from spikewatch.snn.stdp import STDP, stdp_step

__all__ = ["SimSTDP", "build_stdp"]


class SimSTDP(Operator):
    """Calculate the weight change of one step of pair-based STDP.

    Calls :func:`spikewatch.snn.stdp.stdp_step` on the step's spike counts
    (activities times ``dt``); see :class:`spikewatch.snn.stdp.STDP` for the
    semantics.

    Parameters
    ----------
    pre_activities : Signal
        Pre output, shape ``(n_pre,)`` (spikes of height ``1 / dt``).
    post_activities : Signal
        Post neuron output, shape ``(n_post,)``.
    weights : Signal
        The connection weights, shape ``(n_post, n_pre)``.
    delta : Signal
        The weight change to be applied at the next step.
    pre_trace : Signal
        Pre trace, shape ``(n_pre,)``.
    post_trace : Signal
        Post trace, shape ``(n_post,)``.
    rule : STDP
        The rule providing the parameters.
    tag : str, optional
        A label associated with the operator, for debugging purposes.

    Attributes
    ----------
    rule : STDP
        The rule providing the parameters.

    Notes
    -----
    1. sets ``[]``
    2. incs ``[]``
    3. reads ``[pre_activities, post_activities, weights]``
    4. updates ``[delta, pre_trace, post_trace]``

    Reading ``weights`` orders this operator after the ``weights += delta``
    copy of the same step, so it sees every earlier delta applied; updating
    ``delta`` orders it after that copy too, so its output is applied at the
    next step.
    """

    def __init__(
        self,
        pre_activities,
        post_activities,
        weights,
        delta,
        pre_trace,
        post_trace,
        rule,
        tag=None,
    ):
        super().__init__(tag=tag)
        self.rule = rule

        self.sets = []
        self.incs = []
        self.reads = [pre_activities, post_activities, weights]
        self.updates = [delta, pre_trace, post_trace]

    @property
    def pre_activities(self):
        """Signal: the pre output."""
        return self.reads[0]

    @property
    def post_activities(self):
        """Signal: the post neuron output."""
        return self.reads[1]

    @property
    def weights(self):
        """Signal: the connection weights."""
        return self.reads[2]

    @property
    def delta(self):
        """Signal: the weight change."""
        return self.updates[0]

    @property
    def pre_trace(self):
        """Signal: the pre trace."""
        return self.updates[1]

    @property
    def post_trace(self):
        """Signal: the post trace."""
        return self.updates[2]

    @property
    def _descstr(self):
        return (
            f"pre={self.pre_activities}, post={self.post_activities} -> {self.delta}"
        )

    def make_step(self, signals, dt, rng):
        """Return the step function (see `nengo.builder.Operator.make_step`)."""
        pre = signals[self.pre_activities]
        post = signals[self.post_activities]
        weights = signals[self.weights]
        delta = signals[self.delta]
        pre_trace = signals[self.pre_trace]
        post_trace = signals[self.post_trace]
        pre_counts = np.zeros(pre.shape)
        post_counts = np.zeros(post.shape)
        r = self.rule
        params = dict(
            a_plus=r.a_plus,
            a_minus=r.a_minus,
            tau_plus=r.tau_plus,
            tau_minus=r.tau_minus,
            w_min=r.w_min,
            w_max=r.w_max,
            soft=r.bounds == "soft",
            learning_rate=r.learning_rate,
            dt=dt,
            a_decay=r.a_decay,
        )

        def step_simstdp():
            np.multiply(pre, dt, out=pre_counts)
            np.multiply(post, dt, out=post_counts)
            stdp_step(
                weights,
                pre_counts,
                post_counts,
                pre_trace,
                post_trace,
                out=delta,
                **params,
            )

        return step_simstdp


@Builder.register(STDP)
def build_stdp(model, stdp, rule):
    """Build an :class:`~spikewatch.snn.stdp.STDP` rule into a model.

    Creates the trace signals and adds a :class:`SimSTDP` operator that
    writes ``model.sig[rule]["delta"]`` (created by nengo's
    ``build_learning_rule``).

    Parameters
    ----------
    model : nengo.builder.Model
        The model to build into.
    stdp : STDP
        Learning rule type to build.
    rule : nengo.connection.LearningRule
        The learning rule object of the connection.

    Raises
    ------
    nengo.exceptions.BuildError
        If the connection is not ``Node`` or ``Neurons`` -> ``Neurons`` without
        a function, or its transform is not a full ``(n_post, n_pre)`` matrix.

    Notes
    -----
    Exposes ``model.sig[rule]["pre_trace"]``, ``["post_trace"]`` (and
    ``["delta"]``) for probing. Does not modify ``model.params[]``.
    """
    conn = rule.connection
    if not isinstance(conn.pre_obj, (Node, Neurons)):
        raise BuildError(
            f"{conn}: STDP needs a Node or Neurons pre, got {type(conn.pre_obj).__name__}"
        )
    if not isinstance(conn.post_obj, Neurons):
        raise BuildError(
            f"{conn}: STDP needs a Neurons post, got {type(conn.post_obj).__name__}"
        )
    if conn.function is not None:
        raise BuildError(f"{conn}: STDP does not support a connection function")

    pre_activities = slice_signal(model, model.sig[conn]["in"], conn.pre_slice)
    post_activities = slice_signal(
        model, model.sig[conn.post_obj]["out"], conn.post_slice
    )
    weights = model.sig[conn]["weights"]
    shape = (post_activities.shape[0], pre_activities.shape[0])
    if weights.shape != shape:
        raise BuildError(
            f"{conn}: STDP needs a full weight matrix of shape {shape} "
            f"(n_post, n_pre) as transform, got shape {weights.shape}"
        )

    pre_trace = Signal(shape=pre_activities.shape, name="STDP:pre_trace")
    post_trace = Signal(shape=post_activities.shape, name="STDP:post_trace")
    model.add_op(
        SimSTDP(
            pre_activities,
            post_activities,
            weights,
            model.sig[rule]["delta"],
            pre_trace,
            post_trace,
            rule=stdp,
        )
    )

    # expose for probes
    model.sig[rule]["pre_trace"] = pre_trace
    model.sig[rule]["post_trace"] = post_trace
