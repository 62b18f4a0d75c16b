"""Patient-identifying header fields: what may leave spikewatch, and a final check.

Recordings carry protected health information (PHI) in their headers: the EDF
patient field (code, sex, birth date, name), the EDF recording field (start
date, technician, equipment), MNE's ``subject_info``, ``experimenter``,
``device_info``, free-text ``description`` (WFDB header comments: age, sex,
medication) and the measurement date. spikewatch never copies a header
wholesale. Outputs are built from an allow-list:

* :func:`export_info` makes a fresh :class:`mne.Info` (channel names, types,
  sampling rate, filter edges) and adds the subject, device and experimenter
  only when ``report.include_phi`` is true;
* :func:`output_meas_date` applies ``report.meas_date`` (drop / shift / keep)
  when ``include_phi`` is false.

:func:`phi_fields` lists the identifying strings a recording carries and
:func:`check_folder` scans every finished output file for them before a report
is published, so a leak through any future code path fails loudly instead of
reaching a file.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import mne

from spikewatch.config import ReportConfig
from spikewatch.errors import SpikewatchError

#: the date a shifted measurement date moves to (as ``mne.io.anonymize_info``)
SHIFT_TO = dt.date(2000, 1, 1)
#: shorter strings are too common to search for without false alarms
MIN_GUARD_LEN = 5
_PLACEHOLDERS = {"x", "startdate", "unknown", "anonymous", "none", "n/a", "na"}
_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]


class PrivacyError(SpikewatchError):
    """A finished output still contains a patient-identifying header field."""

    exit_code = 1


def output_meas_date(meas_date: dt.datetime | None, cfg: ReportConfig) -> dt.datetime | None:
    """Measurement date as it may appear in outputs.

    Parameters
    ----------
    meas_date : datetime or None
        The recording's ``info['meas_date']``.
    cfg : ReportConfig
        ``include_phi`` true keeps the date; otherwise ``meas_date``:
        ``'drop'`` gives None, ``'shift'`` moves it to 2000-01-01 keeping the
        time of day, ``'keep'`` keeps it.

    Returns
    -------
    datetime or None
    """
    if meas_date is None or cfg.include_phi or cfg.meas_date == "keep":
        return meas_date
    if cfg.meas_date == "drop":
        return None
    return dt.datetime.combine(SHIFT_TO, meas_date.timetz())


def export_info(src: mne.Info, ch_names: list[str], ch_types: list[str], cfg: ReportConfig) -> mne.Info:
    """A fresh :class:`mne.Info` for exported signals, built from an allow-list.

    Parameters
    ----------
    src : mne.Info
        The recording's info (only sampling rate, filter edges and line
        frequency are copied, plus the identifying fields if ``include_phi``).
    ch_names, ch_types : list of str
        Exported channels.
    cfg : ReportConfig
        Privacy settings.

    Returns
    -------
    mne.Info
    """
    info = mne.create_info(ch_names, float(src["sfreq"]), ch_types)
    with info._unlock():
        info["highpass"] = float(src["highpass"])
        info["lowpass"] = float(min(src["lowpass"], src["sfreq"] / 2))
        info["line_freq"] = src["line_freq"]
        if cfg.include_phi:
            if src.get("subject_info") is not None:
                info["subject_info"] = dict(src["subject_info"])
            if src.get("device_info") is not None:
                info["device_info"] = dict(src["device_info"])
            info["experimenter"] = src.get("experimenter")
    info.set_meas_date(output_meas_date(src["meas_date"], cfg))
    return info


def patient_block(src: mne.Info, cfg: ReportConfig) -> dict | None:
    """Identifying fields for ``summary.json``; None unless ``include_phi``."""
    if not cfg.include_phi:
        return None
    subj = {k: (v.isoformat() if isinstance(v, dt.date) else v)
            for k, v in dict(src.get("subject_info") or {}).items()
            if isinstance(v, (str, int, float, dt.date)) and not isinstance(v, bool)}
    return {
        "subject_info": subj,
        "meas_date": src["meas_date"].isoformat() if src["meas_date"] is not None else None,
        "experimenter": src.get("experimenter"),
        "device_info": {k: str(v) for k, v in dict(src.get("device_info") or {}).items()},
    }


def _date_forms(d: dt.date) -> list[str]:
    return [d.isoformat(), f"{d.day:02d}-{_MONTHS[d.month - 1]}-{d.year}", f"{d.day:02d}.{d.month:02d}.{d.year}"]


def _looks_like_identifier(token: str) -> bool:
    """A code, name or date rather than an ordinary word: digits, ``_``, or inner capitals.

    Free-text header fields (EDF patient/recording fields, WFDB comments) are
    searched token by token; plain words ("sleep", "Normal") are skipped so that
    they cannot match ordinary text in a report.
    """
    t = token.strip(".,;:()[]")
    if t.lower() == "startdate":
        return False
    return any(c.isdigit() or c == "_" for c in t) or any(c.isupper() for c in t[1:])


def _edf_header_fields(path: Path) -> dict[str, str]:
    """Patient (bytes 8-88) and recording (88-168) fields of an EDF/BDF header."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(168)
    except OSError:
        return {}
    if len(head) < 168:
        return {}
    return {"EDF patient field": head[8:88].decode("latin-1").strip(),
            "EDF recording field": head[88:168].decode("latin-1").strip()}


def phi_fields(rec, cfg: ReportConfig | None = None) -> dict[str, str]:
    """Identifying strings in a recording's header that outputs must not contain.

    Parameters
    ----------
    rec : spikewatch.io.Recording
        The recording.
    cfg : ReportConfig, optional
        With ``include_phi`` nothing is forbidden; with ``meas_date='keep'``
        the date is allowed; a shifted date never collides with the list.

    Returns
    -------
    dict
        ``{value: what it is}`` (e.g. ``'No_Name': 'patient name'``), only
        values of at least :data:`MIN_GUARD_LEN` characters that are not
        placeholders such as ``X``. Structured fields (names, ids, dates,
        experimenter, device) are taken whole; free text (EDF patient and
        recording fields, header comments) token by token, codes and names only.
    """
    cfg = cfg or ReportConfig()
    if cfg.include_phi:
        return {}
    info = rec.raw.info
    found: dict[str, str] = {}

    def add(value, what):
        text = str(value).strip() if value is not None else ""
        if len(text) >= MIN_GUARD_LEN and text.lower() not in _PLACEHOLDERS:
            found.setdefault(text, what)

    subj = dict(info.get("subject_info") or {})
    names = [subj.get(k) for k in ("first_name", "middle_name", "last_name") if subj.get(k)]
    for sep in ("_", " "):
        add(sep.join(map(str, names)), "patient name")
    for key in ("first_name", "middle_name", "last_name", "his_id"):
        add(subj.get(key), f"subject_info {key}")
    if isinstance(subj.get("birthday"), dt.date):
        for form in _date_forms(subj["birthday"]):
            add(form, "birth date")
    if info["meas_date"] is not None:
        for form in _date_forms(info["meas_date"].date()):
            add(form, "measurement date")
    exp = info.get("experimenter")
    add(exp, "experimenter")
    for key, value in dict(info.get("device_info") or {}).items():
        add(value, f"device_info {key}")
    add(info.get("proj_name"), "project name")
    free = {"header description": str(info.get("description") or "")}
    if rec.format in ("edf", "bdf"):
        free.update(_edf_header_fields(Path(rec.path)))
    for what, text in free.items():
        for token in text.split():
            if _looks_like_identifier(token):
                add(token.strip(".,;:()[]"), what)
    # the date the outputs may carry (kept, or shifted: may equal e.g. a 2000-01-01 birth date)
    allowed = output_meas_date(info["meas_date"], cfg)
    if allowed is not None:
        for form in _date_forms(allowed.date()):
            found.pop(form, None)
    return found


def _pattern(value: str) -> re.Pattern:
    return re.compile(rb"(?<![A-Za-z0-9])" + re.escape(value.encode("latin-1", "replace")) + rb"(?![A-Za-z0-9])",
                      re.IGNORECASE)


def check_folder(folder: str | Path, forbidden: dict[str, str]) -> None:
    """Refuse outputs that contain a patient-identifying string.

    Parameters
    ----------
    folder : path-like
        The (not yet published) report folder; every file in it is scanned.
    forbidden : dict
        From :func:`phi_fields`.

    Raises
    ------
    PrivacyError
        Naming the file and the kind of field (never the value).
    """
    if not forbidden:
        return
    pats = [(_pattern(v), what) for v, what in forbidden.items()]
    for f in sorted(Path(folder).rglob("*")):
        if not f.is_file():
            continue
        data = f.read_bytes()
        for pat, what in pats:
            if pat.search(data):
                raise PrivacyError(f"{f.name}: would contain the recording's {what}; report not written "
                                   "(use --include-phi to allow patient-identifying fields)")
