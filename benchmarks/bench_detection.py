"""Detection quality over the development data, with the STDP-off ablation beside it.

Analyses every MIT-BIH record in ``$SPIKEWATCH_DATA/mitdb`` (whole records by
default) twice, with learning on and off (same network, same seed), scores
both with ``spikewatch.evaluate`` (AAMI EC57, paced records excluded from the
gross figures) and prints a per-record table and the gross figures. The
results are written to ``benchmarks/results/detection.md`` and ``.json``.

Usage::

    python benchmarks/bench_detection.py [--stop SECONDS] [--records 106 223 ...]
                                         [--backend nengo|fast] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

from spikewatch import evaluate as ev
from spikewatch.data import data_root
from spikewatch.io.writers import atomic_write_text, safe_id
from spikewatch.jobs import resolve_job, run_job

COLS = ["V_Se", "S_Se", "F_Se", "event_PPV", "false_events_per_h", "N_flagged_pct",
        "beat_AUC_SVF_vs_N", "beat_AUC_V_vs_N"]


def run(records, stop, backend, out: Path, learning: bool):
    scores = {}
    for r in records:
        path = data_root() / "mitdb" / r
        over = dict(stdp__enabled=learning, report__html=False, report__edf_export=False)
        if backend:
            over["backend__name"] = backend
        rec, cfg = resolve_job(path, None, **over)
        t = time.perf_counter()
        run_job(rec, cfg, out, stop=stop)
        sc = ev.evaluate_ecg_report(rec, out / safe_id(rec.record_id))
        sc.durations = [d for _, d in ev.load_report(out / safe_id(rec.record_id))["events"]]
        scores[r] = sc
        f = sc.figures()
        print(f"  {r} {'STDP on ' if learning else 'STDP off'} {time.perf_counter() - t:6.1f}s  "
              + "  ".join(f"{c}={f[c]}" for c in ("V_Se", "S_Se", "event_PPV", "N_flagged_pct", "beat_AUC_V_vs_N")),
              flush=True)
    return scores


def fmt(v):
    return "–" if v is None else f"{v:g}"


def main():
    warnings.filterwarnings("ignore")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--records", nargs="*", help="MIT-BIH records (default: all in mitdb/RECORDS)")
    p.add_argument("--stop", type=float, default=None, help="analyse only the first STOP seconds")
    p.add_argument("--backend", default=None, help="simulator backend (default: config)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/detection-reports"))
    a = p.parse_args()
    records = a.records or (data_root() / "mitdb" / "RECORDS").read_text().split()
    res = {}
    for learning in (True, False):
        print(f"STDP {'on' if learning else 'off (ablation)'}:", flush=True)
        res[learning] = run(records, a.stop, a.backend, a.out / ("stdp-on" if learning else "stdp-off"), learning)
    lines = ["| record | " + " | ".join(f"{c} (on / off)" for c in COLS) + " |",
             "|---|" + "---|" * len(COLS)]
    for r in records:
        on, off = res[True][r].figures(), res[False][r].figures()
        tag = " (paced)" if res[True][r].paced else ""
        lines.append(f"| {r}{tag} | " + " | ".join(f"{fmt(on[c])} / {fmt(off[c])}" for c in COLS) + " |")
    g_on, g_off = ev.gross(list(res[True].values())), ev.gross(list(res[False].values()))
    for g, scores in ((g_on, res[True]), (g_off, res[False])):
        kept = [sc for sc in scores.values() if not sc.paced]
        for key, attr in (("beat_AUC_SVF_vs_N", "auc_abnormal"), ("beat_AUC_V_vs_N", "auc_v")):
            aucs = [getattr(sc, attr) for sc in kept if getattr(sc, attr) is not None]
            g[key] = round(float(np.median(aucs)), 4) if aucs else None  # median over records
        durs = np.array([d for sc in kept for d in sc.durations])
        g["event_duration_s"] = ({"median": round(float(np.median(durs)), 3),
                                  "p95": round(float(np.percentile(durs, 95)), 3),
                                  "max": round(float(durs.max()), 3)} if durs.size else None)
    lines.append("| **gross** | " + " | ".join(f"**{fmt(g_on[c])} / {fmt(g_off[c])}**" for c in COLS) + " |")
    span = "whole records" if a.stop is None else f"first {a.stop:g} s of each record"
    text = (f"# Detection benchmark (MIT-BIH development records, {span})\n\n"
            f"Command: `python benchmarks/bench_detection.py{'' if a.stop is None else f' --stop {a.stop:g}'}`\n\n"
            "Each cell: STDP on / STDP off (same network and seed, learning disabled). "
            "Gross figures exclude paced records; the gross beat AUCs are medians over the records "
            "(with at least one beat of each class).\n\n" + "\n".join(lines) + "\n\n"
            + "Event durations (s), non-paced records, STDP on / off: "
            + " / ".join("median {median}, 95th percentile {p95}, max {max}".format(**g["event_duration_s"])
                         if g["event_duration_s"] else "no events" for g in (g_on, g_off)) + "\n")
    print(text)
    res_dir = Path("benchmarks/results")
    res_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(res_dir / "detection.md", text)
    atomic_write_text(res_dir / "detection.json", json.dumps(
        {"span": span, "gross": {"stdp_on": g_on, "stdp_off": g_off},
         "records": {r: {"stdp_on": res[True][r].figures(), "stdp_off": res[False][r].figures()} for r in records}},
        indent=2))


if __name__ == "__main__":
    main()
