"""Which gate-passing candidate is promoted: the `[select]` objective over measured figures.

Rules (docs/optimization.md): only candidates that passed every mandatory gate compete; for an
objective that values speed, a compressed candidate measurably slower than its parent is never
chosen; figures within ``tie_tolerance`` of the best are a tie, and a tie goes to the smaller file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gatewise.benchmark import Benchmark

OBJECTIVES = ("latency", "throughput", "size", "weighted")


@dataclass(frozen=True)
class Entry:
    """A candidate as selection sees it."""

    name: str
    parent: str | None
    passed: bool
    benchmark: Benchmark | None


@dataclass(frozen=True)
class Verdict:
    name: str
    eligible: bool
    score: float | None  # lower is better; the objective's own unit (ms, s per row, bytes, weighted ratio)
    speedup_batch1: float | None  # parent p50 / this p50 at batch 1
    speedup_large: float | None
    size_ratio: float | None  # this file / parent file
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Selection:
    objective: str
    tie_tolerance: float
    winner: str | None
    verdicts: tuple[Verdict, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "objective": self.objective, "tie_tolerance": self.tie_tolerance, "winner": self.winner,
            "verdicts": [v.to_dict() for v in self.verdicts],
        }

    def verdict(self, name: str) -> Verdict | None:
        return next((v for v in self.verdicts if v.name == name), None)


def objective_score(benchmark: Benchmark, objective: str, weights: dict[str, float], reference: Benchmark | None) -> float:
    """Lower is better. ``weighted`` sums each figure's ratio to ``reference`` (the parent) times its weight."""
    if objective == "latency":
        return benchmark.p50_ms_batch1
    if objective == "throughput":
        return 1.0 / benchmark.throughput_rows_s
    if objective == "size":
        return float(benchmark.size_bytes)
    if objective == "weighted":
        base = reference or benchmark
        return (
            weights.get("latency", 0.0) * benchmark.p50_ms_batch1 / base.p50_ms_batch1
            + weights.get("throughput", 0.0) * base.throughput_rows_s / benchmark.throughput_rows_s
            + weights.get("size", 0.0) * benchmark.size_bytes / base.size_bytes
        )
    raise ValueError(f"unknown objective '{objective}' (known: {', '.join(OBJECTIVES)})")


def _slower_than_parent(entry: Benchmark, parent: Benchmark, objective: str, weights: dict[str, float], tolerance: float) -> str | None:
    """Why ``entry`` counts as slower than its parent for this objective, or None."""
    batch1 = objective == "latency" or (objective == "weighted" and weights.get("latency", 0.0) > 0)
    large = objective == "throughput" or (objective == "weighted" and weights.get("throughput", 0.0) > 0)
    if batch1 and entry.p50_ms_batch1 > parent.p50_ms_batch1 * (1 + tolerance):
        return f"slower than its parent at batch 1 ({parent.p50_ms_batch1 / entry.p50_ms_batch1:.2f}x)"
    if large and entry.throughput_rows_s * (1 + tolerance) < parent.throughput_rows_s:
        return f"lower throughput than its parent ({entry.throughput_rows_s / parent.throughput_rows_s:.2f}x)"
    return None


def select(entries: list[Entry], objective: str = "latency", weights: dict[str, float] | None = None,
           tie_tolerance: float = 0.05) -> Selection:
    """Pick the winner among ``entries`` and say, for each one, why it was or was not chosen."""
    weights = dict(weights or {})
    by_name = {e.name: e for e in entries}
    scores: dict[str, float] = {}
    reasons: dict[str, str] = {}
    for entry in entries:
        if not entry.passed or entry.benchmark is None:
            reasons[entry.name] = "not measured" if entry.passed else "failed a gate" if entry.benchmark else "errored or failed a gate"
            continue
        parent = by_name.get(entry.parent) if entry.parent else None
        reference = parent.benchmark if parent is not None else None
        if reference is not None:
            slower = _slower_than_parent(entry.benchmark, reference, objective, weights, tie_tolerance)
            if slower:
                reasons[entry.name] = slower
                continue
        scores[entry.name] = objective_score(entry.benchmark, objective, weights, reference or entry.benchmark)
    winner = None
    if scores:
        best = min(scores.values())
        # Within tie_tolerance of the best is noise on a shared machine: the smaller file wins those.
        close = [name for name, score in scores.items() if score <= best * (1 + tie_tolerance)]
        winner = min(close, key=lambda name: (by_name[name].benchmark.size_bytes, scores[name]))
        for name in scores:
            if name == winner:
                reasons[name] = "chosen: best " + objective + (" (smallest file among a tie)" if len(close) > 1 else "")
            elif name in close:
                reasons[name] = "within noise of the best; larger file"
            else:
                reasons[name] = f"{scores[name] / best:.2f}x the best {objective} score"
    verdicts = []
    for entry in entries:
        parent = by_name.get(entry.parent) if entry.parent else None
        b, p = entry.benchmark, parent.benchmark if parent is not None else None
        verdicts.append(Verdict(
            name=entry.name,
            eligible=entry.name in scores,
            score=None if entry.name not in scores else round(scores[entry.name], 6),
            speedup_batch1=round(p.p50_ms_batch1 / b.p50_ms_batch1, 3) if b and p else None,
            speedup_large=round(b.throughput_rows_s / p.throughput_rows_s, 3) if b and p else None,
            size_ratio=round(b.size_bytes / p.size_bytes, 3) if b and p else None,
            reason=reasons.get(entry.name, "errored"),
        ))
    return Selection(objective, tie_tolerance, winner, tuple(verdicts))
