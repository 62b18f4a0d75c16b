"""Atomic writers: a crash never leaves a half-written file or report folder.

Files are written to a temporary sibling and renamed into place (``os.replace``
is atomic on POSIX). A whole report folder is assembled under a hidden
temporary name inside the output folder and renamed to its final name only
when complete, so a folder with the final name is always a finished report.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from spikewatch.errors import SpikewatchError

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_id(name: str) -> str:
    """Sanitise a recording id into ``[A-Za-z0-9._-]``, never empty, never dot-only.

    Parameters
    ----------
    name : str
        Raw id (file stem, user text, ...).

    Returns
    -------
    str
    """
    cleaned = _SAFE.sub("_", str(name)).strip("._") or "recording"
    return cleaned[:128]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file and an atomic rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 text atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented, key-sorted JSON, atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def write_tsv(path: str | os.PathLike, columns: list[str], rows) -> None:
    """Write a tab-separated table with a header row, atomically.

    Parameters
    ----------
    path : path-like
        Destination.
    columns : list of str
        Header.
    rows : iterable of sequences
        One sequence of values per row; floats are written with ``repr``-exact
        ``%.6g``-free formatting as given (format them before if needed).
    """
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow(["n/a" if v is None else v for v in r])
    atomic_write_text(path, buf.getvalue())


def _inside(root: Path, target: Path) -> bool:
    try:
        target.relative_to(root)
        return True
    except ValueError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def clean_stale_reports(root: Path, name: str) -> list[Path]:
    """Remove the temporary folders of report ``name`` that killed runs left in ``root``.

    A writer holds an ``flock`` on its ``.<name>.*.partial`` folder while it
    assembles it (released by the OS when the process dies), so only folders
    nobody holds are removed; a ``.<name>.<pid>.old`` folder (the previous
    report, moved aside for an instant) only when that process is gone.

    Parameters
    ----------
    root : pathlib.Path
        Output root.
    name : str
        Sanitised report name (see :func:`safe_id`).

    Returns
    -------
    list of pathlib.Path
        What was removed.
    """
    removed = []
    for p in root.glob(f".{name}.*.partial"):
        if p.is_symlink() or not p.is_dir():
            continue
        try:
            fd = os.open(p, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # a live writer holds it
            os.close(fd)
            continue
        try:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
        finally:
            os.close(fd)
    for p in root.glob(f".{name}.*.old"):
        pid = p.name[len(name) + 2: -len(".old")]
        if pid.isdigit() and not p.is_symlink() and p.is_dir() and not _pid_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed


@contextmanager
def report_dir(out: str | os.PathLike, record_id: str):
    """Build ``<out>/<record_id>/`` atomically.

    Yields a temporary folder inside ``out``; on success it replaces any
    previous report of the same id in one rename; on error it is removed and
    the previous report (if any) stays untouched. Temporary folders of the same
    id left by killed runs are removed first (:func:`clean_stale_reports`).

    Parameters
    ----------
    out : path-like
        Output root (created if missing).
    record_id : str
        Recording id (sanitised with :func:`safe_id`).

    Yields
    ------
    pathlib.Path
        The temporary folder to write into.
    """
    root = Path(out).resolve()
    root.mkdir(parents=True, exist_ok=True)
    final = root / safe_id(record_id)
    if not _inside(root, final.resolve().parent) or final.is_symlink():
        raise SpikewatchError(f"{final}: refusing to write outside --out or through a symlink")
    clean_stale_reports(root, final.name)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=root))
    lock = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(lock, fcntl.LOCK_EX)  # ours until this process ends (see clean_stale_reports)
    try:
        yield tmp
        old = None
        if final.exists():
            old = root / f".{final.name}.{os.getpid()}.old"
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        os.close(lock)
