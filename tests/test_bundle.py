"""The deployable bundle on real MIT-BIH data: learn -> save -> load round trip,
byte-reproducible writes, hash/shape/pickle validation against tampering, and the
frozen analysis (bundle delta, weight scale and weights instead of calibration
and learning), from Python and from the CLI."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from spikewatch.analysis import analyze
from spikewatch.bundle import (CONFIG, MANIFEST, NPZ, BundleError, learn_bundle, load_bundle, npz_bytes,
                               save_bundle, sha256_bytes)
from spikewatch.cli import main
from spikewatch.errors import SpikewatchError
from spikewatch.jobs import resolve_job

TRAIN_S = 20.0


@pytest.fixture(scope="module")
def learned(mitdb):
    """Record 213 (many V beats), STDP on the reference backend over its first 20 s."""
    rec, cfg = resolve_job(mitdb / "213")
    bundle, result = learn_bundle(rec, cfg, stop=TRAIN_S)
    return rec, cfg, bundle, result


@pytest.fixture()
def saved(learned, tmp_path):
    _, _, bundle, _ = learned
    return save_bundle(bundle, tmp_path / "bundle")


def test_learned_bundle_holds_the_learned_network(learned):
    """The bundle carries the STDP-learned (changed) weights, the calibrated delta and scale, and provenance."""
    rec, cfg, bundle, result = learned
    assert bundle.weights.shape == (cfg.network.n_neurons, result.weights_end.shape[1])
    np.testing.assert_array_equal(bundle.weights, result.weights_end)
    assert np.mean(np.abs(bundle.weights - result.weights_start)) > 0, "STDP learned nothing"
    np.testing.assert_array_equal(bundle.delta, result.delta)
    assert bundle.weight_scale == result.weight_scale > 0
    assert bundle.channels == result.channels == ["MLII", "V1"]
    assert bundle.training["stop_s"] == pytest.approx(TRAIN_S)
    assert bundle.training["file"] == "213.hea" and len(bundle.training["sha256"]) == 64
    assert bundle.config.stdp.enabled and bundle.config.backend.name == "nengo"


def test_round_trip_and_manifest(learned, saved):
    """load(save(b)) gives back every array and the config; the manifest hashes match the files."""
    _, _, bundle, _ = learned
    loaded = load_bundle(saved)
    for name, arr in bundle.arrays().items():
        np.testing.assert_array_equal(loaded.arrays()[name], arr, err_msg=name)
    assert loaded.config.digest() == bundle.config.digest()
    assert loaded.channels == bundle.channels and loaded.kind == "detector"
    manifest = json.loads((saved / MANIFEST).read_text())
    assert manifest["format"] == "spikewatch-bundle" and manifest["format_version"] == 1
    for name in (NPZ, CONFIG):
        assert manifest["files"][name] == sha256_bytes((saved / name).read_bytes())
    assert manifest["training"]["sha256"] == bundle.training["sha256"]
    assert manifest["versions"]["nengo-loihi"] == "1.1.0"
    assert load_bundle(saved / MANIFEST).config.digest() == bundle.config.digest()


def test_writes_are_byte_reproducible(learned, tmp_path):
    """The same bundle written twice gives identical network.npz and config.json bytes."""
    _, _, bundle, _ = learned
    a = save_bundle(bundle, tmp_path / "a")
    b = save_bundle(bundle, tmp_path / "b")
    for name in (NPZ, CONFIG):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert not list(tmp_path.glob(".*partial")), "temporary folder left behind"


def test_save_replaces_a_bundle_but_not_other_folders(learned, tmp_path):
    """An existing bundle is replaced; a non-empty non-bundle folder or a file is refused."""
    _, _, bundle, _ = learned
    target = save_bundle(bundle, tmp_path / "b")
    save_bundle(bundle, target)
    assert load_bundle(target).config.digest() == bundle.config.digest()
    other = tmp_path / "reports"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(BundleError, match="not a spikewatch bundle"):
        save_bundle(bundle, other)
    assert (other / "keep.txt").read_text() == "x"


def _rehash(folder: Path, name: str) -> None:
    """Update the manifest hash of ``name`` (a consistent but invalid edit)."""
    m = json.loads((folder / MANIFEST).read_text())
    m["files"][name] = sha256_bytes((folder / name).read_bytes())
    (folder / MANIFEST).write_text(json.dumps(m))


def _replace_array(folder: Path, name: str, value) -> None:
    with np.load(folder / NPZ, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays[name] = value
    (folder / NPZ).write_bytes(npz_bytes(arrays))
    _rehash(folder, NPZ)


def test_tampered_npz_is_refused(saved):
    """One changed byte of network.npz breaks its hash."""
    data = bytearray((saved / NPZ).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (saved / NPZ).write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"network\.npz: SHA-256 does not match"):
        load_bundle(saved)


def test_tampered_config_is_refused(saved):
    """An edited config.json breaks its hash, even if still valid JSON."""
    cfg = json.loads((saved / CONFIG).read_text())
    cfg["detection"]["z_threshold"] = 1.0
    (saved / CONFIG).write_text(json.dumps(cfg))
    with pytest.raises(BundleError, match=r"config\.json: SHA-256"):
        load_bundle(saved)


@pytest.mark.parametrize("name,value,words", [
    ("weights", np.zeros((3, 3)), "shape"),
    ("delta", np.array([1e-4, np.nan]), "non-finite"),
    ("delta", np.array([1e-4, -1e-4]), "> 0"),
    ("delay_steps", np.array([0, 1, 2, 3, 4]), "delay_steps"),
    ("weight_scale", np.array([1.0, 2.0]), "dimensions"),
])
def test_inconsistent_arrays_are_refused(saved, name, value, words):
    """Arrays that do not fit the config are refused even when the hashes were updated."""
    _replace_array(saved, name, value)
    with pytest.raises(BundleError, match=words):
        load_bundle(saved)


def test_pickled_array_is_refused(saved):
    """An object array (needs pickle) is never loaded: allow_pickle=False."""
    with np.load(saved / NPZ, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for k, v in arrays.items():
            with zf.open(f"{k}.npy", "w") as fh:
                np.lib.format.write_array(fh, v if k != "gain" else np.array([{"x": 1}], dtype=object),
                                          allow_pickle=True)
    (saved / NPZ).write_bytes(buf.getvalue())
    _rehash(saved, NPZ)
    with pytest.raises(BundleError, match="pickle"):
        load_bundle(saved)


@pytest.mark.parametrize("edit,words", [
    (lambda m: m.update(format_version=99), "version 99"),
    (lambda m: m.update(format="something-else"), "not a spikewatch bundle"),
    (lambda m: m.update(channels=[]), "channels"),
])
def test_bad_manifest_is_refused(saved, edit, words):
    m = json.loads((saved / MANIFEST).read_text())
    edit(m)
    (saved / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(BundleError, match=words):
        load_bundle(saved)


def test_missing_pieces_are_refused(saved, tmp_path):
    with pytest.raises(BundleError, match="not found"):
        load_bundle(tmp_path / "nothing")
    (saved / CONFIG).unlink()
    with pytest.raises(BundleError, match=r"config\.json: missing"):
        load_bundle(saved)
    (saved / MANIFEST).write_text("{not json")
    with pytest.raises(BundleError, match="unreadable JSON"):
        load_bundle(saved)
    assert issubclass(BundleError, SpikewatchError)


def test_frozen_analysis_uses_the_bundle(learned):
    """analyze(bundle=...) runs learning off with the bundle's weights, delta and scale (no calibration)."""
    rec, cfg, bundle, _ = learned
    res = analyze(rec, cfg, start=TRAIN_S, stop=TRAIN_S + 10, bundle=bundle)
    np.testing.assert_array_equal(res.weights_start, bundle.weights)
    np.testing.assert_array_equal(res.weights_end, bundle.weights)
    np.testing.assert_array_equal(res.delta, bundle.delta)
    assert res.weight_scale == bundle.weight_scale
    assert res.model["network_sha256"] is None or len(res.model["network_sha256"]) == 64
    assert res.neuron_spikes.sum() > 0 and len(res.rpeaks) > 5
    again = analyze(rec, cfg, start=TRAIN_S, stop=TRAIN_S + 10, bundle=bundle)
    np.testing.assert_array_equal(res.score, again.score)


def test_bundle_refuses_other_channels_or_network(learned):
    rec, cfg, bundle, _ = learned
    one = cfg.model_copy(update={"io": cfg.io.model_copy(update={"channels": ["MLII"]})})
    with pytest.raises(BundleError, match="channels"):
        analyze(rec, one, stop=5, bundle=bundle)
    other = cfg.model_copy(update={"network": cfg.network.model_copy(update={"tau_rc": 0.03})})
    with pytest.raises(BundleError, match="network.tau_rc"):
        analyze(rec, other, stop=5, bundle=bundle)


def test_nothing_to_learn_is_refused(learned):
    rec, cfg, _, _ = learned
    off = cfg.model_copy(update={"stdp": cfg.stdp.model_copy(update={"enabled": False})})
    with pytest.raises(BundleError, match="stdp.enabled"):
        learn_bundle(rec, off, stop=5)


def test_cli_deploy_then_analyze_with_model(mitdb, tmp_path, capsys):
    """deploy writes a loadable bundle; analyze --model uses it (summary records it, learning off);
    a tampered bundle is a one-line error with exit code 2."""
    bdir = tmp_path / "b"
    assert main(["deploy", str(mitdb / "213"), "--stop", "15", "--out", str(bdir)]) == 0
    printed = capsys.readouterr().out
    assert "fits one chip" in printed and "compartments" in printed
    b = load_bundle(bdir)
    assert b.training["stop_s"] == pytest.approx(15.0)
    assert "resources" in b.manifest["loihi"]
    rc = main(["analyze", str(mitdb / "213"), "--model", str(bdir), "--start", "15", "--stop", "25",
               "--out", str(tmp_path / "rep"), "--no-html"])
    assert rc == 0
    summary = json.loads((tmp_path / "rep" / "213" / "summary.json").read_text())
    assert summary["model"]["network_sha256"] == b.manifest["files"][NPZ]
    assert summary["config"]["stdp"]["enabled"] is False and summary["backend"] == "nengo"
    data = bytearray((bdir / NPZ).read_bytes())
    data[-10] ^= 1
    (bdir / NPZ).write_bytes(bytes(data))
    capsys.readouterr()
    rc = main(["analyze", str(mitdb / "213"), "--model", str(bdir), "--out", str(tmp_path / "rep2")])
    err = capsys.readouterr().err
    assert rc == 2 and "SHA-256" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
