"""The few metrics the gates share: decisions at 0.5, balanced accuracy, ROC AUC, paired bootstrap."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

# The ONNX models output P(positive); every gate judges the decision a server would make.
DECISION_THRESHOLD = 0.5
BOOTSTRAP_SEED = 20240601


def decisions(scores: np.ndarray) -> np.ndarray:
    import numpy as np

    return (np.asarray(scores, dtype="float64").reshape(-1) >= DECISION_THRESHOLD).astype("int64")


def check_length(name: str, scores: np.ndarray | None, rows: int) -> None:
    """Scores that do not line up with the test rows would compare different people: refuse."""
    if scores is not None and len(scores) != rows:
        raise ValueError(f"{name} has {len(scores)} scores for {rows} test rows")


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray | float:
    """Mean of the recall of each class present, along the last axis (so it takes bootstrap batches).

    A class absent from ``y_true`` is left out of the mean, as scikit-learn does.
    """
    import warnings

    import numpy as np

    y_true = np.asarray(y_true).astype(bool)
    y_pred = np.asarray(y_pred).astype(bool)
    positives = y_true.sum(axis=-1)
    negatives = (~y_true).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # no rows at all: NaN, reported as None
        tpr = (y_true & y_pred).sum(axis=-1) / positives
        tnr = (~y_true & ~y_pred).sum(axis=-1) / negatives
        result = np.nanmean(np.stack([tpr, tnr]), axis=0)
    return float(result) if np.ndim(result) == 0 else result


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC, or None when the rows hold a single class (AUC is undefined then)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y_true)) < 2:
        return None
    return float(roc_auc_score(y_true, scores))


def paired_bootstrap_drop(
    y_true: np.ndarray, baseline: np.ndarray, candidate: np.ndarray, samples: int
) -> list[float] | None:
    """95% percentile interval of balanced_accuracy(baseline) - balanced_accuracy(candidate).

    Paired: each resample draws the same rows for both models, so the interval reflects the
    difference between the models rather than the luck of the test rows. Fixed seed: the same
    inputs give the same interval in every run and on every machine.
    """
    import numpy as np

    if samples <= 0:
        return None
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    rows = rng.integers(0, len(y_true), size=(samples, len(y_true)))
    drops = balanced_accuracy(y_true[rows], baseline[rows]) - balanced_accuracy(y_true[rows], candidate[rows])
    low, high = np.nanpercentile(drops, [2.5, 97.5])
    return [float(low), float(high)]
