"""Contract checks that plugin authors run against their own components, in their own tests.

As pytest ships ``pytester``, gatewise ships this kit: ``check_compressor(MyCompressor(), tmp_path)``
builds a real parent model (the built-in trainer on the bundled arrests data, exported to ONNX),
runs the compressor on it exactly as a gatewise run would, and fails with an AssertionError that
says which part of the contract (docs/plugins.md) the component broke.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gatewise.errors import UsageError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


@dataclass(frozen=True, eq=False)
class ReferenceParent:
    """A small real model to compress: its ONNX file, calibration rows and test rows with scores."""

    path: Path
    calibration: np.ndarray
    test: pd.DataFrame
    scores: np.ndarray


@dataclass(frozen=True)
class CompressorReport:
    name: str
    parent_bytes: int
    output_bytes: int
    decision_agreement: float
    max_score_difference: float


@lru_cache(maxsize=4)
def reference_parent(workdir: Path) -> ReferenceParent:
    """Train the built-in MLP on the bundled data and export it to ``workdir/parent.onnx`` (cached)."""
    from gatewise.data import build_dataset, label_vector, split_dataset
    from gatewise.encoding import InputSpec
    from gatewise.export import export_onnx
    from gatewise.plugin_manager import load_plugins
    from gatewise.scoring import OnnxScorer

    plugins = load_plugins()
    dataset = build_dataset(plugins.get("data_source", "arrests").component.load(None), None, None, None)
    split = split_dataset(dataset, seed=42, test_fraction=0.3)
    spec = InputSpec.fit(split.train, dataset.schema.numeric, dataset.schema.categorical)
    trainer = plugins.get("trainer", "mlp").component
    trained = trainer.train(split.train, label_vector(split.train, dataset.schema), spec, {"epochs": 5})
    path = Path(workdir) / "parent.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(trained, spec.encode(split.test), path)
    calibration = spec.encode(split.train.sample(n=min(2048, len(split.train)), random_state=0))
    return ReferenceParent(path, calibration, split.test, OnnxScorer(path).predict_proba(split.test))


def check_compressor(
    compressor: Any, workdir: Path, params: dict[str, Any] | None = None, min_agreement: float = 0.9
) -> CompressorReport:
    """Run ``compressor`` on a reference parent and check the compressor contract.

    Checks: a non-empty ``name``; ``check_params`` (when defined) refuses an unknown key with a
    UsageError; ``compress`` writes a file that ONNX Runtime runs with the parent's input and
    input contract, one score in [0, 1] per row, for batch sizes 1 and N; and at least
    ``min_agreement`` of the decisions at 0.5 equal the parent's.
    """
    import numpy as np

    from gatewise.scoring import OnnxScorer

    name = getattr(compressor, "name", None)
    assert isinstance(name, str) and name, "a compressor needs a non-empty str attribute 'name'"
    check = getattr(compressor, "check_params", None)
    if check is not None:
        try:
            check({"__not_a_parameter__": 1})
        except UsageError:
            pass
        else:
            raise AssertionError(f"{name}: check_params accepted an unknown key; it must raise UsageError naming it")
    parent = reference_parent(Path(workdir) / "reference")
    output = Path(workdir) / f"{name}.onnx"
    compressor.compress(parent.path, output, parent.calibration.copy(), dict(params or {}))
    assert output.exists(), f"{name}: compress() wrote no file at the output path"
    try:
        scorer = OnnxScorer(output)
    except Exception as exc:  # noqa: BLE001 - the message is the contract violation
        raise AssertionError(f"{name}: ONNX Runtime cannot load the output with its input contract: {exc}") from exc
    scores = scorer.predict_proba(parent.test)
    assert scores.shape == parent.scores.shape, f"{name}: {scores.shape} scores for {len(parent.test)} rows"
    assert np.all((scores >= 0) & (scores <= 1)), f"{name}: scores outside [0, 1]"
    single = scorer.predict_proba(parent.test.head(1))
    assert single.shape == (1,), f"{name}: a batch of one row gives shape {single.shape}"
    agreement = float(np.mean((scores >= 0.5) == (parent.scores >= 0.5)))
    assert agreement >= min_agreement, f"{name}: only {agreement:.1%} of decisions agree with the parent (< {min_agreement:.0%})"
    return CompressorReport(
        name=name,
        parent_bytes=parent.path.stat().st_size,
        output_bytes=output.stat().st_size,
        decision_agreement=agreement,
        max_score_difference=float(np.max(np.abs(scores - parent.scores))),
    )
