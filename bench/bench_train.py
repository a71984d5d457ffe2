"""Training loop throughput: the `mlp` trainer's loop against a naive DataLoader over pandas rows.

Both train the same TabularMLP on the bundled arrests training split, one thread, batch 128, for
the same number of epochs. The naive loop is what a first version often looks like: a torch
Dataset whose __getitem__ reads one pandas row with .iloc and encodes it, batched by DataLoader.
A third loop, a DataLoader over the rows encoded once (TensorDataset), is the fairer middle ground.
Prints samples per second of each and the ratios. Run: python bench/bench_train.py

``python bench/bench_train.py search`` times the ``mlp_search`` trainer instead: a 12-trial search
on the same rows with one trial at a time and with two at once (same seed and budget, run in the
order 1, 2, 2, 1 so a drift in the machine's load falls on both alike). It prints each search's
wall time, epochs trained and epochs per second, the ratios, and the load average.
"""

from __future__ import annotations

import sys
import time

EPOCHS = 3


def main() -> int:
    import numpy as np
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, Dataset

    from gatewise.data import build_dataset, label_vector, split_dataset
    from gatewise.encoding import InputSpec
    from gatewise.plugins.data_sources import ArrestsSource
    from gatewise.plugins.mlp_module import Recipe, TabularMLP, fit_mlp

    torch.set_num_threads(1)
    dataset = build_dataset(ArrestsSource().load(None), None, None, None)
    split = split_dataset(dataset, seed=42, test_fraction=0.3)
    spec = InputSpec.fit(split.train, dataset.schema.numeric, dataset.schema.categorical)
    label = label_vector(split.train, dataset.schema)
    cardinalities = tuple(len(v) for _, v in spec.categorical)

    recipe = Recipe(hidden=(64, 32), epochs=EPOCHS, lr=3e-3, batch_size=128, weight_decay=1e-4, seed=0,
                    validation_fraction=0.0, refit=False)
    _, record = fit_mlp(spec.encode(split.train), label, len(spec.numeric), cardinalities, recipe)
    ours = record["samples_per_s"]

    class PandasRows(Dataset):
        def __init__(self, frame, y):
            self.frame, self.y = frame.reset_index(drop=True), np.asarray(y, dtype=np.float32)

        def __len__(self):
            return len(self.frame)

        def __getitem__(self, i):
            return torch.from_numpy(spec.encode(self.frame.iloc[[i]])[0]), torch.tensor(self.y[i])

    features = spec.encode(split.train)
    numeric = torch.from_numpy(features[:, : len(spec.numeric)]).double()
    model = TabularMLP(numeric.mean(0), numeric.std(0), cardinalities, (64, 32))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    loss_fn = nn.BCEWithLogitsLoss()
    loader = DataLoader(PandasRows(split.train, label), batch_size=128, shuffle=True)
    started, seen = time.perf_counter(), 0
    for _ in range(EPOCHS):
        for x, y in loader:
            optimizer.zero_grad()
            loss_fn(model.logits(x), y).backward()
            optimizer.step()
            seen += len(y)
    naive = seen / (time.perf_counter() - started)

    # A fairer middle ground: the rows encoded once, then a DataLoader over a TensorDataset.
    from torch.utils.data import TensorDataset

    tensors = TensorDataset(torch.from_numpy(features), torch.from_numpy(np.asarray(label, dtype=np.float32)))
    loader = DataLoader(tensors, batch_size=128, shuffle=True)
    started, seen = time.perf_counter(), 0
    for _ in range(EPOCHS):
        for x, y in loader:
            optimizer.zero_grad()
            loss_fn(model.logits(x), y).backward()
            optimizer.step()
            seen += len(y)
    tensor_loader = seen / (time.perf_counter() - started)
    print(f"training loop, {len(label)} rows x {EPOCHS} epochs, batch 128, 1 thread")
    print(f"  mlp trainer (tensors indexed in place): {ours:,.0f} samples/s")
    print(f"  DataLoader over pandas rows:             {naive:,.0f} samples/s")
    print(f"  DataLoader over a TensorDataset:         {tensor_loader:,.0f} samples/s")
    print(f"  ratios: {ours / naive:.0f}x the pandas loop, {ours / tensor_loader:.1f}x the TensorDataset loop")
    return 0


def search() -> int:
    import os

    from gatewise.data import build_dataset, label_vector, split_dataset
    from gatewise.encoding import InputSpec
    from gatewise.plugins.data_sources import ArrestsSource
    from gatewise.plugins.search import MLPSearch

    dataset = build_dataset(ArrestsSource().load(None), None, None, None)
    split = split_dataset(dataset, seed=42, test_fraction=0.3)
    spec = InputSpec.fit(split.train, dataset.schema.numeric, dataset.schema.categorical)
    label = label_vector(split.train, dataset.schema)
    MLPSearch().train(split.train, label, spec, {"trials": 2, "parallel": 2, "epochs": 2})  # warm-up, not timed
    print(f"mlp_search, 12 trials, {len(label)} training rows, seed 0; load average before: {os.getloadavg()}")
    results: dict[int, list[tuple[float, int, float]]] = {1: [], 2: []}
    for parallel in (1, 2, 2, 1):
        started = time.perf_counter()
        record = MLPSearch().train(split.train, label, spec, {"trials": 12, "timeout_s": 3600, "parallel": parallel}).record["search"]
        wall = time.perf_counter() - started
        epochs = sum(t["epochs"] for t in record["trials"])
        results[parallel].append((wall, epochs, record["winner"]["value"]))
        pruned = sum(t["state"] == "pruned" for t in record["trials"])
        print(f"  parallel={parallel}: {wall:6.1f} s wall, {epochs} epochs ({pruned} trials pruned), "
              f"{epochs / wall:5.1f} epochs/s, busy {record['trial_seconds']:.1f} s, best validation loss {record['winner']['value']:.4f}")
    wall = {p: sum(w for w, _, _ in r) for p, r in results.items()}
    rate = {p: sum(e for _, e, _ in r) / wall[p] for p, r in results.items()}
    print(f"  parallel=2 vs 1: wall {wall[1] / wall[2]:.2f}x faster, epochs/s {rate[2] / rate[1]:.2f}x; "
          f"load average after: {os.getloadavg()}, {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(search() if sys.argv[1:] == ["search"] else main())
