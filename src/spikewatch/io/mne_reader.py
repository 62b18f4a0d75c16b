"""Formats MNE reads (EDF, BDF, GDF, FIF, BrainVision, EEGLAB, ...).

EDF and BDF headers are checked against the file size before MNE sees the
file, so a truncated file or a header claiming too many data records gives a
clear error instead of a partial read or a huge allocation.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import mne

from spikewatch.errors import RecordingError
from spikewatch.io._checks import check_file, check_sfreq, condense

# MNE's own table (mne/io/_read_raw.py, MNE 1.12), minus the extensions that
# spikewatch reads itself (.txt, .asc, .mat) or that need a WFDB header check (.dat).
MNE_EXTENSIONS = (
    ".edf",
    ".bdf",
    ".gdf",
    ".fif",
    ".fif.gz",
    ".vhdr",
    ".ahdr",
    ".set",
    ".cnt",
    ".eeg",
    ".mff",
    ".mefd",
    ".nxe",
    ".hdr",
    ".snirf",
    ".bin",
    ".data",
    ".sqd",
    ".con",
    ".ds",
    ".dat",
    ".dap",
    ".rs3",
    ".cdt",
    ".cdt.dpa",
    ".cdt.cef",
    ".cef",
    ".nedf",
    ".ns3",
    ".lay",
)
# MNE formats stored as folders
MNE_DIR_EXTENSIONS = (".ds", ".mff", ".mefd")
_ANNOTATION_LABELS = {"EDF Annotations", "BDF Annotations"}


def _field(path: Path, block: bytes, name: str, kind: type):
    text = block.decode("ascii", errors="backslashreplace").strip()
    try:
        return kind(text)
    except ValueError:
        raise RecordingError(path, f"corrupt EDF/BDF header: {name} is {text[:20]!r}, not a number") from None


def check_edf_header(path: Path, ext: str) -> None:
    """Validate an EDF/BDF header against the file size before reading.

    Parameters
    ----------
    path : pathlib.Path
        The ``.edf`` / ``.bdf`` file.
    ext : {'.edf', '.bdf'}
        Expected flavour (2- or 3-byte samples).

    Raises
    ------
    RecordingError
        Empty, not EDF/BDF, corrupt numeric fields, annotation-only, absurd
        sampling rate, or fewer bytes than the header declares.
    """
    size = check_file(path)
    bdf = ext == ".bdf"
    try:
        with path.open("rb") as fh:
            head = fh.read(256)
            version = head[:8]
            if (bdf and version != b"\xffBIOSEMI") or (not bdf and version.strip() != b"0"):
                raise RecordingError(
                    path, f"not a valid {ext[1:].upper()} file (bad version field {version!r})"
                )
            if len(head) < 256:
                raise RecordingError(path, f"truncated: {size} bytes, shorter than the 256-byte header")
            n_sig = _field(path, head[252:256], "number of signals", int)
            if not 0 < n_sig <= 10_000:
                raise RecordingError(path, f"corrupt EDF/BDF header: {n_sig} signals")
            sig_head = fh.read(256 * n_sig)
    except OSError as exc:
        raise RecordingError(path, f"cannot read file: {condense(exc)}") from exc
    if len(sig_head) < 256 * n_sig:
        raise RecordingError(path, "truncated: the signal header is incomplete")
    n_records = _field(path, head[236:244], "number of data records", int)
    rec_dur = _field(path, head[244:252], "data record duration", float)
    labels = [sig_head[16 * i : 16 * i + 16].decode("latin-1").strip() for i in range(n_sig)]
    off = n_sig * (16 + 80 + 8 + 8 + 8 + 8 + 8 + 80)
    n_samp = [
        _field(path, sig_head[off + 8 * i : off + 8 * i + 8], "samples per record", int) for i in range(n_sig)
    ]
    signals = [n for lab, n in zip(labels, n_samp) if lab not in _ANNOTATION_LABELS]
    if not signals:
        raise RecordingError(path, "no signal channels (annotation-only EDF+ file)")
    if any(n < 0 for n in n_samp):
        raise RecordingError(path, "corrupt EDF/BDF header: negative samples per record")
    if rec_dur > 0:
        check_sfreq(path, max(signals) / rec_dur, "from the header")
    elif n_records != 0:
        raise RecordingError(path, f"invalid data record duration {rec_dur!r} s in the header")
    if n_records == -1:  # still being recorded: the length is unknown
        return
    if n_records < 0:
        raise RecordingError(path, f"corrupt EDF/BDF header: {n_records} data records")
    expected = 256 * (n_sig + 1) + n_records * sum(n_samp) * (3 if bdf else 2)
    if size < expected:
        raise RecordingError(
            path,
            f"truncated: header declares {n_records} data records ({expected} bytes) "
            f"but the file has {size} bytes",
        )


def read_mne(path: Path, ext: str) -> mne.io.BaseRaw:
    """Open a file with :func:`mne.io.read_raw` without loading its data.

    Parameters
    ----------
    path : pathlib.Path
        File (or folder, for CTF ``.ds`` / EGI ``.mff``).
    ext : str
        Lower-case extension, e.g. ``'.edf'``.

    Returns
    -------
    mne.io.BaseRaw
        Not preloaded; EDF+/BDF+ annotations are in ``raw.annotations``.
    """
    if ext in (".edf", ".bdf"):
        check_edf_header(path, ext)
    elif ext not in MNE_DIR_EXTENSIONS:
        check_file(path)
    kind = ext.lstrip(".").upper()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            raw = mne.io.read_raw(path, preload=False, verbose="error")
    except RecordingError:
        raise
    except Exception as exc:  # MNE readers raise anything from ValueError to struct.error
        raise RecordingError(path, f"cannot read {kind}: {condense(exc)}") from exc
    if len(raw.ch_names) == 0:
        raise RecordingError(path, "no signal channels")
    return raw
