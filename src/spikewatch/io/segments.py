"""Generic adapters for headerless segments: text columns, MATLAB arrays, one-file-per-channel folders.

These formats carry no sampling rate and no unit, so the caller supplies
``sfreq`` and ``unit``. Segments are small and are read whole.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from pathlib import Path

import numpy as np
import scipy.io

from spikewatch.errors import RecordingError
from spikewatch.io._checks import check_file, condense, read_bytes
from spikewatch.io.channels import natural_key

TEXT_EXTENSIONS = (".txt", ".inp", ".asc")
CSV_EXTENSIONS = (".csv",)
MAT_EXTENSIONS = (".mat",)
# folder files that are never channel data
_NOT_DATA = re.compile(r"^(readme|license|licence|sha\d*sums|md5sums|records|annotators|changes|notes)", re.I)
_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$|^[+-]?(?:nan|inf|infinity)$", re.I)


def is_listing(path: Path) -> bool:
    """Whether a file name marks documentation or a checksum/record listing (README, SHA256SUMS, RECORDS)."""
    return bool(_NOT_DATA.match(path.name))


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RecordingError(path, f"not a text file (invalid UTF-8 at byte {exc.start})") from None


def _to_float(path: Path, tokens: list[str]) -> np.ndarray:
    if not tokens:
        raise RecordingError(path, "no numbers in the file")
    try:
        return np.array(tokens, dtype=np.float64)
    except ValueError:
        for i, tok in enumerate(tokens):
            if not _NUMBER.match(tok):
                raise RecordingError(path, f"non-numeric value {tok[:20]!r} (value {i + 1})") from None
        raise RecordingError(path, "cannot parse the numbers in the file") from None


def looks_numeric(path: Path, nbytes: int = 1024) -> bool:
    """Cheap sniff: does the start of ``path`` look like whitespace-separated numbers?

    Used to tell data files from prose (``'Datasets Information.txt'``) in folders.
    """
    if is_listing(path):
        return False
    try:
        with path.open("rb") as fh:
            head = fh.read(nbytes)
            more = bool(fh.read(1))
        text = head.decode("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return False
    tokens = text.split()
    if more and tokens and not text[-1].isspace():
        tokens = tokens[:-1]  # may be cut in the middle
    return bool(tokens) and all(_NUMBER.match(t) for t in tokens)


def read_text(path: Path) -> np.ndarray:
    """Read a single-channel text segment: numbers separated by whitespace/newlines.

    Returns
    -------
    numpy.ndarray, shape (1, n_samples)
        Values as stored (not yet scaled to volts).
    """
    text = _decode(path, read_bytes(path))
    return _to_float(path, text.split())[None, :]


def read_csv(path: Path) -> tuple[np.ndarray, list[str] | None]:
    """Read a CSV table: one column per channel, optional header row of names.

    Returns
    -------
    data : numpy.ndarray, shape (n_columns, n_rows)
    names : list of str or None
        Header names, if the first row is not numeric.
    """
    text = _decode(path, read_bytes(path))
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise RecordingError(path, "no numbers in the file")
    sep = "," if "," in lines[0] else (";" if ";" in lines[0] else None)
    first = [c.strip() for c in lines[0].split(sep)]
    names = None
    if not all(_NUMBER.match(c) for c in first):
        names, lines = first, lines[1:]
    rows = [ln.split(sep) for ln in lines]
    n_col = len(names) if names else len(rows[0]) if rows else 0
    for i, row in enumerate(rows):
        if len(row) != n_col:
            row_no = i + 1 + (names is not None)
            raise RecordingError(path, f"row {row_no} has {len(row)} values, expected {n_col}")
    flat = _to_float(path, [c.strip() for row in rows for c in row])
    return flat.reshape(len(rows), n_col).T, names


def _mat_numeric(value: object) -> np.ndarray | None:
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "iuf" or value.size < 2:
        return None
    arr = np.squeeze(value)
    return arr if arr.ndim in (1, 2) else None


def read_mat(path: Path, variable: str | None = None) -> tuple[np.ndarray, str]:
    """Read a MATLAB (v4-v7.2) segment holding one numeric array.

    Parameters
    ----------
    path : pathlib.Path
        The ``.mat`` file.
    variable : str or None
        Variable to use when the file holds several numeric arrays.

    Returns
    -------
    data : numpy.ndarray, shape (n_channels, n_samples)
        The longer axis is taken as time.
    variable : str
        Name of the variable read.
    """
    # from memory: scipy reads what a header claims with stream.read(n), which on a file allocates n bytes
    # (a garbled MATLAB v4 header claimed 1.8 GB); a BytesIO hands back at most what the file holds
    data = read_bytes(path)
    try:
        content = scipy.io.loadmat(io.BytesIO(data))
    except NotImplementedError:
        raise RecordingError(path, "MATLAB v7.3 (HDF5) files are not supported; save with -v7") from None
    except Exception as exc:  # scipy raises ValueError, TypeError, OSError, ...
        raise RecordingError(path, f"cannot read MATLAB file: {condense(exc)}") from exc
    found = {k: v for k, v in content.items() if not k.startswith("__")}
    numeric = {k: a for k, v in found.items() if (a := _mat_numeric(v)) is not None}
    if variable is not None:
        if variable not in numeric:
            raise RecordingError(
                path,
                f"no numeric 1-D/2-D variable {variable!r}; numeric variables: {', '.join(numeric) or 'none'}",
            )
    elif len(numeric) == 1:
        variable = next(iter(numeric))
    elif not numeric:
        raise RecordingError(
            path, f"no numeric 1-D/2-D array in the file (variables: {', '.join(found) or 'none'})"
        )
    else:
        listing = ", ".join(f"{k} {'x'.join(map(str, a.shape))}" for k, a in numeric.items())
        raise RecordingError(path, f"several numeric variables ({listing}); choose one with mat_variable=")
    arr = np.asarray(numeric[variable], dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    elif arr.shape[0] >= arr.shape[1]:  # time along rows
        arr = arr.T
    return np.ascontiguousarray(arr), variable


def channel_files(folder: Path) -> list[Path]:
    """The per-channel data files of a folder, in natural name order.

    Data files are the numeric-looking text files with the folder's most
    common text extension; README-like and prose files are ignored.
    """
    try:
        entries = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    except OSError as exc:
        raise RecordingError(folder, f"cannot list folder: {condense(exc)}") from exc
    data = [p for p in entries if p.suffix.lower() in TEXT_EXTENSIONS and looks_numeric(p)]
    if not data:
        return []
    counts = Counter(p.suffix.lower() for p in data)
    ext = max(sorted(counts), key=counts.__getitem__)
    return sorted((p for p in data if p.suffix.lower() == ext), key=lambda p: natural_key(p.name))


def read_text_folder(folder: Path) -> tuple[np.ndarray, list[str]]:
    """Read a folder holding one single-channel text file per channel.

    Returns
    -------
    data : numpy.ndarray, shape (n_files, n_samples)
    names : list of str
        File stems (``'ch01'``, ...).

    Raises
    ------
    RecordingError
        No data files, or files of different lengths (the odd one is named).
    """
    files = channel_files(folder)
    if not files:
        raise RecordingError(folder, "is a directory without channel text files, expected a recording file")
    columns = [read_text(p)[0] for p in files]
    lengths = Counter(len(c) for c in columns)
    n = lengths.most_common(1)[0][0]
    for p, c in zip(files, columns):
        if len(c) != n:
            raise RecordingError(folder, f"{p.name} has {len(c)} samples, the other channel files have {n}")
    return np.vstack(columns), [p.stem for p in files]
