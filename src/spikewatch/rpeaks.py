"""Streaming R-peak detection whose peaks do not depend on how the signal is chunked.

The detector is NeuroKit2's ``ecg_findpeaks(method="neurokit")`` (gradient
threshold, most prominent local maximum per QRS span; Makowski et al. 2021)
re-written as a causal state machine, sample by sample, in one numba loop:

* ``|gradient|`` (``np.gradient``), a centred boxcar of 0.1 s over it (the
  smoothed gradient) and a centred boxcar of 0.75 s over that (its average) are
  computed with running sums in exactly SciPy's ``uniform_filter1d`` order and
  ``"nearest"`` edges, so the values equal NeuroKit2's bit for bit;
* QRS spans are the runs where the smoothed gradient exceeds 1.5 x its average;
  in each span long enough, the most prominent local maximum of the signal
  (``scipy.signal.find_peaks`` rules: plateaus give their middle, prominence
  against the lower of the two bases) is the R-peak, unless it lies within
  0.3 s of the previous one.

Two changes make it causal with a bounded delay (everything else is the same):

* NeuroKit2 ignores spans shorter than 0.4 x the mean length of *all* spans of
  the signal, future ones included; here the mean is over the spans found so
  far (the current one included), integers summed exactly;
* a span is closed after ``max_qrs_s`` (1.5 s) even if the gradient stays high
  (NeuroKit2 would keep it open; on ECG a QRS span lasts ~0.1 s).

Each peak is then decided at most ``lookahead_s`` (1.92 s) after its span
starts. :meth:`RPeakStream.push` advances the state over a chunk and runs a copy
of it over the look-ahead the caller passes (the signal after the chunk,
filtered in continuation), so every peak of the chunk is returned with the
chunk, and the same peaks come out whatever the chunk lengths, including one
chunk for the whole signal (``tests/test_rpeaks.py``).
"""

from __future__ import annotations

import numba
import numpy as np

# integer state
_NRAW, _TS, _TA, _NQ, _QPREV, _OPEN, _BEG, _SUMLEN, _NLEN, _LAST = range(10)
_NI = 10
# float state: running means of the two boxcars, last smoothed gradient
_MS, _MA, _SLAST = range(3)
_NF = 3
# parameters
_K1, _H1, _K2, _H2, _MINDELAY, _MAXLEN, _MASK = range(7)


@numba.njit(cache=True, nogil=True)
def _close(beg, end, istate, params, seg, out, n_out, minlen_w):  # pragma: no cover - compiled
    """A QRS span ``[beg, end)`` (signal ``seg``) is complete: keep its most prominent maximum."""
    length = end - beg
    istate[_SUMLEN] += length
    istate[_NLEN] += 1
    if length < (istate[_SUMLEN] / istate[_NLEN]) * minlen_w:
        return n_out
    # local maxima as scipy.signal.find_peaks: a rise, maybe a plateau (its middle), a fall
    best, best_prom = -1, 0.0
    i = 1
    i_max = length - 1
    while i < i_max:
        if seg[i - 1] < seg[i]:
            i_ahead = i + 1
            while i_ahead < i_max and seg[i_ahead] == seg[i]:
                i_ahead += 1
            if seg[i_ahead] < seg[i]:
                peak = (i + i_ahead - 1) // 2
                h = seg[peak]
                # prominence as scipy.signal.peak_prominences over the whole span
                left_min = h
                j = peak
                while j >= 0 and seg[j] <= h:
                    if seg[j] < left_min:
                        left_min = seg[j]
                    j -= 1
                right_min = h
                j = peak
                while j <= length - 1 and seg[j] <= h:
                    if seg[j] < right_min:
                        right_min = seg[j]
                    j += 1
                prom = h - max(left_min, right_min)
                if best < 0 or prom > best_prom:  # the first of equal prominences, as np.argmax
                    best, best_prom = peak, prom
                i = i_ahead
        i += 1
    if best >= 0:
        peak = beg + best
        if peak - istate[_LAST] > params[_MINDELAY]:
            out[n_out] = peak
            n_out += 1
            istate[_LAST] = peak
    return n_out


@numba.njit(cache=True, nogil=True)
def _feed(x, flush, istate, fstate, params, ring_s, ring_a, raw, work, out, thr_w,
          minlen_w):  # pragma: no cover - compiled
    """Advance the detector over samples ``x``; with ``flush`` the signal ends after them.

    The stages run one after the other over the call's samples: |gradient| ->
    0.1 s boxcar -> 0.75 s boxcar -> QRS indicator -> spans -> peaks. Returns
    the number of peaks written to ``out`` (sample indices from the stream start).
    """
    k1, h1, k2, h2, mask = params[_K1], params[_H1], params[_K2], params[_H2], params[_MASK]
    n0 = istate[_NRAW]
    n_all = n0 + x.shape[0]

    # |gradient| of samples n0 - 1 ... (np.gradient: central differences, one-sided at the ends)
    g = np.empty(x.shape[0] + 1)
    ng = 0
    for n in range(max(n0, 1), n_all):
        if n == 1:
            g[ng] = abs(x[n - n0] - (x[0] if n0 == 0 else raw[0]))
        else:
            xm = x[n - 2 - n0] if n - 2 >= n0 else raw[(n - 2) & mask]
            g[ng] = abs((x[n - n0] - xm) / 2.0)
        ng += 1
    end = flush and n_all >= 2
    if end:
        xn = x[n_all - 1 - n0] if n_all - 1 >= n0 else raw[(n_all - 1) & mask]
        xm = x[n_all - 2 - n0] if n_all - 2 >= n0 else raw[(n_all - 2) & mask]
        g[ng] = abs(xn - xm)
        ng += 1

    # 0.1 s boxcar of |gradient|, "nearest" edges, in scipy.ndimage.uniform_filter1d's order of operations
    lead = h1 if istate[_TS] == 0 and ng > 0 else 0
    tail = k1 - 1 - h1 if end else 0
    s = np.empty(lead + ng + tail)
    ns = 0
    for j in range(lead + ng + tail):
        v = g[0] if j < lead else (g[j - lead] if j < lead + ng else g[ng - 1])
        t = istate[_TS]
        istate[_TS] = t + 1
        slot = t % k1
        if t < k1:
            ring_s[slot] = v
            if t < k1 - 1:
                continue
            m = 0.0
            for k in range(k1):
                m += ring_s[k]
            m /= k1
        else:
            m = fstate[_MS] + (v - ring_s[slot]) / k1
            ring_s[slot] = v
        fstate[_MS] = m
        s[ns] = m
        ns += 1
    if ns > 0:
        fstate[_SLAST] = s[ns - 1]

    # 0.75 s boxcar of that, and the QRS indicator: smoothed gradient > 1.5 x its average
    lead = h2 if istate[_TA] == 0 and ns > 0 else 0
    tail = k2 - 1 - h2 if end else 0
    q = np.empty(lead + ns + tail, np.bool_)
    nq = 0
    for j in range(lead + ns + tail):
        v = s[0] if j < lead else (s[j - lead] if j < lead + ns else fstate[_SLAST])
        t = istate[_TA]
        istate[_TA] = t + 1
        slot = t % k2
        if t < k2:
            ring_a[slot] = v
            if t < k2 - 1:
                continue
            m = 0.0
            for k in range(k2):
                m += ring_a[k]
            m /= k2
        else:
            m = fstate[_MA] + (v - ring_a[slot]) / k2
            ring_a[slot] = v
        fstate[_MA] = m
        q[nq] = ring_a[(t - k2 + 1 + h2) % k2] > thr_w * m
        nq += 1

    # QRS spans: from the last sample below threshold to the last above (as NeuroKit2)
    n_out = 0
    for j in range(nq):
        i = istate[_NQ]
        istate[_NQ] = i + 1
        qi = q[j]
        if i > 0:
            prev = istate[_QPREV] == 1
            close_at = -1
            if prev and not qi and istate[_OPEN] == 1:  # falling edge
                istate[_OPEN] = 0
                close_at = i - 1
            if not prev and qi:  # rising edge
                istate[_OPEN] = 1
                istate[_BEG] = i - 1
            if istate[_OPEN] == 1 and qi and i - istate[_BEG] >= params[_MAXLEN]:  # too long: close here
                istate[_OPEN] = 0
                close_at = i
            if close_at >= 0:
                beg = istate[_BEG]
                for k in range(close_at - beg):
                    r = beg + k
                    work[k] = x[r - n0] if r >= n0 else raw[r & mask]
                n_out = _close(beg, close_at, istate, params, work, out, n_out, minlen_w)
        istate[_QPREV] = 1 if qi else 0

    # keep the last samples for the next call
    for n in range(max(n0, n_all - mask - 1), n_all):
        raw[n & mask] = x[n - n0]
    istate[_NRAW] = n_all
    return n_out


class RPeakStream:
    """Chunked R-peak detection giving each peak once, with the chunk it lies in.

    The peaks are those of one run over the whole signal, whatever the chunk
    lengths, provided every chunk but the last comes with at least
    :attr:`lookahead_s` seconds of look-ahead (a shorter look-ahead means the
    signal ends with it).

    Parameters
    ----------
    sfreq : float
        Sampling rate (Hz); like NeuroKit2, the detector works at
        ``round(sfreq)`` samples per second for its window lengths.
    max_qrs_s : float
        Longest QRS span (s); a longer one is closed there. Sets the look-ahead.
    """

    smooth_s = 0.1  # NeuroKit2 smoothwindow
    average_s = 0.75  # avgwindow
    threshold = 1.5  # gradthreshweight
    min_length = 0.4  # minlenweight
    min_delay_s = 0.3  # mindelay

    def __init__(self, sfreq: float, max_qrs_s: float = 1.5):
        rate = int(round(sfreq))
        if rate < 10:
            raise ValueError(f"R-peak detection needs a sampling rate of at least 10 Hz, got {sfreq:g}")
        self.sfreq = float(sfreq)
        k1 = max(int(np.rint(self.smooth_s * rate)), 1)
        k2 = max(int(np.rint(self.average_s * rate)), 1)
        maxlen = max(int(round(max_qrs_s * rate)), 2)
        #: samples from a span's start to the last sample its decision needs
        self.delay = maxlen + 1 + (k1 - 1 - k1 // 2) + (k2 - 1 - k2 // 2)
        size = 1 << int(np.ceil(np.log2(self.delay + 8)))
        self._params = np.array([k1, k1 // 2, k2, k2 // 2, int(np.rint(rate * self.min_delay_s)), maxlen, size - 1],
                                dtype=np.int64)
        self._istate = np.zeros(_NI, np.int64)
        self._fstate = np.zeros(_NF)
        self._ring_s = np.zeros(k1)
        self._ring_a = np.zeros(k2)
        self._raw = np.zeros(size)
        self._work = np.zeros(maxlen + 1)
        self._origin: int | None = None
        self._next = 0
        self._kept_until = 0
        self.peaks: list[np.ndarray] = []

    @property
    def lookahead_s(self) -> float:
        """Look-ahead (s) a chunk needs so that all of its peaks are decided with it."""
        return self.delay / self.sfreq

    def _run(self, x: np.ndarray, flush: bool, state) -> np.ndarray:
        istate, fstate, ring_s, ring_a, raw = state
        x = np.ascontiguousarray(x, dtype=np.float64)
        # peaks of one call are more than min_delay apart, within the samples fed plus the delay
        out = np.empty((x.shape[0] + self.delay) // max(int(self._params[_MINDELAY]), 1) + 4, np.int64)
        n = _feed(x, flush, istate, fstate, self._params, ring_s, ring_a, raw, self._work, out,
                  self.threshold, self.min_length)
        return out[:n] + self._origin

    def push(self, x: np.ndarray, start: int, lookahead: np.ndarray | None = None) -> np.ndarray:
        """Detect the peaks of the chunk ``x`` (one filtered lead) starting at sample ``start``.

        Parameters
        ----------
        x : ndarray, shape (n_times,)
            The chunk; chunks must follow each other without gap.
        start : int
            Its first sample (the first chunk's is the origin of the stream).
        lookahead : ndarray, optional
            Signal after the chunk (filtered in continuation), not consumed; at
            least :attr:`lookahead_s` long unless the signal ends with it. None:
            the signal ends with this chunk.

        Returns
        -------
        ndarray of int64
            Peaks in ``[start, start + len(x))`` not returned before, sorted.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 1:
            raise ValueError(f"RPeakStream.push: one lead expected, got shape {x.shape}")
        if self._origin is None:
            self._origin = self._next = self._kept_until = int(start)
            self._istate[_LAST] = 0  # as NeuroKit2: no peak within min_delay_s of the signal start
        elif int(start) != self._next:
            raise ValueError(f"RPeakStream.push: chunk starts at sample {start}, expected {self._next}")
        end = int(start) + x.shape[0]
        self._next = end
        state = (self._istate, self._fstate, self._ring_s, self._ring_a, self._raw)
        found = [self._run(x, False, state)]
        look = np.zeros(0) if lookahead is None else np.asarray(lookahead, dtype=np.float64)
        found.append(self._run(look, True, tuple(a.copy() for a in state)))  # a copy decides the chunk's tail
        peaks = np.concatenate(found)
        keep = np.unique(peaks[(peaks >= self._kept_until) & (peaks < end)])
        self._kept_until = max(self._kept_until, end)
        self.peaks.append(keep)
        return keep

    def result(self) -> np.ndarray:
        """All R-peak sample indices returned so far, sorted."""
        return np.concatenate(self.peaks) if self.peaks else np.zeros(0, np.int64)
