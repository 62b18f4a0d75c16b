"""Reliability: broken input files, killed runs, and the security guards.

* **Broken files**, made in tmp_path from the real recordings (complementing
  tests/test_io_bad.py): truncated at several offsets, garbled header fields
  (lengths, sample counts, sampling rate, number of signals, formats), random
  bytes with a valid extension, empty files, wrong extensions, WFDB signal files
  missing or short, an annotation file that does not fit its record, non-UTF-8
  text, unreadable files (``open``/``os.access`` patched to refuse, so the test
  also runs as root), directories given as files. Each one gives a
  SpikewatchError with a one-line message naming the file; ``spikewatch analyze``
  exits 2 without a traceback and writes nothing (checked in-process for every
  case, and in real subprocesses for a sample of them).
* **Kill -9**: ``spikewatch analyze`` killed while it writes its report leaves no
  report folder; a re-run removes the leftovers and writes exactly what an
  uninterrupted run writes.
* **Security**: no pickle where model data is loaded; symlinks out of ``--out``
  are not followed (report folders, leftovers, batch files); the Prefect server
  and local Dask clusters bind 127.0.0.1 only.
"""

from __future__ import annotations

import ast
import builtins
import fcntl
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

# PREFECT_HOME etc. are set for the whole session in conftest.py, before Prefect is imported

import mne  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import spikewatch  # noqa: E402
from spikewatch.cli import main  # noqa: E402
from spikewatch.errors import SpikewatchError  # noqa: E402
from spikewatch.io import read_recording  # noqa: E402
from spikewatch.io.writers import clean_stale_reports, report_dir  # noqa: E402

PACKAGE = Path(spikewatch.__file__).resolve().parent
TIMING = {"timing_s", "realtime_factor", "realtime_factor_by_stage", "report_timing_s"}


# =============================================================== broken files

def _copy(src: Path, dst: Path) -> Path:
    shutil.copy(src, dst)
    os.chmod(dst, 0o644)
    return dst


def _patch(path: Path, offset: int, text: str | bytes, width: int) -> None:
    raw = text.encode("latin-1") if isinstance(text, str) else text
    with path.open("r+b") as fh:
        fh.seek(offset)
        fh.write(raw[:width].ljust(width))


def _truncate(path: Path, size: int) -> None:
    with path.open("r+b") as fh:
        fh.truncate(size)


class Corpus:
    """Builds one broken input in ``tmp`` from the real files; returns (path to give, CLI extras, file named)."""

    def __init__(self, data: Path, tmp: Path):
        self.data, self.tmp = data, tmp

    # --- sources
    def wfdb(self) -> Path:
        for ext in (".hea", ".dat", ".atr"):
            _copy(self.data / "mitdb" / f"106{ext}", self.tmp / f"106{ext}")
        return self.tmp / "106"

    def hea(self, old: str, new: str, named: str = "106.hea"):
        rec = self.wfdb()
        hea = rec.with_suffix(".hea")
        hea.write_text(hea.read_text().replace(old, new, 1))
        return rec, [], named

    def edf(self) -> Path:
        return _copy(self.data / "eeg-mne-testing" / "subsecond_starttime.edf", self.tmp / "rec.edf")

    def edf_field(self, offset: int, text: str | bytes, width: int):
        path = self.edf()
        _patch(path, offset, text, width)
        return path, [], "rec.edf"

    def bonn(self, name: str = "seg.txt") -> Path:
        return _copy(self.data / "eeg-bonn" / "A_Z" / "Z001.txt", self.tmp / name)

    def delhi(self, name: str = "seg.mat") -> Path:
        return _copy(self.data / "eeg-delhi" / "ictal" / "ictal1.mat", self.tmp / name)

    def fif(self) -> Path:
        values = np.loadtxt(self.data / "eeg-bonn" / "A_Z" / "Z001.txt")[None, :] * 1e-6
        raw = mne.io.RawArray(values, mne.create_info(["Fz"], 173.61, "eeg"), verbose="error")
        path = self.tmp / "seg_raw.fif"
        raw.save(path, verbose="error")
        return path

    def random(self, name: str, n: int = 5000, prefix: bytes = b""):
        path = self.tmp / name
        path.write_bytes(prefix + np.random.default_rng(len(name)).bytes(n))
        return path, ["--sfreq", "100"], name


EDF_SIG0 = 256 + 4 * (16 + 80 + 8 + 8 + 8 + 8 + 8 + 80)  # samples-per-record field of signal 0 (4 signals)


def _cases() -> dict:
    """Case id -> builder(corpus) -> (path, extra CLI args, file name the message must give)."""
    c: dict = {}
    # ---- WFDB: signal file short, missing, empty, a folder
    for off in (1, 3, 975_000, 1_949_999):
        c[f"wfdb-dat-truncated-{off}"] = lambda k, off=off: (
            _truncate(k.wfdb().with_suffix(".dat"), off) or (k.tmp / "106", [], "106.dat"))
    c["wfdb-dat-empty"] = lambda k: (_truncate(k.wfdb().with_suffix(".dat"), 0) or (k.tmp / "106", [], "106.dat"))
    c["wfdb-dat-missing"] = lambda k: (k.wfdb().with_suffix(".dat").unlink() or (k.tmp / "106", [], "106.dat"))

    def dat_dir(k):
        rec = k.wfdb()
        rec.with_suffix(".dat").unlink()
        rec.with_suffix(".dat").mkdir()
        return rec, [], "106.dat"
    c["wfdb-dat-is-a-folder"] = dat_dir
    # ---- WFDB: header fields
    for tag, new in [("samples-garbled", "106 2 360 65x000"), ("samples-negative", "106 2 360 -5"),
                     ("samples-zero", "106 2 360 0"),
                     ("nsig-3", "106 3 360 650000"), ("nsig-0", "106 0 360 650000"),
                     ("nsig-huge", "106 99999999 360 650000"), ("nsig-negative", "106 -2 360 650000"),
                     ("fs-0", "106 2 0 650000"), ("fs-negative", "106 2 -360 650000"),
                     ("fs-absurd", "106 2 1e12 650000"), ("fs-text", "106 2 fast 650000")]:
        c[f"wfdb-hea-{tag}"] = lambda k, new=new: k.hea("106 2 360 650000", new)
    c["wfdb-hea-format-unknown"] = lambda k: k.hea("212", "999")
    c["wfdb-hea-samples-per-frame-0"] = lambda k: k.hea("212", "212x0")
    # claims checked against the signal file's size before anything is allocated: the message names the .dat
    c["wfdb-hea-samples-1e12"] = lambda k: k.hea("106 2 360 650000", "106 2 360 1000000000000", "106.dat")
    c["wfdb-hea-byte-offset-huge"] = lambda k: k.hea("212", "212+99999999999", "106.dat")
    c["wfdb-hea-signal-line-garbled"] = lambda k: k.hea("106.dat 212 200 11 1024", "106.dat 2x2 200 11 1024")
    c["wfdb-hea-not-utf8"] = lambda k: (
        k.wfdb().with_suffix(".hea").write_bytes(
            (k.data / "mitdb" / "106.hea").read_bytes().replace(b"Inderal", b"Ind\xe9ral")) and
        (k.tmp / "106", [], "106.hea"))
    c["wfdb-hea-random-bytes"] = lambda k: (
        k.wfdb().with_suffix(".hea").write_bytes(np.random.default_rng(9).bytes(400)) and
        (k.tmp / "106.hea", [], "106.hea"))
    c["wfdb-hea-empty"] = lambda k: (_truncate(k.wfdb().with_suffix(".hea"), 0) or (k.tmp / "106", [], "106.hea"))

    def hea_dir(k):
        k.wfdb().with_suffix(".hea").unlink()
        (k.tmp / "106.hea").mkdir()
        return k.tmp / "106.hea", [], "106.hea"
    c["wfdb-hea-is-a-folder"] = hea_dir
    # ---- WFDB: annotations that do not fit the record
    for off in (1, 100, 2738):
        c[f"wfdb-atr-truncated-{off}"] = lambda k, off=off: (
            _truncate(k.wfdb().with_suffix(".atr"), off) or (k.tmp / "106", [], "106.atr"))
    c["wfdb-atr-empty"] = lambda k: (_truncate(k.wfdb().with_suffix(".atr"), 0) or (k.tmp / "106", [], "106.atr"))

    def atr_longer_than_record(k):  # a 5-minute cut of the record with the 30-minute annotation file
        rec, _, _ = k.hea("106 2 360 650000", "106 2 360 108000")
        _truncate(rec.with_suffix(".dat"), 108_000 * 3)
        return rec, [], "106.atr"
    c["wfdb-atr-does-not-fit-record"] = atr_longer_than_record
    # ---- EDF: truncated at several offsets (header 1280 bytes, 16830 in all)
    for off in (0, 7, 200, 256, 300, 1279, 1280, 1281, 16_829):
        c[f"edf-truncated-{off}"] = lambda k, off=off: (_truncate(k.edf(), off) or (k.tmp / "rec.edf", [], "rec.edf"))
    # ---- EDF: garbled header fields
    for tag, off, text, width in [("records-text", 236, "abc", 8), ("records-negative", 236, "-5", 8),
                                  ("records-huge", 236, "99999999", 8), ("duration-0", 244, "0", 8),
                                  ("duration-negative", 244, "-1", 8), ("duration-tiny", 244, "1e-9", 8),
                                  ("duration-nan", 244, "nan", 8), ("signals-0", 252, "0", 4),
                                  ("signals-negative", 252, "-1", 4), ("signals-huge", 252, "9999", 4),
                                  ("signals-text", 252, "1e3", 4), ("records-non-ascii", 236, b"\xff\xfe12", 8),
                                  ("samples-per-record-text", EDF_SIG0, "abc", 8),
                                  ("samples-per-record-negative", EDF_SIG0, "-1", 8),
                                  ("samples-per-record-huge", EDF_SIG0, "99999999", 8)]:
        c[f"edf-{tag}"] = lambda k, off=off, text=text, width=width: k.edf_field(off, text, width)
    c["edf-random-after-version"] = lambda k: k.random("rnd.edf", 20_000, prefix=b"0       ")
    # ---- random bytes / empty files with valid extensions
    for ext in (".bdf", ".gdf", ".vhdr", ".set", ".csv", ".fif", ".mat", ".txt", ".hea"):
        c[f"random{ext}"] = lambda k, ext=ext: k.random(f"rnd{ext}")
    for ext in (".bdf", ".gdf", ".vhdr", ".set", ".csv", ".fif", ".atr"):
        c[f"empty{ext}"] = lambda k, ext=ext: ((k.tmp / f"empty{ext}").write_bytes(b"") or
                                              (k.tmp / f"empty{ext}", ["--sfreq", "100"], f"empty{ext}"))
    # ---- wrong extensions
    c["edf-named-bdf"] = lambda k: (k.edf().rename(k.tmp / "rec.bdf"), [], "rec.bdf")
    c["edf-named-fif"] = lambda k: (k.edf().rename(k.tmp / "rec_raw.fif"), [], "rec_raw.fif")
    c["edf-named-mat"] = lambda k: (k.edf().rename(k.tmp / "rec.mat"), ["--sfreq", "100"], "rec.mat")
    c["text-named-edf"] = lambda k: (k.bonn("seg.edf"), [], "seg.edf")
    c["mat-named-txt"] = lambda k: (k.delhi("seg.txt"), ["--sfreq", "200"], "seg.txt")
    c["wfdb-header-named-edf"] = lambda k: (_copy(k.data / "mitdb" / "106.hea", k.tmp / "h.edf"), [], "h.edf")
    c["text-named-vhdr"] = lambda k: (k.bonn("seg.vhdr"), [], "seg.vhdr")
    # ---- text, MATLAB and FIF segments
    c["text-not-utf8"] = lambda k: ((k.tmp / "l.txt").write_bytes(b"12\n13\n\xb5V\n14\n") and
                                    (k.tmp / "l.txt", ["--sfreq", "173.61"], "l.txt"))
    c["text-cut-in-a-number"] = lambda k: ((k.tmp / "c.txt").write_bytes(b"12\n13\n1.5e") and
                                           (k.tmp / "c.txt", ["--sfreq", "173.61"], "c.txt"))
    for off in (10, 128, 700, 1550):
        c[f"mat-truncated-{off}"] = lambda k, off=off: (
            _truncate(k.delhi(), off) or (k.tmp / "seg.mat", ["--sfreq", "200"], "seg.mat"))
    for off in (100, 1000, 8616):  # the last two open, and fail when samples are read
        c[f"fif-truncated-{off}"] = lambda k, off=off: (
            _truncate(k.fif(), off) or (k.tmp / "seg_raw.fif", [], "seg_raw.fif"))
    # ---- directories given as files
    for name in ("rec.edf", "rec_raw.fif", "seg.mat", "seg.txt", "plain"):
        c[f"folder-{name}"] = lambda k, name=name: ((k.tmp / name).mkdir() or
                                                    (k.tmp / name, ["--sfreq", "100"], name))
    return c


CASES = _cases()


def _nothing_written(out: Path) -> bool:
    return not out.exists() or not any(out.rglob("*"))


def _one_error_line(stderr: str, name: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("spikewatch: error: ") and name in lines[0], lines[0]
    assert "Traceback" not in stderr
    return lines[0]


@pytest.mark.parametrize("case", sorted(CASES))
def test_broken_file(case, data_dir, tmp_path, capsys):
    """Reader: SpikewatchError naming the file in one line; ``analyze``: exit 2, one line, nothing written."""
    src = tmp_path / "in"
    src.mkdir()
    path, extra, name = CASES[case](Corpus(data_dir, src))
    sfreq = float(extra[1]) if extra else None
    with pytest.raises(SpikewatchError) as info:
        rec = read_recording(path, sfreq=sfreq)
        rec.get_data()  # damage found only when the samples are read
    msg = str(info.value)
    assert "\n" not in msg and name in msg, msg
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["analyze", str(path), "--out", str(out), "--no-html", *extra]) == 2
    _one_error_line(capsys.readouterr().err, name)
    assert _nothing_written(out)


SUBPROCESS_SAMPLE = ["wfdb-dat-truncated-975000", "edf-signals-huge", "folder-rec.edf",
                     "fif-truncated-1000"]  # one per family; fif-truncated-1000 fails only once samples are read


def test_broken_files_through_the_console_script(data_dir, tmp_path):
    """``python -m spikewatch analyze`` in real processes (run side by side): exit 2, one line, nothing written."""
    procs = []
    for case in SUBPROCESS_SAMPLE:
        src = tmp_path / case / "in"
        src.mkdir(parents=True)
        path, extra, name = CASES[case](Corpus(data_dir, src))
        out = tmp_path / case / "out"
        cmd = [sys.executable, "-m", "spikewatch", "analyze", str(path), "--out", str(out), *extra]
        procs.append((case, name, out, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                                        text=True)))
    for case, name, out, proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 2, (case, stdout, stderr)
        _one_error_line(stderr, name)
        assert _nothing_written(out), case


def _refuse(monkeypatch, target: Path, how: str) -> None:
    """Make ``target`` unreadable without file modes (tests may run as root, which ignores them)."""
    target = os.path.abspath(target)
    if how == "access":
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode, *a, **k: os.path.abspath(p) != target
                            and real(p, mode, *a, **k))
        return

    def denied(name):
        return PermissionError(13, "Permission denied", os.fspath(name))

    real_open, real_os_open = builtins.open, os.open

    def fake_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.path.abspath(os.fspath(file)) == target:
            raise denied(file)
        return real_open(file, *args, **kwargs)

    def fake_os_open(file, *args, **kwargs):
        if os.path.abspath(os.fspath(file)) == target:
            raise denied(file)
        return real_os_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "open", fake_os_open)


@pytest.mark.parametrize("target, how", [
    ("106.hea", "access"), ("106.hea", "open"), ("106.dat", "open"), ("106.atr", "open"),
    ("rec.edf", "access"), ("rec.edf", "open"), ("seg.txt", "access"), ("seg.txt", "open"),
    ("seg.mat", "open"), ("seg_raw.fif", "open"),
])
def test_unreadable_file(target, how, data_dir, tmp_path, monkeypatch, capsys):
    k = Corpus(data_dir, tmp_path)
    make, extra = {"106.hea": (k.wfdb, []), "106.dat": (k.wfdb, []), "106.atr": (k.wfdb, []),
                   "rec.edf": (k.edf, []), "seg.txt": (k.bonn, ["--sfreq", "173.61"]),
                   "seg.mat": (k.delhi, ["--sfreq", "200"]), "seg_raw.fif": (k.fif, [])}[target]
    path = make()
    out = tmp_path / "out"
    _refuse(monkeypatch, tmp_path / target, how)
    with pytest.raises(SpikewatchError) as info:
        read_recording(path, sfreq=float(extra[1]) if extra else None).get_data(0, 1)
    assert target in str(info.value) and "\n" not in str(info.value)
    capsys.readouterr()
    assert main(["analyze", str(path), "--out", str(out), "--no-html", *extra]) == 2
    _one_error_line(capsys.readouterr().err, target)
    assert _nothing_written(out)


# =============================================================== kill -9 and re-run

def _analyze(rec: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "spikewatch", "analyze", str(rec), "--stop", "60",
                             "--out", str(out), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_during_analyze_then_rerun(mitdb, tmp_path):
    """Killed while its report is being written: no report folder; the re-run cleans up and matches a clean run."""
    out, ref = tmp_path / "out", tmp_path / "ref"
    clean = _analyze(mitdb / "106", ref)  # the uninterrupted run, side by side
    victim = _analyze(mitdb / "106", out)
    t0 = time.monotonic()
    while not list(out.glob(".106.*.partial")):  # the report is being assembled
        assert victim.poll() is None, f"finished before it could be killed: {victim.communicate()}"
        assert time.monotonic() - t0 < 300
        time.sleep(0.01)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL
    assert not (out / "106").exists()  # never a folder with the final name that is not complete
    left = sorted(p.name for p in out.iterdir())
    assert left and all(re.fullmatch(r"\.106\..+\.partial", n) for n in left), left
    assert clean.wait(timeout=300) == 0, clean.stderr.read()

    rerun = _analyze(mitdb / "106", out)
    assert rerun.wait(timeout=300) == 0, rerun.stderr.read()
    assert sorted(p.name for p in out.iterdir()) == ["106"]  # leftovers removed
    a, b = out / "106", ref / "106"
    assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
    for name in ("events.tsv", "beats.tsv", "annotations.csv", "events.json", "recording.edf", "report.html"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    sa, sb = (json.loads((f / "summary.json").read_text()) for f in (a, b))
    assert {k for k in sa if sa[k] != sb[k]} <= TIMING


def test_sigkill_while_analysing_leaves_nothing(mitdb, tmp_path):
    out = tmp_path / "out"
    # the reference simulator on the whole record (the later --stop wins): still running at 4 s
    proc = _analyze(mitdb / "106", out, "--backend", "nengo", "--stop", "1800")
    time.sleep(4.0)  # imports done, reading and simulating
    assert proc.poll() is None
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _nothing_written(out)


def test_stale_partials_removed_only_when_their_writer_is_gone(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    live, dead = out / ".106.live.partial", out / ".106.dead.partial"
    for d in (live, dead):
        d.mkdir()
        (d / "events.tsv").write_text("onset\n")
    (out / f".106.{2**22 + 12345}.old").mkdir()  # a pid that cannot exist (above pid_max)
    (out / f".106.{os.getpid()}.old").mkdir()  # this (live) process
    fd = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a writer still working on it
    try:
        removed = clean_stale_reports(out, "106")
    finally:
        os.close(fd)
    assert sorted(p.name for p in removed) == [".106.4206649.old", ".106.dead.partial"]
    assert live.is_dir() and (out / f".106.{os.getpid()}.old").is_dir()
    assert [p.name for p in clean_stale_reports(out, "106")] == [".106.live.partial"]  # its writer is gone now


# =============================================================== security

def _python_files():
    return sorted(PACKAGE.rglob("*.py"))


def test_no_pickle_anywhere_model_data_is_loaded():
    """No pickle-based loader is imported or called in the package; every np.load says allow_pickle=False."""
    banned_modules = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}
    banned_calls = {"read_pickle", "torch.load"}
    np_loads = 0
    for path in _python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert not {a.name.split(".")[0] for a in node.names} & banned_modules, (path, ast.dump(node))
            elif isinstance(node, ast.ImportFrom):
                assert (node.module or "").split(".")[0] not in banned_modules, (path, node.module)
            elif isinstance(node, ast.Call):
                name = ast.unparse(node.func)
                assert name.split(".")[-1] not in banned_calls and name not in banned_calls, (path, name)
                kw = {k.arg: k.value for k in node.keywords}
                if "allow_pickle" in kw:
                    assert isinstance(kw["allow_pickle"], ast.Constant) and kw["allow_pickle"].value is False, (
                        path, ast.unparse(node))
                if name in ("np.load", "numpy.load"):
                    np_loads += 1
                    assert "allow_pickle" in kw, (path, ast.unparse(node))
    assert np_loads >= 1  # the bundle loader (spikewatch/bundle.py) is among them


def test_stale_and_report_symlinks_out_of_out_are_not_followed(tmp_path):
    """A symlink named like a leftover or like the report is never followed out of --out."""
    out, victim = tmp_path / "out", tmp_path / "victim"
    out.mkdir()
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    (out / ".106.evil.partial").symlink_to(victim, target_is_directory=True)
    (out / f".106.{2**22 + 1}.old").symlink_to(victim, target_is_directory=True)
    with report_dir(out, "106") as tmp:
        (tmp / "events.tsv").write_text("onset\n")
    assert (victim / "keep.txt").read_text() == "precious" and sorted(p.name for p in victim.iterdir()) == ["keep.txt"]
    assert (out / ".106.evil.partial").is_symlink() and (out / "106" / "events.tsv").is_file()
    os.symlink(victim, out / "213", target_is_directory=True)
    with pytest.raises(SpikewatchError, match="symlink"):
        with report_dir(out, "213"):
            pass
    assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"]


def test_batch_files_replace_symlinks_instead_of_following_them(tmp_path):
    from spikewatch.batch import BATCH_TSV, INDEX_HTML, TSV_COLUMNS, write_batch_outputs

    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    for name in (BATCH_TSV, INDEX_HTML):
        (outside / name).write_text("not yours")
        (out / name).symlink_to(outside / name)
    row = dict.fromkeys(TSV_COLUMNS, "")
    row.update(recording_id="106", input="106.hea", status="ok", n_events=3, seconds=1.0, report="106")
    write_batch_outputs(out, [row])
    for name in (BATCH_TSV, INDEX_HTML):
        assert (outside / name).read_text() == "not yours"
        assert not (out / name).is_symlink() and "106" in (out / name).read_text()


def test_prefect_server_and_dask_bind_localhost_only(tmp_path, monkeypatch):
    """The server spikewatch starts is told --host 127.0.0.1; local Dask clusters and Prefect's
    ephemeral API listen on 127.0.0.1 too."""
    import inspect

    from prefect.server.api.server import SubprocessASGIServer

    from spikewatch.config import PipelineConfig
    from spikewatch.pipelines import serve
    from spikewatch.pipelines.flows import make_task_runner

    seen = []

    class Exited:
        pid, returncode = 1, 3

        def __init__(self, cmd, **kwargs):
            seen.append(cmd)

        def poll(self):
            return self.returncode

    monkeypatch.setenv("PREFECT_SERVER_API_HOST", "0.0.0.0")  # the user's environment must not widen it
    monkeypatch.setattr(serve.subprocess, "Popen", Exited)
    with pytest.raises(SpikewatchError, match="exited with code 3"):
        with serve.local_server(port=serve.free_port(), timeout_s=5):
            pass
    (cmd,) = seen
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1" and "0.0.0.0" not in cmd
    runner = make_task_runner(PipelineConfig(workers=2))
    assert runner.cluster_kwargs["host"] == "127.0.0.1" and runner.cluster_kwargs["dashboard_address"] is None
    assert re.search(r'"--host",\s*"127\.0\.0\.1"', inspect.getsource(SubprocessASGIServer))
