#!/usr/bin/env python
"""The frozen detector on nengo-loihi's chip emulator against the reference backend.

For each MIT-BIH record: learn with STDP on the reference backend over the first
``--train`` seconds (``spikewatch deploy``), then analyse the next ``--test`` seconds
with the frozen network on

* ``nengo``: the reference ``nengo.Simulator``,
* ``sim``: nengo-loihi's chip emulator (discretised weights, voltages, decays),
* ``simreal``: the same emulator in floating point (no discretisation),

and print event agreement (reference events also flagged by the chip, extra chip
events), flagged-beat agreement, spike-train agreement (spike counts; share of
spikes with a spike of the same neuron within +-1 step on the other side), steps/s
of each simulator on the network stage, the chip resources, the quantisation
report, and the estimated chip energy per hour and per beat beside the host CPU time.
``sim`` against ``simreal`` isolates what quantisation changes; ``simreal``
against ``nengo`` what the chip's neuron model changes (whole-step refractory,
one synaptic time constant per compartment).

Run from the project folder (data through ``SPIKEWATCH_DATA``)::

    python benchmarks/bench_loihi.py                              # 106 213 223, 300 s + 300 s (~10 min)
    python benchmarks/bench_loihi.py --records 213 --train 60 --test 120
    python benchmarks/bench_loihi.py --json loihi.json            # also write the figures
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")

import spikewatch.analysis as analysis  # noqa: E402
from spikewatch.bundle import learn_bundle  # noqa: E402
from spikewatch.data import data_root  # noqa: E402
from spikewatch.detect import detection_level  # noqa: E402
from spikewatch.jobs import resolve_job  # noqa: E402
from spikewatch.loihi_report import resource_rows  # noqa: E402

TARGETS = ("nengo", "sim", "simreal")


class Recorder:
    """Wraps the analysis' runner: keeps per-step spikes and times the network stage."""

    def __init__(self):
        self.spikes, self.wall, self.cpu, self.steps = [], 0.0, 0.0, 0
        self._open = analysis.open_runner

    def open_runner(self, name, net, block_steps, backend=None):
        runner = self._open(name, net, block_steps, backend=backend)
        run = runner.run

        def timed(events):
            w, c = time.perf_counter(), time.process_time()
            score, spikes = run(events)
            self.wall += time.perf_counter() - w
            self.cpu += time.process_time() - c
            self.steps += events.shape[1]
            self.spikes.append(spikes.copy())
            return score, spikes

        runner.run = timed
        return runner


def run(rec, cfg, bundle, target, start, stop):
    backend = "nengo" if target == "nengo" else "loihi"
    c = cfg.model_copy(update={
        "backend": cfg.backend.model_copy(update={"name": backend, "target": "sim" if target == "nengo" else target}),
        "stdp": cfg.stdp.model_copy(update={"enabled": False})})
    rec_ = Recorder()
    analysis.open_runner = rec_.open_runner
    try:
        res = analysis.analyze(rec, c, start=start, stop=stop, bundle=bundle)
    finally:
        analysis.open_runner = rec_._open
    return res, np.concatenate(rec_.spikes), rec_


def overlaps(e, others):
    return any(o.onset <= e.onset + e.duration and e.onset <= o.onset + o.duration for o in others)


def coincidence(a, b, tol=1):
    """Share of spikes of ``a`` with a spike of the same neuron in ``b`` within ``tol`` steps."""
    hit = 0
    for i in range(a.shape[1]):
        ta, tb = np.flatnonzero(a[:, i]), np.flatnonzero(b[:, i])
        if len(ta) and len(tb):
            j = np.searchsorted(tb, ta)
            d = np.minimum(np.abs(tb[np.clip(j, 0, len(tb) - 1)] - ta), np.abs(tb[np.clip(j - 1, 0, len(tb) - 1)] - ta))
            hit += int((d <= tol).sum())
    return hit / max(int((a > 0).sum()), 1)


def _corr(a, b):
    """Correlation over the beats scored on both sides (beats in bad-quality spans have no z)."""
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.corrcoef(a[ok], b[ok])[0, 1]) if ok.sum() > 1 else float("nan")


def compare(ref, other, sp_ref, sp_other, det):
    level_ref, thr, _ = detection_level(ref.beat_score, ref.beat_z, det)
    level_other, _, _ = detection_level(other.beat_score, other.beat_z, det)
    with np.errstate(invalid="ignore"):
        fr, fo = level_ref > thr, level_other > thr
    return {
        "events_ref": len(ref.events), "events": len(other.events),
        "ref_events_found": sum(overlaps(e, other.events) for e in ref.events),
        "extra_events": sum(not overlaps(e, ref.events) for e in other.events),
        "flagged_beats_ref": int(fr.sum()), "flagged_beats": int(fo.sum()), "flagged_beats_both": int((fr & fo).sum()),
        "beat_z_corr": _corr(ref.beat_z, other.beat_z),
        "beat_score_corr": _corr(ref.beat_score, other.beat_score),
        "score_rel_err": float(np.abs(ref.score - other.score).sum() / np.abs(ref.score).sum()),
        "spikes_ref": int(sp_ref.sum()), "spikes": int(sp_other.sum()),
        "ref_spikes_matched": coincidence(sp_ref, sp_other), "spikes_matched": coincidence(sp_other, sp_ref),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", nargs="+", default=["106", "213", "223"])
    ap.add_argument("--train", type=float, default=300.0, help="training span from the start (s)")
    ap.add_argument("--test", type=float, default=300.0, help="analysed span after the training span (s)")
    ap.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = ap.parse_args()
    print(f"# bench_loihi: {platform.python_version()}, {platform.machine()}, records {args.records}, "
          f"train 0-{args.train:g} s, test {args.train:g}-{args.train + args.test:g} s")
    results, totals = {}, {t: {"found": 0, "ref": 0, "extra": 0} for t in TARGETS[1:]}
    for rid in args.records:
        rec, cfg = resolve_job(data_root() / "mitdb" / rid)
        t0 = time.perf_counter()
        bundle, _ = learn_bundle(rec, cfg, stop=args.train)
        learn_s = time.perf_counter() - t0
        start, stop = args.train, args.train + args.test
        out = {t: run(rec, cfg, bundle, t, start, stop) for t in TARGETS}
        ref, sp_ref, rr = out["nengo"]
        r = {"learn_s": round(learn_s, 1), "beats": int(len(ref.rpeaks)), "speed_steps_per_s": {}, "cpu_s_per_hour": {}}
        for t in TARGETS:
            r["speed_steps_per_s"][t] = round(out[t][2].steps / out[t][2].wall, 1)
            r["cpu_s_per_hour"][t] = round(out[t][2].cpu * 3600 / (stop - start), 1)
        for t in TARGETS[1:]:
            r[t] = compare(ref, out[t][0], sp_ref, out[t][1], cfg.detection)
            totals[t]["found"] += r[t]["ref_events_found"]
            totals[t]["ref"] += r[t]["events_ref"]
            totals[t]["extra"] += r[t]["extra_events"]
        r["sim_vs_simreal"] = compare(out["simreal"][0], out["sim"][0], out["simreal"][1], out["sim"][1],
                                      cfg.detection)
        rep = out["sim"][0].backend_report
        r["energy"] = rep["energy"]
        r["quantisation"] = rep["quantisation"]
        r["traffic"] = {k: v for k, v in rep["traffic"].items() if k != "off_chip"}
        results[rid] = r
        s = r["sim"]
        print(f"\n## record {rid}: {r['beats']} beats analysed, learned in {learn_s:.0f} s")
        print(f"  events: reference {s['events_ref']}, emulator found {s['ref_events_found']} "
              f"({100 * s['ref_events_found'] / max(s['events_ref'], 1):.0f} %), extra {s['extra_events']}; "
              f"flagged beats ref {s['flagged_beats_ref']} / emulator {s['flagged_beats']} / both {s['flagged_beats_both']}; "
              f"beat z corr {s['beat_z_corr']:.5f}; score rel. error {100 * s['score_rel_err']:.2f} %")
        for t in TARGETS[1:]:
            q = r[t]
            print(f"  spikes {t:8s}: {q['spikes']} vs reference {q['spikes_ref']} ({100 * q['spikes'] / max(q['spikes_ref'], 1):.0f} %); "
                  f"reference spikes matched within +-1 step {100 * q['ref_spikes_matched']:.1f} %, "
                  f"chip spikes matched {100 * q['spikes_matched']:.1f} %; events found "
                  f"{q['ref_events_found']}/{q['events_ref']}, extra {q['extra_events']}")
        q = r["sim_vs_simreal"]
        print(f"  quantisation only (sim vs simreal): spikes {q['spikes']} vs {q['spikes_ref']}, matched "
              f"{100 * q['ref_spikes_matched']:.1f} % / {100 * q['spikes_matched']:.1f} %, events "
              f"{q['ref_events_found']}/{q['events_ref']} found, {q['extra_events']} extra, "
              f"score rel. error {100 * q['score_rel_err']:.3f} %")
        print("  speed (network stage, steps/s): " + ", ".join(f"{t} {v:.0f}" for t, v in r["speed_steps_per_s"].items())
              + f"; signal is {rec.sfreq:g} steps/s")
        e = r["energy"]
        print(f"  energy estimate (not a measurement): {1e3 * e['per_hour']['energy_J']:.2f} mJ per hour, "
              f"{1e9 * e['energy_per_beat_J']:.0f} nJ per beat ({e['per_hour']['synaptic_ops']:.3g} synaptic ops, "
              f"{e['per_hour']['neuron_spikes']:.3g} neuron spikes, {e['per_hour']['input_spikes']:.3g} input spikes per hour); "
              f"host CPU per hour of signal: emulator {r['cpu_s_per_hour']['sim']:.0f} s, "
              f"reference {r['cpu_s_per_hour']['nengo']:.0f} s")
        if rid == args.records[0]:
            print("  resources of the default network:")
            for label, value in resource_rows(rep):
                print(f"    {label}: {value}")
    print("\n## total")
    for t in TARGETS[1:]:
        tot = totals[t]
        print(f"  {t}: {tot['found']}/{tot['ref']} reference events flagged "
              f"({100 * tot['found'] / max(tot['ref'], 1):.1f} %), {tot['extra']} extra")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "totals": totals,
                                         "records": results}, indent=1, default=float))


if __name__ == "__main__":
    main()
