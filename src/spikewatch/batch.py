"""Batch logic without Prefect: what to analyse, what is already done, what to write.

The Prefect flows in :mod:`spikewatch.pipelines` are thin shells over these
functions and :mod:`spikewatch.jobs`:

* :func:`plan_batch` turns folders, glob patterns, manifest files and single
  recordings into one :class:`BatchItem` per recording (via
  :func:`spikewatch.io.list_recordings`), each with the id of its report folder;
* :func:`analyze_item` analyses one item, or skips it when ``OUT/<id>/`` already
  holds a finished report of the same input bytes (SHA-256), config hash, span
  and spikewatch version;
* :func:`batch_lock` / :func:`clean_stale` keep one batch at a time per output
  folder and remove what a killed run left half-written;
* :func:`write_batch_outputs` writes ``batch.tsv`` and ``index.html``.
"""

from __future__ import annotations

import errno
import fcntl
import glob
import html
import json
import os
import re
import shutil
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

from spikewatch.errors import RecordingError, SpikewatchError

STATUS_OK = "ok"
STATUS_FAILED = "failed"
STATUS_SKIPPED = "skipped-unchanged"
STATUSES = (STATUS_OK, STATUS_FAILED, STATUS_SKIPPED)
#: text files with these suffixes are manifests (one recording path per line)
MANIFEST_SUFFIXES = (".list", ".lst", ".manifest")
BATCH_TSV = "batch.tsv"
INDEX_HTML = "index.html"
LOCK_NAME = ".spikewatch-batch.lock"
TSV_COLUMNS = ["recording_id", "input", "status", "n_events", "seconds", "report", "reason"]
_GLOB_CHARS = re.compile(r"[*?[]")
# temporary names left by spikewatch.io.writers (report_dir and atomic_write_*) when a run is killed
_STALE = re.compile(r"^\..+\.(partial|\d+\.old|tmp)$")


class InputChanged(OSError):
    """The input's bytes changed while it was analysed (a file still being written).

    An ``OSError``: transient, the pipelines retry it with back-off.
    """


class ItemFailed(SpikewatchError):
    """One recording of a batch failed for a reason its own input caused (not retried).

    Carries only the one-line message, so it crosses process boundaries
    (Dask workers) intact.
    """


class BatchLocked(SpikewatchError):
    """Another batch is writing into the same output folder right now."""

    exit_code = 1


class BatchFailed(SpikewatchError):
    """Some recordings of a batch failed (the others completed): exit code 1.

    Parameters
    ----------
    message : str
        One line.
    rows : list of dict, optional
        Every recording's ``batch.tsv`` row.
    """

    exit_code = 1

    def __init__(self, message: str, rows: list[dict] | None = None):
        super().__init__(message, rows)  # both in args: survives pickling
        self.message = message
        self.rows = rows or []

    def __str__(self) -> str:
        return self.message


def rows_of(result) -> list[dict]:
    """Batch rows from a batch flow's result: its list, or a :class:`BatchFailed`'s rows.

    Parameters
    ----------
    result : list or BaseException
        ``state.result(raise_on_failure=False)`` of a ``batch_analyze`` run.

    Returns
    -------
    list of dict

    Raises
    ------
    BaseException
        ``result`` itself when the flow failed before analysing (bad config, locked folder, ...).
    """
    if isinstance(result, BatchFailed):
        return result.rows
    if isinstance(result, BaseException):
        raise result
    return result


@dataclass(frozen=True)
class BatchItem:
    """One recording to analyse and the id of its report folder.

    Attributes
    ----------
    path : str
        The recording as :func:`spikewatch.io.read_recording` takes it.
    record_id : str
        Report folder name under the output root; normally the reader's id
        (file stem), made unique within the batch by prefixing parent folders.
    """

    path: str
    record_id: str

    def to_dict(self) -> dict:
        """JSON-able form (Prefect parameters)."""
        return asdict(self)


# --------------------------------------------------------------------------- inputs

def is_manifest(path: Path) -> bool:
    """Whether ``path`` is a manifest file rather than a recording.

    Parameters
    ----------
    path : pathlib.Path
        An existing file.

    Returns
    -------
    bool
        True for ``.list`` / ``.lst`` / ``.manifest`` files, and for ``.txt``
        files whose start is not numeric (a numeric ``.txt`` is an EEG segment).
    """
    from spikewatch.io import segments

    suffix = path.suffix.lower()
    if suffix in MANIFEST_SUFFIXES:
        return True
    return suffix == ".txt" and not segments.is_listing(path) and not segments.looks_numeric(path)


def read_manifest(path: str | os.PathLike) -> list[Path]:
    """Recording paths listed in a manifest file.

    One path per line, relative to the manifest's folder or absolute; blank
    lines and lines starting with ``#`` are ignored. Listed folders are
    expanded with :func:`spikewatch.io.list_recordings`; listed paths that do
    not exist are kept, so they fail as their own batch item.

    Parameters
    ----------
    path : path-like
        The manifest.

    Returns
    -------
    list of pathlib.Path
    """
    from spikewatch.io import list_recordings

    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordingError(path, f"cannot read manifest: {exc}") from None
    out: list[Path] = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        p = Path(line).expanduser()
        p = p if p.is_absolute() else path.parent / p
        out.extend(list_recordings(p) if p.is_dir() else [p])
    return out


def _glob(pattern: str) -> list[Path]:
    """Recordings matched by a glob pattern (``**`` recurses).

    Matched folders are listed; a matched file counts when
    :func:`~spikewatch.io.list_recordings` of its folder lists it or a
    recording it belongs to (``106.dat`` selects record ``106.hea``), so
    READMEs and checksum files matched by ``*`` drop out.
    """
    from spikewatch.io import list_recordings
    from spikewatch.report import input_files

    out: list[Path] = []
    owners: dict[Path, dict[Path, Path]] = {}  # folder -> {file: recording it belongs to}
    for m in sorted(Path(g) for g in glob.glob(os.path.expanduser(pattern), recursive=True)):
        if m.is_dir():
            out.extend(list_recordings(m))
            continue
        folder = m.parent
        if folder not in owners:
            owners[folder] = {}
            for rec in list_recordings(folder):
                if rec.parent == folder:
                    for f in [rec, *input_files(rec)]:
                        owners[folder].setdefault(f.resolve(), rec)
        rec = owners[folder].get(m.resolve())
        if rec is not None:
            out.append(rec)
    return out


def collect_inputs(inputs: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """Expand the user's inputs into recording paths (duplicates included).

    Parameters
    ----------
    inputs : path-like or sequence of path-likes
        Each one a folder (searched recursively), a glob pattern (quoted, so
        the shell leaves it; ``**`` recurses), a manifest file (see
        :func:`read_manifest`) or one recording (file, WFDB record, channel folder).

    Returns
    -------
    list of pathlib.Path

    Raises
    ------
    RecordingError
        An input that does not exist and matches nothing.
    """
    from spikewatch.io import list_recordings, mne_reader
    from spikewatch.io.readers import split_ext

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    out: list[Path] = []
    for raw in inputs:
        p = Path(raw).expanduser()
        if p.is_dir():
            is_recording_dir = split_ext(p) in mne_reader.MNE_DIR_EXTENSIONS
            out.extend([p] if is_recording_dir else list_recordings(p))
        elif p.is_file():
            out.extend(read_manifest(p) if is_manifest(p) else [p])
        elif Path(str(p) + ".hea").is_file():  # WFDB record name without extension
            out.append(p)
        elif _GLOB_CHARS.search(str(raw)):
            found = _glob(str(raw))
            if not found:
                raise RecordingError(raw, "glob pattern matches no recording")
            out.extend(found)
        else:
            raise RecordingError(p, "not found (expected a folder, a glob pattern, a manifest or a recording)")
    return out


def planned_id(path: str | os.PathLike) -> str:
    """Report folder name the reader gives a recording, without reading it.

    Parameters
    ----------
    path : path-like
        A recording path.

    Returns
    -------
    str
        The file name without its (possibly double) extension, made safe.
    """
    from spikewatch.io import mne_reader
    from spikewatch.io.readers import split_ext
    from spikewatch.io.recording import safe_record_id

    p = Path(path)
    ext = split_ext(p)
    if p.is_dir():
        ext = ext if ext in mne_reader.MNE_DIR_EXTENSIONS else ""
    elif p.suffix.lower() in (".hea", ".dat", ".atr") and Path(str(p)[: -len(p.suffix)] + ".hea").is_file():
        ext = p.suffix
    elif not p.exists() and Path(str(p) + ".hea").is_file():
        ext = ""  # WFDB record name without extension
    name = p.name[: -len(ext)] if ext else p.name
    return safe_record_id(name)


def _unique_ids(paths: list[Path]) -> list[str]:
    """One id per path; clashing ids get their parent folder names prefixed (``ictal_1``)."""
    ids = [planned_id(p) for p in paths]
    depth = 0
    while len(set(ids)) < len(ids) and depth < 32:
        depth += 1
        counts: dict[str, int] = {}
        for i in ids:
            counts[i] = counts.get(i, 0) + 1
        for k, p in enumerate(paths):
            if counts[ids[k]] > 1:
                parents = [q.name for q in list(Path(os.path.abspath(p)).parents)[:depth] if q.name][::-1]
                ids[k] = "_".join(parents + [planned_id(p)]) if parents else ids[k]
    seen: dict[str, int] = {}
    for k, i in enumerate(ids):  # identical paths in different spellings: numbered
        if i in seen:
            seen[i] += 1
            ids[k] = f"{i}_{seen[i]}"
        else:
            seen[i] = 1
    return ids


def plan_batch(inputs: str | os.PathLike | Sequence[str | os.PathLike], missing_ok: bool = False,
               skipped: list[str] | None = None) -> list[BatchItem]:
    """The batch's work list: one item per distinct recording, in a stable order.

    Parameters
    ----------
    inputs : path-like or sequence of path-likes
        As in :func:`collect_inputs`.
    missing_ok : bool
        Skip inputs that do not exist (an inbox not created yet) and allow an
        empty list, instead of raising.
    skipped : list, optional
        Receives the inputs skipped because they do not exist.

    Returns
    -------
    list of BatchItem
        The same recording reached twice (``106.hea`` and ``106.dat``, or a
        folder and a file in it) is listed once; paths are absolute.

    Raises
    ------
    SpikewatchError
        An input is missing, or no recording was found at all (unless ``missing_ok``).
    """
    from spikewatch.report import input_files

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    found: list[Path] = []
    for one in inputs:
        try:
            found.extend(collect_inputs([one]))
        except RecordingError:
            if not missing_ok:
                raise
            if skipped is not None:
                skipped.append(str(one))
    paths: list[Path] = []
    seen: set[tuple] = set()
    for p in found:
        key = tuple(str(f.resolve()) for f in input_files(p))
        if key in seen:
            continue
        seen.add(key)
        paths.append(Path(os.path.abspath(p)))
    if not paths and not missing_ok:
        raise SpikewatchError(f"{', '.join(map(str, inputs))}: no recording found")
    return [BatchItem(str(p), i) for p, i in zip(paths, _unique_ids(paths))]


# --------------------------------------------------------------------------- done work

def input_digest(path: str | os.PathLike) -> str:
    """Combined SHA-256 of a recording's files, as ``summary.json`` records it (``input.sha256``)."""
    from spikewatch.report import input_files, sha256_files

    try:
        return sha256_files(input_files(path))[0]
    except FileNotFoundError:
        raise RecordingError(path, "file not found") from None


def expected_span(rec, start: float | None, stop: float | None) -> tuple[float, float]:
    """``(start_s, duration_s)`` that :func:`spikewatch.analysis.analyze` will report for this span."""
    from spikewatch.analysis import _span

    s0, s1 = _span(rec, start, stop)
    return s0 / rec.sfreq, round((s1 - s0) / rec.sfreq, 4)


def read_summary(folder: str | os.PathLike) -> dict | None:
    """``summary.json`` of a report folder, or None if missing or unreadable."""
    try:
        return json.loads((Path(folder) / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def finished_report(folder: str | os.PathLike, input_sha: str, config_sha: str,
                    span: tuple[float, float]) -> dict | None:
    """The summary of a finished report of exactly this work, else None.

    Parameters
    ----------
    folder : path-like
        ``OUT/<id>/``.
    input_sha : str
        Combined SHA-256 of the input files now.
    config_sha : str
        :meth:`spikewatch.config.Config.digest` of the resolved config.
    span : (float, float)
        From :func:`expected_span`.

    Returns
    -------
    dict or None
        The parsed ``summary.json`` when input, config, span and spikewatch
        version all match and ``events.tsv`` is present.
    """
    from spikewatch import __version__

    folder = Path(folder)
    summary = read_summary(folder)
    if summary is None or not (folder / "events.tsv").is_file():
        return None
    try:
        same = (summary["input"]["sha256"] == input_sha and summary["config_sha256"] == config_sha
                and abs(float(summary["start_s"]) - span[0]) < 1e-9
                and abs(float(summary["duration_s"]) - span[1]) < 1e-9
                and summary.get("versions", {}).get("spikewatch") == __version__)
    except (KeyError, TypeError, ValueError):
        return None
    return summary if same else None


def _discard(folder: Path) -> None:
    """Remove a report folder: renamed to a hidden temp name first, so it vanishes in one step."""
    tmp = folder.with_name(f".{folder.name}.{os.getpid()}.old")
    try:
        os.replace(folder, tmp)
    except FileNotFoundError:
        return
    shutil.rmtree(tmp, ignore_errors=True)


def analyze_item(path: str, record_id: str, out: str | os.PathLike, config: str | None = None,
                 overrides: dict | None = None, start: float | None = None,
                 stop: float | None = None) -> dict:
    """Analyse one batch item unless a finished report of the same work exists.

    Parameters
    ----------
    path : str
        The recording.
    record_id : str
        Its report folder name (from :func:`plan_batch`).
    out : path-like
        Output root.
    config : str, optional
        Config file (default ``configs/<modality>.yaml``).
    overrides : dict, optional
        ``section__key`` overrides (as :func:`spikewatch.jobs.resolve_job`).
    start, stop : float, optional
        Analysed span (s).

    Returns
    -------
    dict
        A batch row (see :data:`TSV_COLUMNS`), status ``ok`` or ``skipped-unchanged``.

    Raises
    ------
    SpikewatchError
        Bad input or config (not transient).
    InputChanged
        The input's bytes changed during the analysis (its report is discarded).
    OSError
        I/O failure.
    """
    import time

    from spikewatch.jobs import resolve_job, run_job

    t0 = time.perf_counter()
    before = input_digest(path)
    rec, cfg = resolve_job(path, config, **(overrides or {}))
    rec.record_id = record_id
    folder = Path(out).resolve() / record_id
    span = expected_span(rec, start, stop)
    done = finished_report(folder, before, cfg.digest(), span)
    if done is not None:
        return _row(record_id, path, STATUS_SKIPPED, done.get("n_events"), time.perf_counter() - t0, folder)
    job = run_job(rec, cfg, out, start=start, stop=stop)
    written = (read_summary(job.folder) or {}).get("input", {}).get("sha256")
    if written != before:
        _discard(job.folder)
        raise InputChanged(errno.EAGAIN, "input changed while it was analysed (still being written?)", str(path))
    return _row(record_id, path, STATUS_OK, job.n_events, time.perf_counter() - t0, job.folder)


def _row(record_id: str, path: str, status: str, n_events, seconds: float | None,
         folder: Path | None, reason: str | None = None) -> dict:
    return {"recording_id": record_id, "input": str(path), "status": status, "n_events": n_events,
            "seconds": None if seconds is None else round(seconds, 2),
            "report": f"{folder.name}/" if folder is not None else None, "reason": reason}


def failed_row(item: BatchItem | dict, reason: str) -> dict:
    """Batch row of a recording that failed with ``reason`` (one line)."""
    d = item.to_dict() if isinstance(item, BatchItem) else item
    return _row(d["record_id"], d["path"], STATUS_FAILED, None, None, None, one_line(reason))


def one_line(text: str) -> str:
    """Collapse whitespace so a message fits one TSV cell / log line."""
    return " ".join(str(text).split())


def reason_of(exc: BaseException) -> str:
    """One-line reason of a failure, naming the file where the error does.

    Parameters
    ----------
    exc : BaseException
        What the analysis raised.

    Returns
    -------
    str
    """
    if isinstance(exc, SpikewatchError):
        return one_line(exc)
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        what = exc.strerror or str(exc) or type(exc).__name__
        return one_line(f"{where}{what} ({type(exc).__name__})")
    return one_line(f"internal error: {type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------- output folder

def clean_stale(out: str | os.PathLike) -> list[Path]:
    """Remove temporary report folders and files a killed run left in ``out``.

    Only call while holding :func:`batch_lock`: a concurrent writer's
    temporary folder looks the same.

    Parameters
    ----------
    out : path-like
        Output root.

    Returns
    -------
    list of pathlib.Path
        What was removed.
    """
    root = Path(out)
    removed = []
    if not root.is_dir():
        return removed
    for p in root.iterdir():
        if p.name == LOCK_NAME or not _STALE.match(p.name):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


@contextmanager
def batch_lock(out: str | os.PathLike):
    """Hold the output folder's batch lock (``OUT/.spikewatch-batch.lock``).

    An advisory ``flock``: released by the OS if the process dies, so a killed
    run never blocks the next one.

    Parameters
    ----------
    out : path-like
        Output root (created if missing).

    Raises
    ------
    BatchLocked
        Another live process holds it.
    """
    root = Path(out)
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise SpikewatchError(f"{root}: cannot create the output folder: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise BatchLocked(f"{root}: another spikewatch batch (pid {holder}) is writing here; "
                              "run again when it has finished") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield root
    finally:
        os.close(fd)  # closing releases the lock


def _link(out: Path, row: dict) -> str | None:
    if row["status"] == STATUS_FAILED or not row.get("report"):
        return None
    for name in ("report.html", "summary.json"):
        if (out / row["report"] / name).is_file():
            return row["report"] + name
    return row["report"]


def write_batch_tsv(out: str | os.PathLike, rows: Iterable[dict]) -> Path:
    """Write ``OUT/batch.tsv``: one row per recording (see :data:`TSV_COLUMNS`), atomically."""
    from spikewatch.io.writers import write_tsv

    path = Path(out) / BATCH_TSV
    write_tsv(path, TSV_COLUMNS, ([r.get(c) for c in TSV_COLUMNS] for r in rows))
    return path


def write_index_html(out: str | os.PathLike, rows: Sequence[dict], title: str = "spikewatch batch") -> Path:
    """Write ``OUT/index.html``: status, events and a link to each report, atomically.

    Links go to ``<id>/report.html`` when it exists, else ``<id>/summary.json``.
    """
    from spikewatch.io.writers import atomic_write_text

    root = Path(out)
    counts = {s: sum(r["status"] == s for r in rows) for s in STATUSES}
    e = html.escape
    body = []
    for r in rows:
        link = _link(root, r)
        name = f'<a href="{e(link, quote=True)}">{e(r["recording_id"])}</a>' if link else e(r["recording_id"])
        n = "" if r.get("n_events") is None else str(r["n_events"])
        body.append(f'<tr class="{e(r["status"])}"><td>{name}</td><td>{e(r["status"])}</td>'
                    f'<td class="num">{n}</td><td>{e(r.get("reason") or "")}</td>'
                    f'<td class="input">{e(r["input"])}</td></tr>')
    summary = ", ".join(f"{counts[s]} {s}" for s in STATUSES)
    text = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
td, th {{ border: 1px solid #ccc; padding: .3em .6em; text-align: left; vertical-align: top; }}
td.num {{ text-align: right; }} td.input {{ color: #666; font-size: smaller; }}
tr.failed td {{ background: #fde8e8; }} tr.skipped-unchanged td {{ color: #555; }}
</style></head><body>
<h1>{e(title)}</h1>
<p>{len(rows)} recordings: {e(summary)}.</p>
<table>
<tr><th>recording</th><th>status</th><th>events</th><th>reason</th><th>input</th></tr>
{chr(10).join(body)}
</table>
</body></html>
"""
    path = root / INDEX_HTML
    atomic_write_text(path, text)
    return path


def write_batch_outputs(out: str | os.PathLike, rows: Sequence[dict]) -> tuple[Path, Path]:
    """Write ``batch.tsv`` and ``index.html`` in the output root."""
    return write_batch_tsv(out, rows), write_index_html(out, rows)


def failures(rows: Iterable[dict]) -> list[dict]:
    """Rows whose status is ``failed``."""
    return [r for r in rows if r["status"] == STATUS_FAILED]
