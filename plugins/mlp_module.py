"""The torch side of the ``mlp`` trainer: a tabular MLP that does its own encoding, and its fit loop.

Kept apart from ``mlp_trainer`` so that loading the plugin (every CLI start) does not import torch.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)


class TabularMLP(nn.Module):
    """Maps the encoded float32 matrix [N, F] (numeric columns, then categorical codes) to P(positive) [N].

    Numeric columns are standardized with the training mean and std, held as buffers. Each
    categorical code column is one-hot encoded by comparing it with its codes 1..K, so code 0
    (a value unseen in training, or missing) and any out-of-range code give all zeros: an unknown
    category adds nothing, rather than a weight that training never updated. Both steps export to
    plain ONNX ops (Sub, Div, Gather, Equal, Cast), so the ONNX file needs no preprocessing code.
    """

    mean: torch.Tensor
    std: torch.Tensor
    onehot_column: torch.Tensor
    onehot_code: torch.Tensor

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, cardinalities: tuple[int, ...], hidden: tuple[int, ...]) -> None:
        super().__init__()
        self.n_numeric = int(mean.numel())
        self.register_buffer("mean", mean.to(torch.float32))
        self.register_buffer("std", std.to(torch.float32))
        # One comparison for all categorical columns: column index and code of every one-hot slot.
        columns = [self.n_numeric + j for j, k in enumerate(cardinalities) for _ in range(k)]
        codes = [code for k in cardinalities for code in range(1, k + 1)]
        self.n_onehot = len(codes)
        self.register_buffer("onehot_column", torch.tensor(columns, dtype=torch.int64))
        self.register_buffer("onehot_code", torch.tensor(codes, dtype=torch.float32))
        layers: list[nn.Module] = []
        width = self.n_numeric + self.n_onehot
        for size in hidden:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def logits(self, features: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.n_numeric:
            parts.append((features[:, : self.n_numeric] - self.mean) / self.std)
        if self.n_onehot:
            parts.append((features.index_select(1, self.onehot_column) == self.onehot_code).to(features.dtype))
        return self.net(torch.cat(parts, dim=1)).squeeze(-1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(features))


def fit_mlp(
    features: np.ndarray,
    label: np.ndarray,
    n_numeric: int,
    cardinalities: tuple[int, ...],
    hidden: tuple[int, ...],
    epochs: int,
    lr: float,
    batch_size: int,
    weight_decay: float,
    seed: int,
) -> TabularMLP:
    """Train with class-weighted BCE and AdamW; the same inputs and seed give bitwise-same weights."""
    x = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    y = torch.from_numpy(np.asarray(label, dtype=np.float32))
    mean, std = torch.zeros(n_numeric, dtype=torch.float64), torch.ones(n_numeric, dtype=torch.float64)
    if n_numeric:
        numeric = x[:, :n_numeric].to(torch.float64)
        mean = numeric.mean(dim=0)
        std = numeric.std(dim=0, unbiased=False)
        std = torch.where(std > 1e-12, std, torch.ones_like(std))  # a constant column must not divide by 0
    positives = float(y.sum())
    # Weighting positives by negatives/positives makes both classes weigh the same in the loss, so
    # the model's 0.5 threshold sits where balanced accuracy (the accuracy gate's metric) wants it.
    pos_weight = torch.tensor([(len(y) - positives) / positives], dtype=torch.float32)

    threads = torch.get_num_threads()
    # One thread: the result then does not depend on the machine's core count, and a model this
    # small trains faster without the pool's overhead.
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):  # seed locally, leave the caller's RNG alone
            torch.manual_seed(seed)
            model = TabularMLP(mean, std, cardinalities, hidden)
            generator = torch.Generator().manual_seed(seed)
            optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
            loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
            model.train()
            for epoch in range(epochs):
                order = torch.randperm(len(y), generator=generator)
                total = 0.0
                for start in range(0, len(y), batch_size):
                    batch = order[start : start + batch_size]
                    optimizer.zero_grad(set_to_none=True)
                    loss = loss_fn(model.logits(x[batch]), y[batch])
                    loss.backward()
                    optimizer.step()
                    total += loss.detach().item() * len(batch)
                logger.debug("mlp epoch %d: loss %.5f", epoch + 1, total / len(y))
    finally:
        torch.set_num_threads(threads)
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model
