"""How fast and how big each candidate is, measured one documented way (docs/optimization.md).

Every candidate of a run is timed in the same process, on the same rows, with the session options
gates and servers use, and in interleaved rounds (A, B, C, A, B, C, ...), so that a change in the
machine's load during the measurement falls on every candidate alike instead of on whichever ran
last. The machine and runtime are recorded with the figures: a latency means little without them.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

LARGE_BATCH = 256
THREADS = 2  # the intra-op threads of gatewise.scoring.session_options: what gates and servers use

# CPU flags that decide which kernels ONNX Runtime can use for FP32, INT8 and BF16 arithmetic.
INFERENCE_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_int8")


@dataclass(frozen=True)
class Benchmark:
    """One candidate's figures; times in milliseconds, throughput in rows per second."""

    p50_ms_batch1: float
    p99_ms_batch1: float
    p50_ms_large: float
    p99_ms_large: float
    large_batch: int
    throughput_rows_s: float  # large_batch / p50_ms_large
    size_bytes: int
    rss_growth_bytes: int | None  # resident memory the session added (load and runs); None off Linux
    calls_batch1: int
    calls_large: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@lru_cache(maxsize=1)
def hardware() -> dict[str, Any]:
    """What the figures were measured on: CPU model and flags, cores, runtime, provider, threads."""
    import onnxruntime as ort

    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu_model": model,
        "cpu_flags": [flag for flag in INFERENCE_FLAGS if flag in flags],
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "machine": platform.machine(),
        "onnxruntime": ort.__version__,
        "provider": "CPUExecutionProvider",
        "intra_op_threads": THREADS,
        "inter_op_threads": 1,
        "spinning": False,
    }


def benchmark_models(
    paths: dict[str, Path], rows: np.ndarray, rounds: int = 15, calls_batch1: int = 20,
    calls_large: int = 2, large_batch: int = LARGE_BATCH, threads: int = THREADS,
) -> dict[str, Benchmark]:
    """Time every model in ``paths`` (name -> ONNX file) on encoded ``rows``, interleaved by round.

    Batch 1 cycles through the rows one at a time; the large batch is ``rows`` tiled or cut to
    ``large_batch`` rows. Each model gets ``rounds * calls_batch1`` timed batch-1 calls and
    ``rounds * calls_large`` timed large-batch calls, after a warm-up of each. ``threads`` is the
    intra-op thread count; runs keep the default, what gates and servers use.
    """
    import numpy as np
    import onnxruntime as ort

    from gatewise.encoding import INPUT_NAME
    from gatewise.scoring import session_options

    rows = np.ascontiguousarray(rows, dtype=np.float32)
    if rows.ndim != 2 or len(rows) == 0:
        raise ValueError(f"benchmark needs a non-empty [N, F] matrix, got shape {list(rows.shape)}")
    large = np.ascontiguousarray(np.resize(rows, (large_batch, rows.shape[1])))
    singles = [rows[i : i + 1] for i in range(len(rows))]
    sessions, growth = {}, {}
    for name, path in paths.items():
        before = _rss_bytes()
        sessions[name] = ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
        for i in range(20):
            sessions[name].run(None, {INPUT_NAME: singles[i % len(singles)]})
        sessions[name].run(None, {INPUT_NAME: large})
        after = _rss_bytes()
        growth[name] = None if before is None or after is None else max(0, after - before)
    one: dict[str, list[float]] = {name: [] for name in paths}
    many: dict[str, list[float]] = {name: [] for name in paths}
    clock = time.perf_counter
    for round_ in range(rounds):
        for name, session in sessions.items():
            run, times = session.run, one[name]
            for i in range(calls_batch1):
                feed = {INPUT_NAME: singles[(round_ * calls_batch1 + i) % len(singles)]}
                start = clock()
                run(None, feed)
                times.append(clock() - start)
            for _ in range(calls_large):
                start = clock()
                run(None, {INPUT_NAME: large})
                many[name].append(clock() - start)
    results = {}
    for name, path in paths.items():
        p50_large = float(np.percentile(many[name], 50)) * 1000
        results[name] = Benchmark(
            p50_ms_batch1=round(float(np.percentile(one[name], 50)) * 1000, 5),
            p99_ms_batch1=round(float(np.percentile(one[name], 99)) * 1000, 5),
            p50_ms_large=round(p50_large, 5),
            p99_ms_large=round(float(np.percentile(many[name], 99)) * 1000, 5),
            large_batch=large_batch,
            throughput_rows_s=round(large_batch / (p50_large / 1000), 1),
            size_bytes=Path(path).stat().st_size,
            rss_growth_bytes=growth[name],
            calls_batch1=len(one[name]),
            calls_large=len(many[name]),
        )
    return results


def _rss_bytes() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
