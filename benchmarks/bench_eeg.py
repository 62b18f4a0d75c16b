"""EEG detection quality: Bonn and Delhi segment-level ROC AUC, the Michigan seizure (SzCORE), STDP on/off.

Protocol for the segment sets (labels are read only to score)
-------------------------------------------------------------
Bonn (23.6 s) and Delhi (5.12 s) segments carry no baseline of their own: a seizure segment is
seizure throughout, and a send-on-delta delta calibrated on the segment itself hides its
amplitude. Each segment is therefore analysed against a baseline learned, with STDP and
without labels, from *other* segments of the same site (as a patient's earlier monitoring would
be the reference), cross-fitted:

1. All segments of the site, of every class, are put in one random order,
   ``numpy.random.default_rng(seed).permutation`` over the files sorted by path (the order never
   looks at a label or a name), and cut into ``folds`` consecutive parts (default 2).
2. For each part, the segments of the other parts are joined, in that random order, into one
   stream, and :func:`spikewatch.analysis.analyze` runs over it with the site config and online
   STDP; ``encoding.calibration_s`` is the stream's length, so delta and the weight scale come
   from the whole stream. The learned weights, delta and weight scale are frozen into a
   :mod:`spikewatch.bundle` of kind ``baseline`` (saved and loaded back).
3. Every segment of the part is analysed on its own with that bundle
   (``analyze(rec, cfg, bundle=...)``: the baseline's delta, weight scale and weights, learning
   off) and scored by the mean of its 1-s window scores (windows in bad signal are not scored).
4. ROC AUC over all segments, parts pooled: per class against the seizure class and overall.

STDP off (ablation): the same network with learning disabled while the baseline stream runs, so
the bundle holds the seeded initial weights with the same delta and weight scale. The settings
are those of the site configs (``eeg-bonn.yaml``, ``eeg-delhi.yaml``), the same for every segment.
References computed on the same segments: the variance and the line length
(mean ``|x[n+1] - x[n]|``) of each whole raw segment.

Michigan: the continuous 31-channel recording is its own baseline: ``analyze`` with
``eeg-michigan.yaml`` (delta from its first 60 s, online STDP, robust z of the window score
against the previous 120 s). The seizure onset is approximate (336.6-350 s, see the data
README): the first event's latency is given from both, false events are events starting before
336.6 s, and SzCORE (``timescoring``, default parameters) scores the events against a seizure
from 350 s (and from 336.6 s) to the end.

Writes ``benchmarks/results/eeg.md`` and ``eeg.json``.

Usage::

    python benchmarks/bench_eeg.py [--seeds 0 1 2] [--folds 2] [--stat mean|median|p10]
                                   [--set key=value ...] [--sites bonn delhi michigan] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import mne
import numpy as np
import yaml

from spikewatch import evaluate as ev
from spikewatch.analysis import analyze
from spikewatch.bundle import Bundle, load_bundle, save_bundle
from spikewatch.config import CONFIG_DIR, Config, load_config
from spikewatch.data import data_root
from spikewatch.io.recording import Recording
from spikewatch.io.writers import atomic_write_text
from spikewatch.jobs import read_with
from spikewatch.snn.network import DetectorNetwork

#: site -> data folder, config, file pattern, class of a file, seizure class, target negatives
SITES = {
    "bonn": dict(folder="eeg-bonn", config="eeg-bonn.yaml", suffixes=(".txt",),
                 label=lambda p: p.parent.name[0], positive="E", target=("A", "B", "C", "D")),
    "delhi": dict(folder="eeg-delhi", config="eeg-delhi.yaml", suffixes=(".mat",),
                  label=lambda p: p.parent.name, positive="ictal", target=("interictal",)),
}
MICHIGAN_ONSETS_S = (336.6, 350.0)  # approximate seizure onset, see the data README
STATS = {"mean": np.nanmean, "median": np.nanmedian, "p10": lambda x: np.nanpercentile(x, 10)}


@dataclass
class Segment:
    """One labelled segment of a site."""

    key: str  # path relative to the data root
    label: str  # class (read only to score)
    rec: Recording


def site_segments(site: str, per_class: int | None = None, overrides: dict | None = None):
    """Read every segment of ``site`` with its site config.

    Parameters
    ----------
    site : {"bonn", "delhi"}
    per_class : int, optional
        Keep only the first ``per_class`` files of each class (sorted by path): a small subset.
    overrides : dict, optional
        Dotted config overrides (``{"encoding.delta_factor": 3.0}``).

    Returns
    -------
    segments : list of Segment
        Sorted by path.
    cfg : Config
        The site config (with the overrides).
    """
    spec = SITES[site]
    cfg = site_config(spec["config"], overrides)
    root = data_root()
    files = sorted(p for p in (root / spec["folder"]).glob("*/*") if p.suffix.lower() in spec["suffixes"])
    segs, count = [], {}
    for p in files:
        label = spec["label"](p)
        count[label] = count.get(label, 0) + 1
        if per_class is not None and count[label] > per_class:
            continue
        segs.append(Segment(str(p.relative_to(root)), label, read_with(p, cfg)))
    return segs, cfg


def site_config(name: str, overrides: dict | None = None) -> Config:
    """A packaged site config with dotted ``overrides`` applied."""
    over = {k.replace(".", "__"): v for k, v in (overrides or {}).items()}
    return load_config(CONFIG_DIR / name, report__html=False, report__edf_export=False, **over)


def stream_recording(segments: list[Segment], name: str) -> Recording:
    """The segments joined end to end into one in-memory recording (the baseline stream)."""
    first = segments[0].rec
    chans = first.signal_picks
    x = np.concatenate([s.rec.get_data(picks=chans) for s in segments], axis=1)
    info = mne.create_info(chans, first.sfreq, "eeg")
    raw = mne.io.RawArray(x, info, verbose="error")
    return Recording(raw=raw, annotations=mne.Annotations([], [], []), path=Path(f"<{name}>"),
                     record_id=name, format="stream", modality="eeg")


def learn_baseline(segments: list[Segment], cfg: Config, learning: bool, folder: Path, name: str) -> Bundle:
    """Learn a site baseline on the stream of ``segments`` and freeze it into a bundle.

    Parameters
    ----------
    segments : list of Segment
        The baseline segments, in stream order.
    cfg : Config
        Site config.
    learning : bool
        STDP on (False: the ablation, the seeded initial weights are frozen).
    folder : Path
        Where the bundle is saved (and loaded back from).
    name : str
        Bundle folder name.

    Returns
    -------
    Bundle
    """
    rec = stream_recording(segments, name)
    cfg = cfg.model_copy(update={
        "stdp": cfg.stdp.model_copy(update={"enabled": learning}),
        "encoding": cfg.encoding.model_copy(update={"calibration_s": rec.duration}),
    })
    res = analyze(rec, cfg)
    net = DetectorNetwork(len(res.channels), res.sfreq, cfg.network, cfg.stdp, seed=cfg.seed)
    n = cfg.network.n_neurons
    rng = np.random.RandomState(cfg.seed)  # as spikewatch.bundle.learn_bundle
    bundle = Bundle(
        config=cfg, weights=res.weights_end.copy(), weight_scale=res.weight_scale, delta=res.delta.copy(),
        sfreq=res.sfreq, delay_steps=np.asarray(net.delay_steps),
        gain=np.asarray(net.features.gain.sample(n, rng=rng), dtype=np.float64),
        bias=np.asarray(net.features.bias.sample(n, rng=rng), dtype=np.float64),
        channels=list(res.channels), kind="baseline",
        training={"record_id": name, "segments": [s.key for s in segments], "duration_s": round(rec.duration, 3),
                  "stdp": learning, "seed": cfg.seed, "events_per_s": res.encoding["events_per_s"],
                  "mean_abs_dw": float(np.mean(np.abs(res.weights_end - res.weights_start)))},
    )
    return load_bundle(save_bundle(bundle, folder / name))


def segment_score(seg: Segment, cfg: Config, bundle: Bundle, stat: str = "mean") -> float:
    """Score of one segment analysed alone with the frozen baseline ``bundle``."""
    cfg = cfg.model_copy(update={"stdp": cfg.stdp.model_copy(update={"enabled": False})})
    res = analyze(seg.rec, cfg, bundle=bundle)
    ws = res.window_score[np.isfinite(res.window_score)]
    return float(STATS[stat](ws)) if ws.size else float("nan")


def crossfit_scores(segments: list[Segment], cfg: Config, *, seed: int, folds: int, learning: bool,
                    stat: str = "mean", folder: Path | None = None) -> dict[str, float]:
    """Score every segment against a baseline learned from the other folds (see the module docstring).

    Parameters
    ----------
    segments : list of Segment
        All segments of one site, sorted by path.
    cfg : Config
        Site config.
    seed : int
        Seed of the random order (and so of the folds).
    folds : int
        Number of parts (>= 2).
    learning : bool
        STDP on while the baselines are learned (False: ablation).
    stat : str
        Window-score statistic per segment (``mean``, ``median``, ``p10``).
    folder : Path, optional
        Where the baseline bundles go (default: a temporary folder).

    Returns
    -------
    dict
        Segment key -> score.
    """
    order = np.random.default_rng(seed).permutation(len(segments))
    parts = np.array_split(order, folds)
    scores: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="spikewatch-eeg-") as tmp:
        where = Path(folder or tmp)
        for k, part in enumerate(parts):
            held = set(part.tolist())
            stream = [segments[i] for i in order if i not in held]
            bundle = learn_baseline(stream, cfg, learning, where,
                                    f"baseline-seed{seed}-fold{k}-{'on' if learning else 'off'}")
            for i in part:
                scores[segments[i].key] = segment_score(segments[i], cfg, bundle, stat)
    return scores


def references(segments: list[Segment]) -> dict[str, dict[str, float]]:
    """Variance and line length of each whole raw segment."""
    out = {"variance": {}, "line_length": {}}
    for s in segments:
        x = s.rec.get_data(picks=s.rec.signal_picks)[0]
        out["variance"][s.key] = float(np.var(x))
        out["line_length"][s.key] = float(np.mean(np.abs(np.diff(x))))
    return out


def aucs(scores: dict[str, float], segments: list[Segment], positive: str, target: tuple) -> dict:
    """ROC AUC of the seizure class against each other class, the target negatives and all others."""
    labels = {s.key: s.label for s in segments}
    classes = sorted({s.label for s in segments} - {positive})

    def auc(negatives) -> float | None:
        keep = {k: v for k, v in scores.items() if labels[k] == positive or labels[k] in negatives}
        a = ev.segment_auc(keep, {k for k in keep if labels[k] == positive})
        return None if a is None else round(a, 4)

    out = {f"vs {c}": auc({c}) for c in classes}
    out["target"] = auc(set(target))
    out["all"] = auc(set(classes))
    return out


def run_site(site: str, seeds, folds: int, stat: str, overrides: dict | None = None, per_class=None) -> dict:
    """The protocol on one site for every seed, STDP on and off, plus the references."""
    spec = SITES[site]
    segments, cfg = site_segments(site, per_class, overrides)
    counts = {c: sum(s.label == c for s in segments) for c in sorted({s.label for s in segments})}
    refs = {k: aucs(v, segments, spec["positive"], spec["target"]) for k, v in references(segments).items()}
    out = {"segments": counts, "config": spec["config"], "positive": spec["positive"], "target": list(spec["target"]),
           "references": refs, "seeds": {}}
    for seed in seeds:
        row = {}
        for learning in (True, False):
            t = time.perf_counter()
            sc = crossfit_scores(segments, cfg, seed=seed, folds=folds, learning=learning, stat=stat)
            row["stdp_on" if learning else "stdp_off"] = aucs(sc, segments, spec["positive"], spec["target"])
            row[("stdp_on" if learning else "stdp_off") + "_seconds"] = round(time.perf_counter() - t, 1)
        out["seeds"][seed] = row
        print(f"  {site} seed {seed}: STDP on {row['stdp_on']}  off {row['stdp_off']}", flush=True)
    return out


def michigan(learning: bool, overrides: dict | None = None) -> dict:
    """Analyse the Michigan recording with its site config; events, latency, false events, SzCORE."""
    cfg = site_config("eeg-michigan.yaml", {**(overrides or {}), "stdp.enabled": learning})
    rec = read_with(data_root() / "eeg-michigan-seizure", cfg)
    t = time.perf_counter()
    res = analyze(rec, cfg)
    seconds = time.perf_counter() - t
    events = [(e.onset, e.duration) for e in res.events]
    first_on, last_on = MICHIGAN_ONSETS_S
    after = [o for o, _ in events if o >= first_on]
    before = res.window_onsets < first_on
    out = {
        "events": [{"onset": o, "duration": d} for o, d in events],
        "first_event_s": after[0] if after else None,
        "latency_s": {f"from {t0:g}": (round(after[0] - t0, 2) if after else None) for t0 in MICHIGAN_ONSETS_S},
        "false_events_before_onset": sum(o < first_on for o, _ in events),
        "max_z_before_onset": round(float(np.nanmax(res.window_z[before])), 2),
        "szcore": {f"seizure from {t0:g} s": ev.szcore_events([(t0, res.duration_s - t0)], events, res.duration_s)
                   for t0 in (last_on, first_on)},
        "channels": len(res.channels), "duration_s": round(res.duration_s, 2),
        "seconds": round(seconds, 2),
    }
    print(f"  michigan STDP {'on' if learning else 'off'}: events {events}", flush=True)
    return out


def _fmt(v) -> str:
    return "–" if v is None else f"{v:.4f}"


def _range(rows, key, col) -> str:
    vals = [r[key][col] for r in rows if r[key][col] is not None]
    return f"{min(vals):.4f}–{max(vals):.4f}" if vals else "–"


def report(res: dict, command: str) -> str:
    """The Markdown results page."""
    lines = ["# EEG detection benchmark", "", f"Command: `{command}`", "",
             "Protocol (see the docstring of `benchmarks/bench_eeg.py`): every segment is scored by the "
             "mean window score of the network frozen after learning, with STDP, on a random half of the "
             "same site's segments (its other half: cross-fitted); labels only score. STDP off = the same "
             "with learning disabled. Variance and line length: of each whole raw segment.", ""]
    for site in ("bonn", "delhi"):
        if site not in res:
            continue
        r = res[site]
        seeds = list(r["seeds"])
        s0 = r["seeds"][seeds[0]]
        cols = list(s0["stdp_on"])
        lines += [f"## {site.capitalize()} ({', '.join(f'{c} {n}' for c, n in r['segments'].items())}; "
                  f"seizure class {r['positive']}, target negatives {', '.join(r['target'])})", "",
                  f"Split seed {seeds[0]}:", "",
                  "| ROC AUC, " + r["positive"] + " vs | " + " | ".join(cols) + " |",
                  "|---|" + "---|" * len(cols)]
        for name, row in (("network, STDP on", s0["stdp_on"]), ("network, STDP off (ablation)", s0["stdp_off"]),
                          ("raw variance (reference)", r["references"]["variance"]),
                          ("line length (reference)", r["references"]["line_length"])):
            lines.append(f"| {name} | " + " | ".join(_fmt(row[c]) for c in cols) + " |")
        if len(seeds) > 1:
            rows = list(r["seeds"].values())
            lines += ["", f"Range over split seeds {', '.join(map(str, seeds))}: target "
                      f"STDP on {_range(rows, 'stdp_on', 'target')}, off {_range(rows, 'stdp_off', 'target')}; "
                      f"all negatives on {_range(rows, 'stdp_on', 'all')}, off {_range(rows, 'stdp_off', 'all')}."]
        lines.append("")
    if "michigan" in res:
        m0 = res["michigan"]["stdp_on"]
        lines += [f"## Michigan (continuous, {m0['channels']} analysed channels, {m0['duration_s']:g} s)", "",
                  "| | first event after 336.6 s | latency from 336.6 / 350 s | false events before 336.6 s "
                  "| largest window z before 336.6 s | SzCORE (seizure from 350 s) sens. / prec. / F1 / FP per 24 h "
                  "| SzCORE (from 336.6 s) sens. / prec. / F1 | events (onset s, duration s) |",
                  "|---|---|---|---|---|---|---|---|"]
        for key, name in (("stdp_on", "STDP on"), ("stdp_off", "STDP off (ablation)")):
            m = res["michigan"][key]
            a, b = (m["szcore"][f"seizure from {t:g} s"] for t in (350.0, 336.6))
            lat = " / ".join("–" if v is None else f"{v:g} s" for v in m["latency_s"].values())
            evs = ", ".join(f"{e['onset']:g} ({e['duration']:g})" for e in m["events"]) or "none"
            lines.append(f"| {name} | {'–' if m['first_event_s'] is None else m['first_event_s']} | {lat} | "
                         f"{m['false_events_before_onset']} | {m['max_z_before_onset']} | "
                         f"{a['sensitivity']} / {a['precision']} / {a['f1']} / {a['fp_per_24h']} | "
                         f"{b['sensitivity']} / {b['precision']} / {b['f1']} | {evs} |")
        lines.append("")
    return "\n".join(lines)


def main():
    warnings.filterwarnings("ignore")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="split seeds (first one tabulated)")
    p.add_argument("--folds", type=int, default=2, help="cross-fitting parts (>= 2)")
    p.add_argument("--stat", choices=sorted(STATS), default="mean", help="window-score statistic per segment")
    p.add_argument("--sites", nargs="+", default=["bonn", "delhi", "michigan"], choices=["bonn", "delhi", "michigan"])
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for every site (Michigan too), e.g. encoding.delta_factor=1.0 (YAML value)")
    p.add_argument("--no-write", action="store_true", help="print only (results/ untouched)")
    a = p.parse_args()
    if a.folds < 2:
        p.error("--folds must be >= 2")
    overrides = {}
    for s in a.sets:
        key, _, val = s.partition("=")
        overrides[key] = yaml.safe_load(val)
    res: dict = {"overrides": overrides, "stat": a.stat, "folds": a.folds}
    t = time.perf_counter()
    for site in ("bonn", "delhi"):
        if site in a.sites:
            res[site] = run_site(site, a.seeds, a.folds, a.stat, overrides)
    if "michigan" in a.sites:
        res["michigan"] = {("stdp_on" if on else "stdp_off"): michigan(on, overrides) for on in (True, False)}
    res["seconds"] = round(time.perf_counter() - t, 1)
    command = "python benchmarks/bench_eeg.py" + (
        "" if a.seeds == [0, 1, 2] else " --seeds " + " ".join(map(str, a.seeds))) + (
        "" if a.folds == 2 else f" --folds {a.folds}") + ("" if a.stat == "mean" else f" --stat {a.stat}") + (
        "" if a.sites == ["bonn", "delhi", "michigan"] else " --sites " + " ".join(a.sites)) + "".join(
        f" --set {s}" for s in a.sets)
    text = report(res, command)
    print(text)
    print(f"({res['seconds']} s)")
    if not a.no_write:
        out = Path(__file__).resolve().parent / "results"
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "eeg.md", text)
        atomic_write_text(out / "eeg.json", json.dumps(res, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
