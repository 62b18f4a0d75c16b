"""The one configuration model: strict pydantic, YAML files in ``configs/``.

Every stage reads only its own section. Unknown keys are rejected with a
"did you mean" hint, in the spirit of mne-bids-pipeline's config checks.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from spikewatch.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)


class IOConfig(_Section):
    """How recordings are read."""

    sfreq: float | None = Field(None, gt=0, description="Sampling rate (Hz) for header-less text/MAT segments.")
    channels: list[str] | None = Field(None, description="Channels to analyse (default: all of the modality).")
    ch_names: list[str] | None = Field(None, description="Names for the files of a multi-file text recording.")
    modality: Literal["ecg", "eeg"] | None = Field(None, description="Override the inferred modality.")
    unit: Literal["uV", "mV", "V"] = Field("uV", description="Unit of header-less text/MAT samples.")


class PreprocessingConfig(_Section):
    """Causal filters applied before encoding (state carried across chunks)."""

    l_freq: float | None = Field(0.5, ge=0, description="High-pass edge (Hz); null for none.")
    h_freq: float | None = Field(40.0, gt=0, description="Low-pass edge (Hz); null for none.")
    filter_order: int = Field(2, ge=1, le=8, description="Butterworth order of the band-pass (per edge).")
    notch: list[float] = Field(default_factory=list, description="Mains frequencies to notch out (Hz).")


class EncodingConfig(_Section):
    """Send-on-delta spike encoding."""

    delta_factor: float = Field(0.5, gt=0, description="delta = factor x robust (MAD) amplitude of the channel.")
    calibration_s: float = Field(60.0, gt=0, description="Seconds at the start used to estimate delta.")


class NetworkConfig(_Section):
    """The spiking network (LIF feature layer with lateral inhibition)."""

    n_neurons: int = Field(24, ge=1, le=4096, description="Feature neurons that learn recurring patterns.")
    delays_s: list[float] = Field(
        default_factory=lambda: [0.0, 0.02, 0.04, 0.06, 0.08],
        description="Input delay taps (s): each UP/DOWN train is seen at these lags (temporal context).",
    )
    tau_rc: float = Field(0.02, gt=0, description="LIF membrane time constant (s).")
    tau_ref: float = Field(0.002, ge=0, description="LIF refractory period (s).")
    synapse_s: float = Field(0.01, ge=0, description="Input synapse time constant (s).")
    inhibition: float = Field(0.05, ge=0, description="Lateral inhibition weight between feature neurons.")
    w_init: float = Field(0.3, gt=0, description="Initial weights are uniform in [0, w_init] x w_max.")
    score_tau_s: float = Field(0.02, gt=0, description="Filter time constant for the activity used by the score (s).")
    score: Literal["unexplained", "mismatch", "familiar"] = Field(
        "unexplained",
        description="Score per step: 'mismatch' = 1 - cos(weights of the winning neuron, input); "
        "'unexplained' = input size x (1 - activity-weighted cosine); 'familiar' = 1 - cos(weights of "
        "the most familiar neuron, input), the familiar neuron being the one with the most spikes "
        "in the last familiarity_tau_s (the pattern the recording usually shows).",
    )
    gain_spread: float = Field(
        0.0, ge=0, lt=1,
        description="Feature neuron i gets LIF gain 1 - gain_spread * i / (n_neurons - 1): a fixed order of "
        "excitability, so the most excitable neuron takes the usual pattern and the others win (and "
        "learn) only what it matches poorly. 0 = all gains 1.")
    familiarity_tau_s: float = Field(
        300.0, gt=0, description="Memory (s) of each neuron's spike count for the 'familiar' score.")
    score_inputs: Literal["all", "events"] = Field(
        "all", description="Inputs the score compares: all of them, or only the UP/DOWN event taps "
        "(ECG: the beat's shape without the rhythm input).")
    gate_weight: float = Field(
        0.0, ge=0,
        description="Strength of the gate train onto every feature neuron (0 = no gate). ECG: one gate "
        "per detected beat, gate_delay_s after its R-peak; EEG: one every detection.window_s.",
    )
    gate_delay_s: float = Field(0.1, ge=0, description="Gate time after each R-peak (s): the input taps then hold the beat.")
    gate_synapse_s: float = Field(0.005, gt=0, description="Synapse time constant of the gate (s).")
    rhythm_delays_s: list[float] = Field(
        default_factory=list,
        description="ECG: delay taps (s) of the beat train (one spike burst per R-peak), giving the "
        "network the preceding RR intervals; empty = no rhythm input.",
    )
    rhythm_count: int = Field(4, ge=1, le=64, description="Spikes in the beat train per R-peak.")


class STDPConfig(_Section):
    """The pair-based STDP rule on the input weights."""

    enabled: bool = Field(True, description="Learning on (false = same network, frozen weights: ablation).")
    a_plus: float = Field(0.15, gt=0, description="Potentiation amplitude A+ (weight units, see w_max).")
    a_minus: float = Field(-0.1575, lt=0, description="Depression amplitude A- (negative; weight units).")
    tau_plus: float = Field(0.02, gt=0, description="Pre-trace time constant (s).")
    tau_minus: float = Field(0.02, gt=0, description="Post-trace time constant (s).")
    w_min: float = Field(0.0, description="Lower weight bound (weight units).")
    w_max: float = Field(
        3.0,
        description="Upper weight bound. Weight units: 1 = the weight at which the calibration-period input, "
        "summed over all inputs, gives a mean current of one LIF threshold; so one setting fits any "
        "modality, lead count or event rate.",
    )
    bounds: Literal["hard", "soft"] = Field("soft", description="Hard clip or soft (multiplicative) bounds.")
    a_decay: float = Field(
        0.0, ge=0, description="Heterosynaptic depression per post spike: every weight of a spiking neuron "
        "loses this fraction of (w - w_min). With hard bounds a neuron's weights then converge to "
        "a_plus / a_decay times the mean input pattern at its spikes (0 = off).")

    @model_validator(mode="after")
    def _order(self):
        if self.w_min >= self.w_max:
            raise ValueError("w_min must be < w_max")
        return self


class DetectionConfig(_Section):
    """From anomaly score to events."""

    baseline_s: float = Field(300.0, gt=0, description="Running baseline length for the robust z-score (s).")
    z_threshold: float = Field(5.0, gt=0, description="Robust z-score above which a beat/window is anomalous.")
    threshold_on: Literal["z", "score"] = Field(
        "z", description="What is thresholded: the robust z-score (z_threshold) or the score itself "
        "(score_threshold; for scale-free scores such as 'familiar', a cosine mismatch).")
    score_threshold: float = Field(
        0.08, gt=0, description="Score above which a beat/window is anomalous when threshold_on is 'score'.")
    window_s: float = Field(1.0, gt=0, description="Score window for EEG (s).")
    beat_window_s: list[float] = Field(
        default_factory=lambda: [-0.1, 0.15], description="Window around each R-peak scored as that beat (s)."
    )
    beat_stat: Literal["max", "min", "mean"] = Field(
        "max", description="How the per-step score in a beat window becomes the beat score."
    )
    event_span_s: list[float] = Field(
        default_factory=lambda: [-0.1, 0.15], description="Span of an event around a flagged R-peak (s)."
    )
    merge_gap_s: float = Field(0.5, ge=0, description="Flagged spans closer than this are merged (s).")
    merge_consecutive: bool = Field(
        False, description="Also merge flagged beats/windows that follow each other with no unflagged "
        "(or unscored) one between them, whatever the gap: a run of abnormal beats is one event.")

    @model_validator(mode="after")
    def _window_pair(self):
        for name in ("beat_window_s", "event_span_s"):
            w = getattr(self, name)
            if len(w) != 2 or not w[0] < w[1]:
                raise ValueError(f"{name} must be [start, end] with start < end, got {w}")
        return self
    min_duration_s: float = Field(0.0, ge=0, description="Events shorter than this are dropped (s).")
    warmup_s: float = Field(30.0, ge=0, description="No events before this time (network still learning).")


class QualityConfig(_Section):
    """Signal-quality check: flat, clipped or very noisy spans are reported as signal_quality events and
    kept out of anomaly scoring and STDP learning (see spikewatch/quality.py)."""

    enabled: bool = Field(True, description="Check the signal quality (false = every span is analysed).")
    window_s: float = Field(1.0, gt=0, description="Window length of the check (s); windows are aligned to "
                            "the analysis start.")
    flat_ratio: float = Field(0.02, ge=0, lt=1, description="A window is flat when its range or its largest "
                              "second difference is at most this fraction of the calibration period's median.")
    clip_fraction: float = Field(0.2, gt=0, le=1, description="A window is clipped when at least this fraction "
                                 "of its samples sits in runs of >= 3 equal values at its maximum or minimum.")
    noise_ratio: float | None = Field(3.0, gt=1, description="A window is noise when its line length (mean "
                                      "absolute first difference) exceeds this multiple of the calibration "
                                      "period's median; null = no noise rule (EEG: seizures raise line length).")


class ReportConfig(_Section):
    """What is written for each recording."""

    events_sidecar: bool = Field(True, description="Write the BIDS-style events.json describing events.tsv.")
    html: bool = Field(True, description="Write report.html (mne.Report: overview, one section per event, "
                       "network activity, STDP weights).")
    max_event_sections: int = Field(20, ge=0, description="report.html shows this many flagged events, "
                                    "highest score first.")
    edf_export: bool = Field(True, description="Write recording.edf: an EDF+ copy of the analysed span and "
                             "channels with the flagged events as annotations (loads that span into memory).")
    include_phi: bool = Field(False, description="Copy patient-identifying header fields (patient name, code, "
                              "birth date, sex, hand, measurement date, equipment, the recording's own "
                              "free-text annotations) into the outputs. Off: they never reach any file.")
    meas_date: Literal["drop", "shift", "keep"] = Field(
        "drop", description="Measurement date in the outputs when include_phi is false: 'drop' (none), "
        "'shift' (moved to 2000-01-01, time of day kept, as mne.io.anonymize_info) or 'keep'.")


class PipelineConfig(_Section):
    """Batch execution."""

    chunk_s: float = Field(300.0, gt=0, description="Seconds read, filtered and encoded at a time.")
    concurrency: int = Field(1, ge=1, le=256, description="spikewatch batch: recordings analysed at once in "
                             "threads of this process (ignored on Dask: its workers set the parallelism).")
    retries: int = Field(2, ge=0, le=20, description="spikewatch batch: retries of a recording after a transient "
                         "error (I/O error, input still being written); bad input is never retried.")
    retry_delay_s: float = Field(10.0, ge=0, description="spikewatch batch: delay before the first retry (s); "
                                 "doubled for each further retry.")
    dask_address: str | None = Field(None, description="spikewatch batch: scheduler of an existing Dask cluster "
                                     "(tcp://HOST:PORT) that runs the recordings; null = this process.")
    workers: int | None = Field(None, ge=1, le=256, description="spikewatch batch: start a local Dask cluster of "
                                "this many worker processes (one thread each); null = no cluster.")


class BackendConfig(_Section):
    """Which simulator runs the network."""

    name: Literal["nengo", "loihi", "fast"] = Field(
        "fast", description="Simulator backend: 'fast' (the Nengo model in a compiled numba loop; same spikes, "
        "weights and scores as 'nengo', ~90x faster), 'nengo' (the reference nengo.Simulator, STDP online) or "
        "'loihi' (nengo-loihi; frozen weights from a deployed bundle, see backend.model).")
    target: Literal["auto", "sim", "loihi"] = Field(
        "auto", description="Loihi backend: 'sim' = nengo-loihi's chip emulator, 'loihi' = a board through Intel's "
        "NxSDK, 'auto' = the board if NxSDK is installed, else the emulator.")
    count_bits: int = Field(
        4, ge=1, le=8, description="Loihi backend: input axons per input line. An axon carries one spike per step, "
        "so a step's event count is sent as its binary digits; counts above 2**count_bits - 1 are clipped "
        "(and counted in summary.json).")
    model: str | None = Field(
        None, description="Deployed bundle (folder written by 'spikewatch deploy') to analyse with: its frozen "
        "weights, delta and weight scale replace online learning and calibration. null = learn online.")
    train_start_s: float | None = Field(
        None, ge=0, description="spikewatch deploy: start of the training span (s from the recording start); "
        "null = the start.")
    train_stop_s: float | None = Field(
        None, gt=0, description="spikewatch deploy: end of the training span (s); null = the end of the recording.")


class Config(_Section):
    """The whole spikewatch configuration."""

    seed: int = Field(0, ge=0, description="Seed of every random choice (initial weights, ...).")
    io: IOConfig = Field(default_factory=IOConfig)
    preprocessing: PreprocessingConfig = Field(default_factory=PreprocessingConfig)
    encoding: EncodingConfig = Field(default_factory=EncodingConfig)
    network: NetworkConfig = Field(default_factory=NetworkConfig)
    stdp: STDPConfig = Field(default_factory=STDPConfig)
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    backend: BackendConfig = Field(default_factory=BackendConfig)

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of the resolved config."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


def _model_for(path: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] = Config
    for key in path:
        field = model.model_fields.get(key)
        ann = getattr(field, "annotation", None)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        else:
            return None
    return model


def _format_error(err: dict, source: str) -> str:
    loc = tuple(str(p) for p in err["loc"])
    dotted = ".".join(loc)
    if err["type"] == "extra_forbidden":
        model = _model_for(loc[:-1])
        known = list(model.model_fields) if model else []
        close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
        hint = f"; did you mean '{'.'.join(loc[:-1] + (close[0],))}'?" if close else (
            f"; valid keys: {', '.join(known)}" if known else "")
        return f"{source}: unknown config key '{dotted}'{hint}"
    return f"{source}: config key '{dotted}': {err['msg']} (got {err.get('input')!r})"


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def build_config(data: dict[str, Any] | None = None, source: str = "config", **overrides: Any) -> Config:
    """Validate a mapping (plus dotted overrides) into a :class:`Config`.

    Parameters
    ----------
    data : dict, optional
        Nested mapping as read from YAML.
    source : str
        Name used in error messages (the file).
    **overrides
        Dotted keys with ``__`` for dots, e.g. ``stdp__enabled=False``; values
        of ``None`` are ignored (an unset CLI flag).

    Returns
    -------
    Config

    Raises
    ------
    ConfigError
        One line naming the source, the key and the problem.
    """
    data = dict(data or {})
    for key, value in overrides.items():
        if value is None:
            continue
        parts = key.split("__")
        patch: dict = {parts[-1]: value}
        for p in reversed(parts[:-1]):
            patch = {p: patch}
        data = _merge(data, patch)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc.errors()[0], source)) from None


def load_config(path: str | Path | None = None, **overrides: Any) -> Config:
    """Read a YAML config file (optionally with ``extends:``) and validate it.

    Parameters
    ----------
    path : str or Path, optional
        YAML file; a bare name like ``ecg`` is looked up in ``configs/``.
        ``None`` gives the defaults.
    **overrides
        As in :func:`build_config`.

    Returns
    -------
    Config
    """
    if path is None:
        return build_config({}, "defaults", **overrides)
    data = _read_yaml(Path(path))
    return build_config(data, str(path), **overrides)


def _resolve(path: Path) -> Path:
    if path.is_file():
        return path
    cand = CONFIG_DIR / (path.name if path.suffix else f"{path.name}.yaml")
    if not path.parent.parts and cand.is_file():
        return cand
    raise ConfigError(f"{path}: config file not found")


def _read_yaml(path: Path, _seen: tuple = ()) -> dict:
    path = _resolve(path).resolve()
    if path in _seen:
        raise ConfigError(f"{path}: 'extends' loops back to itself")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    parent = data.pop("extends", None)
    if parent:
        base = _read_yaml((path.parent / parent) if not Path(parent).is_absolute() else Path(parent),
                          _seen + (path,))
        data = _merge(base, data)
    return data


def default_config_for(modality: str) -> Path:
    """Path of the shipped default config for a modality (``ecg`` or ``eeg``)."""
    return CONFIG_DIR / f"{modality}.yaml"
