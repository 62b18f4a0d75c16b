"""Format dispatch: :func:`read_recording` and :func:`list_recordings`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import mne

from spikewatch.errors import RecordingError
from spikewatch.io import mne_reader, segments, wfdb_reader
from spikewatch.io._checks import check_finite, check_sfreq, condense, unit_scale
from spikewatch.io.channels import (
    MODALITIES,
    assign_types,
    looks_like_channel_stem,
    natural_key,
    unique_names,
)
from spikewatch.io.recording import Recording, resolve_picks, safe_record_id

WFDB_EXTENSIONS = (".hea", ".atr")
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(
    dict.fromkeys(
        WFDB_EXTENSIONS
        + segments.TEXT_EXTENSIONS
        + segments.CSV_EXTENSIONS
        + segments.MAT_EXTENSIONS
        + mne_reader.MNE_EXTENSIONS
    )
)
_MULTI_SUFFIXES = tuple(e for e in SUPPORTED_EXTENSIONS if e.count(".") > 1)
_SEGMENT_UNITS = ("V", "mV", "uV", "µV")
# files that belong to another file's recording (BrainVision data/markers, Curry sidecars)
_COMPANIONS = {
    ".eeg": (".vhdr", ".ahdr"),
    ".dap": (".cdt", ".dat"),
    ".rs3": (".cdt", ".dat"),
    ".cef": (".cdt", ".dat"),
    ".cdt.dpa": (".cdt",),
    ".cdt.cef": (".cdt",),
}
_CHUNK_SECONDS = 60.0


def split_ext(path: Path) -> str:
    """Lower-case extension of ``path``, including double ones (``'.fif.gz'``)."""
    name = path.name.lower()
    for ext in _MULTI_SUFFIXES:
        if name.endswith(ext) and len(name) > len(ext):
            return ext
    return path.suffix.lower()


def _unsupported(path: Path, ext: str) -> RecordingError:
    listed = ", ".join(mne_reader.MNE_EXTENSIONS)
    return RecordingError(
        path,
        f"unsupported file type '{ext or '(none)'}'; supported: {listed}, "
        "WFDB records (.hea or record name), .txt/.inp/.asc/.csv/.mat segments (need sfreq)",
    )


def _detect(path: Path) -> tuple[str, Path, str]:
    """Return ``(kind, path to open, extension)`` for a user-given path."""
    if path.is_dir():
        ext = split_ext(path)
        if ext in mne_reader.MNE_DIR_EXTENSIONS:
            return "mne", path, ext
        return "text-multi", path, ""
    if not path.exists():
        hea = Path(str(path) + ".hea")
        if hea.is_file():  # record name without extension
            return "wfdb", hea, ".hea"
        hint = "" if path.suffix else f" (no WFDB header {hea.name} either)"
        raise RecordingError(path, f"file not found{hint}")
    ext = split_ext(path)
    if ext == ".hea":
        return "wfdb", path, ext
    sibling = Path(wfdb_reader.record_stem(path) + ".hea")
    if sibling.is_file() and (ext in (".dat", ".mat", ".atr") or ext not in SUPPORTED_EXTENSIONS):
        return "wfdb", sibling, ext
    if ext in segments.TEXT_EXTENSIONS:
        return "text", path, ext
    if ext in segments.CSV_EXTENSIONS:
        return "csv", path, ext
    if ext in segments.MAT_EXTENSIONS:
        return "mat", path, ext
    if ext in mne_reader.MNE_EXTENSIONS:
        return "mne", path, ext
    raise _unsupported(path, ext)


def read_recording(
    path: str | os.PathLike,
    *,
    channels: Sequence[str | int] | None = None,
    modality: str | None = None,
    sfreq: float | None = None,
    ch_names: Sequence[str] | None = None,
    preload: bool = False,
    unit: str | None = "uV",
    mat_variable: str | None = None,
) -> Recording:
    """Open any supported recording as a :class:`Recording`.

    Parameters
    ----------
    path : path-like
        - WFDB: the ``.hea``, the record name without extension, or the
          record's ``.dat`` / ``.mat`` / ``.atr``;
        - a file MNE reads (``.edf``, ``.bdf``, ``.gdf``, ``.fif``, ``.vhdr``,
          ``.set``, ...; see :data:`SUPPORTED_EXTENSIONS`);
        - a headerless segment: single-channel text (``.txt``, ``.inp``,
          ``.asc``), a CSV table (one column per channel), a MATLAB ``.mat``
          array without a sibling ``.hea``;
        - a folder holding one text file per channel (``ch01.inp`` ...).
    channels : sequence of str or int, optional
        Channels to keep, by name (after ``ch_names`` renaming) or position;
        ``None`` or empty keeps all.
    modality : {'ecg', 'eeg'}, optional
        Forces the modality. Otherwise it is inferred from channel names,
        falling back to ``'ecg'`` for WFDB and ``'eeg'`` for everything else.
        Channels whose names say nothing take the modality's type.
    sfreq : float, optional
        Sampling rate in Hz. Required for text/CSV/MATLAB segments; ignored by
        formats that store their own rate.
    ch_names : sequence of str, optional
        New names for all channels, in file order (multi-file folders default
        to file stems, other segments to ``ch1``, ``ch2``, ...); ``None`` or
        empty keeps the file's names.
    preload : bool
        Load all samples now (checked for NaN/Inf) instead of on demand.
    unit : {'uV', 'mV', 'V'} or None
        Unit of the numbers in text/CSV/MATLAB segments (converted to volts);
        ``None`` means ``'uV'``.
    mat_variable : str, optional
        Variable to read from a MATLAB file holding several numeric arrays.

    Returns
    -------
    Recording
        Lazy (unless ``preload``) recording with channel types and reference
        annotations.

    Raises
    ------
    RecordingError
        Missing, unreadable, truncated, corrupt or unsupported input, unknown
        channel, invalid or missing sampling rate, no usable channel.
    ValueError
        Invalid ``modality`` or ``unit``.
    """
    if modality is not None and modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES} or None, not {modality!r}")
    unit = unit or "uV"
    if unit not in _SEGMENT_UNITS:
        raise ValueError(f"unit must be one of {_SEGMENT_UNITS}, not {unit!r}")
    path = Path(path).expanduser()
    kind, target, ext = _detect(path)
    units = None
    trust_types = False
    annotations = None
    if kind == "wfdb":
        header = wfdb_reader.read_wfdb_header(target)
        raw = wfdb_reader.RawWFDB(header, unique_names(header.names))
        annotations = wfdb_reader.read_atr(header)
        date = wfdb_reader.meas_date(header)
        if date is not None:
            raw.set_meas_date(date)
        raw.info["description"] = wfdb_reader.comments_text(header)
        units, fmt, default, record_id = header.units, "wfdb", "ecg", Path(header.record).name
    elif kind == "mne":
        raw = mne_reader.read_mne(target, ext)
        trust_types, fmt, default = True, ext.lstrip("."), "eeg"
        record_id = target.name[: -len(ext)] if ext else target.name
    else:
        fs = check_sfreq(target, sfreq)
        names: list[str] | None = None
        if kind == "text":
            data = segments.read_text(target)
        elif kind == "csv":
            data, names = segments.read_csv(target)
        elif kind == "mat":
            data, _ = segments.read_mat(target, mat_variable)
        else:
            data, names = segments.read_text_folder(target)
        data = data * unit_scale(unit)
        names = unique_names(names or [f"ch{i + 1}" for i in range(len(data))])
        check_finite(target, data, names, 0, fs)
        info = mne.create_info(names, fs, ["misc"] * len(names))
        raw = mne.io.RawArray(data, info, verbose="error")
        fmt, default = kind, "eeg"
        record_id = target.name if kind == "text-multi" else target.stem
    return _finish(
        raw,
        path=target,
        fmt=fmt,
        record_id=safe_record_id(record_id),
        annotations=annotations,
        default_modality=default,
        modality=modality,
        ch_names=ch_names,
        channels=channels,
        preload=preload,
        units=units,
        trust_types=trust_types,
    )


def _finish(
    raw: mne.io.BaseRaw,
    *,
    path: Path,
    fmt: str,
    record_id: str,
    annotations: mne.Annotations | None,
    default_modality: str,
    modality: str | None,
    ch_names: Sequence[str] | None,
    channels: Sequence[str | int] | None,
    preload: bool,
    units: list[str] | None,
    trust_types: bool,
) -> Recording:
    """Rename, select and type channels, validate, optionally preload."""
    if ch_names:
        new = [ch_names] if isinstance(ch_names, str) else [str(n) for n in ch_names]
        if len(new) != len(raw.ch_names):
            raise RecordingError(
                path, f"ch_names has {len(new)} names but the recording has {len(raw.ch_names)} channels"
            )
        if len(set(new)) != len(new) or not all(n.strip() for n in new):
            raise RecordingError(path, "ch_names must be unique and non-empty")
        raw.rename_channels(dict(zip(raw.ch_names, new)), verbose="error")
    if channels:
        idx = resolve_picks(path, raw.ch_names, channels)
        raw.pick(idx, verbose="error")
        if units is not None:
            units = [units[i] for i in idx]
    known = raw.get_channel_types() if trust_types else None
    types, modality = assign_types(
        raw.ch_names, default_modality=default_modality, modality=modality, units=units, known_types=known
    )
    current = raw.get_channel_types()
    change = {n: t for n, t, c in zip(raw.ch_names, types, current) if t != c}
    if change:
        try:
            raw.set_channel_types(change, on_unit_change="ignore", verbose="error")
        except Exception as exc:
            raise RecordingError(path, f"cannot set channel types: {condense(exc)}") from exc
    if modality not in types:
        listing = ", ".join(f"{n}={t}" for n, t in list(zip(raw.ch_names, types))[:20])
        raise RecordingError(path, f"no usable {modality} channel (channel types: {listing})")
    check_sfreq(path, raw.info["sfreq"])
    if raw.n_times < 1:
        raise RecordingError(path, "recording has no samples")
    if annotations is not None:
        raw.set_annotations(annotations, emit_warning=False, verbose="error")
    rec = Recording(
        raw=raw,
        annotations=_relative_annotations(raw),
        path=path,
        record_id=record_id,
        format=fmt,
        modality=modality,
    )
    if preload and not raw.preload:
        try:
            raw.load_data(verbose="error")
        except RecordingError:
            raise
        except Exception as exc:
            raise RecordingError(path, f"cannot load data: {condense(exc)}") from exc
        for _ in rec.iter_chunks(_CHUNK_SECONDS, picks=list(range(len(raw.ch_names)))):
            pass  # raises on NaN/Inf
    return rec


def _relative_annotations(raw: mne.io.BaseRaw) -> mne.Annotations:
    """The raw's annotations with onsets in seconds from its first sample (``orig_time=None``)."""
    ann = raw.annotations
    if ann.orig_time is None or not raw.first_samp:
        return ann
    return mne.Annotations(
        ann.onset - raw.first_time, ann.duration, ann.description, orig_time=None, ch_names=ann.ch_names
    )


def _wfdb_files(hea: Path) -> set[str]:
    """Names of the signal files a WFDB header refers to (best effort, no validation)."""
    try:
        lines = [ln.split() for ln in hea.read_text(errors="replace").splitlines()]
    except OSError:
        return set()
    lines = [t for t in lines if t and not t[0].startswith("#")]
    return {t[0] for t in lines[1:]}


def _recordings_in(folder: Path, names: list[str]) -> list[Path]:
    paths = [folder / n for n in names]
    claimed: set[Path] = set()
    found: list[Path] = []
    for p in paths:
        if p.suffix.lower() == ".hea":
            found.append(p)
            stem = wfdb_reader.record_stem(p)
            claimed |= {q for q in paths if wfdb_reader.record_stem(q) == stem}
            claimed |= {folder / f for f in _wfdb_files(p)}
    if any(split_ext(p) in segments.TEXT_EXTENSIONS for p in paths if p not in claimed):
        chans = [q for q in segments.channel_files(folder) if q not in claimed]
        if len(chans) >= 2 and all(looks_like_channel_stem(q.stem) for q in chans):
            found.append(folder)
            claimed |= set(chans)
    stems = {(wfdb_reader.record_stem(p).lower(), split_ext(p)) for p in paths}
    for p in paths:
        ext = split_ext(p)
        if p in claimed or ext in segments.CSV_EXTENSIONS or segments.is_listing(p):
            continue
        base = str(p)[: -len(ext)].lower() if ext else str(p).lower()
        if any((base, c) in stems for c in _COMPANIONS.get(ext, ())):
            continue
        if ext in segments.TEXT_EXTENSIONS:
            if segments.looks_numeric(p):
                found.append(p)
        elif ext in segments.MAT_EXTENSIONS or ext in mne_reader.MNE_EXTENSIONS:
            found.append(p)
    return found


def list_recordings(root: str | os.PathLike) -> list[Path]:
    """Find every recording under a folder, one path per recording.

    Parameters
    ----------
    root : path-like
        Folder to walk recursively (a file is returned as is).

    Returns
    -------
    list of pathlib.Path
        WFDB records as their ``.hea``; folders of per-channel text files
        (stems like ``ch01``, ``E12``, ``Fp1``) as the folder; every other
        supported file, text files only when their content is numeric.
        README, SHA256SUMS, RECORDS and ``.csv`` listings are skipped (read a
        CSV recording explicitly with :func:`read_recording`). Sorted by path,
        in natural order.

    Raises
    ------
    RecordingError
        If ``root`` does not exist.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise RecordingError(root, "folder not found")
    if root.is_file():
        return [root]
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        folder = Path(dirpath)
        keep = []
        for d in sorted(dirnames, key=natural_key):
            if d.startswith("."):
                continue
            if split_ext(Path(d)) in mne_reader.MNE_DIR_EXTENSIONS:
                found.append(folder / d)
            else:
                keep.append(d)
        dirnames[:] = keep
        files = sorted((f for f in filenames if not f.startswith(".")), key=natural_key)
        found.extend(_recordings_in(folder, files))
    return sorted(found, key=lambda p: [natural_key(part) for part in p.parts])
