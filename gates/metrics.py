"""The metrics the gates share: decisions at 0.5, the primary metrics, score fidelity, paired bootstrap."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from gatewise.scoring import DECISION_THRESHOLD  # every gate judges the decision the server makes

if TYPE_CHECKING:
    import numpy as np

BOOTSTRAP_SEED = 20240601
# Probabilities are clipped this far from 0 and 1 for log-loss, so one confident miss is finite.
LOG_LOSS_EPS = 1e-6
METRICS = ("balanced_accuracy", "roc_auc", "f1", "accuracy")


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


def _f1(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray | float:
    import numpy as np

    y_true, y_pred = np.asarray(y_true).astype(bool), np.asarray(y_pred).astype(bool)
    true_positives = (y_true & y_pred).sum(axis=-1)
    denominator = y_true.sum(axis=-1) + y_pred.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        result = np.where(denominator > 0, 2 * true_positives / np.maximum(denominator, 1), np.nan)
    return float(result) if np.ndim(result) == 0 else result


def _accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray | float:
    import numpy as np

    result = (np.asarray(y_true).astype(bool) == np.asarray(y_pred).astype(bool)).mean(axis=-1)
    return float(result) if np.ndim(result) == 0 else result


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC, or None when the rows hold a single class (AUC is undefined then)."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    if len(np.unique(y_true)) < 2:
        return None
    return float(roc_auc_score(y_true, scores))


def _weighted_auc(y_true: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC of one score vector under many row weightings at once (rows of ``weights``).

    Ties count one half, as in scikit-learn. A bootstrap resample is a weighting by how often each
    row was drawn, so this gives every resample's AUC without re-sorting.
    """
    import numpy as np

    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    y_sorted = y_true[order].astype(bool)
    w = weights[:, order]
    positives = np.add.reduceat(np.where(y_sorted, w, 0), starts, axis=1)
    negatives = np.add.reduceat(np.where(y_sorted, 0, w), starts, axis=1)
    below = np.cumsum(negatives, axis=1) - negatives
    total_pos, total_neg = positives.sum(axis=1), negatives.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (positives * (below + 0.5 * negatives)).sum(axis=1) / (total_pos * total_neg)


def metric_value(name: str, y_true: np.ndarray, scores: np.ndarray) -> float | None:
    """The primary metric ``name`` of P(positive) scores: AUC ranks the scores, the others judge the 0.5 decisions."""
    import math

    if name == "roc_auc":
        return roc_auc(y_true, scores)
    value = {"balanced_accuracy": balanced_accuracy, "f1": _f1, "accuracy": _accuracy}[name](y_true, decisions(scores))
    return None if value is None or not math.isfinite(value) else float(value)


# How the paired bootstrap resamples, written into the gates' evidence beside its intervals.
BOOTSTRAP_METHOD = (
    "paired percentile bootstrap over the test rows, fixed seed; balanced_accuracy, f1 and accuracy "
    "resample the counts of (label, baseline decision, candidate decision) as one multinomial draw "
    "per resample (the same distribution as drawing rows); roc_auc draws row indices in chunks"
)
# roc_auc needs the rows themselves: its resamples are drawn a few at a time, so that at most this
# many row indices (and the per-resample weights made from them) exist at once, never a
# [samples x rows] matrix (1000 x 150k test rows: 1.2 GB of int64 per call, several calls per
# candidate, candidates gated in parallel). The draws equal one big draw: the chunk size does
# not change an interval.
BOOTSTRAP_CHUNK_CELLS = 1 << 22


def _resample_chunks(rows: int, samples: int) -> Iterator[np.ndarray]:
    """The ``samples`` bootstrap resamples of ``rows`` rows, a [k x rows] block of indices at a time."""
    import numpy as np

    rng = np.random.default_rng(BOOTSTRAP_SEED)
    per_chunk = max(1, BOOTSTRAP_CHUNK_CELLS // max(rows, 1))
    for start in range(0, samples, per_chunk):
        yield rng.integers(0, rows, size=(min(per_chunk, samples - start), rows))


def _bootstrap_auc(y_true: np.ndarray, scores: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """ROC AUC on each resample (rows of ``draws`` index the test rows), as a weighting of the rows."""
    import numpy as np

    samples, rows = draws.shape[0], len(y_true)
    # How often each row was drawn, per resample: one bincount over (resample, row) cells.
    cells = (np.arange(samples, dtype="int64")[:, None] * rows + draws).ravel()
    weights = np.bincount(cells, minlength=samples * rows).reshape(samples, rows).astype("float64")
    return _weighted_auc(np.asarray(y_true), np.asarray(scores, dtype="float64"), weights)


def _from_counts(name: str, tp: np.ndarray, fn: np.ndarray, tn: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """A decision metric from confusion counts, one value per resample; as the row-wise functions
    above: a class absent from a resample leaves balanced accuracy's mean, f1 of nothing is NaN."""
    import warnings

    import numpy as np

    tp, fn, tn, fp = (np.asarray(c, dtype="float64") for c in (tp, fn, tn, fp))
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        if name == "balanced_accuracy":
            return np.nanmean(np.stack([tp / (tp + fn), tn / (tn + fp)]), axis=0)
        if name == "f1":
            denominator = 2 * tp + fp + fn
            return np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), np.nan)
        return (tp + tn) / (tp + fn + tn + fp)


def _count_drops(name: str, y_true: np.ndarray, baseline: np.ndarray, candidate: np.ndarray, samples: int) -> np.ndarray:
    """metric(baseline) - metric(candidate) on each resample, from the counts of the 8 cells
    (label, baseline decision, candidate decision): resampling n rows with replacement gives cell
    counts that are multinomial(n, cell shares), so one draw of 8 counts stands for n row draws."""
    import numpy as np

    y = np.asarray(y_true).astype("int64")
    cells = np.bincount(4 * y + 2 * decisions(baseline) + decisions(candidate), minlength=8)
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    c = rng.multinomial(len(y), cells / cells.sum(), size=samples)  # [samples, 8]: cell 4y + 2b + d
    base = _from_counts(name, c[:, 6] + c[:, 7], c[:, 4] + c[:, 5], c[:, 0] + c[:, 1], c[:, 2] + c[:, 3])
    cand = _from_counts(name, c[:, 5] + c[:, 7], c[:, 4] + c[:, 6], c[:, 0] + c[:, 2], c[:, 1] + c[:, 3])
    return base - cand


def paired_bootstrap_drop(
    y_true: np.ndarray, baseline: np.ndarray, candidate: np.ndarray, samples: int, metric: str = "balanced_accuracy"
) -> list[float] | None:
    """95% percentile interval of metric(baseline) - metric(candidate), from P(positive) scores.

    Paired: each resample draws the same rows for both models, so the interval reflects the
    difference between the models rather than the luck of the test rows. Fixed seed: the same
    inputs give the same interval in every run and on every machine. Memory stays flat in the
    test rows and the resamples (BOOTSTRAP_METHOD says how).
    """
    import warnings

    import numpy as np

    if samples <= 0 or len(y_true) == 0:
        return None
    if metric == "roc_auc":
        drops = np.concatenate([
            _bootstrap_auc(y_true, baseline, draws) - _bootstrap_auc(y_true, candidate, draws)
            for draws in _resample_chunks(len(y_true), samples)
        ])
    else:
        drops = _count_drops(metric, y_true, baseline, candidate, samples)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: no interval
        low, high = np.nanpercentile(drops, [2.5, 97.5])
    if not (np.isfinite(low) and np.isfinite(high)):
        return None
    return [float(low), float(high)]


def log_loss(y_true: np.ndarray, scores: np.ndarray) -> float:
    import numpy as np

    p = np.clip(np.asarray(scores, dtype="float64"), LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    y = np.asarray(y_true, dtype="float64")
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()) if len(y) else float("nan")


def brier(y_true: np.ndarray, scores: np.ndarray) -> float:
    import numpy as np

    return float(((np.asarray(scores, dtype="float64") - np.asarray(y_true, dtype="float64")) ** 2).mean()) if len(y_true) else float("nan")
