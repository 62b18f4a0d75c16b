"""One analysis job, as the CLI and the Prefect flows both run it.

``resolve_job`` reads the recording and resolves the config (explicit file, or
``configs/<modality>.yaml`` for the recording's modality, plus overrides);
``run_job`` analyses it and writes the report folder. Both are pure functions
of their arguments: no globals, no printing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from spikewatch.config import Config, default_config_for, load_config


@dataclass
class JobOutcome:
    """What one analysis produced."""

    record_id: str
    folder: Path
    n_events: int
    n_beats: int | None
    duration_s: float
    seconds: float
    config_sha256: str


def read_with(path: str | Path, cfg: Config):
    """Read ``path`` with the io section of ``cfg``."""
    from spikewatch.io import read_recording

    io = cfg.io
    return read_recording(path, channels=io.channels, modality=io.modality, sfreq=io.sfreq,
                          ch_names=io.ch_names, unit=io.unit)


def resolve_job(path: str | Path, config: str | Path | None = None, **overrides: Any):
    """Read a recording and resolve its config.

    Parameters
    ----------
    path : path-like
        The recording.
    config : path-like, optional
        YAML config; default ``configs/<modality>.yaml`` of the recording.
    **overrides
        Dotted overrides with ``__`` (``stdp__enabled=False``); None is ignored.
        With ``backend__model`` (a deployed bundle) and no ``config``, the
        bundle's own config is the base, and learning is off.

    Returns
    -------
    (Recording, Config)
    """
    model = overrides.get("backend__model")
    if model is not None:
        from spikewatch.bundle import CONFIG, load_bundle

        bundle = load_bundle(model)  # validated here, so a bad bundle fails before reading
        overrides = {**overrides, "backend__model": str(bundle.path), "stdp__enabled": False}
        config = bundle.path / CONFIG if config is None else config
    if config is not None:
        cfg = load_config(config, **overrides)
        return read_with(path, cfg), cfg
    rec = read_with(path, load_config(None, **overrides))
    return rec, load_config(default_config_for(rec.modality), **overrides)


def run_job(rec, cfg: Config, out: str | Path, *, start: float | None = None, stop: float | None = None,
            progress: Callable | None = None) -> JobOutcome:
    """Analyse ``rec`` with ``cfg`` and write ``out/<recording-id>/``.

    Parameters
    ----------
    rec : Recording
        From :func:`resolve_job`.
    cfg : Config
        Resolved config.
    out : path-like
        Output root.
    start, stop : float, optional
        Span (s).
    progress : callable, optional
        ``progress(done_s, total_s)``.

    Returns
    -------
    JobOutcome
    """
    from spikewatch.analysis import analyze
    from spikewatch.report import write_outputs

    bundle = None
    if cfg.backend.model:  # a deployed network: frozen weights, its delta and weight scale
        from spikewatch.bundle import load_bundle

        bundle = load_bundle(cfg.backend.model)
        cfg = cfg.model_copy(update={"stdp": cfg.stdp.model_copy(update={"enabled": False})})
    result = analyze(rec, cfg, start=start, stop=stop, progress=progress, bundle=bundle)
    folder = write_outputs(result, rec, cfg, out)
    return JobOutcome(
        record_id=result.record_id, folder=folder, n_events=len(result.events),
        n_beats=int(len(result.rpeaks)) if result.modality == "ecg" else None,
        duration_s=result.duration_s, seconds=result.timings["total"], config_sha256=cfg.digest(),
    )
