"""Selection on measured figures: the [select] objective, the parent rule, ties, and the benchmark."""

from __future__ import annotations

import pytest

from gatewise.benchmark import Benchmark, benchmark_models, hardware
from gatewise.config import parse_settings
from gatewise.errors import UsageError
from gatewise.selection import Entry, select


def figures(p50_ms: float, rows_s: float, size: int) -> Benchmark:
    return Benchmark(p50_ms, p50_ms * 2, 256 / rows_s * 1000, 256 / rows_s * 2000, 256, rows_s, size, None, 500, 50)


PARENT = Entry("parent", None, True, figures(0.020, 100_000, 16_000))


def test_a_child_slower_than_its_parent_is_never_chosen_for_speed_even_if_much_smaller():
    slow_small = Entry("int8_static", "parent", True, figures(0.060, 300_000, 4_000))
    chosen = select([PARENT, slow_small], "latency")
    assert chosen.winner == "parent"
    verdict = chosen.verdict("int8_static")
    assert not verdict.eligible and "slower than its parent at batch 1" in verdict.reason
    assert verdict.speedup_batch1 == pytest.approx(0.333, abs=1e-3) and verdict.size_ratio == 0.25


def test_throughput_objective_judges_the_large_batch_and_still_refuses_a_slower_child():
    faster_in_bulk = Entry("int8_dynamic", "parent", True, figures(0.030, 250_000, 4_500))
    slower_in_bulk = Entry("pruned", "parent", True, figures(0.010, 80_000, 8_000))
    chosen = select([PARENT, faster_in_bulk, slower_in_bulk], "throughput")
    assert chosen.winner == "int8_dynamic"
    assert "lower throughput than its parent" in chosen.verdict("pruned").reason


def test_a_tie_within_noise_goes_to_the_smaller_file():
    optimized = Entry("graph_optimize", "parent", True, figures(0.0150, 100_000, 14_000))
    tied_smaller = Entry("distill", "parent", True, figures(0.0154, 100_000, 6_000))
    chosen = select([PARENT, optimized, tied_smaller], "latency", tie_tolerance=0.05)
    assert chosen.winner == "distill"
    assert chosen.verdict("graph_optimize").reason == "within noise of the best; larger file"
    assert select([PARENT, optimized, tied_smaller], "latency", tie_tolerance=0.0).winner == "graph_optimize"


def test_only_candidates_that_passed_every_gate_compete():
    failing_fast = Entry("graph_optimize", "parent", False, figures(0.001, 900_000, 1_000))
    errored = Entry("int8_static", "parent", False, None)
    chosen = select([PARENT, failing_fast, errored], "latency")
    assert chosen.winner == "parent"
    assert chosen.verdict("graph_optimize").reason == "failed a gate"
    assert select([Entry("parent", None, False, PARENT.benchmark)], "latency").winner is None


def test_size_objective_and_weighted_rule():
    small_slow = Entry("int8_static", "parent", True, figures(0.060, 90_000, 4_000))
    assert select([PARENT, small_slow], "size").winner == "int8_static"  # chosen for size, not speed
    # The weighted rule counts latency, so the slower child stays out.
    assert select([PARENT, small_slow], "weighted", {"latency": 1.0, "size": 1.0}).winner == "parent"
    same_speed_half_size = Entry("distill", "parent", True, figures(0.019, 100_000, 8_000))
    assert select([PARENT, same_speed_half_size], "weighted", {"latency": 1.0, "size": 0.5}).winner == "distill"


def test_select_settings_refuse_an_unknown_objective_or_a_negative_weight():
    with pytest.raises(UsageError, match="select.objective"):
        parse_settings({"select": {"objective": "speed"}})
    with pytest.raises(UsageError, match="select.weights.size"):
        parse_settings({"select": {"weights": {"size": -1}}})


def test_benchmark_measures_every_model_the_same_way_and_names_the_hardware(tmp_path):
    import numpy as np
    from test_deploy_support import tiny_onnx

    a, b = tiny_onnx(tmp_path / "a.onnx", 1.0), tiny_onnx(tmp_path / "b.onnx", 2.0)
    result = benchmark_models({"a": a, "b": b}, np.ones((10, 2), dtype=np.float32), rounds=3, calls_batch1=5, large_batch=64)
    for name in ("a", "b"):
        f = result[name]
        assert f.calls_batch1 == 15 and f.calls_large == 6 and f.large_batch == 64
        assert 0 < f.p50_ms_batch1 <= f.p99_ms_batch1 and f.throughput_rows_s > 0
        assert f.size_bytes == (a if name == "a" else b).stat().st_size
    info = hardware()
    assert info["onnxruntime"] and info["provider"] == "CPUExecutionProvider" and info["cpu_count"] >= 1
    assert info["intra_op_threads"] == 2 and info["cpu_model"]
