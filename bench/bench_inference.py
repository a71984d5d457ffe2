"""Inference speed of the pipeline's candidates, as ratios against torch eager measured in the same run.

Trains the built-in MLP on the bundled arrests data, exports it, compresses it with the built-in
compressors, and times batch-1 and batch-256 scoring of the encoded test rows. Prints the median
time per call and the speed-up over torch eager FP32 (higher is faster). Run: python bench/bench_inference.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path


def median_seconds(call, repeats: int) -> float:
    for _ in range(max(5, repeats // 10)):
        call()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    import torch

    from gatewise.data import build_dataset, label_vector, split_dataset
    from gatewise.encoding import InputSpec
    from gatewise.export import export_onnx
    from gatewise.plugins.data_sources import ArrestsSource
    from gatewise.plugins.mlp_trainer import MLPTrainer
    from gatewise.plugins.quantization import Int8Dynamic, Int8Static
    from gatewise.scoring import OnnxScorer

    torch.set_num_threads(2)
    dataset = build_dataset(ArrestsSource().load(None), None, None, None)
    split = split_dataset(dataset, seed=42, test_fraction=0.3)
    spec = InputSpec.fit(split.train, dataset.schema.numeric, dataset.schema.categorical)
    trained = MLPTrainer().train(split.train, label_vector(split.train, dataset.schema), spec, {})
    rows = spec.encode(split.test)
    module = trained.module.eval()

    with tempfile.TemporaryDirectory() as tmp:
        parent = Path(tmp) / "parent.onnx"
        export_onnx(trained, rows, parent)
        files = {"ORT FP32 (parent)": parent}
        for compressor in (Int8Dynamic(), Int8Static()):
            files[f"ORT {compressor.name}"] = Path(tmp) / f"{compressor.name}.onnx"
            compressor.compress(parent, files[f"ORT {compressor.name}"], rows, {})
        scorers = {name: OnnxScorer(path) for name, path in files.items()}
        sizes = {name: path.stat().st_size for name, path in files.items()}

        print(f"arrests MLP, {rows.shape[1]} encoded inputs, torch {torch.__version__}, 2 threads")
        print(f"{'variant':<22}{'bs1 us':>10}{'x eager':>9}{'bs256 us':>11}{'x eager':>9}{'file B':>9}")
        results: dict[str, list[float]] = {}
        for batch, repeats in ((1, 2000), (256, 300)):
            sample = rows[:batch]
            tensor = torch.from_numpy(sample)

            def eager(tensor=tensor):
                with torch.no_grad():
                    module(tensor)

            def inference_mode(tensor=tensor):
                with torch.inference_mode():
                    module(tensor)

            results.setdefault("torch eager FP32", []).append(median_seconds(eager, repeats))
            results.setdefault("torch inference_mode", []).append(median_seconds(inference_mode, repeats))
            for name, scorer in scorers.items():
                results.setdefault(name, []).append(median_seconds(lambda s=scorer: s.predict_encoded(sample), repeats))
        base1, base256 = results["torch eager FP32"]
        for name, (t1, t256) in results.items():
            size = f"{sizes[name]:>9}" if name in sizes else f"{'':>9}"
            print(f"{name:<22}{t1 * 1e6:>10.1f}{base1 / t1:>8.1f}x{t256 * 1e6:>11.1f}{base256 / t256:>8.1f}x{size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
