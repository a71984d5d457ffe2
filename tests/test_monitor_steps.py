"""The monitor's steps without Prefect: the training reference is re-created only when it provably is
the training data, the inputs are checked, prediction drift and thresholds behave as documented."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from gatewise.config import Settings, parse_settings
from gatewise.errors import UsageError
from gatewise.flows import monitor_steps as steps


@pytest.fixture(scope="module")
def arrests():
    from sklego.datasets import load_arrests

    return load_arrests(as_frame=True).sample(n=600, random_state=0).reset_index(drop=True)


@pytest.fixture
def recorded_run(arrests, home, tmp_path):
    """A real registry holding the signed run entry of a run on a data file (nothing trained)."""
    from gatewise.data import split_dataset
    from gatewise.flows.steps import RunRequest, data_fingerprints, load_dataset
    from gatewise.registry import Registry, VersionInfo

    data = tmp_path / "train.csv"
    arrests.to_csv(data, index=False)
    settings = parse_settings({"data": {"path": str(data), "label": "released", "positive": "Yes"}, "split": {"seed": 7}})
    dataset = load_dataset(RunRequest(settings=settings, home=home))
    split = split_dataset(dataset, settings.split.seed, settings.split.test_fraction)
    registry = Registry.open(home)
    registry.record_run("r1", "train", settings.model_dump(mode="json"), settings.digest(),
                        data_fingerprints(dataset, split, split.test), [])
    info = VersionInfo(version="train:v1", model="train", number=1, sha256="0" * 64, status="ok", plugin="p",
                       parent=None, created=None, promoted=True, artifact=None, production=True, run_id="r1")
    yield registry, info, data, split
    registry.close()


def test_reference_is_recreated_from_the_signed_run_entry(recorded_run, home):
    registry, info, _, split = recorded_run
    reference = steps.training_reference(registry, info, home)
    pd.testing.assert_frame_equal(reference.train, split.train)
    assert reference.fingerprints["train"] == split.train_fingerprint
    assert reference.dataset.schema.label == "released"


def test_changed_training_data_is_no_reference(recorded_run, home):
    registry, info, data, _ = recorded_run
    frame = pd.read_csv(data)
    frame.iloc[1:].to_csv(data, index=False)  # one row fewer than the run trained on
    with pytest.raises(UsageError, match="cannot re-create the training reference of train:v1"):
        steps.training_reference(registry, info, home)


def test_thresholds_default_to_the_drift_gate_and_can_be_set():
    gate = Settings().gates.drift
    assert steps.monitor_policy(Settings()) == gate
    tuned = parse_settings({"monitor": {"max_drifted_share": 0.5, "max_prediction_drift": 0.2}})
    policy = steps.monitor_policy(tuned)
    assert (policy.max_drifted_share, policy.max_prediction_drift) == (0.5, 0.2)
    assert policy.max_weighted_drift == gate.max_weighted_drift
    with pytest.raises(UsageError, match="monitor.max_drifted_share"):
        parse_settings({"monitor": {"max_drifted_share": 2}})


def test_current_inputs_are_checked(arrests, tmp_path, home):
    from gatewise.data import build_dataset
    from gatewise.hookspecs import SourceTable

    dataset = build_dataset(SourceTable(name="arrests", frame=arrests, label="released", positive="Yes", sensitive=()), None, None, None)
    bad_type = arrests.assign(age="old")
    bad_type.to_csv(tmp_path / "text_age.csv", index=False)
    request = steps.MonitorRequest(Settings(), home, current_path=tmp_path / "text_age.csv")
    with pytest.raises(UsageError, match="column 'age' must be numeric"):
        steps.read_current(request, "arrests", dataset)
    both = "pass either --current FILE or --from-serving, not both"
    with pytest.raises(UsageError, match=both):
        steps.request_from(str(home), None, "x.csv", True, None)
    folder = steps.serving_folder(home, "arrests")
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("not parquet")
    with pytest.raises(UsageError, match="no served inputs for model arrests"):
        steps.read_current(steps.MonitorRequest(Settings(), home, from_serving=True), "arrests", dataset)
    arrests.iloc[:10].to_parquet(folder / "a.parquet")
    arrests.drop(columns=["sex"]).iloc[10:20].to_parquet(folder / "b.parquet")
    with pytest.raises(UsageError, match=r"b\.parquet: current data lacks feature column\(s\): sex"):
        steps.read_current(steps.MonitorRequest(Settings(), home, from_serving=True), "arrests", dataset)
    (folder / "b.parquet").unlink()
    batch = steps.read_current(steps.MonitorRequest(Settings(), home, from_serving=True), "arrests", dataset)
    assert len(batch.frame) == 10 and batch.files == (Path(folder / "a.parquet"),)


def test_the_flow_is_deployable_with_plain_json_parameters():
    """`gatewise schedule --monitor` deploys gatewise.flows.monitor:monitor as it is."""
    from prefect.utilities.callables import parameter_schema

    from gatewise.flows.monitor import monitor

    assert monitor.name == "monitor"
    schema = parameter_schema(monitor.fn).model_dump()
    assert list(schema["properties"]) == ["home", "config", "current", "from_serving", "model"]
    assert schema["required"] == ["home"]
    kinds = {name: spec.get("type") or [t.get("type") for t in spec.get("anyOf", [])] for name, spec in schema["properties"].items()}
    assert kinds == {"home": "string", "config": ["string", "null"], "current": ["string", "null"],
                     "from_serving": "boolean", "model": ["string", "null"]}
