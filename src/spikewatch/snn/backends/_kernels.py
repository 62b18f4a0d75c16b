"""Compiled (numba) step loop of the ``fast`` backend.

One call of :func:`run_chunk` advances the detector network by a whole chunk of
steps; every per-step operation happens inside the compiled loop. The loop
mirrors, operator by operator, what ``nengo.Simulator`` runs for the model
built by :class:`~spikewatch.snn.network.DetectorNetwork` (the mapping and its
checks are in :mod:`spikewatch.snn.backends.fast`). Per step, in nengo's order:

1. ``weights += delta`` (the STDP change computed at the previous step);
2. the source Node emits ``rows[r_k][t - d_k] / dt`` for each output ``k``;
3. ``J = bias + sum_c gain * x_c`` over the connections into the neurons, ``x_c``
   being the connection's synapse output of the previous step (or, without a
   synapse, this step's weighted input);
4. ``LIF.step`` (nengo's refractory handling, spike height ``amplitude / dt``);
5. weighted inputs ``W_c @ s`` of the Node connections and their synapses
   (``x = x * a + b * u``, nengo's zero-order-hold ``OneX`` step);
6. STDP (:func:`spikewatch.snn.stdp.stdp_step`): traces decay, the change is
   computed from the traces before this step's spikes, traces accumulate;
7. weighted inputs ``W_c @ out`` of the neuron-to-neuron connections and
   their synapses;
8. probes: a filtered probe returns its filter state *before* this step's
   update (nengo copies it before the ``update`` operator runs), then the
   probe filters advance; optionally the anomaly score of the step.

Event-driven work, with results identical to the dense computation:

* Node output: a nonzero input sample schedules, in a ring of future steps
  (a calendar queue), the value each of its delayed outputs takes and the
  return to zero one step later; steps without input samples cost nothing.
* STDP: an entry whose post neuron did not spike and whose pre input carried
  no event gets exactly ``clip(w) - w``, i.e. ``0.0`` while ``w`` lies within
  ``[w_min, w_max]``; so only the rows of spiking neurons and the columns of
  active inputs are computed. Should rounding ever leave a weight outside the
  bounds, the next step is computed densely, exactly as nengo does.
* Silent inputs and neurons: a filter, synapse or trace that decays without
  input ends on a subnormal value that ``x * a`` maps to itself
  (:func:`stuck_level`). Multiplying a subnormal takes a slow microcode path on
  x86 (~36 ns here), so every ``PARK_EVERY`` steps such stuck states are
  *parked*: their value moves to a side array (``*_park``) and the working
  value becomes 0, which the dense update loops keep at 0 for free; readers
  add the two (an addition with a subnormal is not slow), and the next input
  to that state moves the value back before its update. The STDP depression of
  a parked post trace cannot move a weight above ``|c_minus| pre W_BIG`` (it is
  below half an ulp); smaller weights get the exact computation.
"""

from __future__ import annotations

import math

import numba
import numpy as np

# float constants
(F_DT, F_TAU_RC, F_TAU_REF, F_MIN_V, F_AMP, F_EXPM1_DT, F_A_U, F_B_U, F_A_A, F_B_A,
 F_C_PLUS, F_C_MINUS, F_W_MIN, F_W_MAX, F_DECAY_PRE, F_DECAY_POST, F_STUCK_U, F_STUCK_A,
 F_STUCK_PRE, F_STUCK_POST, F_C_DECAY, F_FAM_DECAY, N_FPAR) = range(23)
# integer constants
(I_U_SYN, I_A_SYN, I_LEARN, I_SOFT, I_LEARNED_CONN, I_SCORE, I_BLOCK, I_SCORE_COLS, N_IPAR) = range(9)
# integer state
(S_HEAD, S_DENSE, S_STEP, S_NACT, S_HAVE_WN, S_REF, N_ISTATE) = range(7)
# connection kinds
PRE_NODE, PRE_NEURONS = 0, 1
# score modes computed in the loop (-1: the caller computes the score from the probes)
SCORE_NONE, SCORE_UNEXPLAINED, SCORE_MISMATCH, SCORE_FAMILIAR = -1, 0, 1, 2
SCORE_MODES = {"unexplained": SCORE_UNEXPLAINED, "mismatch": SCORE_MISMATCH, "familiar": SCORE_FAMILIAR}
# the score ignores filtered inputs at or below this (subnormal leftovers of silent inputs)
SCORE_U_FLOOR = 1e-290
# steps between two looks for states to park (see the module docstring)
PARK_EVERY = 64
# a weight above |c_minus| * pre_count * W_BIG is moved by no post trace at its stuck level
# (the depression is below half an ulp of the weight)
W_BIG = 2.0 ** -940


def stuck_level(a: float) -> float:
    """Largest ``x >= 0`` with ``x * a == x`` in float64, for ``0 <= a < 1``.

    A state ``x *= a`` without input stops there (a few subnormal units); for
    ``|x|`` up to this level the multiplication gives ``x`` back exactly.
    """
    if not 0.0 <= a < 1.0:
        return 0.0
    unit = 5e-324  # the smallest subnormal, 2**-1074
    m = 0
    while m < 1 << 20 and (m + 1) * unit * a == (m + 1) * unit:
        m += 1
    return m * unit


@numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _stdp_delta(w, post_c, pre_c, x, y, c_plus, c_minus, w_min, w_max, soft, c_decay):  # pragma: no cover
    """One entry of :func:`spikewatch.snn.stdp.stdp_step`, with the same float operations."""
    ltp = c_plus * (post_c * x)
    ltd = c_minus * (y * pre_c)
    if soft:
        span = w_max - w_min
        ltp = ltp * ((w_max - w) / span)
        ltd = ltd * ((w - w_min) / span)
    target = w + ltp + ltd
    if c_decay != 0.0:  # heterosynaptic depression of a spiking neuron's weights
        target = target - c_decay * (post_c * (w - w_min))
    if target < w_min:  # np.clip: minimum(maximum(x, lo), hi)
        target = w_min
    if target > w_max:
        target = w_max
    return target - w


@numba.njit(cache=True, nogil=True, error_model="numpy")
def normalise_rows(wt, wn, m):  # pragma: no cover
    """``wn[i, :m] = w_i[:m] / max(|w_i[:m]|, 1e-12)`` for the transposed weights ``wt`` (n_pre, n_neurons)."""
    n_post = wt.shape[1]
    for i in range(n_post):
        ss = 0.0
        for j in range(m):
            ss += wt[j, i] * wt[j, i]
        nrm = max(math.sqrt(ss), 1e-12)
        for j in range(m):
            wn[i, j] = wt[j, i] / nrm


@numba.njit(cache=True, nogil=True, error_model="numpy")
def score_step(u, a, wn, mode, ref, m):  # pragma: no cover
    """:func:`spikewatch.snn.network.anomaly_score` of one step (``wn`` row-normalised).

    Inputs at or below ``SCORE_U_FLOOR`` count as 0 (they change the score by
    less than 1e-280 and would cost subnormal arithmetic). ``familiar`` compares
    the first ``m`` inputs with row ``ref``; the other modes use every input.
    """
    if mode == SCORE_FAMILIAR:
        uss = 0.0
        dot = 0.0
        for q in range(m):
            x = u[q] if u[q] > SCORE_U_FLOOR else 0.0
            uss += x * x
            dot += x * wn[ref, q]
        return 1.0 - dot / max(math.sqrt(uss), 1e-12)
    n_post, n_u = wn.shape
    usum = 0.0
    uss = 0.0
    for q in range(n_u):
        x = u[q] if u[q] > SCORE_U_FLOOR else 0.0
        usum += x
        uss += x * x
    un = max(math.sqrt(uss), 1e-12)
    total = 0.0
    best = -1.0
    k = 0
    for i in range(n_post):
        ai = a[i] if a[i] > 0.0 else 0.0
        total += ai
        if ai > best:  # np.argmax: the first maximum
            best = ai
            k = i
    if mode == SCORE_MISMATCH:
        if not total > 0.0:
            return 1.0
        dot = 0.0
        for q in range(n_u):
            x = u[q] if u[q] > SCORE_U_FLOOR else 0.0
            dot += x * wn[k, q]
        return 1.0 - dot / un
    num = 0.0
    for i in range(n_post):
        ai = a[i] if a[i] > 0.0 else 0.0
        if ai > 0.0:
            dot = 0.0
            for q in range(n_u):
                x = u[q] if u[q] > SCORE_U_FLOOR else 0.0
                dot += x * wn[i, q]
            num += ai * (dot / un)
    match = num / max(total, 1e-12) if total > 0.0 else 0.0
    return usum * (1.0 - match)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def score_rows(u, a, w, mode, out, ref, m):  # pragma: no cover
    """:func:`score_step` for every row of ``u``/``a`` with one weight matrix ``w``."""
    wn = np.zeros_like(w)
    normalise_rows(np.ascontiguousarray(w.T), wn, m if mode == SCORE_FAMILIAR else w.shape[1])
    for t in range(u.shape[0]):
        out[t] = score_step(u[t], a[t], wn, mode, ref, m)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def run_chunk(ev, r_off, r_k, r_d, l_of, fpar, ipar, gain, bias,  # pragma: no cover
              c_kind, c_idx_off, c_idx, c_w_off, c_w, c_syn, c_ab, syn,
              u_idx, u_of, wt, delta, trow, tcol, ist, q_k, q_v, q_n, s, pre, act, is_act,
              v, rt, fu, fa, xtr, ytr, fu_park, fa_park, x_park, y_park, syn_park, c_stuck,
              wn, fam, bspk, snap_at, snaps, u_out, a_out, counts, score):
    """Advance the network by ``ev.shape[1]`` steps.

    Parameters
    ----------
    ev : float64 (n_rows, n_steps)
        Rows fed to the source Node for this chunk.
    r_off, r_k, r_d : int64
        Node outputs fed by row ``r``: ``r_k[r_off[r]:r_off[r + 1]]`` with
        delays ``r_d[...]`` (output ``k`` is ``rows[r][t - d] / dt``).
    l_of : int64 (n_out,)
        Position of each Node output in the learned connection's input (-1: none).
    fpar, ipar : float64, int64
        Constants (``F_*`` / ``I_*`` of this module).
    gain, bias : float64 (n_neurons,)
        Built gains and biases of the neurons.
    c_kind : int64 (n_conn,)
        ``PRE_NODE`` or ``PRE_NEURONS`` per connection into the neurons.
    c_idx_off, c_idx : int64
        Pre indices of connection ``c``: ``c_idx[c_idx_off[c]:c_idx_off[c + 1]]``.
    c_w_off, c_w : int64, float64
        Fixed weights of connection ``c``, row-major ``(n_neurons, n_pre_c)`` at
        ``c_w[c_w_off[c]:]`` (the learned connection uses ``wt`` instead).
    c_syn : int64 (n_conn,)
        1 if the connection has a synapse.
    c_ab : float64 (n_conn, 2)
        Synapse step coefficients ``(a, b)``.
    syn : float64 (n_conn, n_neurons)
        Synapse states.
    u_idx : int64 (n_probe,)
        Node outputs seen by the input probe.
    u_of : int64 (n_out,)
        Position of each Node output in the input probe (-1: none).
    wt, delta : float64 (n_pre, n_neurons)
        Learned weights (nengo's weights signal, transposed: a pre input's
        weights are contiguous) and the pending STDP change.
    trow, tcol : uint8
        Rows / columns of ``delta`` written at the previous step.
    ist : int64 (N_ISTATE,)
        Ring head, dense-STDP flag, steps done, active inputs, score weights set.
    q_k, q_v, q_n : int64 (depth, cap), float64 (depth, cap), int64 (depth,)
        Calendar queue: at ring slot ``p``, Node output ``q_k[p, e]`` takes the
        value ``q_v[p, e]`` (``e < q_n[p]``, in order).
    s, pre : float64 (n_out,), (n_pre,)
        Current Node output and the learned connection's input.
    act, is_act : int64 (n_pre,), uint8 (n_pre,)
        Inputs of the learned connection now nonzero (ascending, ``ist[S_NACT]``
        of them) and their flags.
    v, rt : float64 (n_neurons,)
        Membrane voltage and refractory time.
    fu, fa : float64
        States of the input and activity probe filters.
    xtr, ytr : float64
        STDP pre and post traces.
    fu_park, fa_park, x_park, y_park, syn_park : float64
        Parked values of ``fu``, ``fa``, ``xtr``, ``ytr`` and ``syn`` (the true
        state is the working value plus the parked one; one of them is 0).
    c_stuck : float64 (n_conn,)
        :func:`stuck_level` of each synapse's ``a``.
    wn : float64 (n_neurons, n_pre)
        Row-normalised weights of the current score block.
    fam, bspk : float64 (n_neurons,)
        ``familiar`` score: each neuron's spike count decaying by
        ``F_FAM_DECAY`` per score block (as ``Runner.familiarity``), and its
        spikes in the current block.
    snap_at : int64 (n_snap,)
        Steps of this chunk at whose start ``wt`` is copied into ``snaps``.
    snaps : float64 (n_snap, n_pre, n_neurons)
        Output: weight snapshots (transposed).
    u_out, a_out : float64 (n_steps or 0, n_probe), (n_steps or 0, n_neurons)
        Output: the probed filtered input and activity (empty: not written).
    counts : int16 (n_steps, n_neurons)
        Output: spikes per step and neuron.
    score : float32 (n_steps or 0,)
        Output: the anomaly score when ``ipar[I_SCORE]`` names a mode.
    """
    n_rows, n_steps = ev.shape
    n_pre, n_post = wt.shape
    n_conn = c_kind.shape[0]
    n_u = u_idx.shape[0]
    depth = q_n.shape[0]

    dt = fpar[F_DT]
    tau_rc = fpar[F_TAU_RC]
    tau_ref = fpar[F_TAU_REF]
    min_v = fpar[F_MIN_V]
    spike_h = fpar[F_AMP] / dt
    spike_n = np.int16(round(spike_h * dt))  # the count the nengo runner reads from the probe
    expm1_dt = fpar[F_EXPM1_DT]
    a_u, b_u = fpar[F_A_U], fpar[F_B_U]
    a_a, b_a = fpar[F_A_A], fpar[F_B_A]
    c_plus, c_minus = fpar[F_C_PLUS], fpar[F_C_MINUS]
    c_decay = fpar[F_C_DECAY]
    w_min, w_max = fpar[F_W_MIN], fpar[F_W_MAX]
    span = w_max - w_min
    dec_pre, dec_post = fpar[F_DECAY_PRE], fpar[F_DECAY_POST]
    stuck_u, stuck_a = fpar[F_STUCK_U], fpar[F_STUCK_A]
    stuck_pre, stuck_post = fpar[F_STUCK_PRE], fpar[F_STUCK_POST]
    u_syn = ipar[I_U_SYN] != 0
    a_syn = ipar[I_A_SYN] != 0
    learn = ipar[I_LEARN] != 0
    soft = ipar[I_SOFT] != 0
    lc = ipar[I_LEARNED_CONN]
    mode = ipar[I_SCORE]
    block = ipar[I_BLOCK]
    m_cols = ipar[I_SCORE_COLS]
    fam_decay = fpar[F_FAM_DECAY]
    trace = u_out.shape[0] > 0

    J = np.empty(n_post)
    out = np.zeros(n_post)
    spiked = np.empty(n_post, np.int64)
    post_c = np.zeros(n_post)
    weighted = np.zeros((n_conn, n_post))
    u = np.empty(n_u)  # probed input of this step (working values: parked ones are ~1e-323)
    parked_rows = np.empty(n_post, np.int64)
    a = np.empty(n_post)

    head = ist[S_HEAD]
    dense = ist[S_DENSE] != 0
    step = ist[S_STEP]
    n_act = ist[S_NACT]
    have_wn = ist[S_HAVE_WN] != 0
    ref = ist[S_REF]
    i_snap = 0
    n_snap = snap_at.shape[0]

    for t in range(n_steps):
        # --- weights as nengo's signal holds them before this step
        if i_snap < n_snap and snap_at[i_snap] == t:
            snaps[i_snap, :, :] = wt
            i_snap += 1
        if mode >= 0 and (step % block == 0 or not have_wn):  # Runner.run's score blocks
            normalise_rows(wt, wn, m_cols)
            have_wn = True
            if mode == SCORE_FAMILIAR:
                if step % block == 0 and step > 0:
                    for i in range(n_post):
                        fam[i] = fam[i] * fam_decay + bspk[i]
                        bspk[i] = 0.0
                ref = 0
                for i in range(1, n_post):  # np.argmax: the first maximum
                    if fam[i] > fam[ref]:
                        ref = i

        # --- 1. weights += delta (the change computed at the previous step)
        if learn:
            if dense:
                dense = False
                for j in range(n_pre):
                    for i in range(n_post):
                        wt[j, i] += delta[j, i]
                        delta[j, i] = 0.0
                        if not (w_min <= wt[j, i] <= w_max):
                            dense = True
                    tcol[j] = 0
                for i in range(n_post):
                    trow[i] = 0
            else:
                for j in range(n_pre):
                    if tcol[j]:
                        for i in range(n_post):
                            wt[j, i] += delta[j, i]
                            delta[j, i] = 0.0
                        tcol[j] = 0
                        for i in range(n_post):
                            if not (w_min <= wt[j, i] <= w_max):
                                dense = True
                for i in range(n_post):
                    if trow[i]:
                        for j in range(n_pre):
                            wt[j, i] += delta[j, i]
                            delta[j, i] = 0.0
                            if not (w_min <= wt[j, i] <= w_max):
                                dense = True
                        trow[i] = 0

        # --- 2. source Node output (calendar queue; depth > longest delay + 1)
        for r in range(n_rows):
            x = ev[r, t]
            if x != 0.0:
                x = x / dt
                for e in range(r_off[r], r_off[r + 1]):
                    p = head + r_d[e]
                    if p >= depth:
                        p -= depth
                    q_k[p, q_n[p]] = r_k[e]
                    q_v[p, q_n[p]] = x
                    q_n[p] += 1
                    p += 1
                    if p == depth:
                        p = 0
                    q_k[p, q_n[p]] = r_k[e]
                    q_v[p, q_n[p]] = 0.0
                    q_n[p] += 1
        for e in range(q_n[head]):
            k = q_k[head, e]
            x = q_v[head, e]
            s[k] = x
            qq = u_of[k]
            if x != 0.0 and qq >= 0 and fu_park[qq] != 0.0:  # input again: unpark
                fu[qq] = fu_park[qq]
                fu_park[qq] = 0.0
            j = l_of[k]
            if j >= 0:
                pre[j] = x
                if x != 0.0 and x_park[j] != 0.0:
                    xtr[j] = x_park[j]
                    x_park[j] = 0.0
                if x != 0.0 and not is_act[j]:  # keep act ascending: the order of W @ s
                    is_act[j] = 1
                    p = n_act
                    while p > 0 and act[p - 1] > j:
                        act[p] = act[p - 1]
                        p -= 1
                    act[p] = j
                    n_act += 1
                elif x == 0.0 and is_act[j]:
                    is_act[j] = 0
                    p = 0
                    while act[p] != j:
                        p += 1
                    for p2 in range(p, n_act - 1):
                        act[p2] = act[p2 + 1]
                    n_act -= 1
        q_n[head] = 0

        # --- 5a. weighted inputs of the Node connections (W @ s)
        for c in range(n_conn):
            if c_kind[c] != PRE_NODE:
                continue
            for i in range(n_post):
                weighted[c, i] = 0.0
            has_in = False
            if c == lc:
                for q in range(n_act):
                    j = act[q]
                    x = pre[j]
                    has_in = True
                    for i in range(n_post):
                        weighted[c, i] += wt[j, i] * x
            else:
                i0, i1 = c_idx_off[c], c_idx_off[c + 1]
                m = i1 - i0
                base = c_w_off[c]
                for jj in range(m):
                    x = s[c_idx[i0 + jj]]
                    if x != 0.0:
                        has_in = True
                        for i in range(n_post):
                            weighted[c, i] += c_w[base + i * m + jj] * x
            if has_in:
                for i in range(n_post):
                    if syn_park[c, i] != 0.0:
                        syn[c, i] = syn_park[c, i]
                        syn_park[c, i] = 0.0

        # --- 3. input current
        for i in range(n_post):
            J[i] = bias[i]
        for c in range(n_conn):
            for i in range(n_post):
                x = syn[c, i] + syn_park[c, i] if c_syn[c] else weighted[c, i]
                J[i] = J[i] + (x if gain[i] == 1.0 else gain[i] * x)  # 1.0 * x == x

        # --- 4. LIF step (nengo.neurons.LIF.step)
        n_spk = 0
        for i in range(n_post):
            r_t = rt[i] - dt
            dtt = dt - r_t
            if dtt < 0.0:
                dtt = 0.0
            if dtt > dt:
                dtt = dt
            if dtt == dt:
                e_ = expm1_dt
            else:
                e_ = math.expm1(-dtt / tau_rc)
            vi = v[i] - (J[i] - v[i]) * e_
            if vi > 1.0:
                out[i] = spike_h
                t_spike = dt + tau_rc * math.log1p(-(vi - 1.0) / (J[i] - 1.0))
                vi = 0.0
                r_t = tau_ref + t_spike
                spiked[n_spk] = i
                n_spk += 1
                if fa_park[i] != 0.0:
                    fa[i] = fa_park[i]
                    fa_park[i] = 0.0
                if y_park[i] != 0.0:
                    ytr[i] = y_park[i]
                    y_park[i] = 0.0
            else:
                out[i] = 0.0
                if vi < min_v:
                    vi = min_v
            v[i] = vi
            rt[i] = r_t

        # --- 5b. synapses of the Node connections
        for c in range(n_conn):
            if c_kind[c] == PRE_NODE and c_syn[c]:
                a_c, b_c = c_ab[c, 0], c_ab[c, 1]
                for i in range(n_post):
                    syn[c, i] = syn[c, i] * a_c + b_c * weighted[c, i]

        # --- 6. STDP (the same value per entry whichever pass computes it)
        if learn:
            for j in range(n_pre):
                xtr[j] = xtr[j] * dec_pre
            n_parked = 0
            for i in range(n_post):
                ytr[i] = ytr[i] * dec_post
                post_c[i] = out[i] * dt
                if y_park[i] != 0.0:
                    parked_rows[n_parked] = i
                    n_parked += 1
            if dense:
                for j in range(n_pre):
                    pre_c = pre[j] * dt
                    for i in range(n_post):
                        delta[j, i] = _stdp_delta(wt[j, i], post_c[i], pre_c, xtr[j] + x_park[j],
                                                  ytr[i] + y_park[i], c_plus, c_minus, w_min, w_max, soft, c_decay)
            else:
                for q in range(n_act):  # columns of the active inputs
                    j = act[q]
                    pre_c = pre[j] * dt
                    x = xtr[j]  # the input is active: not parked
                    if n_spk == 0:
                        # no post spike: ltp is +0.0 exactly (w is within the bounds here),
                        # so target = (w + 0.0) + ltd: the same value without its division;
                        # parked post traces count as 0 here, then get the exact value
                        # wherever it could matter
                        for i in range(n_post):
                            w = wt[j, i]
                            ltd = c_minus * (ytr[i] * pre_c)
                            if soft:
                                ltd = ltd * ((w - w_min) / span)
                            delta[j, i] = min(max((w + 0.0) + ltd, w_min), w_max) - w
                        w_big = abs(c_minus) * pre_c * W_BIG
                        for p in range(n_parked):
                            i = parked_rows[p]
                            if not wt[j, i] > w_big:
                                delta[j, i] = _stdp_delta(wt[j, i], 0.0, pre_c, x, y_park[i],
                                                          c_plus, c_minus, w_min, w_max, soft, c_decay)
                    else:
                        for i in range(n_post):
                            delta[j, i] = _stdp_delta(wt[j, i], post_c[i], pre_c, x, ytr[i] + y_park[i],
                                                      c_plus, c_minus, w_min, w_max, soft, c_decay)
                    tcol[j] = 1
                for q in range(n_spk):  # rows of the spiking neurons (unparked at the spike)
                    i = spiked[q]
                    for j in range(n_pre):
                        delta[j, i] = _stdp_delta(wt[j, i], post_c[i], pre[j] * dt, xtr[j] + x_park[j],
                                                  ytr[i], c_plus, c_minus, w_min, w_max, soft, c_decay)
                    trow[i] = 1
            for q in range(n_act):  # x + 0.0 == x for the other (nonnegative) traces
                j = act[q]
                xtr[j] = xtr[j] + pre[j] * dt
            for i in range(n_post):
                ytr[i] = ytr[i] + post_c[i]

        # --- 7. neuron-to-neuron connections (W @ out) and their synapses
        for c in range(n_conn):
            if c_kind[c] != PRE_NEURONS:
                continue
            i0, i1 = c_idx_off[c], c_idx_off[c + 1]
            m = i1 - i0
            base = c_w_off[c]
            for i in range(n_post):
                weighted[c, i] = 0.0
            if n_spk:
                for jj in range(m):
                    x = out[c_idx[i0 + jj]]
                    if x != 0.0:
                        for i in range(n_post):
                            weighted[c, i] += c_w[base + i * m + jj] * x
                for i in range(n_post):
                    if syn_park[c, i] != 0.0:
                        syn[c, i] = syn_park[c, i]
                        syn_park[c, i] = 0.0
            a_c, b_c = c_ab[c, 0], c_ab[c, 1]
            for i in range(n_post):
                syn[c, i] = syn[c, i] * a_c + b_c * weighted[c, i]

        # --- 8. probes (filter state before this step's update), then the filters advance
        if u_syn:
            for q in range(n_u):
                x = s[u_idx[q]]
                u[q] = fu[q]
                fu[q] = fu[q] * a_u + b_u * x
        else:
            for q in range(n_u):
                u[q] = s[u_idx[q]]
        for i in range(n_post):
            if a_syn:
                a[i] = fa[i] + fa_park[i]
                fa[i] = fa[i] * a_a + b_a * out[i]
            else:
                a[i] = out[i]
            counts[t, i] = 0
        for q in range(n_spk):
            counts[t, spiked[q]] = spike_n
        if trace:
            for q in range(n_u):
                u_out[t, q] = u[q] + fu_park[q] if u_syn else u[q]
            for i in range(n_post):
                a_out[t, i] = a[i]
        if mode >= 0:
            score[t] = score_step(u, a, wn, mode, ref, m_cols)
            if mode == SCORE_FAMILIAR:
                for q in range(n_spk):
                    bspk[spiked[q]] += spike_n

        if step % PARK_EVERY == PARK_EVERY - 1:  # park the states that stopped changing
            if u_syn:
                for q in range(n_u):
                    if fu[q] != 0.0 and -stuck_u <= fu[q] <= stuck_u:
                        fu_park[q] = fu[q]
                        fu[q] = 0.0
            for i in range(n_post):
                if a_syn and fa[i] != 0.0 and -stuck_a <= fa[i] <= stuck_a:
                    fa_park[i] = fa[i]
                    fa[i] = 0.0
                if learn and ytr[i] != 0.0 and ytr[i] <= stuck_post:
                    y_park[i] = ytr[i]
                    ytr[i] = 0.0
            if learn:
                for j in range(n_pre):
                    if xtr[j] != 0.0 and xtr[j] <= stuck_pre:
                        x_park[j] = xtr[j]
                        xtr[j] = 0.0
            for c in range(n_conn):
                if c_syn[c]:
                    st = c_stuck[c]
                    for i in range(n_post):
                        if syn[c, i] != 0.0 and -st <= syn[c, i] <= st:
                            syn_park[c, i] = syn[c, i]
                            syn[c, i] = 0.0

        head += 1
        if head == depth:
            head = 0
        step += 1

    ist[S_HEAD] = head
    ist[S_DENSE] = 1 if dense else 0
    ist[S_STEP] = step
    ist[S_NACT] = n_act
    ist[S_HAVE_WN] = 1 if have_wn else 0
    ist[S_REF] = ref
