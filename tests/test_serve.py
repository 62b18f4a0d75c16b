"""``spikewatch serve``: schedules file validation, and a real scheduled run on a real local server.

The serve test starts ``spikewatch serve`` with no ``PREFECT_API_URL``, so it
starts its own ``prefect server start --host 127.0.0.1`` (own throw-away
``PREFECT_HOME``); a deployment with a 4 s interval scans an inbox of two
short real EEG segments. The test sees a scheduled (auto-scheduled) flow run
complete and write its reports, deploys ``prefect.yaml`` to the same server,
then stops serve and checks that no process is left.
"""

from __future__ import annotations

import csv
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

# PREFECT_HOME etc. are set for the whole session in conftest.py, before Prefect is imported

import httpx  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

from spikewatch.errors import ConfigError  # noqa: E402
from spikewatch.pipelines.serve import DEFAULT_SCHEDULES, flow_parameters, load_schedules  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "schedules.yaml"
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def test_shipped_schedules_and_parameters(tmp_path, monkeypatch):
    """configs/schedules.yaml loads (also through the repo's configs/ link); paths become absolute."""
    spec = load_schedules(DEFAULT_SCHEDULES)
    assert load_schedules(REPO / "configs" / "schedules.yaml") == spec
    d = spec.deployments[0]
    assert d.cron and d.interval_s is None and d.inputs == ["inbox"]
    monkeypatch.chdir(tmp_path)
    params = flow_parameters(d)
    assert params["inputs"] == [str(tmp_path / "inbox")] and params["out"] == str(tmp_path / "reports" / "inbox")
    assert params["missing_ok"] is True and "sfreq" not in params


@pytest.mark.parametrize("entry,words", [
    ({"inputs": ["in"], "cron": "0 2 * * *", "interval_s": 60}, "exactly one of 'cron' and 'interval_s'"),
    ({"inputs": ["in"]}, "exactly one of 'cron' and 'interval_s'"),
    ({"inputs": ["in"], "cron": "61 * * * *"}, "Invalid cron"),
    ({"inputs": ["in"], "interval_s": 60, "intervall": 5}, "'deployments.0.intervall'"),
    ({"inputs": ["in"], "interval_s": -1}, "'deployments.0.interval_s'"),
    ({"inputs": ["in"], "interval_s": 60, "config": "no_such_config"}, "deployment 'x': no_such_config"),
])
def test_bad_schedules_are_refused(tmp_path, entry, words):
    """Every mistake is one ConfigError naming the file and the entry."""
    path = write(tmp_path, {"deployments": [{"name": "x", **entry}]})
    with pytest.raises(ConfigError) as exc:
        load_schedules(path)
    assert words in str(exc.value) and str(path) in str(exc.value)


def test_duplicate_names_and_missing_file(tmp_path):
    one = {"name": "x", "inputs": "in", "interval_s": 5}
    with pytest.raises(ConfigError, match="unique: x"):
        load_schedules(write(tmp_path, {"deployments": [one, one]}))
    with pytest.raises(ConfigError, match="not found"):
        load_schedules(tmp_path / "absent.yaml")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _flow_runs(api: str, deployment_id: str) -> list[dict]:
    r = httpx.post(f"{api}/flow_runs/filter", json={"deployments": {"id": {"any_": [deployment_id]}}}, timeout=10)
    r.raise_for_status()
    return r.json()


def _deployments(api: str) -> dict[str, dict]:
    r = httpx.post(f"{api}/deployments/filter", json={}, timeout=10)
    r.raise_for_status()
    return {d["name"]: d for d in r.json()}


def test_serve_runs_a_scheduled_batch_on_its_own_local_server(data_dir, tmp_path):
    """No PREFECT_API_URL: serve starts a server on 127.0.0.1, a scheduled run writes reports, all stops."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for cls in ("ictal", "interictal"):
        (inbox / f"{cls}5.mat").symlink_to(data_dir / "eeg-delhi" / cls / f"{cls}5.mat")
    write(tmp_path, {"limit": 1, "deployments": [
        {"name": "inbox-test", "inputs": "inbox", "out": "out", "sfreq": 200.0, "interval_s": 4}]})
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_RUNNER_POLL_FREQUENCY="1")
    log_path = tmp_path / "serve.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "spikewatch", "serve", "--config", "schedules.yaml"],
                            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    server_pid = port = None
    try:
        deadline = time.monotonic() + 300
        rows: dict = {}
        while time.monotonic() < deadline and proc.poll() is None:
            text = log_path.read_text(errors="replace")
            m = re.search(r"local Prefect server on 127\.0\.0\.1:(\d+) \(pid (\d+)", text)
            if m:
                port, server_pid = int(m.group(1)), int(m.group(2))
            if (tmp_path / "out" / "batch.tsv").is_file():
                with open(tmp_path / "out" / "batch.tsv", newline="") as f:
                    rows = {r["recording_id"]: r for r in csv.DictReader(f, delimiter="\t")}
                if len(rows) == 2:
                    break
            time.sleep(0.5)
        assert proc.poll() is None, log_path.read_text()[-3000:]
        assert server_pid and port, log_path.read_text()[-3000:]
        assert {k: r["status"] for k, r in rows.items()} == {"ictal5": "ok", "interictal5": "ok"}, rows
        for name in rows:
            assert (tmp_path / "out" / name / "summary.json").is_file()
        assert 'href="ictal5/' in (tmp_path / "out" / "index.html").read_text()

        api = f"http://127.0.0.1:{port}/api"
        dep = _deployments(api)["inbox-test"]
        assert dep["schedules"][0]["schedule"]["interval"] == 4.0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the run's final state reaches the server just after the files
            done = [r for r in _flow_runs(api, dep["id"]) if r["state_type"] == "COMPLETED"]
            if done:
                break
            time.sleep(0.5)
        assert done and all(r["auto_scheduled"] for r in done), "no scheduled run completed"
        assert done[0]["parameters"]["inputs"] == [str(inbox)]

        # prefect.yaml deploys to the same server (users with their own server and workers)
        httpx.post(f"{api}/work_pools/", json={"name": "spikewatch", "type": "process"}, timeout=10).raise_for_status()
        r = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"], cwd=REPO,
                           env={**env, "PREFECT_API_URL": api}, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        deps = _deployments(api)
        assert deps["nightly-inbox"]["entrypoint"] == "spikewatch.pipelines.flows.batch_analyze"
        assert deps["nightly-inbox"]["schedules"][0]["schedule"]["cron"] == "0 2 * * *"
        assert deps["analyze-recording"]["entrypoint"] == "spikewatch.pipelines.flows.analyze_recording"
        assert deps["nightly-inbox"]["work_pool_name"] == "spikewatch"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
        stopped_in_time = server_pid is None or not _alive(server_pid)
        if server_pid and _alive(server_pid):
            os.kill(server_pid, signal.SIGKILL)
    text = log_path.read_text(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    assert "Prefect server on 127.0.0.1" in text and "stopped" in text
    assert stopped_in_time, "the local Prefect server outlived spikewatch serve"
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # no flow-run subprocess left either
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "port still open"
