"""Tests of the configuration model (spikewatch.config) and the shipped YAML files.

Checked: ecg.yaml / eeg.yaml load by name and by path (eeg through
``extends:``), unknown keys get a "did you mean" hint, strict types and the
cross-field rules are enforced with the file and dotted key in the message,
``__`` overrides, the digest, and that every field is documented and read
somewhere in the package.
"""

from __future__ import annotations

import ast
import re
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

import spikewatch
from spikewatch.config import CONFIG_DIR, Config, build_config, load_config
from spikewatch.errors import ConfigError, SpikewatchError

REPO = Path(__file__).resolve().parents[1]
REPO_CONFIGS = REPO / "configs"
PACKAGE = Path(spikewatch.__file__).resolve().parent


def sections() -> dict[str, type[BaseModel]]:
    """Section name -> section model, from ``Config.model_fields``."""
    out = {}
    for name, field in Config.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out[name] = ann
    return out


def leaf_fields() -> list[tuple[str, str, object]]:
    """(dotted key, attribute name, FieldInfo) of every value field, top level included."""
    out = []
    secs = sections()
    for name, field in Config.model_fields.items():
        if name in secs:
            for sub, subfield in secs[name].model_fields.items():
                out.append((f"{name}.{sub}", sub, subfield))
        else:
            out.append((name, name, field))
    return out


def write(tmp_path: Path, name: str, data) -> Path:
    """Write a YAML file (mapping or raw text) and return its path."""
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


# --------------------------------------------------------------------- shipped files

@pytest.mark.parametrize("name", ["ecg", "eeg"])
def test_shipped_configs_load_by_name_and_path(name):
    """Both configs load by bare name, by package path and by the repository's configs/ path."""
    by_name = load_config(name)
    assert isinstance(by_name, Config)
    for path in (CONFIG_DIR / f"{name}.yaml", REPO_CONFIGS / f"{name}.yaml"):
        assert path.is_file(), path
        assert load_config(path).digest() == by_name.digest()
        assert load_config(str(path)).digest() == by_name.digest()


def test_ecg_yaml_values_are_what_loads():
    """Every value written in ecg.yaml is the value of the loaded config."""
    raw = yaml.safe_load((CONFIG_DIR / "ecg.yaml").read_text())
    dumped = load_config("ecg").model_dump()
    for sec, body in raw.items():
        if isinstance(body, dict):
            for key, value in body.items():
                assert dumped[sec][key] == value, f"{sec}.{key}"
        else:
            assert dumped[sec] == body, sec


def test_eeg_extends_ecg():
    """eeg.yaml overrides what it writes and inherits the rest from ecg.yaml."""
    raw = yaml.safe_load((CONFIG_DIR / "eeg.yaml").read_text())
    assert raw.pop("extends") == "ecg.yaml"
    eeg, ecg = load_config("eeg").model_dump(), load_config("ecg").model_dump()
    overridden = set()
    for sec, body in raw.items():
        for key, value in body.items():
            assert eeg[sec][key] == value, f"{sec}.{key}"
            overridden.add((sec, key))
    inherited = [(s, k) for s in sections() for k in ecg[s] if (s, k) not in overridden]
    assert inherited, "eeg.yaml should inherit something"
    for sec, key in inherited:
        assert eeg[sec][key] == ecg[sec][key], f"{sec}.{key}"
    assert load_config("eeg").digest() != load_config("ecg").digest()


def test_no_file_gives_defaults():
    """load_config(None) is the model defaults."""
    assert load_config(None).model_dump() == Config().model_dump()


# --------------------------------------------------------------------- errors

def test_unknown_top_level_key_hints(tmp_path):
    """A misspelt top-level key is refused with the close key suggested and the file named."""
    path = write(tmp_path, "c.yaml", {"sede": 3})
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    msg = str(exc.value)
    assert "'sede'" in msg and "did you mean 'seed'" in msg and str(path) in msg


@pytest.mark.parametrize("section,typo,meant", [
    ("stdp", "enabeld", "enabled"),
    ("encoding", "delta_factr", "delta_factor"),
    ("preprocessing", "lfreq", "l_freq"),
])
def test_unknown_section_key_hints(tmp_path, section, typo, meant):
    """A misspelt key inside a section names the dotted key and suggests the right one."""
    path = write(tmp_path, "c.yaml", {section: {typo: 1}})
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    msg = str(exc.value)
    assert f"'{section}.{typo}'" in msg
    assert f"did you mean '{section}.{meant}'" in msg
    assert str(path) in msg
    assert "\n" not in msg


def test_unknown_key_without_close_match_lists_valid_keys(tmp_path):
    """Nothing close: the valid keys of that section are listed instead."""
    path = write(tmp_path, "c.yaml", {"stdp": {"zzzzzz": 1}})
    with pytest.raises(ConfigError, match="valid keys: .*a_plus") as exc:
        load_config(path)
    assert "did you mean" not in str(exc.value)


def test_unknown_override_key_hints():
    """Overrides go through the same check."""
    with pytest.raises(ConfigError, match=r"did you mean 'stdp\.enabled'"):
        load_config("ecg", stdp__enabeld=False)


@pytest.mark.parametrize("section,key,bad", [
    ("encoding", "delta_factor", "0.5"),
    ("seed", None, "0"),
    ("stdp", "enabled", "yes"),
    ("network", "n_neurons", 24.5),
    ("preprocessing", "notch", 60.0),
])
def test_wrong_type_is_strict(tmp_path, section, key, bad):
    """No coercion: a quoted number or a float for an int is refused, naming key and file."""
    data = {section: bad} if key is None else {section: {key: bad}}
    path = write(tmp_path, "c.yaml", data)
    dotted = section if key is None else f"{section}.{key}"
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    msg = str(exc.value)
    assert f"'{dotted}'" in msg and str(path) in msg


@pytest.mark.parametrize("stdp,words", [
    ({"a_minus": 1e-4}, ["stdp.a_minus"]),
    ({"a_plus": -1e-4}, ["stdp.a_plus"]),
    ({"w_min": 2.0, "w_max": 1.0}, ["stdp", "w_min", "w_max"]),
    ({"w_min": 1.0, "w_max": 1.0}, ["stdp", "w_min", "w_max"]),
])
def test_stdp_value_rules(tmp_path, stdp, words):
    """A- must be negative, A+ positive and w_min < w_max."""
    path = write(tmp_path, "c.yaml", {"stdp": stdp})
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    for w in words:
        assert w in str(exc.value)


@pytest.mark.parametrize("data,key", [
    ({"encoding": {"delta_factor": 0.0}}, "encoding.delta_factor"),
    ({"preprocessing": {"filter_order": 9}}, "preprocessing.filter_order"),
    ({"io": {"unit": "nV"}}, "io.unit"),
    ({"stdp": {"bounds": "medium"}}, "stdp.bounds"),
])
def test_out_of_range_values(data, key):
    """Bounds and literals are enforced by build_config too."""
    with pytest.raises(ConfigError, match=re.escape(key)):
        build_config(data, "test")


@pytest.mark.parametrize("window", [[0.15], [-0.1, 0.0, 0.15], [0.15, -0.1], []])
def test_beat_window_is_start_end_pair(window):
    """detection.beat_window_s is (start, end) with start < end; anything else is refused early."""
    with pytest.raises(ConfigError, match="beat_window_s"):
        build_config({"detection": {"beat_window_s": window}}, "test")


def test_missing_file(tmp_path):
    """A missing file (by path or by bare name) is a ConfigError, a SpikewatchError."""
    for missing in (tmp_path / "nope.yaml", "no_such_config"):
        with pytest.raises(ConfigError, match="not found"):
            load_config(missing)
    assert issubclass(ConfigError, SpikewatchError)


def test_missing_parent(tmp_path):
    """``extends`` naming a file that does not exist is a ConfigError."""
    with pytest.raises(ConfigError, match="not found"):
        load_config(write(tmp_path, "c.yaml", {"extends": "absent.yaml"}))


def test_bad_yaml_and_non_mapping(tmp_path):
    """Unparsable YAML and a top-level list are ConfigErrors naming the file."""
    for name, text in (("bad.yaml", "seed: [1, 2\n"), ("list.yaml", "- 1\n- 2\n")):
        path = write(tmp_path, name, text)
        with pytest.raises(ConfigError, match=re.escape(name)):
            load_config(path)


def test_extends_self_loop(tmp_path):
    """A file extending itself is refused."""
    with pytest.raises(ConfigError, match="loop"):
        load_config(write(tmp_path, "a.yaml", {"extends": "a.yaml", "seed": 1}))


def test_extends_two_file_loop(tmp_path):
    """a -> b -> a is refused."""
    write(tmp_path, "a.yaml", {"extends": "b.yaml"})
    write(tmp_path, "b.yaml", {"extends": "a.yaml"})
    with pytest.raises(ConfigError, match="loop"):
        load_config(tmp_path / "a.yaml")


def test_extends_loop_through_parent_dir(tmp_path):
    """The same loop spelt with ``../dir/`` paths is still detected (not a crash)."""
    d = tmp_path / "cfg"
    d.mkdir()
    write(d, "a.yaml", {"extends": "../cfg/b.yaml"})
    write(d, "b.yaml", {"extends": "../cfg/a.yaml"})
    with pytest.raises(ConfigError, match="loop"):
        load_config(d / "a.yaml")


def test_user_file_extending_shipped_config(tmp_path):
    """A user file can extend a shipped config by path and override one value."""
    path = write(tmp_path, "mine.yaml", {"extends": str(CONFIG_DIR / "eeg.yaml"),
                                         "encoding": {"delta_factor": 0.7}})
    cfg, eeg = load_config(path), load_config("eeg")
    assert cfg.encoding.delta_factor == 0.7
    assert cfg.encoding.calibration_s == eeg.encoding.calibration_s
    assert cfg.network == eeg.network


# --------------------------------------------------------------------- overrides

def test_overrides_win_over_file():
    """``section__key=value`` beats the file; siblings in that section keep the file's values."""
    base = load_config("eeg")
    cfg = load_config("eeg", stdp__enabled=False, encoding__delta_factor=0.25, seed=7)
    assert base.stdp.enabled is True
    assert cfg.stdp.enabled is False
    assert cfg.encoding.delta_factor == 0.25 != base.encoding.delta_factor
    assert cfg.seed == 7
    assert cfg.encoding.calibration_s == base.encoding.calibration_s
    assert cfg.stdp.model_dump(exclude={"enabled"}) == base.stdp.model_dump(exclude={"enabled"})
    assert cfg.network == base.network


def test_none_overrides_are_ignored():
    """An unset option (None) leaves the file's value."""
    base = load_config("eeg")
    cfg = load_config("eeg", stdp__enabled=None, io__sfreq=None, encoding__delta_factor=None)
    assert cfg.digest() == base.digest()


def test_invalid_override_value():
    """An override is validated like the file, and the error names the key."""
    with pytest.raises(ConfigError, match=r"stdp\.a_minus"):
        load_config("ecg", stdp__a_minus=0.5)


# --------------------------------------------------------------------- digest

def test_digest_stable():
    """Same config, same digest: across loads, paths and key order."""
    a = load_config("ecg").digest()
    assert a == load_config("ecg").digest() == load_config(CONFIG_DIR / "ecg.yaml").digest()
    assert len(a) == 64 and int(a, 16) >= 0
    d = load_config("ecg").model_dump()
    reordered = {k: (dict(reversed(list(v.items()))) if isinstance(v, dict) else v)
                 for k, v in reversed(list(d.items()))}
    assert build_config(reordered).digest() == a


_CANDIDATES = [1, 2.5, 0.25, 3, 7.0, "eeg", "mV", "V", "hard", "soft", ["A"], [60.0],
               [0.0, 0.1], [-0.2, 0.3], True, False, None]


def _alternative(dump: dict, dotted: str, field=None):
    """A valid value for ``dotted`` different from its current one, or raise LookupError."""
    parts = dotted.split(".")
    current = dump[parts[0]] if len(parts) == 1 else dump[parts[0]][parts[1]]
    extra = []
    if field is not None and typing.get_origin(field.annotation) is typing.Literal:
        extra = list(typing.get_args(field.annotation))  # the literal's own options
    if isinstance(current, bool):
        extra = [not current]
    elif isinstance(current, (int, float)):
        extra = [type(current)(current + 1), current * 2 if current else type(current)(1), current / 2]
    for cand in extra + _CANDIDATES:
        if cand == current and type(cand) is type(current):
            continue
        try:
            cfg = build_config(dump, "test", **{"__".join(parts): cand})
        except ConfigError:
            continue
        new = cfg.model_dump()
        got = new[parts[0]] if len(parts) == 1 else new[parts[0]][parts[1]]
        if got != current:
            return cfg
    raise LookupError(dotted)


def _single_value_literal(field) -> bool:
    ann = field.annotation
    return typing.get_origin(ann) is typing.Literal and len(typing.get_args(ann)) == 1


@pytest.mark.parametrize("base", ["ecg", "eeg"])
def test_digest_changes_with_every_value(base):
    """Changing any single field (to another valid value) changes the digest."""
    cfg = load_config(base)
    dump, digest = cfg.model_dump(), cfg.digest()
    unchanged, no_alternative = [], []
    for dotted, _, field in leaf_fields():
        try:
            other = _alternative(dump, dotted, field)
        except LookupError:
            if not _single_value_literal(field):
                no_alternative.append(dotted)
            continue
        if other.digest() == digest:
            unchanged.append(dotted)
    assert not no_alternative, f"test found no alternative value for {no_alternative}"
    assert not unchanged, f"digest ignores {unchanged}"


# --------------------------------------------------------------------- documentation and use

def _attribute_names(path: Path) -> set[str]:
    """Names used as ``.<name>`` in the code of one file (comments and strings excluded)."""
    text = path.read_text(encoding="utf-8")
    try:
        tree = ast.parse(text)
    except SyntaxError:  # a file being edited right now: fall back to text
        return set(re.findall(r"\.([A-Za-z_]\w*)\b", text))
    return {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}


def test_every_config_field_is_used():
    """Every field of every section (and the top level) is read as ``.<name>`` outside config.py."""
    files = [p for p in PACKAGE.rglob("*.py") if p.name != "config.py"]
    assert len(files) > 5
    used = set().union(*(_attribute_names(p) for p in files))
    fields = [(name, name) for name in sections()] + [(d, n) for d, n, _ in leaf_fields()]
    unused = sorted(dotted for dotted, name in fields if name not in used)
    assert not unused, f"config fields never read in src/spikewatch: {unused}"


def test_every_field_has_a_description():
    """Every value field has a non-empty description; every section model a docstring."""
    missing = [dotted for dotted, _, field in leaf_fields() if not (field.description or "").strip()]
    assert not missing, f"fields without description: {missing}"
    undocumented = [name for name, model in sections().items()
                    if not (Config.model_fields[name].description or (model.__doc__ or "")).strip()]
    assert not undocumented, f"sections without description: {undocumented}"
