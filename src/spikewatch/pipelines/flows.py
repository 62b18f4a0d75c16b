"""Prefect flows: one recording, or a batch of them mapped over a task runner.

Both flows are thin shells over :mod:`spikewatch.batch` (work list, done-work
check, ``batch.tsv`` / ``index.html``) and :mod:`spikewatch.jobs` (the analysis
the CLI runs). Recordings run on threads of the flow's process
(``pipeline.concurrency``), on an existing Dask cluster
(``pipeline.dask_address``) or on a local Dask cluster started for the batch
(``pipeline.workers``).
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.context import FlowRunContext
from prefect.futures import as_completed
from prefect.states import Failed
from prefect.task_runners import ThreadPoolTaskRunner

from spikewatch import batch
from spikewatch.config import PipelineConfig, load_config
from spikewatch.errors import ConfigError, SpikewatchError
from spikewatch.pipelines.tasks import LINE_ATTR, analyze_task, backoff

_DASK_ADDRESS = re.compile(r"^(?:[a-z]+://\S+|[^\s:/]+:\d+)$")


def _overrides(sfreq: float | None, seed: int | None) -> dict[str, Any]:
    return {k: v for k, v in {"io__sfreq": sfreq, "seed": seed}.items() if v is not None}


def execution_settings(config: str | None = None, overrides: dict | None = None, **given: Any) -> PipelineConfig:
    """The ``pipeline`` section that runs a batch: the config file's, then non-None ``given`` values.

    Parameters
    ----------
    config : str, optional
        Config file (default: the built-in defaults).
    overrides : dict, optional
        ``section__key`` overrides of the analysis config.
    **given
        ``concurrency``, ``retries``, ``retry_delay_s``, ``dask_address``,
        ``workers`` from flow parameters or CLI flags.

    Returns
    -------
    PipelineConfig

    Raises
    ------
    ConfigError
        Invalid values, both a Dask address and local workers, or a malformed address.
    """
    cfg = load_config(config, **(overrides or {}), **{f"pipeline__{k}": v for k, v in given.items()})
    pipe = cfg.pipeline
    if pipe.dask_address is not None and pipe.workers is not None:
        raise ConfigError(f"{config or 'options'}: give either a Dask address ({pipe.dask_address}) "
                          f"or local workers ({pipe.workers}), not both")
    if pipe.dask_address is not None and not _DASK_ADDRESS.match(pipe.dask_address):
        raise ConfigError(f"{config or 'options'}: config key 'pipeline.dask_address': "
                          f"expected tcp://HOST:PORT, got {pipe.dask_address!r}")
    return pipe


def make_task_runner(pipe: PipelineConfig):
    """The task runner for a batch.

    Parameters
    ----------
    pipe : PipelineConfig

    Returns
    -------
    prefect.task_runners.TaskRunner
        ``DaskTaskRunner(address=...)`` for ``dask_address``; a
        ``DaskTaskRunner`` starting a ``distributed.LocalCluster`` of
        ``workers`` processes (one thread each, bound to 127.0.0.1); else a
        ``ThreadPoolTaskRunner`` with ``concurrency`` threads.
    """
    if pipe.dask_address is not None or pipe.workers is not None:
        from prefect_dask import DaskTaskRunner

        if pipe.dask_address is not None:
            return DaskTaskRunner(address=pipe.dask_address)
        return DaskTaskRunner(cluster_class="distributed.LocalCluster",
                              cluster_kwargs={"n_workers": pipe.workers, "threads_per_worker": 1,
                                              "processes": True, "host": "127.0.0.1",
                                              "dashboard_address": None})
    return ThreadPoolTaskRunner(max_workers=pipe.concurrency)


@contextmanager
def _api_for_workers(pipe: PipelineConfig):
    """Make the flow's Prefect API URL explicit, so Dask worker processes report to it.

    Prefect ships its settings to the workers with each task; in ephemeral
    mode the URL is not a setting, and every worker would start a server of
    its own. A remote cluster needs an API URL it can reach (set
    ``PREFECT_API_URL``); the ephemeral server listens on 127.0.0.1 only.
    """
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    ctx = FlowRunContext.get()
    if (pipe.dask_address is None and pipe.workers is None) or get_current_settings().api.url or ctx is None:
        yield
        return
    with temporary_settings(updates={PREFECT_API_URL: str(ctx.client.api_url).rstrip("/")}):
        yield


def _start(runner, pipe: PipelineConfig):
    try:
        return runner.__enter__()
    except OSError as exc:  # scheduler unreachable
        where = pipe.dask_address or "local Dask cluster"
        raise SpikewatchError(f"{where}: cannot start the Dask task runner: {batch.one_line(exc)}") from None


def _outcome(future, item: batch.BatchItem) -> dict:
    """The batch row of a finished task future (failed ones carry their one-line reason)."""
    future.wait()  # a Dask future's final state comes with its result, not from the API
    state = future.state
    if state.is_completed():
        return state.result()
    try:
        exc = state.result(raise_on_failure=False)
    except Exception as err:
        exc = err
    reason = batch.reason_of(exc) if isinstance(exc, BaseException) else (state.message or state.name)
    return batch.failed_row(item, reason)


def progress_line(row: dict) -> str:
    """One line for a finished recording (``221: ok, 2 events (3.1 s)``)."""
    if row["status"] == batch.STATUS_FAILED:
        return f"{row['recording_id']}: failed: {row['reason']}"
    return f"{row['recording_id']}: {row['status']}, {row['n_events']} events ({row['seconds']:.1f} s)"


def run_items(items: list[batch.BatchItem], out: str, pipe: PipelineConfig, config: str | None,
              overrides: dict, start: float | None, stop: float | None) -> list[dict]:
    """Run one task per item on the runner ``pipe`` asks for; rows in item order.

    A failing recording fails only its own task; every other one runs. Call
    inside a flow run.

    Parameters
    ----------
    items : list of BatchItem
        From :func:`spikewatch.batch.plan_batch`.
    out : str
        Absolute output root.
    pipe : PipelineConfig
        From :func:`execution_settings`.
    config : str, optional
        Analysis config file.
    overrides : dict
        ``section__key`` config overrides.
    start, stop : float, optional
        Analysed span (s).

    Returns
    -------
    list of dict
        One ``batch.tsv`` row per item.
    """
    task = analyze_task.with_options(retries=pipe.retries,
                                     retry_delay_seconds=backoff(pipe.retries, pipe.retry_delay_s) or 0)
    runner = make_task_runner(pipe)
    with _api_for_workers(pipe):
        _start(runner, pipe)
        try:
            futures = [runner.submit(task, {"item": it.to_dict(), "out": out, "config": config,
                                            "overrides": overrides, "start": start, "stop": stop})
                       for it in items]
            where = {f.task_run_id: k for k, f in enumerate(futures)}
            rows: list[dict | None] = [None] * len(items)
            log = get_run_logger()
            for f in as_completed(futures):  # one line per recording as it finishes, wherever it ran
                k = where[f.task_run_id]
                rows[k] = row = _outcome(f, items[k])
                log.info(progress_line(row), extra={LINE_ATTR: True})
            return rows
        finally:
            runner.__exit__(None, None, None)


@flow(name="spikewatch-batch", log_prints=True)
def batch_analyze(inputs: list[str] | str, out: str = "reports", config: str | None = None,
                  sfreq: float | None = None, seed: int | None = None, start: float | None = None,
                  stop: float | None = None, concurrency: int | None = None, retries: int | None = None,
                  retry_delay_s: float | None = None, dask_address: str | None = None,
                  workers: int | None = None, missing_ok: bool = False) -> list[dict]:
    """Analyse every recording of folders, glob patterns or manifests into ``out``.

    One task per recording; a failure fails only that recording. Recordings
    whose report in ``out`` is up to date (same input SHA-256, config hash,
    span and spikewatch version) are skipped; temporary folders a killed run
    left are removed first. ``out/batch.tsv`` and ``out/index.html`` list each
    recording's status (``ok``, ``failed`` with its reason, ``skipped-unchanged``),
    event count and report.

    Parameters
    ----------
    inputs : str or list of str
        Folders, quoted glob patterns, manifest files or recordings
        (see :func:`spikewatch.batch.collect_inputs`).
    out : str
        Output root.
    config : str, optional
        Config file; default ``configs/<modality>.yaml`` per recording.
    sfreq : float, optional
        Sampling rate of header-less segments (Hz).
    seed : int, optional
        Seed override.
    start, stop : float, optional
        Analysed span of every recording (s).
    concurrency, retries, retry_delay_s, dask_address, workers : optional
        Override the config's ``pipeline`` section (see :class:`spikewatch.config.PipelineConfig`).
    missing_ok : bool
        Inputs that do not exist and an empty work list are not errors
        (scheduled scans of an inbox).

    Returns
    -------
    list of dict
        One row per recording.

    Raises
    ------
    spikewatch.batch.BatchFailed
        Some recordings failed (the flow run ends Failed); its ``rows`` hold
        every row (see :func:`spikewatch.batch.rows_of`).
    """
    overrides = _overrides(sfreq, seed)
    pipe = execution_settings(config, overrides, concurrency=concurrency, retries=retries,
                              retry_delay_s=retry_delay_s, dask_address=dask_address, workers=workers)
    skipped: list[str] = []
    items = batch.plan_batch(inputs, missing_ok=missing_ok, skipped=skipped)
    if skipped:
        get_run_logger().warning(f"skipped inputs that do not exist: {', '.join(skipped)}")
    root = str(Path(out).resolve())
    with batch.batch_lock(root):
        batch.clean_stale(root)
        rows = run_items(items, root, pipe, config, overrides, start, stop) if items else []
        batch.write_batch_outputs(root, rows)
    bad = batch.failures(rows)
    counts = {s: sum(r["status"] == s for r in rows) for s in batch.STATUSES}
    print(f"{len(rows)} recordings: " + ", ".join(f"{v} {k}" for k, v in counts.items())
          + f"; {Path(root) / batch.INDEX_HTML}")
    if bad:
        msg = f"{len(bad)} of {len(rows)} recordings failed"
        return Failed(message=msg, data=batch.BatchFailed(msg, rows))
    return rows


@flow(name="spikewatch-analyze", log_prints=True)
def analyze_recording(path: str, out: str = "reports", config: str | None = None, sfreq: float | None = None,
                      seed: int | None = None, start: float | None = None, stop: float | None = None,
                      record_id: str | None = None, retries: int | None = None,
                      retry_delay_s: float | None = None) -> dict:
    """Analyse one recording into ``out/<id>/`` (skipped if that report is up to date).

    Parameters
    ----------
    path : str
        The recording.
    out : str
        Output root.
    config : str, optional
        Config file; default ``configs/<modality>.yaml``.
    sfreq, seed, start, stop : optional
        As in :func:`batch_analyze`.
    record_id : str, optional
        Report folder name (default: the file name without extension).
    retries, retry_delay_s : optional
        Override ``pipeline.retries`` / ``pipeline.retry_delay_s``.

    Returns
    -------
    dict
        The recording's row (status ``ok`` or ``skipped-unchanged``); a
        failure fails the flow run with its one-line reason.
    """
    overrides = _overrides(sfreq, seed)
    pipe = execution_settings(config, overrides, retries=retries, retry_delay_s=retry_delay_s)
    item = batch.BatchItem(os.path.abspath(path), record_id or batch.planned_id(path))
    root = str(Path(out).resolve())
    task = analyze_task.with_options(retries=pipe.retries,
                                     retry_delay_seconds=backoff(pipe.retries, pipe.retry_delay_s) or 0)
    with batch.batch_lock(root):
        batch.clean_stale(root)
        row = task(item=item.to_dict(), out=root, config=config, overrides=overrides, start=start, stop=stop)
    print(f"{row['recording_id']}: {row['status']}, {row['n_events']} events -> {Path(root) / row['report']}")
    return row


__all__ = ["analyze_recording", "batch_analyze", "execution_settings", "make_task_runner", "run_items"]
