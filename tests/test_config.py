"""gatewise.toml: defaults, strict keys, and errors that name the key."""

from pathlib import Path

import pytest

from gatewise.config import Settings, load_settings
from gatewise.errors import UsageError


def test_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None)
    assert settings == Settings()
    assert settings.compress.compressors == ("graph_optimize", "int8_dynamic", "int8_static", "distill+graph_optimize")


def test_thresholds_are_read_from_the_gates_table(tmp_path):
    path = tmp_path / "gatewise.toml"
    path.write_text("[gates.fairness]\nmax_demographic_parity_difference = 0.1\n")
    assert load_settings(path).gates.fairness.max_demographic_parity_difference == 0.1


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "gatewise.toml"
    path.write_text("[gates.fairness]\nmax_dp = 0.1\n")
    with pytest.raises(UsageError, match=r"unknown key 'gates.fairness.max_dp'"):
        load_settings(path)


def test_a_gate_cannot_be_switched_off(tmp_path):
    path = tmp_path / "gatewise.toml"
    path.write_text("[gates.drift]\nenabled = false\n")
    with pytest.raises(UsageError, match=r"unknown key 'gates.drift.enabled'"):
        load_settings(path)


def test_bad_value_is_named(tmp_path):
    path = tmp_path / "gatewise.toml"
    path.write_text("[split]\ntest_fraction = 2\n")
    with pytest.raises(UsageError, match=r"bad value for 'split.test_fraction'"):
        load_settings(path)


def test_invalid_toml_and_missing_file(tmp_path):
    path = tmp_path / "gatewise.toml"
    path.write_text("[gates\n")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_settings(path)
    with pytest.raises(UsageError, match="config file not found"):
        load_settings(Path(tmp_path / "nope.toml"))


def test_digest_changes_with_a_threshold():
    strict = Settings.model_validate({"gates": {"drift": {"max_drifted_share": 0.1}}})
    assert strict.digest() != Settings().digest()
