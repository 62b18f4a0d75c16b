"""Signal-quality check against the annotators' noise marks (no network, a few seconds).

For every MIT-BIH record in ``$SPIKEWATCH_DATA/mitdb`` the whole record is streamed
through :class:`spikewatch.quality.SignalQuality` in 300 s chunks with the ECG
defaults, exactly as ``analysis.analyze`` does, and the bad windows are compared
with the reference annotations:

* ``~`` marks a change of signal quality; its ``subtype`` says which leads are
  noisy from there on (bits 0-3: noisy, bits 4-7: unreadable, -1: all unreadable),
  until the next ``~``;
* ``|`` marks an isolated artefact;
* rhythm labels ``(VT`` / ``(VFL`` / ``(IVR`` give the spans of ventricular
  rhythms, which must *not* be called noise.

Printed: seconds flagged per reason; the share of flagged lead-seconds inside
``~``-noisy spans of the same lead (precision), the share of ``~``-noisy
lead-seconds flagged (sensitivity), ``|`` marks within 1 s of a flagged window,
ventricular-rhythm seconds flagged; and the flagged share of the EEG data sets
with the EEG defaults. Run: ``python benchmarks/bench_quality.py``.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import wfdb

from spikewatch.config import load_config
from spikewatch.data import data_root
from spikewatch.io import list_recordings, read_recording
from spikewatch.quality import REASONS, SignalQuality

CHUNK_S = 300.0
VENTRICULAR = ("(VT", "(VFL", "(IVR")


def stream(rec, cfg) -> SignalQuality:
    """Run the check over the whole recording, chunk by chunk with one window of look-ahead."""
    sf, n = rec.sfreq, rec.n_times
    names = rec.signal_picks
    cal = rec.get_data(0, min(cfg.encoding.calibration_s, rec.duration), picks=names)
    q = SignalQuality(cfg.quality, sf, names, n, cal)
    step = int(round(CHUNK_S * sf))
    for a in range(0, n, step):
        b = min(a + step, n)
        x = rec.get_data(a / sf, min(b + q.lookahead, n) / sf, picks=names)
        q.push(x, a, b - a)
    return q


def noisy_windows(record: str, n_win: int, win: int, n_sig: int, n_times: int):
    """Per lead, windows inside ``~``-noisy spans; windows near ``|``; ventricular-rhythm windows."""
    ann = wfdb.rdann(record, "atr")
    sym, sub, smp = np.array(ann.symbol), np.array(ann.subtype), np.array(ann.sample)
    noisy = np.zeros((n_sig, n_win), bool)
    marks = np.flatnonzero(sym == "~")
    for k, i in enumerate(marks):
        end = smp[marks[k + 1]] if k + 1 < len(marks) else n_times
        for c in range(n_sig):
            if sub[i] == -1 or (sub[i] >> c) & 1 or (sub[i] >> (c + 4)) & 1:
                noisy[c, smp[i] // win: -(-end // win)] = True
    bars = smp[sym == "|"] // win
    vent = np.zeros(n_win, bool)
    cur, last = "(N", 0
    for i in np.flatnonzero(sym == "+"):
        vent[last // win: smp[i] // win] = cur in VENTRICULAR
        cur, last = ann.aux_note[i].replace("\x00", "").strip(), smp[i]
    vent[last // win:] = cur in VENTRICULAR
    return noisy, bars, vent


def main() -> int:
    root = data_root()
    cfg = load_config("ecg")
    t0 = time.perf_counter()
    tot = dict(flag=0, noisy=0, hit=0, bars=0, bars_hit=0, vent=0, vent_flag=0)
    reasons = dict.fromkeys(REASONS, 0.0)
    print(f"{'record':>6} {'noisy s':>8} {'flagged s':>9} {'in ~':>6} {'| hit':>6}  reasons")
    for hea in sorted((root / "mitdb").glob("*.hea")):
        rec = read_recording(hea)
        q = stream(rec, cfg)
        lead_bad = q.flags[: q.done].T.astype(bool)  # (n_ch, n_win)
        noisy, bars, vent = noisy_windows(str(hea)[:-4], q.n_win, q.win, lead_bad.shape[0], rec.n_times)
        any_bad = lead_bad.any(axis=0)
        near = np.zeros_like(any_bad)
        for d in (-1, 0, 1):
            near |= np.roll(any_bad, d)
        hit = (lead_bad & noisy).sum()
        tot["flag"] += lead_bad.sum()
        tot["noisy"] += noisy.sum()
        tot["hit"] += hit
        tot["bars"] += len(bars)
        tot["bars_hit"] += int(near[bars[bars < len(near)]].sum())
        tot["vent"] += vent.sum()
        tot["vent_flag"] += (any_bad & vent).sum()
        summ = q.summary(0, "beat", 0.0)
        for per in summ["bad_s_by_channel"].values():
            for r, s in per.items():
                reasons[r] += s
        why = ", ".join(f"{r} {sum(p[r] for p in summ['bad_s_by_channel'].values()):g}"
                        for r in REASONS if any(p[r] for p in summ["bad_s_by_channel"].values()))
        print(f"{hea.stem:>6} {noisy.sum():>8} {lead_bad.sum():>9} {hit:>6} "
              f"{int(near[bars[bars < len(near)]].sum())}/{len(bars):<4}  {why}")
    print()
    print(f"MIT-BIH, {len(list((root / 'mitdb').glob('*.hea')))} records, lead-windows of 1 s:")
    print(f"  flagged {tot['flag']} lead-s ({', '.join(f'{r} {s:g} s' for r, s in reasons.items())})")
    print(f"  precision: {tot['hit'] / max(tot['flag'], 1):.1%} of flagged lead-seconds are inside a '~'-noisy "
          f"span of that lead")
    print(f"  sensitivity: {tot['hit'] / max(tot['noisy'], 1):.1%} of {tot['noisy']} '~'-noisy lead-seconds "
          f"flagged (the annotators mark mild noise too; the check aims at unusable signal)")
    print(f"  '|' artefact marks within 1 s of a flagged window: {tot['bars_hit']}/{tot['bars']}")
    print(f"  ventricular-rhythm seconds flagged (should be ~0): {tot['vent_flag']}/{tot['vent']}")
    eeg = load_config("eeg")
    for name, kw in (("eeg-michigan-seizure", {"sfreq": 100}), ("eeg-bonn", {"sfreq": 173.61}),
                     ("eeg-delhi", {"sfreq": 200})):
        paths = [root / name] if name == "eeg-michigan-seizure" else list_recordings(root / name)
        bad = total = 0
        for p in paths:
            rec = read_recording(p, modality="eeg", **kw)
            q = stream(rec, eeg)
            bad += int(q.bad_windows().sum())
            total += q.done
        print(f"{name}: {bad} of {total} windows flagged ({bad / max(total, 1):.2%}) over {len(paths)} recordings")
    print(f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
