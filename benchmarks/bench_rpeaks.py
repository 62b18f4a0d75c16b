"""R-peak detection against the MIT-BIH reference beats, and chunk-length independence.

For whole MIT-BIH records, the first lead is filtered as ``analysis.analyze``
filters it (causal band-pass, ECG defaults) and given to

* ``spikewatch.rpeaks.RPeakStream`` in 300 s chunks, each with 2 s of
  look-ahead, exactly as ``analyze`` pushes it, and again in 7 s chunks and in
  one chunk (the peaks must be identical);
* NeuroKit2's ``ecg_findpeaks(method="neurokit")`` on the whole lead, and on
  300 s chunks with 3 s overlap and 2 s look-ahead (the detector spikewatch
  used before), when NeuroKit2 is installed (``pip install -e '.[dev]'``).

Detections are matched one to one to the reference beats (``.atr`` beat labels,
AAMI classes N/S/V/F/Q) within +-0.1 s; Se = matched / reference beats, PPV =
matched / detections, summed over the records. Run::

    python benchmarks/bench_rpeaks.py                      # 101 106 108 114 207 210 213 232
    python benchmarks/bench_rpeaks.py --records all        # the 32 records
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from spikewatch.config import load_config
from spikewatch.data import data_root
from spikewatch.evaluate import match_beats, reference_beats
from spikewatch.io import read_recording
from spikewatch.preprocess import CausalFilter
from spikewatch.rpeaks import RPeakStream

DEFAULT = ["101", "106", "108", "114", "207", "210", "213", "232"]
TOL_S = 0.1
LOOK_S = 2.0  # analysis.LOOKAHEAD_S


def streamed(y: np.ndarray, sfreq: float, chunk_s: float) -> np.ndarray:
    """RPeakStream over ``y`` in chunks with look-ahead, as ``analyze`` feeds it."""
    rs = RPeakStream(sfreq)
    step, look = int(round(chunk_s * sfreq)), int(round(LOOK_S * sfreq))
    for a in range(0, len(y), step):
        b = min(a + step, len(y))
        rs.push(y[a:b], a, y[b:b + look] if b < len(y) else None)
    return rs.result()


def nk_whole(y: np.ndarray, sfreq: float) -> np.ndarray:
    from neurokit2.ecg.ecg_findpeaks import ecg_findpeaks

    return np.asarray(ecg_findpeaks(y, sampling_rate=int(round(sfreq)), method="neurokit")["ECG_R_Peaks"], np.int64)


def nk_chunked(y: np.ndarray, sfreq: float, chunk_s: float = 300.0, overlap_s: float = 3.0) -> np.ndarray:
    """The previous detector: NeuroKit2 on each chunk plus 3 s before and 2 s after it."""
    step, look, ov = (int(round(v * sfreq)) for v in (chunk_s, LOOK_S, overlap_s))
    out, kept = [], 0
    for a in range(0, len(y), step):
        b = min(a + step, len(y))
        lo = max(a - ov, 0)
        seg = y[lo:min(b + look, len(y))]
        if len(seg) >= int(sfreq):
            p = nk_whole(seg, sfreq) + lo
            out.append(p[(p >= kept) & (p < b)])
        kept = b
    return np.unique(np.concatenate(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", nargs="+", default=DEFAULT, help="mitdb record names, or 'all'")
    args = ap.parse_args()
    mitdb = data_root() / "mitdb"
    records = (mitdb / "RECORDS").read_text().split() if args.records == ["all"] else args.records
    try:
        import neurokit2  # noqa: F401

        have_nk = True
    except ImportError:
        have_nk = False
    cfg = load_config("ecg")
    names = ["rpeaks 300 s chunks", "rpeaks 7 s chunks", "rpeaks one chunk"]
    if have_nk:
        names += ["NeuroKit2 whole record", "NeuroKit2 300 s chunks (previous)"]
    tot = {n: np.zeros(3) for n in names}  # matched, detected, seconds
    n_ref = 0
    print(f"{'record':<7}{'beats':>6}  " + "  ".join(f"{n:>34}" for n in names))
    for r in records:
        rec = read_recording(mitdb / r)
        sf = rec.sfreq
        y = CausalFilter(cfg.preprocessing, sf, 1)(rec.get_data(picks=rec.signal_picks[:1]))[0]
        ref = np.round(reference_beats(rec.annotations)[0] * sf).astype(np.int64)
        runs = {}
        for name, fn in [("rpeaks 300 s chunks", lambda: streamed(y, sf, 300.0)),
                         ("rpeaks 7 s chunks", lambda: streamed(y, sf, 7.0)),
                         ("rpeaks one chunk", lambda: RPeakStream(sf).push(y, 0)),
                         ("NeuroKit2 whole record", lambda: nk_whole(y, sf)),
                         ("NeuroKit2 300 s chunks (previous)", lambda: nk_chunked(y, sf))]:
            if name in names:
                t = time.perf_counter()
                runs[name] = fn()
                tot[name] += [match_beats(ref, runs[name], int(round(TOL_S * sf))), len(runs[name]),
                              time.perf_counter() - t]
        same = all(np.array_equal(runs[n], runs["rpeaks one chunk"]) for n in names[:2])
        n_ref += len(ref)
        cells = []
        for n in names:
            m = match_beats(ref, runs[n], int(round(TOL_S * sf)))
            cells.append(f"Se {100 * m / len(ref):6.2f} PPV {100 * m / max(len(runs[n]), 1):6.2f} ({len(runs[n])})")
        print(f"{r:<7}{len(ref):>6}  " + "  ".join(f"{c:>34}" for c in cells)
              + ("" if same else "   CHUNKED PEAKS DIFFER"))
        if have_nk:
            a, b = runs["rpeaks one chunk"], runs["NeuroKit2 whole record"]
            print(f"{'':13}rpeaks vs NeuroKit2 whole record: {len(np.setdiff1d(a, b))} peaks only in rpeaks, "
                  f"{len(np.setdiff1d(b, a))} only in NeuroKit2")
    print(f"\n{len(records)} records, {n_ref} reference beats, +-{TOL_S:g} s:")
    for n in names:
        m, d, s = tot[n]
        print(f"  {n:<36} Se {100 * m / n_ref:6.2f} %  PPV {100 * m / d:6.2f} %  {s:6.2f} s")


if __name__ == "__main__":
    main()
