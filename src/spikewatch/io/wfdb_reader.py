"""WFDB records (PhysioNet ``.hea`` + signal files + ``.atr``) as lazy MNE raws.

The header is validated against the signal files' sizes before anything is
read, so a header claiming more samples than exist fails fast instead of
allocating memory for them. Samples are then read on demand, span by span,
through ``wfdb.rdrecord(sampfrom=..., sampto=...)``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import mne
import numpy as np
import wfdb

from spikewatch.errors import RecordingError
from spikewatch.io._checks import check_file, check_sfreq, condense, read_bytes, unit_scale

# bytes per stored sample for the WFDB formats whose size is predictable
_BYTES_PER_SAMPLE = {
    "8": 1.0,
    "16": 2.0,
    "61": 2.0,
    "80": 1.0,
    "160": 2.0,
    "24": 3.0,
    "32": 4.0,
    "212": 1.5,
    "310": 4.0 / 3.0,
    "311": 4.0 / 3.0,
}
_COMPRESSED = ("508", "516", "524")  # FLAC: length not predictable from the file size
_DEFAULT_FS = 250.0  # WFDB's default when the header omits the rate
_MARGIN_SECONDS = 1.0  # context read around invalid samples so chunked reads interpolate alike


@dataclass(frozen=True)
class WfdbHeader:
    """What the readers need from a validated WFDB header."""

    record: str  # record path without extension, as wfdb expects it
    hea: Path
    fs: float
    n_times: int
    names: list[str]
    units: list[str]
    comments: list[str]
    base_date: object
    base_time: object


def record_stem(path: Path) -> str:
    """Record name for wfdb: the path with a WFDB extension removed."""
    return str(path)[: -len(path.suffix)] if path.suffix else str(path)


def _parse_record_line(hea: Path, text: str) -> tuple[int, float, int | None]:
    """Parse ``name[/nseg] nsig [fs[/counter[(base)]] [sig_len ...]]`` ourselves.

    wfdb silently falls back to 250 Hz (or 1 Hz) for rates it cannot parse, so
    the rate and length are validated here.
    """
    lines = [ln.strip() for ln in text.splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if not lines:
        raise RecordingError(hea, "WFDB header has no record line")
    tokens = lines[0].split()
    if "/" in tokens[0]:
        raise RecordingError(hea, "multi-segment WFDB records are not supported")
    if len(tokens) < 2 or not tokens[1].isdigit():
        raise RecordingError(hea, f"bad WFDB record line {lines[0][:80]!r}")
    n_sig = int(tokens[1])
    fs = _DEFAULT_FS
    if len(tokens) > 2:
        m = re.match(r"^([^/(]+)", tokens[2])
        fs = check_sfreq(hea, m.group(1) if m else tokens[2], "in header")
    sig_len = None
    if len(tokens) > 3:
        if not tokens[3].isdigit():
            raise RecordingError(hea, f"bad sample count {tokens[3]!r} in header")
        sig_len = int(tokens[3])
    return n_sig, fs, sig_len


def _check_signal_files(hea: Path, header: wfdb.io.record.Record, sig_len: int | None) -> int:
    """Check each signal file exists and is as long as the header says; return the length."""
    files: dict[str, list[int]] = {}
    for i, fname in enumerate(header.file_name):
        files.setdefault(fname, []).append(i)
    lengths = []
    for fname, sigs in files.items():
        sig_path = hea.parent / fname
        if not sig_path.is_file():
            raise RecordingError(hea, f"signal file {fname!r} named in the header is missing")
        size = check_file(sig_path)
        fmt = str(header.fmt[sigs[0]])
        bps = _BYTES_PER_SAMPLE.get(fmt)
        if bps is None:  # compressed formats: wfdb checks them while reading
            continue
        offset = int((header.byte_offset or [0] * header.n_sig)[sigs[0]] or 0)
        spf_all = header.samps_per_frame or [1] * header.n_sig
        spf = sum(int(spf_all[i] or 1) for i in sigs)
        frame_bytes = spf * bps
        if sig_len is None:
            lengths.append(int((size - offset) // frame_bytes))
            continue
        expected = offset + math.floor(sig_len * frame_bytes)
        if size < expected:
            raise RecordingError(
                sig_path,
                f"truncated: header declares {sig_len} samples ({expected} bytes) "
                f"but the file has {size} bytes",
            )
    if sig_len is None:
        if not lengths:
            raise RecordingError(hea, "header gives no sample count and the signal format is compressed")
        sig_len = min(lengths)
    if sig_len <= 0:
        raise RecordingError(hea, "record has no samples")
    return sig_len


def read_wfdb_header(hea: Path) -> WfdbHeader:
    """Validate a WFDB header and its signal files without reading samples.

    Parameters
    ----------
    hea : pathlib.Path
        The ``.hea`` file.

    Returns
    -------
    WfdbHeader
        Validated rate, length, channel names and units.

    Raises
    ------
    RecordingError
        Missing/unreadable/non-UTF-8 header, bad rate or length, missing or
        truncated signal file.
    """
    raw_bytes = read_bytes(hea)
    try:
        text = raw_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordingError(hea, f"header is not UTF-8 text (byte {exc.start})") from None
    if "\x00" in text:
        raise RecordingError(hea, "header contains NUL bytes (not a WFDB header)")
    n_sig, fs, sig_len = _parse_record_line(hea, text)
    if n_sig == 0:
        raise RecordingError(hea, "header declares no signals")
    record = record_stem(hea)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = wfdb.rdheader(record)
    except Exception as exc:  # wfdb raises many types for malformed headers
        raise RecordingError(hea, f"cannot parse WFDB header: {condense(exc)}") from exc
    if not isinstance(header, wfdb.Record) or header.n_sig != n_sig or not header.file_name:
        raise RecordingError(hea, "cannot parse WFDB header: signal lines do not match the record line")
    if len(header.file_name) != n_sig:
        raise RecordingError(hea, f"header declares {n_sig} signals but has {len(header.file_name)} signal lines")
    for i in range(n_sig):
        fmt = str(header.fmt[i])
        if fmt not in _BYTES_PER_SAMPLE and fmt not in _COMPRESSED:
            raise RecordingError(hea, f"signal {i + 1}: unknown WFDB storage format {fmt!r}")
        spf = (header.samps_per_frame or [1] * n_sig)[i]
        if spf is not None and int(spf) < 1:
            raise RecordingError(hea, f"signal {i + 1}: invalid samples per frame {spf!r}")
    n_times = _check_signal_files(hea, header, sig_len)
    names = [str(n) for n in (header.sig_name or [f"ch{i + 1}" for i in range(n_sig)])]
    units = [str(u) if u else "mV" for u in (header.units or ["mV"] * n_sig)]
    return WfdbHeader(
        record=record,
        hea=hea,
        fs=fs,
        n_times=n_times,
        names=names,
        units=units,
        comments=[str(c) for c in (header.comments or [])],
        base_date=header.base_date,
        base_time=header.base_time,
    )


def _rdrecord(extras: dict, start: int, stop: int, chans: list[int]) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rec = wfdb.rdrecord(
                extras["record"], sampfrom=start, sampto=stop, channels=chans, physical=True, return_res=64
            )
    except Exception as exc:
        reason = f"cannot read WFDB samples {start}-{stop}: {condense(exc)}"
        raise RecordingError(extras["hea"], reason) from exc
    sig = rec.p_signal
    if sig is None or sig.shape != (stop - start, len(chans)):
        raise RecordingError(extras["hea"], f"short read of samples {start}-{stop}")
    return sig


def _interpolate_invalid(sig: np.ndarray) -> np.ndarray:
    """Replace WFDB invalid samples (NaN after conversion) by linear interpolation."""
    x = np.arange(sig.shape[0])
    for j in range(sig.shape[1]):
        col = sig[:, j]
        bad = np.isnan(col)
        if bad.all():
            col[:] = 0.0
        elif bad.any():
            col[bad] = np.interp(x[bad], x[~bad], col[~bad])
    return sig


def read_span(extras: dict, start: int, stop: int, chans: list[int]) -> np.ndarray:
    """Read samples ``[start, stop)`` of the given header channels, in volts.

    WFDB marks missing samples with a reserved value, which wfdb turns into
    NaN. Those are a documented part of the format (PhysioNet records contain
    them), so they are interpolated from the neighbouring valid samples; a
    margin of context is read around the span so that windowed and whole reads
    give the same values.

    Returns
    -------
    numpy.ndarray, shape (len(chans), stop - start)
    """
    sig = _rdrecord(extras, start, stop, chans)
    if np.isnan(sig).any():
        margin = int(round(_MARGIN_SECONDS * extras["fs"]))
        lo, hi = max(0, start - margin), min(extras["n_times"], stop + margin)
        wide = _rdrecord(extras, lo, hi, chans) if (lo, hi) != (start, stop) else sig
        sig = _interpolate_invalid(wide)[start - lo : stop - lo]
    return sig.T * extras["scales"][chans, None]


class RawWFDB(mne.io.BaseRaw):
    """MNE raw reading a WFDB record on demand.

    Parameters
    ----------
    header : WfdbHeader
        Validated header (see :func:`read_wfdb_header`).
    ch_names : list of str
        Unique channel names, one per header signal.
    """

    def __init__(self, header: WfdbHeader, ch_names: list[str]):
        scales = np.array([unit_scale(u) or 1.0 for u in header.units])  # non-voltage: as stored
        info = mne.create_info(ch_names, header.fs, ["misc"] * len(ch_names))
        extras = {
            "record": header.record,
            "hea": str(header.hea),
            "scales": scales,
            "n_chan": len(ch_names),
            "n_times": header.n_times,
            "fs": header.fs,
        }
        super().__init__(
            info,
            preload=False,
            first_samps=(0,),
            last_samps=(header.n_times - 1,),
            filenames=[header.hea],
            raw_extras=[extras],
            orig_format="double",
        )

    def _read_segment_file(self, data, idx, fi, start, stop, cals, mult):
        """Read samples ``[start, stop)`` of file ``fi`` into ``data`` (MNE reader protocol)."""
        extras = self._raw_extras[fi]
        n_chan = extras["n_chan"]
        chans = sorted(set(np.arange(n_chan)[idx].tolist()))
        one = np.zeros((n_chan, stop - start))
        one[chans] = read_span(extras, start, stop, chans)
        if mult is not None:
            data[:] = mult @ one[idx]
        else:
            data[:] = one[idx] * cals


def read_atr(header: WfdbHeader) -> mne.Annotations:
    """Read the record's ``atr`` reference annotations, if the file exists.

    Description convention: the annotation symbol (``'N'``, ``'V'``, ``'A'``,
    ``'/'``, ``'~'``, ``'|'``, ...); for rhythm changes (``'+'``) the rhythm from
    ``aux_note`` without NULs/whitespace (``'(AFIB'``); other symbols keep the
    symbol even when they carry an aux note. Onset = sample / fs, duration 0.

    Returns
    -------
    mne.Annotations
        Empty when there is no ``.atr`` file.
    """
    atr = Path(header.record + ".atr")
    if not atr.exists():
        return mne.Annotations([], [], [])
    size = check_file(atr)
    try:
        with atr.open("rb") as fh:
            fh.seek(max(size - 2, 0))
            end = fh.read(2)
    except OSError as exc:
        raise RecordingError(atr, f"cannot read file: {condense(exc)}") from exc
    if size % 2 or end != b"\x00\x00":  # WFDB annotation files end with a zero word
        raise RecordingError(atr, f"truncated annotation file: {size} bytes without the end-of-file marker")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ann = wfdb.rdann(header.record, "atr")
    except Exception as exc:
        raise RecordingError(atr, f"cannot read WFDB annotations: {condense(exc)}") from exc
    samples = np.asarray(ann.sample, dtype=np.int64)
    if not all(isinstance(sym, str) for sym in ann.symbol):
        raise RecordingError(atr, "corrupt annotation file: unknown annotation codes")
    if len(samples) and (samples.min() < 0 or samples.max() > header.n_times):
        raise RecordingError(
            atr, f"corrupt annotation file: sample {samples.max()} outside the record (0-{header.n_times})"
        )
    aux = ann.aux_note or [""] * len(samples)
    desc = []
    for sym, note in zip(ann.symbol, aux):
        note = (note or "").replace("\x00", "").strip()
        desc.append(note if sym == "+" and note else sym)
    onset = samples / header.fs
    return mne.Annotations(onset, np.zeros(len(onset)), desc)


def meas_date(header: WfdbHeader) -> dt.datetime | None:
    """Start date-time (UTC) from the header, or ``None`` when it has no date."""
    if header.base_date is None:
        return None
    t = header.base_time or dt.time(0, 0)
    return dt.datetime.combine(header.base_date, t, tzinfo=dt.timezone.utc)


def comments_text(header: WfdbHeader) -> str | None:
    """Header comments joined into one string (kept in ``raw.info['description']``)."""
    return "\n".join(header.comments) if header.comments else None
