"""Command line: ``spikewatch info|analyze ...``.

Exit codes: 0 success, 1 partial failure, 2 bad input or usage. Errors are one
line on stderr; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
import sys
import warnings
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from spikewatch import __version__
from spikewatch.errors import SpikewatchError

app = typer.Typer(
    name="spikewatch",
    help="Neuromorphic anomaly detection on EEG/ECG: delta spikes -> STDP spiking network -> events.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)
_STATE = {"debug": False}


@contextmanager
def _progress(description: str):
    """A rich progress bar on stderr (terminals only); yields ``progress(done_s, total_s)``."""
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                  TextColumn("{task.fields[done]:.0f}/{task.total:.0f} s"), TimeRemainingColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as prog:
        task = prog.add_task(description, total=None, done=0)
        yield lambda done, total: prog.update(task, completed=done, total=total, done=done)


def _version(value: bool):
    if value:
        out.print(f"spikewatch {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and library warnings."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
):
    """Neuromorphic anomaly detection on EEG/ECG recordings."""
    _STATE["debug"] = debug
    if not debug:
        warnings.filterwarnings("ignore")
        logging.getLogger("mne").setLevel(logging.ERROR)




@app.command()
def info(
    path: Path = typer.Argument(..., readable=False, help="Recording: EDF/BDF/FIF/..., WFDB record (.hea or stem), text/MAT segment, or a folder of per-channel text files."),
    sfreq: Optional[float] = typer.Option(None, help="Sampling rate for header-less segments (Hz)."),
    modality: Optional[str] = typer.Option(None, help="Override the inferred modality: ecg or eeg."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config (its io section is used)."),
):
    """Print channels, sampling rate, duration and the annotation summary of a recording."""
    from spikewatch.jobs import resolve_job

    rec, _ = resolve_job(path, config, io__sfreq=sfreq, io__modality=modality)
    t = Table(title=f"{rec.record_id}  ({rec.format}, {rec.modality})", show_header=False)
    t.add_row("file", str(rec.path))
    t.add_row("sampling rate", f"{rec.sfreq:g} Hz")
    t.add_row("duration", f"{rec.duration:.2f} s ({rec.n_times} samples)")
    t.add_row("channels", f"{len(rec.ch_names)}: " + ", ".join(
        f"{n} ({ty})" for n, ty in zip(rec.ch_names, rec.ch_types)))
    t.add_row("analysed channels", ", ".join(rec.signal_picks) or "none")
    ann = rec.annotations
    if len(ann):
        from collections import Counter

        counts = Counter(ann.description)
        top = ", ".join(f"{k}: {v}" for k, v in counts.most_common(12))
        more = f" (+{len(counts) - 12} more kinds)" if len(counts) > 12 else ""
        t.add_row("annotations", f"{len(ann)}; {top}{more}")
    else:
        t.add_row("annotations", "none")
    out.print(t)


@app.command()
def analyze(
    path: Path = typer.Argument(..., readable=False, help="Recording to analyse."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config; default configs/<modality>.yaml."),
    out_dir: Path = typer.Option(Path("reports"), "--out", "-o", help="Output folder; the report goes to OUT/<recording-id>/."),
    start: Optional[float] = typer.Option(None, help="Start of the analysed span (s)."),
    stop: Optional[float] = typer.Option(None, help="End of the analysed span (s)."),
    seed: Optional[int] = typer.Option(None, help="Seed (initial weights, simulator)."),
    no_learning: bool = typer.Option(False, "--no-learning", help="Same network with STDP off (ablation)."),
    sfreq: Optional[float] = typer.Option(None, help="Sampling rate for header-less segments (Hz)."),
    modality: Optional[str] = typer.Option(None, help="Override the inferred modality: ecg or eeg."),
    channels: Optional[str] = typer.Option(None, help="Comma-separated channels to analyse."),
    no_html: bool = typer.Option(False, "--no-html", help="Do not write report.html."),
    include_phi: bool = typer.Option(False, "--include-phi",
                                     help="Copy patient-identifying header fields (name, birth date, ...) into the outputs."),
    backend: Optional[str] = typer.Option(None, "--backend", help="Simulator: nengo (reference), fast (the same "
                                          "model compiled with numba, identical results) or loihi (nengo-loihi; needs "
                                          "--model, learning is off on the chip)."),
    model: Optional[Path] = typer.Option(None, "--model", help="Deployed bundle (spikewatch deploy): frozen "
                                         "weights, delta and weight scale; its config is the default config."),
    target: Optional[str] = typer.Option(None, "--target", help="Loihi target: auto, sim (emulator) or loihi (board)."),
    resources: bool = typer.Option(False, "--resources", help="Print the Loihi chip resources and energy estimate."),
):
    """Analyse a recording and write its report folder (events, summary, report.html, EDF+ copy)."""
    from spikewatch.jobs import resolve_job, run_job

    chans = [c.strip() for c in channels.split(",")] if channels else None
    over = dict(io__sfreq=sfreq, io__modality=modality, io__channels=chans, seed=seed,
                stdp__enabled=False if no_learning else None,
                report__html=False if no_html else None, report__include_phi=True if include_phi else None,
                backend__name=backend, backend__model=str(model) if model else None, backend__target=target)
    rec, cfg = resolve_job(path, config, **over)
    with _progress(f"analysing {rec.record_id}") as progress:
        job = run_job(rec, cfg, out_dir, start=start, stop=stop, progress=progress)
    kind = f"{job.n_beats} beats, " if job.n_beats is not None else ""
    out.print(f"{job.record_id}: {job.duration_s:.1f} s analysed, {kind}{job.n_events} events "
              f"({job.duration_s / max(job.seconds, 1e-9):.0f}x real time) -> {job.folder}")
    if resources:
        import json

        report = json.loads((job.folder / "summary.json").read_text(encoding="utf-8")).get("backend_report")
        if report and "resources" in report:
            _print_chip(report, f"Loihi ({report['target']}) resources for {job.record_id}")
        else:
            err.print("spikewatch: --resources: only the loihi backend reports chip resources", markup=False)


def _print_chip(report: dict, title: str) -> None:
    """Print a Loihi runner report: resources, traffic, quantisation, energy estimate."""
    from spikewatch.loihi_report import resource_rows

    t = Table(title=title, show_header=False)
    for label, value in resource_rows(report):
        t.add_row(label, value)
    e = report.get("energy")
    if e and e["per_hour"]["energy_J"]:
        per_beat = f", {e['energy_per_beat_J'] * 1e9:.0f} nJ per beat" if e.get("energy_per_beat_J") else ""
        t.add_row("energy (estimate)", f"{e['per_hour']['energy_J'] * 1e3:.2f} mJ per hour of signal{per_beat} "
                                       f"(Davies et al. 2018 per-op figures; not a measurement)")
        t.add_row("host CPU (emulator)", f"{e['host_cpu_s_per_hour_emulated']:.0f} s per hour of signal")
    out.print(t)


@app.command()
def deploy(
    path: Path = typer.Argument(..., readable=False, help="Training recording."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Bundle folder to write (replaced if it is a bundle)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config; default configs/<modality>.yaml."),
    start: Optional[float] = typer.Option(None, help="Start of the training span (s); default backend.train_start_s."),
    stop: Optional[float] = typer.Option(None, help="End of the training span (s); default backend.train_stop_s."),
    seed: Optional[int] = typer.Option(None, help="Seed (initial weights, simulator)."),
    sfreq: Optional[float] = typer.Option(None, help="Sampling rate for header-less segments (Hz)."),
    modality: Optional[str] = typer.Option(None, help="Override the inferred modality: ecg or eeg."),
    channels: Optional[str] = typer.Option(None, help="Comma-separated channels to learn from."),
    kind: str = typer.Option("detector", "--kind", help="What the network is for, e.g. detector or baseline."),
    count_bits: Optional[int] = typer.Option(None, "--count-bits", help="Loihi input axons per input line."),
):
    """Learn with STDP on the reference backend, freeze the weights and write a deployable bundle.

    Prints the Loihi chip resources the frozen network needs.
    """
    from spikewatch.bundle import learn_bundle, save_bundle
    from spikewatch.jobs import resolve_job
    from spikewatch.loihi_report import chip_report

    chans = [c.strip() for c in channels.split(",")] if channels else None
    over = dict(io__sfreq=sfreq, io__modality=modality, io__channels=chans, seed=seed,
                backend__count_bits=count_bits, backend__train_start_s=start, backend__train_stop_s=stop)
    rec, cfg = resolve_job(path, config, **over)
    with _progress(f"learning {rec.record_id}") as progress:
        bundle, result = learn_bundle(rec, cfg, kind=kind, progress=progress)
    report = chip_report(bundle)
    bundle.manifest["loihi"] = {k: report[k] for k in ("resources", "quantisation", "mapping_notes")}
    folder = save_bundle(bundle, out_dir)
    tr = bundle.training
    out.print(f"{rec.record_id}: learned on {tr['start_s']:.1f}-{tr['stop_s']:.1f} s "
              f"(mean |dw| {tr['mean_abs_dw']:.3g}) -> {folder}")
    _print_chip(report, f"Loihi resources of the frozen network ({report['target']} build)")


@app.command()
def evaluate(
    recordings: list[Path] = typer.Argument(..., help="Recordings whose reference annotations score the reports."),
    reports: Path = typer.Option(Path("reports"), "--reports", "-r", help="Folder holding <recording-id>/ reports."),
    reference_events: Optional[Path] = typer.Option(
        None, help="EEG: TSV with onset/duration of reference seizures (SzCORE event scoring)."),
    sfreq: Optional[float] = typer.Option(None, help="Sampling rate for header-less segments (Hz)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the figures as JSON."),
):
    """Score reports against reference annotations (AAMI EC57 for ECG, SzCORE for EEG)."""
    from spikewatch import evaluate as ev
    from spikewatch.io.writers import safe_id, write_json
    from spikewatch.jobs import resolve_job

    rows, ecg_scores, eeg = [], [], {}
    for path in recordings:
        rec, _ = resolve_job(path, None, io__sfreq=sfreq)
        folder = reports / safe_id(rec.record_id)
        if rec.modality == "ecg":
            sc = ev.evaluate_ecg_report(rec, folder)
            ecg_scores.append(sc)
            rows.append((rec.record_id + (" (paced)" if sc.paced else ""), sc.figures()))
        else:
            if reference_events is None:
                raise SpikewatchError(f"{path}: EEG evaluation needs --reference-events (onset/duration TSV)")
            ref = [(float(r["onset"]), float(r["duration"])) for r in ev.read_tsv(reference_events)]
            rep = ev.load_report(folder)
            eeg[rec.record_id] = ev.szcore_events(ref, rep["events"], rec.duration)
    result = {}
    if ecg_scores:
        g = ev.gross(ecg_scores)
        result["ecg"] = {"records": {r: f for r, f in rows}, "gross": g}
        cols = ["V_Se", "S_Se", "F_Se", "event_PPV", "false_events_per_h", "N_flagged_pct",
                "beat_AUC_SVF_vs_N", "beat_AUC_V_vs_N"]
        t = Table(title="ECG (AAMI EC57; gross excludes paced records)")
        t.add_column("record")
        for c in cols:
            t.add_column(c, justify="right")
        fmt = lambda v: "-" if v is None else f"{v:g}"  # noqa: E731
        for r, f in rows + [("gross", g)]:
            t.add_row(r, *[fmt(f[c]) for c in cols])
        out.print(t)
    if eeg:
        result["eeg"] = eeg
        t = Table(title="EEG seizure events (SzCORE)")
        for c in ("record", "sensitivity", "precision", "f1", "fp_per_24h"):
            t.add_column(c)
        for r, f in eeg.items():
            t.add_row(r, *[str(f[c]) for c in ("sensitivity", "precision", "f1", "fp_per_24h")])
        out.print(t)
    if json_out is not None:
        write_json(json_out, result)


@app.command()
def batch(
    inputs: list[str] = typer.Argument(..., help="Folders (searched recursively), quoted glob patterns "
                                       "('data/**/*.edf'), manifest files (.list/.lst/.manifest: one path a line) "
                                       "or recordings."),
    out_dir: Path = typer.Option(Path("reports"), "--out", "-o", help="Output root: OUT/<recording-id>/, "
                                 "OUT/batch.tsv, OUT/index.html."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config; default configs/<modality>.yaml per recording."),
    sfreq: Optional[float] = typer.Option(None, help="Sampling rate for header-less segments (Hz)."),
    seed: Optional[int] = typer.Option(None, help="Seed (initial weights, simulator)."),
    start: Optional[float] = typer.Option(None, help="Start of the analysed span of each recording (s)."),
    stop: Optional[float] = typer.Option(None, help="End of the analysed span of each recording (s)."),
    concurrency: Optional[int] = typer.Option(None, min=1, help="Recordings at once in threads (default pipeline.concurrency)."),
    retries: Optional[int] = typer.Option(None, min=0, help="Retries after transient errors (default pipeline.retries)."),
    dask_address: Optional[str] = typer.Option(None, "--dask-address", help="Run on an existing Dask cluster: tcp://HOST:PORT."),
    workers: Optional[int] = typer.Option(None, min=1, help="Start a local Dask cluster of N worker processes."),
):
    """Analyse many recordings as a Prefect flow (embedded: no server needed); re-runs skip finished work."""
    from spikewatch.pipelines import prefect_environment

    prefect_environment(quiet_console=not _STATE["debug"])
    from spikewatch import batch as batch_mod
    from spikewatch.pipelines.flows import batch_analyze, execution_settings
    from spikewatch.pipelines.tasks import LINE_ATTR

    over = {k: v for k, v in {"io__sfreq": sfreq, "seed": seed}.items() if v is not None}
    execution_settings(config, over, concurrency=concurrency, retries=retries, dask_address=dask_address,
                       workers=workers)  # usage errors before Prefect starts
    n = len(batch_mod.plan_batch(inputs))
    err.print(f"spikewatch batch: {n} recordings -> {out_dir}", highlight=False, soft_wrap=True)

    class _Lines(logging.Handler):  # one line per finished recording, from the flow's log
        def emit(self, record):
            if getattr(record, LINE_ATTR, False):
                err.print(f"  {record.getMessage()}", markup=False, highlight=False, soft_wrap=True)

    lines = _Lines()
    flow_log = logging.getLogger("prefect.flow_runs")
    if not _STATE["debug"]:
        flow_log.addHandler(lines)
    try:
        state = batch_analyze(inputs=inputs, out=str(out_dir), config=str(config) if config else None,
                              sfreq=sfreq, seed=seed, start=start, stop=stop, concurrency=concurrency,
                              retries=retries, dask_address=dask_address, workers=workers, return_state=True)
    finally:
        flow_log.removeHandler(lines)
    result = batch_mod.rows_of(state.result(raise_on_failure=False))
    counts = {s: sum(r["status"] == s for r in result) for s in batch_mod.STATUSES}
    out.print(f"{len(result)} recordings: " + ", ".join(f"{v} {k}" for k, v in counts.items())
              + f" -> {out_dir.resolve() / batch_mod.INDEX_HTML}", highlight=False, soft_wrap=True)
    bad = batch_mod.failures(result)
    for r in bad:
        err.print(f"spikewatch: failed: {r['recording_id']}: {r['reason']}", markup=False, highlight=False,
                  soft_wrap=True)
    if bad:
        raise batch_mod.BatchFailed(f"{len(bad)} of {len(result)} recordings failed "
                                    f"(listed above and in {out_dir / batch_mod.BATCH_TSV})")


@app.command()
def serve(
    config: Path = typer.Option(None, "--config", "-c", help="Schedules file (default: the shipped "
                                "configs/schedules.yaml, a nightly scan of ./inbox)."),
    port: Optional[int] = typer.Option(None, min=1, max=65535, help="Port of the local Prefect server started "
                                       "when PREFECT_API_URL is unset (default: a free port)."),
):
    """Serve scheduled batch deployments; starts a local Prefect server unless PREFECT_API_URL is set."""
    from spikewatch.pipelines import prefect_environment

    prefect_environment()
    from spikewatch.pipelines.serve import DEFAULT_SCHEDULES, serve_schedules

    serve_schedules(config or DEFAULT_SCHEDULES, port=port,
                    echo=lambda msg: err.print(f"spikewatch serve: {msg}", markup=False, highlight=False,
                                               soft_wrap=True))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``spikewatch`` console script.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit code: 0 ok, 1 partial failure, 2 bad input or usage.
    """
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    try:
        app(args=argv, prog_name="spikewatch", standalone_mode=False)
    except SpikewatchError as exc:
        if debug:
            raise
        err.print(f"spikewatch: error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        err.print("spikewatch: aborted", markup=False)
        return 130
    except Exception as exc:  # click usage errors and unexpected failures
        if hasattr(exc, "show") and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()  # a click usage error (typer vendors its own click)
            return exc.exit_code
        if debug:
            raise
        msg = " ".join(str(exc).split()) or type(exc).__name__
        err.print(f"spikewatch: internal error: {type(exc).__name__}: {msg} (re-run with --debug for the traceback)",
                  markup=False, highlight=False, soft_wrap=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
