"""Channel naming and channel-type inference shared by every reader.

Readers pass raw channel labels here; this module decides which channels are
ECG leads, EEG electrodes or auxiliary signals, and which modality a
recording has.  Only channel *names* (and units) are used, never dataset names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

MODALITIES = ("ecg", "eeg")

# EDF+ labels start with the signal type ("EEG Fp1-Ref", "ECG ECG1", "Resp nasal");
# Nihon Kohden adds "POL" for polygraphic inputs.
_EDF_TYPE_PREFIX = {
    "eeg": "eeg",
    "ecg": "ecg",
    "ekg": "ecg",
    "eog": "eog",
    "emg": "emg",
    "resp": "misc",
    "sao2": "misc",
    "spo2": "misc",
    "light": "misc",
    "sound": "misc",
    "event": "misc",
    "temp": "misc",
    "pol": "misc",
    "erg": "misc",
    "ep": "misc",
    "meg": "misc",
    "mcg": "misc",
    "pleth": "misc",
    "pulse": "misc",
    "photic": "misc",
}

# Limb, augmented, precordial, modified limb (MLII), Holter (CM5) and Frank (vx) leads.
_ECG_RE = re.compile(
    r"^(?:lead[\s_-]*)?(?:i{1,3}|a?v[rlf]|v|v\d{1,2}r?|v[xyz]|ml(?:i{1,3}|\d)|mcl\d|cm\d|cc\d|d[1-3])$"
)
_ECG_PREFIX_RE = re.compile(r"^(?:ecg|ekg)")
# 10-20 / 10-10 positions (Fp1, AF7, FC5, T3, TP9, POz, O2, Iz, ...), sphenoidal,
# cerebellar and ear/mastoid references.
_EEG_RE = re.compile(r"^(?:(?:fp|af|f|fc|ft|c|t|tp|cp|p|po|o|i|n|cb|sp)(?:\d{1,2}|z)|[am][12])$")
_EEG_REF_TOKENS = {"ref", "le", "ar", "avg", "av", "ave", "car", "lr", "g2", ""}
_EOG_RE = re.compile(r"^(?:eog|heog|veog|loc|roc)")
_EMG_RE = re.compile(r"^(?:emg|chin)")
_STIM_RE = re.compile(r"^(?:trigger|trig|status|stim?\d*)$")
_MISC_RE = re.compile(
    r"^(?:pleth|ppg|resp|abp|art|bp|pap|cvp|icp|spo2|sao2|co2|etco2|hr|pulse|temp|flow|airflow"
    r"|thor|abd|chest|nasal|snore|light|sound|position|acc|photic|dc\d|event|marker)"
)
_VOLT_UNITS = {"v", "mv", "uv", "µv", "μv", "nv"}


def _strip(name: str) -> str:
    """Lower-case a label and drop padding dots/spaces (BCI2000 writes ``'Fc5.'``)."""
    return name.strip().rstrip(".").strip().lower()


def _is_eeg_name(norm: str) -> bool:
    if norm.startswith("eeg"):
        return True
    parts = [p.strip() for p in re.split(r"[-/]", norm)]
    if not parts or not _EEG_RE.match(parts[0]):
        return False
    # "FP1-F7", "C3-A2", "Fp1-Ref"; CHB-MIT numbers repeated pairs ("T8-P8-0")
    return all(_EEG_RE.match(p) or p in _EEG_REF_TOKENS or p.isdigit() for p in parts[1:])


def classify_channel(name: str, unit: str | None = None) -> str | None:
    """Guess an MNE channel type from a channel label.

    Parameters
    ----------
    name : str
        Channel label as stored in the file (``'MLII'``, ``'EEG Fp1-Ref'``, ``'PLETH'``).
    unit : str or None
        Physical unit from the file header, if any. A known label wins; an
        unknown label with a non-voltage unit (``'NU'``, ``'mmHg'``) is ``'misc'``.

    Returns
    -------
    str or None
        ``'ecg'``, ``'eeg'``, ``'eog'``, ``'emg'``, ``'stim'`` or ``'misc'``;
        ``None`` when the label says nothing (the caller applies the
        recording's modality).
    """
    norm = _strip(name)
    head, _, rest = norm.partition(" ")
    if rest and head in _EDF_TYPE_PREFIX:
        return _EDF_TYPE_PREFIX[head]
    if _ECG_PREFIX_RE.match(norm) or _ECG_RE.match(norm.replace(" ", "")):
        return "ecg"
    if _is_eeg_name(norm):
        return "eeg"
    for regex, kind in ((_EOG_RE, "eog"), (_EMG_RE, "emg"), (_STIM_RE, "stim"), (_MISC_RE, "misc")):
        if regex.match(norm):
            return kind
    if unit is not None and unit.strip() and unit.strip().lower() not in _VOLT_UNITS:
        return "misc"
    return None


def assign_types(
    names: Sequence[str],
    *,
    default_modality: str,
    modality: str | None = None,
    units: Sequence[str | None] | None = None,
    known_types: Sequence[str | None] | None = None,
) -> tuple[list[str], str]:
    """Decide every channel's type and the recording's modality.

    Parameters
    ----------
    names : sequence of str
        Channel labels.
    default_modality : {'ecg', 'eeg'}
        Modality used when the labels do not settle it (format default).
    modality : {'ecg', 'eeg'} or None
        Explicit modality; always wins over inference.
    units : sequence of str or None, optional
        Per-channel physical units (WFDB headers).
    known_types : sequence of str or None, optional
        Types already set by the underlying reader. ``'eeg'`` is treated as
        "unknown" because MNE's EDF/BDF readers give every channel that type.

    Returns
    -------
    types : list of str
        One MNE channel type per channel.
    modality : str
        ``'ecg'`` or ``'eeg'``.
    """
    n = len(names)
    units = list(units) if units is not None else [None] * n
    known = list(known_types) if known_types is not None else [None] * n
    guessed: list[str | None] = []
    for name, unit, kt in zip(names, units, known):
        if kt is not None and kt != "eeg":
            guessed.append(kt)
        else:
            guessed.append(classify_channel(name, unit))
    if modality is None:
        n_ecg, n_eeg = guessed.count("ecg"), guessed.count("eeg")
        if n_ecg != n_eeg:
            modality = "ecg" if n_ecg > n_eeg else "eeg"
        else:
            modality = default_modality
    return [modality if g is None else g for g in guessed], modality


def unique_names(names: Sequence[str]) -> list[str]:
    """Make channel labels unique the way MNE does (``ECG``, ``ECG`` → ``ECG-0``, ``ECG-1``).

    Parameters
    ----------
    names : sequence of str
        Labels, possibly repeated or empty.

    Returns
    -------
    list of str
        Unique labels; empty labels become ``ch<N>`` (1-based position).
    """
    out = [str(n).strip() or f"ch{i + 1}" for i, n in enumerate(names)]
    counts: dict[str, int] = {}
    for name in out:
        counts[name] = counts.get(name, 0) + 1
    seen: dict[str, int] = {}
    for i, name in enumerate(out):
        if counts[name] > 1:
            k = seen.get(name, 0)
            seen[name] = k + 1
            out[i] = f"{name}-{k}"
    return out


def natural_key(text: str) -> list:
    """Sort key ordering ``ch2`` before ``ch10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def looks_like_channel_stem(stem: str) -> bool:
    """Whether a file stem names a channel (``ch01``, ``E12``, ``Fp1``, ``V1``) rather than a record."""
    if re.match(r"^(?:ch|chan|channel|e|el|elec|electrode|lead|sig|signal)[\s_-]*\d+$", stem, re.I):
        return True
    return classify_channel(stem) in ("ecg", "eeg")
