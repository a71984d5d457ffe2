"""Helpers shared by the compressor and trainer tests: small crafted tabular data and a real parent.

The data imitates the bundled set's awkward parts on purpose: a numeric column whose mean is large
against its spread (a year), skewed counts, categorical columns, and an imbalanced label.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from gatewise.encoding import InputSpec

NUMERIC = ("year", "age", "checks")
CATEGORICAL = ("colour", "employed", "region")


def crafted_frame(rows: int = 1500, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A frame of NUMERIC + CATEGORICAL columns and a 0/1 label that depends on most of them."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "year": rng.integers(1997, 2003, rows).astype(float),
        "age": rng.normal(25, 8, rows).round(),
        "checks": rng.poisson(1.6, rows).astype(float),
        "colour": rng.choice(["Black", "White"], rows, p=[0.25, 0.75]),
        "employed": rng.choice(["No", "Yes"], rows, p=[0.2, 0.8]),
        "region": rng.choice(["north", "south", "east"], rows),
    })
    logit = (1.2 - 0.7 * frame["checks"] + 0.9 * (frame["employed"] == "Yes") + 0.03 * (frame["age"] - 25)
             + 0.2 * (frame["year"] - 2000) - 0.4 * (frame["region"] == "east"))
    label = (rng.random(rows) < 1 / (1 + np.exp(-logit.to_numpy()))).astype(int)
    return frame, label


@dataclass(frozen=True, eq=False)
class CraftedParent:
    path: Path
    spec: InputSpec
    train: pd.DataFrame
    y_train: np.ndarray
    test: pd.DataFrame
    y_test: np.ndarray
    calibration: np.ndarray


def crafted_parent(workdir: Path, params: dict | None = None, rows: int = 1500) -> CraftedParent:
    """Train the built-in MLP on crafted data (a few epochs) and export it to ``workdir/parent.onnx``."""
    from gatewise.export import export_onnx
    from gatewise.plugins.mlp_trainer import MLPTrainer

    frame, label = crafted_frame(rows)
    cut = int(rows * 0.7)
    train, test = frame.iloc[:cut].reset_index(drop=True), frame.iloc[cut:].reset_index(drop=True)
    spec = InputSpec.fit(train, NUMERIC, CATEGORICAL)
    trained = MLPTrainer().train(train, label[:cut], spec, {"epochs": 4, **(params or {})})
    path = Path(workdir) / "parent.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(trained, spec.encode(test), path)
    return CraftedParent(path, spec, train, label[:cut], test, label[cut:], spec.encode(train))


def unusual_rows(parent: CraftedParent) -> np.ndarray:
    """Encoded test rows plus rows with unseen (0) and out-of-range (99) category codes."""
    rows = parent.spec.encode(parent.test)
    odd = rows[:8].copy()
    odd[:4, len(NUMERIC):] = 0
    odd[4:, len(NUMERIC):] = 99
    return np.concatenate([rows, odd])


def install_plugin(site: Path, module: str, distribution: str, source: str, entry_point: str | None = None) -> dict[str, str]:
    """A plugin as pip leaves one, in the folder ``site``: ``module``.py and the dist-info of
    ``distribution`` (version 0.1) with one entry point of the group 'gatewise' (named
    ``entry_point``, else the module's name). Returns the PYTHONPATH that puts ``site`` first, for
    the environment of a child process."""
    info = site / f"{distribution.replace('-', '_')}-0.1.dist-info"
    info.mkdir(parents=True)
    (site / f"{module}.py").write_text(source)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[gatewise]\n{entry_point or module} = {module}\n")
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
