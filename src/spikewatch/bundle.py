"""Deployable bundle of a learned network: one format for every use.

A bundle is a folder::

    network.npz     arrays, loaded with allow_pickle=False:
                    weights (n_neurons x n_pre, simulator units), weight_scale,
                    delta (per channel, volts), sfreq, delay_steps, gain, bias
    config.json     the resolved config the network was learned with
    manifest.json   format and version, SHA-256 of network.npz and config.json,
                    the training input (file hashes, span), array shapes,
                    package versions, what the bundle is for (``kind``)

It is written atomically (assembled under a temporary name, renamed when
complete) and byte-reproducible (fixed zip timestamps), so the same training
gives the same hashes. :func:`load_bundle` checks the format, both hashes,
every array's presence, dtype, shape and finiteness against the config; any
mismatch or tampering is a :class:`BundleError` naming the file.

The same bundle serves the detector deployed to Loihi (``spikewatch deploy``,
``analyze --model``) and any other frozen use of a learned network, e.g. a
patient baseline learned from earlier recordings.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spikewatch.config import Config, build_config
from spikewatch.errors import SpikewatchError
from spikewatch.io.writers import atomic_write_bytes, report_dir, write_json

FORMAT = "spikewatch-bundle"
FORMAT_VERSION = 1
NPZ = "network.npz"
CONFIG = "config.json"
MANIFEST = "manifest.json"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
#: array name -> (dtype kind, ndim)
_ARRAYS = {"weights": ("f", 2), "weight_scale": ("f", 0), "delta": ("f", 1), "sfreq": ("f", 0),
           "delay_steps": ("i", 1), "gain": ("f", 1), "bias": ("f", 1)}


class BundleError(SpikewatchError):
    """A bundle is missing, malformed, tampered with, or does not fit the recording."""


@dataclass
class Bundle:
    """A learned network, frozen.

    Parameters
    ----------
    config : Config
        The resolved config it was learned with.
    weights : ndarray, shape (n_neurons, n_pre)
        Input weights in simulator units.
    weight_scale : float
        Simulator weight per config weight unit (see ``DetectorNetwork``).
    delta : ndarray, shape (n_channels,)
        Send-on-delta thresholds (volts) calibrated on the training data.
    sfreq : float
        Sampling rate the network runs at (Hz).
    delay_steps : ndarray of int
        Input delay taps (steps).
    gain, bias : ndarray, shape (n_neurons,)
        LIF gain and bias of the feature neurons (firing threshold 1).
    channels : list of str
        Channel names, in input order.
    kind : str
        What the network is for (``detector``, ``baseline``, ...).
    training : dict
        Provenance: input file name and hashes, span, record id, learning summary.
    manifest : dict
        The manifest as written or read (empty before saving).
    path : Path, optional
        Folder it was loaded from or saved to.
    """

    config: Config
    weights: np.ndarray
    weight_scale: float
    delta: np.ndarray
    sfreq: float
    delay_steps: np.ndarray
    gain: np.ndarray
    bias: np.ndarray
    channels: list
    kind: str = "detector"
    training: dict = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)
    path: Path | None = None

    @property
    def n_channels(self) -> int:
        """Channels the network reads."""
        return len(self.channels)

    def arrays(self) -> dict:
        """The arrays stored in ``network.npz``."""
        return {
            "weights": np.asarray(self.weights, dtype=np.float64),
            "weight_scale": np.asarray(float(self.weight_scale)),
            "delta": np.asarray(self.delta, dtype=np.float64),
            "sfreq": np.asarray(float(self.sfreq)),
            "delay_steps": np.asarray(self.delay_steps, dtype=np.int64),
            "gain": np.asarray(self.gain, dtype=np.float64),
            "bias": np.asarray(self.bias, dtype=np.float64),
        }

    def summary(self) -> dict:
        """Short provenance for reports: kind, hashes, training span, shapes."""
        m = self.manifest
        return {
            "kind": self.kind,
            "folder": self.path.name if self.path else None,
            "network_sha256": m.get("files", {}).get(NPZ),
            "config_file_sha256": m.get("files", {}).get(CONFIG),
            "training": {k: self.training.get(k) for k in ("file", "sha256", "start_s", "stop_s", "duration_s")},
            "n_neurons": int(self.weights.shape[0]),
            "n_inputs": int(self.weights.shape[1]),
            "channels": list(self.channels),
        }

    def check_recording(self, source: str, channels: list, sfreq: float) -> None:
        """Refuse a recording whose channels or sampling rate differ from the bundle's.

        Raises
        ------
        BundleError
        """
        if abs(float(sfreq) - float(self.sfreq)) > 1e-9 * max(self.sfreq, 1.0):
            raise BundleError(f"{source}: sampling rate {sfreq:g} Hz differs from the bundle's "
                              f"{self.sfreq:g} Hz ({self._where()})")
        if list(channels) != list(self.channels):
            raise BundleError(f"{source}: channels {list(channels)} differ from the bundle's "
                              f"{list(self.channels)} ({self._where()}); pick them with --channels")

    def check_config(self, cfg: Config, source: str = "config") -> None:
        """Refuse a config whose filtering or network differs from the bundle's.

        Detection, report, pipeline and backend settings may differ; the
        preprocessing and network sections shape the learned weights and must not.

        Raises
        ------
        BundleError
        """
        for section in ("preprocessing", "network"):
            ours = getattr(self.config, section).model_dump()
            theirs = getattr(cfg, section).model_dump()
            diff = sorted(k for k in ours if ours[k] != theirs.get(k))
            if diff:
                raise BundleError(f"{source}: {section}.{diff[0]} = {theirs.get(diff[0])!r} differs from the "
                                  f"bundle's {ours[diff[0]]!r} ({self._where()})")

    def _where(self) -> str:
        return f"bundle {self.path}" if self.path else "bundle"


def sha256_bytes(data: bytes) -> str:
    """SHA-256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def npz_bytes(arrays: dict) -> bytes:
    """Serialise ``arrays`` as a reproducible ``.npz`` (fixed timestamps, sorted names, no pickle)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with zf.open(info, "w") as fh:
                np.lib.format.write_array(fh, np.array(arrays[name], order="C"), allow_pickle=False)
    return buf.getvalue()


def _config_bytes(cfg: Config) -> bytes:
    return (json.dumps(cfg.model_dump(mode="json"), indent=2, sort_keys=True) + "\n").encode("utf-8")


def save_bundle(bundle: Bundle, out: str | Path) -> Path:
    """Write ``bundle`` to the folder ``out``, atomically.

    Parameters
    ----------
    bundle : Bundle
    out : path-like
        Bundle folder. An existing bundle there is replaced in one rename; any
        other non-empty folder is refused.

    Returns
    -------
    pathlib.Path
        The bundle folder.

    Raises
    ------
    BundleError
        ``out`` is an existing file or a non-empty folder that is not a bundle.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST).is_file())):
        raise BundleError(f"{out}: exists and is not a spikewatch bundle; refusing to replace it")
    from spikewatch.report import versions

    arrays = bundle.arrays()
    npz = npz_bytes(arrays)
    conf = _config_bytes(bundle.config)
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": bundle.kind,
        "files": {NPZ: sha256_bytes(npz), CONFIG: sha256_bytes(conf)},
        "config_sha256": bundle.config.digest(),
        "arrays": {k: {"dtype": str(v.dtype), "shape": list(v.shape)} for k, v in sorted(arrays.items())},
        "channels": list(bundle.channels),
        "training": bundle.training,
        "versions": versions(),
    }
    manifest.update({k: v for k, v in bundle.manifest.items() if k not in manifest})
    with report_dir(out.parent if str(out.parent) else ".", out.name) as tmp:
        atomic_write_bytes(tmp / NPZ, npz)
        atomic_write_bytes(tmp / CONFIG, conf)
        write_json(tmp / MANIFEST, manifest)
    from spikewatch.io.writers import safe_id

    final = out.parent.resolve() / safe_id(out.name)
    bundle.manifest = manifest
    bundle.path = final
    return final


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{path}: missing (not a spikewatch bundle?)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: unreadable JSON: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise BundleError(f"{path}: top level must be an object")
    return data


def _read_checked(folder: Path, name: str, manifest: dict) -> bytes:
    path = folder / name
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{path}: missing from the bundle") from None
    except OSError as exc:
        raise BundleError(f"{path}: unreadable: {exc.strerror or exc}") from None
    want = manifest.get("files", {}).get(name)
    if not isinstance(want, str) or sha256_bytes(data) != want:
        raise BundleError(f"{path}: SHA-256 does not match the manifest (modified or corrupt)")
    return data


def load_bundle(path: str | Path) -> Bundle:
    """Read and validate a bundle folder.

    Parameters
    ----------
    path : path-like
        The bundle folder (or its ``manifest.json``).

    Returns
    -------
    Bundle

    Raises
    ------
    BundleError
        Missing files, unknown format or version, hash mismatch (tampering),
        pickled or missing arrays, wrong dtypes/shapes, non-finite values, or
        arrays inconsistent with the config.
    """
    folder = Path(path)
    if folder.name == MANIFEST:
        folder = folder.parent
    if not folder.is_dir():
        raise BundleError(f"{folder}: bundle folder not found")
    manifest = _read_json(folder / MANIFEST)
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{folder / MANIFEST}: not a spikewatch bundle (format {manifest.get('format')!r})")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(f"{folder / MANIFEST}: bundle format version {manifest.get('format_version')!r} "
                          f"is not supported (this spikewatch reads version {FORMAT_VERSION})")
    conf_bytes = _read_checked(folder, CONFIG, manifest)
    npz_data = _read_checked(folder, NPZ, manifest)
    try:
        cfg = build_config(json.loads(conf_bytes.decode("utf-8")), str(folder / CONFIG))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{folder / CONFIG}: unreadable JSON: {' '.join(str(exc).split())}") from None
    arrays = _load_arrays(folder / NPZ, npz_data)
    channels = manifest.get("channels")
    if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels) or not channels:
        raise BundleError(f"{folder / MANIFEST}: 'channels' must be a non-empty list of names")
    _check_shapes(folder / NPZ, arrays, cfg, len(channels))
    training = manifest.get("training") if isinstance(manifest.get("training"), dict) else {}
    return Bundle(
        config=cfg, weights=arrays["weights"], weight_scale=float(arrays["weight_scale"]),
        delta=arrays["delta"], sfreq=float(arrays["sfreq"]), delay_steps=arrays["delay_steps"],
        gain=arrays["gain"], bias=arrays["bias"], channels=list(channels),
        kind=str(manifest.get("kind", "detector")), training=training, manifest=manifest, path=folder.resolve(),
    )


def _load_arrays(path: Path, data: bytes) -> dict:
    out = {}
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            for name in npz.files:
                out[name] = npz[name]
    except ValueError as exc:  # object arrays need pickle: refused
        raise BundleError(f"{path}: {' '.join(str(exc).split())}") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise BundleError(f"{path}: unreadable .npz: {' '.join(str(exc).split())}") from None
    for name, (kind, ndim) in _ARRAYS.items():
        if name not in out:
            raise BundleError(f"{path}: array '{name}' missing")
        a = out[name]
        if a.dtype.kind != kind or a.ndim != ndim:
            raise BundleError(f"{path}: array '{name}' has dtype {a.dtype} and {a.ndim} dimensions, "
                              f"expected kind '{kind}' with {ndim}")
        if kind == "f" and not np.all(np.isfinite(a)):
            raise BundleError(f"{path}: array '{name}' holds non-finite values")
    return out


def _check_shapes(path: Path, a: dict, cfg: Config, n_channels: int) -> None:
    from spikewatch.snn.network import DetectorNetwork

    sfreq = float(a["sfreq"])
    if sfreq <= 0 or float(a["weight_scale"]) <= 0:
        raise BundleError(f"{path}: sfreq and weight_scale must be > 0")
    net = DetectorNetwork(n_channels, sfreq, cfg.network, cfg.stdp, seed=cfg.seed)  # the shapes it implies
    if a["delay_steps"].tolist() != list(net.delay_steps):
        raise BundleError(f"{path}: delay_steps {a['delay_steps'].tolist()} do not match network.delays_s "
                          f"at {sfreq:g} Hz ({list(net.delay_steps)})")
    n = cfg.network.n_neurons
    expect = {"weights": (n, net.n_pre), "delta": (n_channels,), "gain": (n,), "bias": (n,)}
    for name, shape in expect.items():
        if a[name].shape != shape:
            raise BundleError(f"{path}: array '{name}' has shape {a[name].shape}, expected {shape} "
                              f"({n} neurons, {n_channels} channels, {net.n_pre} inputs)")
    if np.any(a["delta"] <= 0):
        raise BundleError(f"{path}: array 'delta' must be > 0 for every channel")


def learn_bundle(rec, cfg: Config, *, start: float | None = None, stop: float | None = None,
                 kind: str = "detector", progress=None):
    """Learn a network on the reference backend and freeze it into a :class:`Bundle`.

    Parameters
    ----------
    rec : spikewatch.io.Recording
        Training recording.
    cfg : Config
        Resolved config; STDP must be enabled. The training span defaults to
        ``backend.train_start_s`` / ``backend.train_stop_s``.
    start, stop : float, optional
        Training span (s), overriding the config.
    kind : str
        What the bundle is for (``detector``, ``baseline``, ...).
    progress : callable, optional
        ``progress(done_s, total_s)``.

    Returns
    -------
    bundle : Bundle
        Not yet saved (see :func:`save_bundle`).
    result : AnalysisResult
        The training analysis (learning curve, events on the training span).

    Raises
    ------
    BundleError
        STDP is disabled (nothing would be learned).
    """
    from spikewatch.analysis import analyze
    from spikewatch.report import input_files, sha256_files
    from spikewatch.snn.network import DetectorNetwork

    if not cfg.stdp.enabled:
        raise BundleError("config: stdp.enabled is false, so deploy would learn nothing; enable STDP")
    start = cfg.backend.train_start_s if start is None else start
    stop = cfg.backend.train_stop_s if stop is None else stop
    learn_cfg = cfg.model_copy(update={"backend": cfg.backend.model_copy(update={"name": "nengo", "model": None})})
    result = analyze(rec, learn_cfg, start=start, stop=stop, progress=progress)
    net = DetectorNetwork(len(result.channels), result.sfreq, cfg.network, cfg.stdp, seed=cfg.seed)
    rng = np.random.RandomState(cfg.seed)  # nengo distributions take a RandomState
    n = cfg.network.n_neurons
    digest, per_file = sha256_files(input_files(rec.path))
    training = {
        "file": Path(rec.path).name, "record_id": result.record_id, "sha256": digest, "files_sha256": per_file,
        "start_s": result.start_s, "stop_s": round(result.start_s + result.duration_s, 6),
        "duration_s": round(result.duration_s, 6), "modality": result.modality,
        "n_beats": int(len(result.rpeaks)) if result.modality == "ecg" else None,
        "events_per_s": result.encoding["events_per_s"],
        "mean_abs_dw": float(np.mean(np.abs(result.weights_end - result.weights_start))),
        "seed": cfg.seed,
    }
    bundle = Bundle(
        config=learn_cfg, weights=result.weights_end.copy(), weight_scale=result.weight_scale,
        delta=result.delta.copy(), sfreq=result.sfreq, delay_steps=np.asarray(net.delay_steps),
        gain=np.asarray(net.features.gain.sample(n, rng=rng), dtype=np.float64),
        bias=np.asarray(net.features.bias.sample(n, rng=rng), dtype=np.float64),
        channels=list(result.channels), kind=kind, training=training,
    )
    return bundle, result
