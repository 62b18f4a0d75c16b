"""Batch pipelines on real records: work lists, failure isolation, retries, idempotent re-runs, SIGKILL.

Prefect runs in its ephemeral mode on a throw-away ``PREFECT_HOME`` (one
temporary server for the whole test session, as ``spikewatch batch`` uses by
default). Records are 30 s spans of MIT-BIH records, linked (not copied) into
temporary folders; a truncated copy of a header + 3000 bytes of 106.dat is the
bad recording.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

# PREFECT_HOME etc. are set for the whole session in conftest.py, before Prefect is imported

import pytest  # noqa: E402

from spikewatch import batch  # noqa: E402
from spikewatch.errors import RecordingError, SpikewatchError  # noqa: E402

SPAN_S = 30.0
REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- helpers

def link_record(src: Path, dst_dir: Path) -> Path:
    """Symlink a WFDB record's files into ``dst_dir``; return its .hea."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    for ext in ("hea", "dat", "atr"):
        (dst_dir / f"{src.name}.{ext}").symlink_to(src.with_suffix(f".{ext}"))
    return dst_dir / f"{src.name}.hea"


def truncated_record(mitdb: Path, dst_dir: Path, name: str = "106") -> Path:
    """A real header with only 3000 bytes of its signal file (a bad recording)."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(mitdb / f"{name}.hea", dst_dir / f"{name}.hea")
    (dst_dir / f"{name}.dat").write_bytes((mitdb / f"{name}.dat").read_bytes()[:3000])
    return dst_dir / f"{name}.hea"


def read_rows(out: Path) -> dict[str, dict]:
    with open(out / batch.BATCH_TSV, newline="") as f:
        return {r["recording_id"]: r for r in csv.DictReader(f, delimiter="\t")}


def finished(out: Path) -> set[str]:
    return {p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")
            and (p / "summary.json").is_file()} if out.is_dir() else set()


class Capture(logging.Handler):
    """Collects (task run name, message) of Prefect task-run log records."""

    def __init__(self, on_message=None):
        super().__init__()
        self.records: list[tuple[str | None, str]] = []
        self.on_message = on_message

    def emit(self, record):
        msg = record.getMessage()
        self.records.append((getattr(record, "task_run_name", None), msg))
        if self.on_message:
            self.on_message(msg)

    def messages(self, task_run: str) -> list[str]:
        return [m for t, m in self.records if t == task_run]


@pytest.fixture
def task_logs():
    cap = Capture()
    logger = logging.getLogger("prefect.task_runs")
    logger.addHandler(cap)
    yield cap
    logger.removeHandler(cap)


@pytest.fixture(scope="module")
def reference(mitdb, short_config, tmp_path_factory) -> dict[str, dict[str, bytes]]:
    """events.tsv / beats.tsv of 213, 221, 228 analysed directly by jobs.run_job (no Prefect)."""
    from spikewatch.jobs import resolve_job, run_job

    out = tmp_path_factory.mktemp("reference")
    ref = {}
    for name in ("213", "221", "228"):
        rec, cfg = resolve_job(mitdb / name, short_config)
        job = run_job(rec, cfg, out, stop=SPAN_S)
        ref[name] = {f: (job.folder / f).read_bytes() for f in ("events.tsv", "beats.tsv")}
    assert sum(r["events.tsv"].count(b"\n") - 1 for r in ref.values()) >= 1, "no events at all: weak test"
    return ref


# --------------------------------------------------------------------------- work list (no Prefect)

def test_plan_folder_glob_manifest_and_ids(mitdb, data_dir, tmp_path):
    """Folders, globs and manifests give one item per recording; companions dedupe; clashing ids get parents."""
    inbox = tmp_path / "inbox"
    link_record(mitdb / "221", inbox)
    (inbox / "README.txt").write_text("notes about these records\n")
    for cls in ("ictal", "preictal"):  # two recordings named ictal1-like in different folders
        (inbox / cls).mkdir()
        (inbox / cls / "seg1.mat").symlink_to(data_dir / "eeg-delhi" / cls / f"{cls}1.mat")

    items = batch.plan_batch(inbox)
    assert [Path(i.path).name for i in items] == ["221.hea", "seg1.mat", "seg1.mat"]
    assert [i.record_id for i in items] == ["221", "ictal_seg1", "preictal_seg1"]
    assert all(Path(i.path).is_absolute() for i in items)

    # a quoted glob: companions select their record once, README drops out, folders are searched
    assert [i.record_id for i in batch.plan_batch(str(inbox / "*.*"))] == ["221"]
    assert [i.record_id for i in batch.plan_batch(str(inbox / "*"))] == ["221", "ictal_seg1", "preictal_seg1"]
    assert [i.record_id for i in batch.plan_batch(str(tmp_path / "**" / "seg*.mat"))] == ["ictal_seg1",
                                                                                          "preictal_seg1"]
    # the same record three ways is one item
    assert len(batch.plan_batch([inbox / "221", inbox / "221.dat", inbox / "221.hea"])) == 1

    manifest = tmp_path / "todo.list"
    manifest.write_text(f"# recordings to analyse\ninbox/221.hea\n\n{inbox / 'ictal'}\ninbox/missing.hea\n")
    listed = batch.plan_batch(manifest)
    assert [Path(i.path).name for i in listed] == ["221.hea", "seg1.mat", "missing.hea"]
    assert batch.is_manifest(manifest) and not batch.is_manifest(data_dir / "eeg-bonn" / "E_S" / "S001.txt")

    with pytest.raises(RecordingError, match="nowhere"):
        batch.plan_batch(tmp_path / "nowhere")
    with pytest.raises(RecordingError, match="matches no recording"):
        batch.plan_batch(str(tmp_path / "*.edf"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpikewatchError, match="no recording found"):
        batch.plan_batch(tmp_path / "empty")
    skipped: list[str] = []
    assert batch.plan_batch([tmp_path / "nowhere", inbox / "221.hea"], missing_ok=True, skipped=skipped)[0].record_id == "221"
    assert skipped == [str(tmp_path / "nowhere")]


def test_outputs_index_links_and_escaping(tmp_path):
    """batch.tsv has one row per recording; index.html links report.html, else summary.json, and escapes text."""
    for name, files in (("a", ["summary.json", "report.html"]), ("b", ["summary.json"])):
        (tmp_path / name).mkdir()
        for f in files:
            (tmp_path / name / f).write_text("{}")
    rows = [batch._row("a", "/in/a.edf", batch.STATUS_OK, 3, 1.5, tmp_path / "a"),
            batch._row("b", "/in/b.edf", batch.STATUS_SKIPPED, 0, 0.1, tmp_path / "b"),
            batch.failed_row(batch.BatchItem("/in/<c>.edf", "c"), "/in/<c>.edf: bad\n  header & more")]
    tsv, index = batch.write_batch_outputs(tmp_path, rows)
    got = read_rows(tmp_path)
    assert list(got) == ["a", "b", "c"]
    assert got["c"]["status"] == "failed" and got["c"]["reason"] == "/in/<c>.edf: bad header & more"
    assert got["a"]["n_events"] == "3" and got["c"]["n_events"] == "n/a"
    text = index.read_text()
    assert 'href="a/report.html"' in text and 'href="b/summary.json"' in text
    assert "&lt;c&gt;.edf: bad header &amp; more" in text and "<c>" not in text
    assert "1 ok, 1 failed, 1 skipped-unchanged" in text


def test_stale_cleanup_and_lock(tmp_path):
    """Temp folders/files a killed run left are removed; a second batch on the same folder is refused."""
    (tmp_path / "221").mkdir()
    (tmp_path / ".221.k2j3.partial").mkdir()
    (tmp_path / ".221.k2j3.partial" / "events.tsv").write_text("onset\n")
    (tmp_path / ".228.4242.old").mkdir()
    (tmp_path / ".batch.tsv.x1.tmp").write_text("half")
    (tmp_path / ".keep-me").write_text("user file")
    with batch.batch_lock(tmp_path):
        removed = sorted(p.name for p in batch.clean_stale(tmp_path))
        assert removed == [".221.k2j3.partial", ".228.4242.old", ".batch.tsv.x1.tmp"]
        with pytest.raises(batch.BatchLocked, match=f"pid {os.getpid()}"):
            with batch.batch_lock(tmp_path):
                pass
    assert sorted(p.name for p in tmp_path.iterdir()) == [".keep-me", batch.LOCK_NAME, "221"]
    with batch.batch_lock(tmp_path):  # released
        pass


def test_transient_classification():
    """Only OSErrors that are not spikewatch errors are retried."""
    from spikewatch.pipelines.tasks import backoff, is_transient

    assert is_transient(OSError(5, "Input/output error"))
    assert is_transient(batch.InputChanged(11, "input changed", "/x.edf"))
    assert not is_transient(RecordingError("/x.edf", "truncated"))
    assert not is_transient(batch.ItemFailed("/x.edf: truncated"))
    assert not is_transient(ValueError("bug"))
    assert backoff(3, 2.0) == [2.0, 4.0, 8.0] and backoff(0, 5.0) == []


# --------------------------------------------------------------------------- flows

def test_batch_flow_isolates_failures_and_reruns_idempotently(mitdb, tmp_path, prefect_api, short_config,
                                                              reference, task_logs):
    """A bad record fails alone (not retried); outputs equal run_job's; re-runs skip what is done."""
    from spikewatch.pipelines.flows import batch_analyze

    inbox, out = tmp_path / "in", tmp_path / "out"
    for name in ("221", "228"):
        link_record(mitdb / name, inbox)
    truncated_record(mitdb, inbox / "bad")
    kw = dict(inputs=[str(inbox)], out=str(out), config=str(short_config), stop=SPAN_S, retries=2,
              retry_delay_s=0.1)

    state = batch_analyze(**kw, concurrency=2, return_state=True)
    assert state.is_failed() and "1 of 3 recordings failed" in state.message
    rows = {r["recording_id"]: r for r in batch.rows_of(state.result(raise_on_failure=False))}
    assert {k: r["status"] for k, r in rows.items()} == {"221": "ok", "228": "ok", "106": "failed"}
    assert "106.dat" in rows["106"]["reason"] and "truncated" in rows["106"]["reason"]
    assert "\n" not in rows["106"]["reason"]
    assert not any("Retry" in m for m in task_logs.messages("analyze-106")), "bad input must not be retried"
    for name in ("221", "228"):
        for f, data in reference[name].items():
            assert (out / name / f).read_bytes() == data, f"{name}/{f} differs from jobs.run_job"
        assert rows[name]["n_events"] == reference[name]["events.tsv"].count(b"\n") - 1
    assert read_rows(out)["106"]["status"] == "failed"
    assert 'href="221/summary.json"' in (out / batch.INDEX_HTML).read_text()
    assert not (out / "106").exists()
    stamps = {n: (out / n / "summary.json").stat().st_mtime_ns for n in ("221", "228")}

    # same inputs and config: nothing is redone
    with pytest.raises(batch.BatchFailed, match="1 of 3 recordings failed") as exc:
        batch_analyze(**kw)  # called plainly, a partly failed batch raises, carrying every row
    rows = {r["recording_id"]: r for r in exc.value.rows}
    assert {k: r["status"] for k, r in rows.items()} == {"221": "skipped-unchanged", "228": "skipped-unchanged",
                                                         "106": "failed"}
    assert {n: (out / n / "summary.json").stat().st_mtime_ns for n in stamps} == stamps

    # the bad record repaired: only it is analysed, and the flow succeeds
    (inbox / "bad" / "106.dat").unlink()
    (inbox / "bad" / "106.dat").symlink_to(mitdb / "106.dat")
    rows = {r["recording_id"]: r for r in batch_analyze(**kw)}
    assert {k: r["status"] for k, r in rows.items()} == {"221": "skipped-unchanged", "228": "skipped-unchanged",
                                                         "106": "ok"}
    # another config (seed): everything is redone
    rows = batch_analyze(**kw, seed=3)
    assert [r["status"] for r in rows] == ["ok"] * 3
    assert {n: (out / n / "summary.json").stat().st_mtime_ns for n in stamps} != stamps


def test_input_changing_during_analysis_is_retried(mitdb, tmp_path, prefect_api, short_config):
    """A header rewritten while the record is analysed: InputChanged (transient), retried, then ok."""
    from spikewatch.pipelines.flows import batch_analyze

    inbox, out = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    shutil.copy(mitdb / "221.hea", inbox / "221.hea")
    for ext in ("dat", "atr"):
        (inbox / f"221.{ext}").symlink_to(mitdb / f"221.{ext}")
    header = (mitdb / "221.hea").read_text()
    retried = threading.Event()
    stop_writer = threading.Event()

    def writer():  # a file "still being written": a new revision every 20 ms until the first retry
        n = 0
        while not (retried.is_set() or stop_writer.is_set()):
            n += 1
            tmp = inbox / ".221.hea.tmp"
            tmp.write_text(header + f"# revision {n}\n")
            os.replace(tmp, inbox / "221.hea")
            time.sleep(0.02)

    cap = Capture(on_message=lambda m: retried.set() if "Retry 1/1" in m else None)
    logger = logging.getLogger("prefect.task_runs")
    logger.addHandler(cap)
    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        rows = batch_analyze(inputs=[str(inbox)], out=str(out), config=str(short_config), stop=SPAN_S,
                             retries=1, retry_delay_s=1.0)
    finally:
        stop_writer.set()
        thread.join(5)
        logger.removeHandler(cap)
    msgs = cap.messages("analyze-221")
    assert any("input changed while it was analysed" in m for m in msgs), msgs
    assert retried.is_set()
    assert rows[0]["status"] == "ok"
    summary = batch.read_summary(out / "221")
    assert summary["input"]["sha256"] == batch.input_digest(inbox / "221.hea")
    assert "# revision" in (inbox / "221.hea").read_text()


def test_analyze_recording_flow(data_dir, tmp_path, prefect_api):
    """One recording: ok, then skipped; a bad one fails the flow run with its reason."""
    from spikewatch.pipelines.flows import analyze_recording

    seg = data_dir / "eeg-delhi" / "ictal" / "ictal2.mat"
    row = analyze_recording(str(seg), out=str(tmp_path), sfreq=200.0)
    assert row["status"] == "ok" and (tmp_path / "ictal2" / "events.tsv").is_file()
    assert analyze_recording(str(seg), out=str(tmp_path), sfreq=200.0)["status"] == "skipped-unchanged"
    state = analyze_recording(str(seg), out=str(tmp_path), return_state=True)  # no sfreq for a .mat
    assert state.is_failed() and "ictal2.mat" in state.message and "sfreq" in state.message


# --------------------------------------------------------------------------- CLI

def test_cli_batch_exit_codes(data_dir, tmp_path, prefect_api, monkeypatch, capsys):
    """spikewatch batch: 0 when all succeed, 2 on usage errors (before any work), one line each."""
    from spikewatch.cli import main

    for key in ("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "PREFECT_API_URL"):
        monkeypatch.setenv(key, os.environ.get(key, ""))  # restored after the test
    monkeypatch.setenv("PREFECT_API_URL", prefect_api)
    seg = data_dir / "eeg-delhi" / "interictal" / "interictal2.mat"
    assert main(["batch", str(seg), "--out", str(tmp_path / "o"), "--sfreq", "200"]) == 0
    assert read_rows(tmp_path / "o")["interictal2"]["status"] == "ok"
    capsys.readouterr()
    bad_cfg = tmp_path / "bad.yaml"
    bad_cfg.write_text("pipeline:\n  concurency: 2\n")
    usage = [
        (["batch", str(tmp_path / "nope")], "nope: not found"),
        (["batch", str(seg), "--workers", "2", "--dask-address", "tcp://127.0.0.1:1"], "not both"),
        (["batch", str(seg), "--dask-address", "no address"], "pipeline.dask_address"),
        (["batch", str(seg), "--config", str(bad_cfg)], "did you mean 'pipeline.concurrency'"),
        (["batch", str(seg), "--workers", "0"], "--workers"),
    ]
    for argv, words in usage:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "nope").exists()


def test_killed_batch_rerun_completes(mitdb, tmp_path, prefect_api, short_config, reference):
    """SIGKILL mid-batch, then re-run (embedded, no server set): done work skipped, rest redone, same bytes."""
    inbox, out = tmp_path / "in", tmp_path / "out"
    for name in ("213", "221", "228"):
        link_record(mitdb / name, inbox)
    truncated_record(mitdb, inbox / "zz-bad")
    cmd = [sys.executable, "-m", "spikewatch", "batch", str(inbox), "--out", str(out),
           "--config", str(short_config), "--stop", str(SPAN_S)]
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    log = open(tmp_path / "killed.log", "wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not finished(out) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        log.close()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-2000:]
    done = finished(out)
    assert done and done < {"213", "221", "228"}, f"kill was not mid-batch: {done}"
    stamps = {n: (out / n / "summary.json").stat().st_mtime_ns for n in done}
    # what a kill inside the atomic report writer leaves behind
    (out / ".228.x7k2.partial").mkdir(exist_ok=True)
    (out / ".228.x7k2.partial" / "events.tsv").write_text("onset\tduration\n1.0\n")
    (out / ".213.99999.old").mkdir(exist_ok=True)
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # nothing of the killed run is left

    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}  # embedded: ephemeral Prefect
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, start_new_session=True)
    assert r.returncode == 1, r.stderr[-3000:]
    failed = [ln for ln in r.stderr.splitlines() if ln.startswith("spikewatch: failed:")]
    assert len(failed) == 1 and "106" in failed[0] and "truncated" in failed[0]
    assert "Traceback" not in r.stderr
    rows = read_rows(out)
    assert {k: v["status"] for k, v in rows.items()} == {
        **{n: ("skipped-unchanged" if n in done else "ok") for n in ("213", "221", "228")}, "106": "failed"}
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [".spikewatch-batch.lock", "213", "221", "228", "batch.tsv", "index.html"])
    for name in ("213", "221", "228"):
        for f, data in reference[name].items():
            assert (out / name / f).read_bytes() == data, f"{name}/{f} differs from an uninterrupted run"
        assert not [p for p in (out / name).iterdir() if p.name.startswith(".")]
    assert {n: (out / n / "summary.json").stat().st_mtime_ns for n in done} == stamps
