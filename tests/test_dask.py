"""Scale-out: a batch of real records on a 2-worker Dask cluster gives the sequential run's outputs.

The cluster is a real ``distributed.LocalCluster`` (worker processes on
127.0.0.1) reached by its scheduler address, as ``--dask-address`` does.
Prefect runs in its ephemeral mode on a throw-away ``PREFECT_HOME``; the
workers report to the same ephemeral server.
"""

from __future__ import annotations

import os
from pathlib import Path

# PREFECT_HOME etc. are set for the whole session in conftest.py, before Prefect is imported

import pytest  # noqa: E402

from spikewatch.config import load_config  # noqa: E402

RECORDS = ("106", "213", "221", "228")
SPAN_S = 30.0


pytestmark = pytest.mark.usefixtures("prefect_api")  # one ephemeral Prefect server (conftest)


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes on 127.0.0.1."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as c:
        yield c


@pytest.fixture(scope="module")
def inbox(mitdb, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("inbox")
    for name in RECORDS:
        for ext in ("hea", "dat", "atr"):
            (folder / f"{name}.{ext}").symlink_to(mitdb / f"{name}.{ext}")
    return folder


def test_dask_cluster_gives_the_sequential_events(inbox, tmp_path, cluster, short_config):
    """Same events.tsv / beats.tsv bytes on 2 Dask workers as on one thread; both workers get work."""
    from distributed import Client, get_task_stream

    from spikewatch.pipelines.flows import batch_analyze

    kw = dict(inputs=[str(inbox)], config=str(short_config), stop=SPAN_S)
    seq = batch_analyze(**kw, out=str(tmp_path / "seq"), concurrency=1)
    with Client(cluster.scheduler_address) as client, get_task_stream(client) as stream:
        par = batch_analyze(**kw, out=str(tmp_path / "dask"), dask_address=cluster.scheduler_address)
    assert [r["status"] for r in seq] == [r["status"] for r in par] == ["ok"] * len(RECORDS)
    assert [r["recording_id"] for r in par] == list(RECORDS)
    workers = {t["worker"] for t in stream.data}
    assert len(workers) == 2, f"tasks ran on {workers}"
    n_events = 0
    for name in RECORDS:
        for f in ("events.tsv", "beats.tsv"):
            a, b = (tmp_path / "seq" / name / f).read_bytes(), (tmp_path / "dask" / name / f).read_bytes()
            assert a == b, f"{name}/{f} differs between the sequential and the Dask run"
        n_events += (tmp_path / "seq" / name / "events.tsv").read_bytes().count(b"\n") - 1
    assert n_events >= 1, "no events at all: weak comparison"
    # re-run on the cluster: everything is skipped, nothing rewritten
    again = batch_analyze(**kw, out=str(tmp_path / "dask"), dask_address=cluster.scheduler_address)
    assert [r["status"] for r in again] == ["skipped-unchanged"] * len(RECORDS)


def test_runner_choice():
    """dask_address -> DaskTaskRunner(address); workers -> a LocalCluster of processes; else threads."""
    from prefect.task_runners import ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    from spikewatch.pipelines.flows import execution_settings, make_task_runner

    r = make_task_runner(execution_settings(dask_address="tcp://10.0.0.5:8786"))
    assert isinstance(r, DaskTaskRunner) and r.address == "tcp://10.0.0.5:8786"
    r = make_task_runner(execution_settings(workers=3))
    assert isinstance(r, DaskTaskRunner) and r.address is None
    assert r.cluster_kwargs["n_workers"] == 3 and r.cluster_kwargs["processes"] is True
    assert r.cluster_kwargs["host"] == "127.0.0.1"
    r = make_task_runner(execution_settings(concurrency=4))
    assert isinstance(r, ThreadPoolTaskRunner) and r._max_workers == 4
    assert load_config("ecg").pipeline.workers is None and load_config("ecg").pipeline.dask_address is None
