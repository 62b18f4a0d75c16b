#!/usr/bin/env python
"""Speed of the whole analysis on one core: real-time factor per stage, the fast backend
against ``nengo.Simulator``, a 24-hour Holter built from real records, the Michigan EEG.

Run from the project folder (the data are found through ``SPIKEWATCH_DATA``)::

    python benchmarks/bench_speed.py                 # everything (~3 min on an idle machine)
    python benchmarks/bench_speed.py --skip-24h      # without the 24-hour recording
    python benchmarks/bench_speed.py --nengo-s 1805  # nengo.Simulator on the whole record (~2 min more)

Every scenario runs in its own process, pinned to one CPU (``BENCH_CPU``, default 0) with one thread (numba, OpenBLAS,
OpenMP), after an untimed warm-up in that process (imports, numba's on-disk cache): the
state of a batch worker that analyses record after record. A cold ``spikewatch analyze ...
--no-html`` (a new process: interpreter start and imports included) is timed too, three
times (median). The timed path is that of ``spikewatch analyze --no-html``: read -> filter ->
encode -> network with online STDP -> events -> events.tsv / beats.tsv / summary.json and
the other default outputs except report.html; the 24-hour run leaves out the EDF copy too
(it would load the whole day into memory). Peak RSS is the scenario process's ``ru_maxrss``.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy / numba are imported

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

CPU = int(os.environ.get("BENCH_CPU", "0"))
OUTPUTS = ("events.tsv", "beats.tsv")


def _pin() -> None:
    os.sched_setaffinity(0, {CPU})
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("mne").setLevel(logging.ERROR)


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _overrides(keep_edf: bool = True, **extra) -> dict:
    """Config overrides of the timed path: fast backend, no HTML report (as ``analyze --no-html``);
    ``keep_edf=False`` also leaves out the EDF copy (it loads the whole span into memory)."""
    from spikewatch.config import ReportConfig

    over = dict(backend__name="fast", report__html=False)
    if not keep_edf and "edf_export" in ReportConfig.model_fields:
        over["report__edf_export"] = False
    over.update(extra)
    return over


def _timed_job(rec_factory, out: Path, keep_edf: bool = True, **over) -> dict:
    """open + analyze + write, each timed; returns seconds per stage and the result."""
    from spikewatch.analysis import analyze
    from spikewatch.report import write_outputs

    c0, t0 = time.process_time(), time.perf_counter()
    rec, cfg = rec_factory(**_overrides(keep_edf, **over))
    t1 = time.perf_counter()
    result = analyze(rec, cfg)
    t2 = time.perf_counter()
    folder = write_outputs(result, rec, cfg, out)
    t3 = time.perf_counter()
    stages = {"open": t1 - t0}
    stages.update({k: v for k, v in result.timings.items() if k != "total"})
    stages["write"] = t3 - t2
    stages["total"] = t3 - t0
    return dict(stages=stages, cpu_s=time.process_time() - c0, duration_s=result.duration_s, n_events=len(result.events),
                n_beats=int(len(result.rpeaks)), folder=str(folder), result=result)


def _same_outputs(a: str, b: str) -> bool:
    """Whether two report folders hold byte-identical events.tsv and beats.tsv (ECG)."""
    files = [f for f in OUTPUTS if (Path(a) / f).exists() or (Path(b) / f).exists()]
    return "events.tsv" in files and all(
        (Path(a) / f).exists() and (Path(b) / f).exists() and (Path(a) / f).read_bytes() == (Path(b) / f).read_bytes()
        for f in files)


def _resolver(path, **read):
    from spikewatch.jobs import resolve_job

    return lambda **over: resolve_job(path, **read, **over)


# ------------------------------------------------------------------ a 24-hour chained recording

def chained_recording(hours: float, folder: Path):
    """A lazily read 24-hour 2-lead ECG: the mitdb records one after another (cycled).

    Built for timing only (record borders are abrupt, leads differ between records).
    Nothing is held in memory: each read pulls the needed spans from the records.
    """
    import mne
    import numpy as np

    from spikewatch.data import data_root
    from spikewatch.io import read_recording
    from spikewatch.io.recording import Recording

    folder.mkdir(parents=True, exist_ok=True)
    mitdb = data_root() / "mitdb"
    names = (mitdb / "RECORDS").read_text().split()
    recs = [read_recording(mitdb / n) for n in names]
    sfreq = recs[0].sfreq
    n_total = int(round(hours * 3600 * sfreq))
    parts, first, i = [], 0, 0
    while first < n_total:
        rec = recs[i % len(recs)]
        if rec.sfreq != sfreq or len(rec.signal_picks) != 2:
            raise SystemExit(f"{rec.path}: not a 2-lead {sfreq:g} Hz ECG")
        n = min(rec.n_times, n_total - first)
        parts.append((first, rec, n))
        first += n
        i += 1

    class ChainedRaw(mne.io.BaseRaw):
        def __init__(self):
            info = mne.create_info(["ECG1", "ECG2"], sfreq, "ecg")
            super().__init__(info, preload=False, first_samps=(0,), last_samps=(n_total - 1,),
                             filenames=[None], raw_extras=[{}], orig_format="double", verbose="error")

        def _read_segment_file(self, data, idx, fi, start, stop, cals, mult):
            one = np.zeros((2, stop - start))
            for p0, rec, n in parts:
                a, b = max(start, p0), min(stop, p0 + n)
                if a < b:
                    one[:, a - start:b - start] = rec.raw.get_data(picks=rec.signal_picks, start=a - p0,
                                                                   stop=b - p0)
            data[:] = mult @ one[idx] if mult is not None else one[idx] * cals

    manifest = folder / "mitdb-chain.txt"
    manifest.write_text("".join(f"{rec.record_id} {p0} {n}\n" for p0, rec, n in parts))
    raw = ChainedRaw()
    return Recording(raw=raw, annotations=mne.Annotations([], [], []), path=manifest,
                     record_id=f"mitdb-chain-{hours:g}h", format="wfdb-chain", modality="ecg"), len(parts)


# ------------------------------------------------------------------ scenarios (one process each)

def scenario_ecg(args, out: Path) -> dict:
    from spikewatch.data import data_root

    path = data_root() / "mitdb" / args.record
    res = _resolver(path)
    _timed_job(res, out / "warmup", pipeline__chunk_s=20.0)  # untimed: imports, numba cache
    job = _timed_job(res, out / "chunked")
    whole = _timed_job(res, out / "whole", pipeline__chunk_s=job["duration_s"] + 1)
    r, w = job.pop("result"), whole.pop("result")
    import numpy as np

    job["unchunked_identical"] = bool(np.array_equal(r.score, w.score) and _same_outputs(job["folder"], whole["folder"]))
    job["rss_mb"] = _rss_mb()
    return job


def scenario_nengo(args, out: Path) -> dict:
    import numpy as np

    from spikewatch.analysis import analyze
    from spikewatch.data import data_root
    from spikewatch.jobs import resolve_job

    path = data_root() / "mitdb" / args.record
    rec, cfg = resolve_job(path, **_overrides(False, pipeline__chunk_s=20.0))
    analyze(rec, cfg, stop=20.0)  # untimed warm-up
    got = {}
    for backend in ("fast", "nengo"):
        rec, cfg = resolve_job(path, **_overrides(False, backend__name=backend))
        t = time.perf_counter()
        got[backend] = (analyze(rec, cfg, stop=args.nengo_s), time.perf_counter() - t)
    (f, tf), (n, tn) = got["fast"], got["nengo"]
    events = [[(e.onset, e.duration, e.score, e.channels) for e in r.events] for r in (f, n)]
    return dict(
        span_s=f.duration_s, fast_total=tf, nengo_total=tn,
        fast_network=f.timings["network"], nengo_network=n.timings["network"],
        spikes_identical=bool(np.array_equal(f.neuron_activity, n.neuron_activity)),
        weights_identical=bool(np.array_equal(f.weights_end, n.weights_end)),
        score_max_abs_diff=float(np.max(np.abs(f.score.astype(float) - n.score))),
        events_identical=events[0] == events[1], n_events=len(f.events), n_spikes=int(f.neuron_spikes.sum()),
    )


def scenario_holter(args, out: Path) -> dict:
    from spikewatch.analysis import analyze
    from spikewatch.data import data_root
    from spikewatch.jobs import resolve_job

    rec, cfg = resolve_job(data_root() / "mitdb" / args.record, **_overrides(False))
    analyze(rec, cfg, stop=20.0)  # untimed warm-up
    chain, n_parts = chained_recording(args.hours, out)
    from spikewatch.config import load_config

    def factory(**over):
        return chain, load_config("ecg", **over)

    job = _timed_job(factory, out / "holter", keep_edf=False, pipeline__chunk_s=args.holter_chunk_s)
    job.pop("result")
    job.update(n_parts=n_parts, chunk_s=args.holter_chunk_s, rss_mb=_rss_mb())
    return job


def scenario_eeg(args, out: Path) -> dict:
    from spikewatch.data import data_root

    res = _resolver(data_root() / "eeg-michigan-seizure", io__sfreq=100.0)
    _timed_job(res, out / "warmup", pipeline__chunk_s=20.0)
    job = _timed_job(res, out / "eeg")
    job.pop("result")
    job["rss_mb"] = _rss_mb()
    return job


SCENARIOS = {"ecg": scenario_ecg, "nengo": scenario_nengo, "holter": scenario_holter, "eeg": scenario_eeg}


def _holter_check(args, tmp: Path, timed: dict) -> str:
    """Compare the Holter's outputs with those of a run in chunks of another length."""
    other = argparse.Namespace(**{**vars(args), "holter_chunk_s": args.holter_check_chunk_s})
    check = _child("holter", other, tmp / "holter-check")
    if _same_outputs(timed["folder"], check["folder"]):
        return "identical events.tsv and beats.tsv"

    def rows(folder, name):
        lines = (Path(folder) / name).read_text().splitlines()[1:]
        return [ln.split("\t") for ln in lines]

    beats = [{r[0] for r in rows(f, "beats.tsv")} for f in (timed["folder"], check["folder"])]
    events = [{tuple(r) for r in rows(f, "events.tsv")} for f in (timed["folder"], check["folder"])]
    n_diff = len(events[0] ^ events[1])
    ev = "identical events.tsv" if not n_diff else f"{n_diff} events.tsv rows in only one run (of {len(events[0])})"
    return f"{ev}; beats.tsv: {len(beats[0] ^ beats[1])} R-peak onsets (of {len(beats[0])}) in only one run"


# ------------------------------------------------------------------ driver

def _child(name: str, args, out: Path) -> dict:
    cmd = [sys.executable, __file__, "--scenario", name, "--out", str(out), "--record", args.record,
           "--nengo-s", str(args.nengo_s), "--hours", str(args.hours), "--holter-chunk-s", str(args.holter_chunk_s)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    raise SystemExit(f"scenario {name} failed:\n{proc.stdout}\n{proc.stderr}")


def _cold_cli(args, out: Path, runs: int = 3) -> list[float]:
    """Wall times of ``spikewatch analyze RECORD --no-html --backend fast`` in new processes."""
    from spikewatch.data import data_root

    env = dict(os.environ)
    cmd = ["taskset", "-c", str(CPU), sys.executable, "-m", "spikewatch", "analyze",
           str(data_root() / "mitdb" / args.record), "--no-html", "--backend", "fast", "--out", str(out)]
    walls = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env)
        walls.append(time.perf_counter() - t)
    return walls


def _stage_table(job: dict) -> list[str]:
    d = job["duration_s"]
    rows = [f"    {'stage':<8} {'seconds':>9} {'x real time':>12}"]
    for k, v in job["stages"].items():
        rows.append(f"    {k:<8} {v:9.3f} {d / v if v > 0 else float('inf'):12.0f}")
    return rows


def _machine() -> str:
    import nengo
    import numba
    import numpy

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    return (f"{cpu}, {os.cpu_count()} cores (measured on 1), Python {platform.python_version()}, "
            f"numpy {numpy.__version__}, numba {numba.__version__}, nengo {nengo.__version__}")


def _report_ecg(ecg: dict, cold: list[float], args) -> None:
    print(f"\nECG, mitdb {args.record}: {ecg['duration_s']:.1f} s, 2 leads, {ecg['n_beats']} beats, "
          f"{ecg['n_events']} events; backend fast, warm process")
    print("\n".join(_stage_table(ecg)))
    print(f"    overall: {ecg['duration_s'] / ecg['stages']['total']:.0f}x real time, "
          f"{ecg['stages']['total']:.2f} s wall ({ecg['cpu_s']:.2f} s CPU); peak RSS {ecg['rss_mb']:.0f} MB")
    print(f"    one chunk (unchunked) vs 300 s chunks: identical score and events.tsv/beats.tsv: "
          f"{ecg['unchunked_identical']}")
    med = sorted(cold)[len(cold) // 2]
    print(f"    cold CLI `spikewatch analyze ... --no-html --backend fast` (interpreter start, imports, "
          f"numba cache load, default outputs): {med:.2f} s wall = {ecg['duration_s'] / med:.0f}x real time "
          f"(median of {', '.join(f'{c:.2f}' for c in cold)} s)")


def _report_nengo(ng: dict, args) -> None:
    ratio_net = ng["nengo_network"] / ng["fast_network"]
    ratio_all = ng["nengo_total"] / ng["fast_total"]
    print(f"\nnengo.Simulator vs fast on the first {ng['span_s']:.0f} s of mitdb {args.record} "
          f"(same network, same input, {ng['n_spikes']} feature spikes):")
    print(f"    network stage: nengo {ng['nengo_network']:.2f} s ({ng['span_s'] / ng['nengo_network']:.0f}x real "
          f"time), fast {ng['fast_network']:.3f} s ({ng['span_s'] / ng['fast_network']:.0f}x): {ratio_net:.0f}x faster")
    print(f"    whole analysis: nengo {ng['nengo_total']:.2f} s, fast {ng['fast_total']:.3f} s: {ratio_all:.0f}x faster")
    print(f"    identical spike trains {ng['spikes_identical']}, identical final weights {ng['weights_identical']}, "
          f"max |score difference| {ng['score_max_abs_diff']:.3g}, identical events {ng['events_identical']} "
          f"({ng['n_events']} events)")


def _report_holter(ho: dict, args) -> None:
    print(f"\n{args.hours:g}-hour 2-lead ECG ({ho['n_parts']} real mitdb records chained, read lazily), "
          f"{ho['chunk_s']:g} s chunks, all state carried: {ho['n_beats']} beats, {ho['n_events']} events")
    print("\n".join(_stage_table(ho)))
    print(f"    overall: {ho['stages']['total']:.1f} s wall ({ho['cpu_s']:.1f} s CPU) = "
          f"{ho['duration_s'] / ho['stages']['total']:.0f}x real time; peak RSS {ho['rss_mb']:.0f} MB")


def _report_eeg(eeg: dict) -> None:
    print(f"\nEEG, Michigan 31 channels at 100 Hz: {eeg['duration_s']:.0f} s, {eeg['n_events']} events, backend fast")
    print("\n".join(_stage_table(eeg)))
    print(f"    overall: {eeg['duration_s'] / eeg['stages']['total']:.0f}x real time, {eeg['stages']['total']:.2f} s "
          f"wall ({eeg['cpu_s']:.2f} s CPU); peak RSS {eeg['rss_mb']:.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--record", default="106", help="mitdb record for the 30-minute runs")
    ap.add_argument("--nengo-s", type=float, default=300.0, help="span timed on nengo.Simulator (s)")
    ap.add_argument("--hours", type=float, default=24.0, help="length of the chained Holter recording")
    ap.add_argument("--holter-chunk-s", type=float, default=300.0, help="chunk length of the Holter run (s)")
    ap.add_argument("--holter-check-chunk-s", type=float, default=1800.0,
                    help="chunk length of the second Holter run whose outputs must be identical (0: skip)")
    ap.add_argument("--skip-24h", action="store_true", help="leave out the chained Holter recording")
    ap.add_argument("--only", choices=["ecg", "nengo", "holter", "eeg"], help="run one scenario only")
    ap.add_argument("--scenario", choices=sorted(SCENARIOS), help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.scenario:  # child process: one scenario, pinned, result as one JSON line
        _pin()
        print("RESULT " + json.dumps(SCENARIOS[args.scenario](args, Path(args.out)), default=float), flush=True)
        return

    os.sched_setaffinity(0, {CPU})
    print(f"machine: {_machine()}")
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    def want(name):
        return args.only in (None, name) and not (name == "holter" and args.skip_24h)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if want("ecg"):
            _report_ecg(_child("ecg", args, tmp / "ecg"), _cold_cli(args, tmp / "cold"), args)
        if want("nengo"):
            _report_nengo(_child("nengo", args, tmp / "nengo"), args)
        if want("holter"):
            ho = _child("holter", args, tmp / "holter")
            _report_holter(ho, args)
            if args.holter_check_chunk_s > 0:
                print(f"    the same recording in {args.holter_check_chunk_s:g} s chunks: {_holter_check(args, tmp, ho)}")
        if want("eeg"):
            _report_eeg(_child("eeg", args, tmp / "eeg"))

if __name__ == "__main__":
    main()
