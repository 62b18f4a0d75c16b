"""The Prefect task: one recording, as :func:`spikewatch.batch.analyze_item` does it.

Transient errors (``OSError``: a file still being written, an I/O hiccup) are
retried with back-off; bad input (:class:`~spikewatch.errors.SpikewatchError`)
fails at once with its one-line reason.
"""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from spikewatch import batch
from spikewatch.errors import SpikewatchError

#: the flow's log record of each finished recording carries this attribute (the CLI prints them)
LINE_ATTR = "spikewatch_line"


def is_transient(exc: BaseException | None) -> bool:
    """Whether a failure is worth retrying: an ``OSError`` that is not a spikewatch bad-input error.

    Parameters
    ----------
    exc : BaseException or None

    Returns
    -------
    bool
    """
    return isinstance(exc, OSError) and not isinstance(exc, SpikewatchError)


def retry_transient(task, task_run, state) -> bool:
    """Prefect ``retry_condition_fn``: retry only transient failures (see :func:`is_transient`)."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception as err:  # the result itself could not be read: treat like the error it is
        exc = err
    return is_transient(exc if isinstance(exc, BaseException) else None)


def backoff(retries: int, delay_s: float) -> list[float]:
    """Retry delays: ``delay_s`` doubled for each further retry.

    Parameters
    ----------
    retries : int
    delay_s : float

    Returns
    -------
    list of float
        One delay per retry (empty for no retries).
    """
    return [float(delay_s) * 2 ** k for k in range(retries)]


@task(name="analyze-recording", task_run_name="analyze-{item[record_id]}", cache_policy=NO_CACHE,
      retry_condition_fn=retry_transient, persist_result=False)
def analyze_task(item: dict, out: str, config: str | None = None, overrides: dict | None = None,
                 start: float | None = None, stop: float | None = None) -> dict:
    """Analyse one recording of a batch (or skip it if its report is up to date).

    Parameters
    ----------
    item : dict
        :meth:`spikewatch.batch.BatchItem.to_dict`.
    out : str
        Output root.
    config : str, optional
        Config file; default ``configs/<modality>.yaml``.
    overrides : dict, optional
        ``section__key`` config overrides.
    start, stop : float, optional
        Analysed span (s).

    Returns
    -------
    dict
        The recording's ``batch.tsv`` row.

    Raises
    ------
    spikewatch.batch.ItemFailed
        Bad input or config: the one-line reason (not retried).
    OSError
        Transient: retried with back-off.
    """
    log = get_run_logger()
    try:
        row = batch.analyze_item(item["path"], item["record_id"], out, config, overrides, start, stop)
    except SpikewatchError as exc:
        reason = batch.reason_of(exc)
        log.warning(f"{item['record_id']}: failed: {reason}")
        raise batch.ItemFailed(reason) from None  # one picklable message, whatever the subclass
    except OSError as exc:
        log.warning(f"{item['record_id']}: {batch.reason_of(exc)}")
        raise
    n = row["n_events"]
    log.info(f"{row['recording_id']}: {row['status']}, {n} events ({row['seconds']:.1f} s)")
    return row
