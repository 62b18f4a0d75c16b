"""Speed-up of a batch on a 2-worker Dask cluster over a 1-worker one, on real MIT-BIH records.

For each cluster size, a ``distributed.LocalCluster`` of single-threaded worker
processes (127.0.0.1) is started and warmed up (imports and numba compilation
on every worker, by analysing one short EEG segment), then
``spikewatch.pipelines.flows.batch_analyze`` runs the records on it through
``prefect_dask.DaskTaskRunner``, in Prefect's ephemeral mode. The figures are
the batch wall times, the speed-up and a check that both runs wrote identical
events.tsv / beats.tsv.

Run (from the project folder; about 2-4 minutes on 2 cores)::

    python benchmarks/bench_dask.py                       # 6 records x 120 s
    python benchmarks/bench_dask.py --records 101 106 --span 60 --json benchmarks/results/bench_dask.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

DEFAULT_RECORDS = ["101", "103", "106", "108", "112", "115"]


def _warm(segment: str, sfreq: float) -> int:
    """Run on a worker: import and compile everything once (one short analysis)."""
    import warnings

    from spikewatch.jobs import resolve_job, run_job

    warnings.filterwarnings("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        rec, cfg = resolve_job(segment, None, io__sfreq=sfreq, report__html=False, report__edf_export=False)
        run_job(rec, cfg, tmp)
    return os.getpid()


def run_on_cluster(n_workers: int, inbox: Path, out: Path, span: float, warm_segment: Path,
                   config: str | None) -> dict:
    """Start a cluster of ``n_workers``, warm it, time one batch on it."""
    from distributed import Client, LocalCluster

    from spikewatch.pipelines.flows import batch_analyze

    t0 = time.perf_counter()
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        started = time.perf_counter() - t0
        pids = client.run(_warm, str(warm_segment), 200.0)
        warmed = time.perf_counter() - t0 - started
        t1 = time.perf_counter()
        state = batch_analyze(inputs=[str(inbox)], out=str(out), config=config, stop=span,
                              dask_address=cluster.scheduler_address, return_state=True)
        wall = time.perf_counter() - t1
    from spikewatch.batch import rows_of

    rows = rows_of(state.result(raise_on_failure=False))
    bad = [r for r in rows if r["status"] != "ok"]
    if bad:
        raise SystemExit(f"bench_dask: {len(bad)} recordings failed: " + "; ".join(r["reason"] for r in bad))
    return {"workers": n_workers, "worker_pids": sorted(pids.values()), "cluster_start_s": round(started, 2),
            "warmup_s": round(warmed, 2), "batch_wall_s": round(wall, 2),
            "task_seconds": {r["recording_id"]: r["seconds"] for r in rows},
            "events": {r["recording_id"]: r["n_events"] for r in rows}}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", nargs="+", default=DEFAULT_RECORDS, help="MIT-BIH record names.")
    ap.add_argument("--span", type=float, default=120.0, help="Seconds analysed per record (from the start).")
    ap.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    ap.add_argument("--config", default=None, help="Analysis config (default: configs/ecg.yaml without "
                    "report.html, so the figure measures the analysis, not matplotlib).")
    args = ap.parse_args(argv)

    from spikewatch.pipelines import prefect_environment

    tmp = Path(tempfile.mkdtemp(prefix="spikewatch-bench-dask-"))
    os.environ.setdefault("PREFECT_HOME", str(tmp / "prefect"))  # a throw-away Prefect database
    prefect_environment(quiet_console=True)
    from spikewatch.data import data_root

    data = data_root()
    inbox = tmp / "inbox"
    inbox.mkdir()
    for name in args.records:
        for ext in ("hea", "dat", "atr"):
            (inbox / f"{name}.{ext}").symlink_to(data / "mitdb" / f"{name}.{ext}")
    warm = data / "eeg-delhi" / "ictal" / "ictal1.mat"
    config = args.config
    if config is None:
        from spikewatch.config import CONFIG_DIR

        config = str(tmp / "bench.yaml")
        Path(config).write_text(f"extends: {CONFIG_DIR / 'ecg.yaml'}\nreport:\n  html: false\n")

    from prefect.server.api.server import SubprocessASGIServer

    SubprocessASGIServer().start()  # Prefect's ephemeral server, started before anything is timed
    runs = [run_on_cluster(n, inbox, tmp / f"out{n}", args.span, warm, config) for n in (1, 2)]
    same = all((tmp / "out1" / r / f).read_bytes() == (tmp / "out2" / r / f).read_bytes()
               for r in args.records for f in ("events.tsv", "beats.tsv"))
    speedup = runs[0]["batch_wall_s"] / runs[1]["batch_wall_s"]
    result = {"records": args.records, "span_s": args.span, "config": args.config or "ecg.yaml, html off",
              "cpu_count": os.cpu_count(),
              "python": platform.python_version(), "runs": runs, "speedup_2_over_1": round(speedup, 2),
              "identical_outputs": same, "load_avg_1min": round(os.getloadavg()[0], 2)}
    print(f"{len(args.records)} MIT-BIH records x {args.span:g} s, {os.cpu_count()} cores "
          f"(1-min load average at the end: {result['load_avg_1min']})")
    for r in runs:
        print(f"  {r['workers']} worker(s): batch {r['batch_wall_s']:.1f} s "
              f"(cluster start {r['cluster_start_s']:.1f} s, warm-up {r['warmup_s']:.1f} s, "
              f"sum of task times {sum(r['task_seconds'].values()):.1f} s)")
    print(f"  speed-up of 2 workers over 1: {speedup:.2f}x; identical events.tsv/beats.tsv: {same}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
