"""Command line: ``spikewatch info|analyze ...``.

Exit codes: 0 success, 1 partial failure, 2 bad input or usage. Errors are one
line on stderr; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import logging
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


def _read(path: Path, cfg_io):
    from spikewatch.io import read_recording

    return read_recording(path, channels=cfg_io.channels, modality=cfg_io.modality,
                          sfreq=cfg_io.sfreq, ch_names=cfg_io.ch_names, unit=cfg_io.unit)


def _io_only(config: Optional[Path], **io_over):
    """The io section (from --config or defaults) with CLI overrides."""
    from spikewatch.config import load_config

    return load_config(config, **{f"io__{k}": v for k, v in io_over.items()})


@app.command()
def info(
    path: Path = typer.Argument(..., help="Recording: EDF/BDF/FIF/..., WFDB record (.hea or stem), text/MAT segment, or a folder of per-channel text files."),
    sfreq: Optional[float] = typer.Option(None, help="Sampling rate for header-less segments (Hz)."),
    modality: Optional[str] = typer.Option(None, help="Override the inferred modality: ecg or eeg."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config (its io section is used)."),
):
    """Print channels, sampling rate, duration and the annotation summary of a recording."""
    cfg = _io_only(config, sfreq=sfreq, modality=modality)
    rec = _read(path, cfg.io)
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
    path: Path = typer.Argument(..., help="Recording to analyse."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config; default configs/<modality>.yaml."),
    out_dir: Path = typer.Option(Path("reports"), "--out", "-o", help="Output folder; the report goes to OUT/<recording-id>/."),
    start: Optional[float] = typer.Option(None, help="Start of the analysed span (s)."),
    stop: Optional[float] = typer.Option(None, help="End of the analysed span (s)."),
    seed: Optional[int] = typer.Option(None, help="Seed (initial weights, simulator)."),
    no_learning: bool = typer.Option(False, "--no-learning", help="Same network with STDP off (ablation)."),
    sfreq: Optional[float] = typer.Option(None, help="Sampling rate for header-less segments (Hz)."),
    modality: Optional[str] = typer.Option(None, help="Override the inferred modality: ecg or eeg."),
    channels: Optional[str] = typer.Option(None, help="Comma-separated channels to analyse."),
):
    """Analyse a recording and write events.tsv, beats.tsv (ECG) and summary.json."""
    from spikewatch.analysis import analyze as run_analysis
    from spikewatch.config import default_config_for, load_config
    from spikewatch.report import write_outputs

    chans = [c.strip() for c in channels.split(",")] if channels else None
    io_over = dict(sfreq=sfreq, modality=modality, channels=chans)
    over = {f"io__{k}": v for k, v in io_over.items()}
    over.update(seed=seed, stdp__enabled=False if no_learning else None)
    if config is not None:
        cfg = load_config(config, **over)
        rec = _read(path, cfg.io)
    else:
        rec = _read(path, load_config(None, **over).io)
        cfg = load_config(default_config_for(rec.modality), **over)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                  TextColumn("{task.fields[done]:.0f}/{task.total:.0f} s"), TimeRemainingColumn(),
                  console=err, transient=True, disable=not err.is_terminal) as prog:
        task = prog.add_task(f"analysing {rec.record_id}", total=None, done=0)

        def progress(done, total):
            prog.update(task, completed=done, total=total, done=done)

        result = run_analysis(rec, cfg, start=start, stop=stop, progress=progress)
    folder = write_outputs(result, rec, cfg, out_dir)
    rtf = result.duration_s / max(result.timings["total"], 1e-9)
    kind = f"{len(result.rpeaks)} beats, " if result.modality == "ecg" else ""
    out.print(f"{rec.record_id}: {result.duration_s:.1f} s analysed, {kind}{len(result.events)} events "
              f"({rtf:.0f}x real time) -> {folder}")


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
