"""gatewise.toml: defaults, strict keys, and errors that name the key."""

from pathlib import Path

import pytest

from gatewise.config import Settings, load_settings, parse_settings
from gatewise.errors import ExitCode, UsageError


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


def test_the_search_section_is_the_budget_of_the_mlp_search_trainer(tmp_path):
    path = tmp_path / "gatewise.toml"
    path.write_text('[train]\ntrainer = "mlp_search"\n\n[search]\ntrials = 5\nparallel = 2\n')
    settings = load_settings(path)
    assert settings.search.trials == 5 and settings.search.parallel == 2
    # Folded into the trainer's params, so the signed settings show the budget the trainer used.
    assert settings.train.params == settings.search.model_dump()
    recorded = settings.model_dump(mode="json")
    assert recorded["train"]["params"]["trials"] == 5 and recorded["search"]["trials"] == 5
    assert parse_settings(recorded) == settings  # a recorded dump reads back as the same settings
    # No [search]: the trainer still gets the defaults, and they are in the signed settings too.
    assert parse_settings({"train": {"trainer": "mlp_search"}}).train.params["timeout_s"] == 60


def test_a_bad_search_section_is_one_line(tmp_path):
    path = tmp_path / "gatewise.toml"
    cases = {
        '[train]\ntrainer = "mlp_search"\n[search]\nbudget = 3\n': r"unknown key 'search.budget'",
        '[train]\ntrainer = "mlp_search"\n[search]\nparallel = 0\n': r"bad value for 'search.parallel'",
        '[train]\ntrainer = "mlp_search"\nparams = { trials = 3 }\n[search]\ntrials = 5\n':
            r"\[train\] params 'trials' = 3 conflicts with \[search\] trials = 5: set the search budget in \[search\] only$",
        '[search]\ntrials = 5\n': r"\[search\] is read by the 'mlp_search' trainer only; \[train\] trainer is 'mlp'$",
    }
    for text, message in cases.items():
        path.write_text(text)
        with pytest.raises(UsageError, match=message) as raised:
            load_settings(path)
        assert "\n" not in str(raised.value) and raised.value.exit_code == ExitCode.USAGE
