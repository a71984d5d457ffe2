"""The torch side of the ``mlp`` trainer: a tabular MLP that does its own encoding, and its fit loop.

Kept apart from ``mlp_trainer`` so that loading the plugin (every CLI start) does not import torch.
"""

from __future__ import annotations

import copy
import logging
import math
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

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


@dataclass(frozen=True)
class Recipe:
    """How the MLP is trained; every field is recorded with the run (``TrainedModel.record``)."""

    hidden: tuple[int, ...]
    epochs: int  # the most passes; early stopping usually ends sooner
    lr: float  # peak AdamW learning rate, reached after the warm-up
    batch_size: int
    weight_decay: float
    seed: int
    validation_fraction: float = 0.15  # carved from the training split, stratified; the test split is never seen
    patience: int = 10  # epochs without a better validation loss before stopping
    min_delta: float = 1e-4  # an improvement smaller than this does not count
    warmup_fraction: float = 0.05  # share of the planned steps with a linear warm-up, then cosine decay to 0
    clip_norm: float | None = 1.0  # largest gradient L2 norm; None: no clipping
    class_weight: str = "balanced"  # "balanced": positives weighted by negatives/positives; "none"
    refit: bool = True  # after early stopping, retrain on all training rows for the best epoch count


def fit_mlp(
    features: np.ndarray,
    label: np.ndarray,
    n_numeric: int,
    cardinalities: tuple[int, ...],
    recipe: Recipe,
    on_epoch: Any = None,
) -> tuple[TabularMLP, dict[str, Any]]:
    """Train with the recipe; return the module with the best validation loss's weights and a record.

    The record (JSON-ready) holds the recipe and what happened: epochs run, best epoch, the loss
    curves, rows used, steps and samples per second. The same inputs and seed give bitwise-same weights.
    ``on_epoch(epoch, validation_loss)``, when given, is called after each epoch (a search's
    pruner); an exception it raises stops the fit and propagates.
    """
    x_all = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
    y_all = torch.from_numpy(np.asarray(label, dtype=np.float32))
    threads = torch.get_num_threads()
    # One thread: the result then does not depend on the machine's core count, and a model this
    # small trains faster without the pool's overhead.
    torch.set_num_threads(1)
    try:
        generator = torch.Generator().manual_seed(recipe.seed)
        train_index, valid_index = _stratified_split(y_all, recipe.validation_fraction, generator)
        x, y = x_all[train_index], y_all[train_index]
        model = _seeded_module(recipe.seed, *_standardization(x, n_numeric), cardinalities, recipe.hidden)
        record = _train(model, x, y, x_all[valid_index], y_all[valid_index], recipe, generator, on_epoch=on_epoch)
        if recipe.refit and len(valid_index):
            # The validation rows chose the epoch count; the final weights then learn from every
            # training row for that many epochs (on this small, noisy data the 15% held out
            # cost more test accuracy than stopping saved). The test split is never used.
            model = _seeded_module(recipe.seed, *_standardization(x_all, n_numeric), cardinalities, recipe.hidden)
            refit = _train(model, x_all, y_all, x_all[:0], y_all[:0], recipe, generator, stop_after=record["best_epoch"])
            record["refit"] = {k: refit[k] for k in ("rows", "epochs_run", "train_loss", "samples_per_s", "seconds")}
    finally:
        torch.set_num_threads(threads)
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return model, record


# torch initializes nn.Linear from its one global generator: fits in parallel threads (a search's
# trials) seed and draw from it one at a time, so each gets the weights its seed gives alone.
_GLOBAL_RNG = threading.Lock()


def _seeded_module(seed: int, mean: torch.Tensor, std: torch.Tensor, cardinalities: tuple[int, ...], hidden: tuple[int, ...]) -> TabularMLP:
    with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):  # seed locally, leave the caller's RNG alone
        torch.manual_seed(seed)
        return TabularMLP(mean, std, cardinalities, hidden)


def _stratified_split(y: torch.Tensor, fraction: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Row indices of (train, validation): ``fraction`` of each class goes to validation, by seed."""
    if fraction <= 0:
        return torch.arange(len(y)), torch.arange(0)
    train, valid = [], []
    for value in (0.0, 1.0):
        rows = torch.nonzero(y == value).squeeze(1)
        rows = rows[torch.randperm(len(rows), generator=generator)]
        cut = int(round(len(rows) * fraction))
        cut = min(cut, len(rows) - 1) if len(rows) > 1 else 0
        valid.append(rows[:cut])
        train.append(rows[cut:])
    return torch.sort(torch.cat(train)).values, torch.sort(torch.cat(valid)).values


def _standardization(x: torch.Tensor, n_numeric: int) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = torch.zeros(n_numeric, dtype=torch.float64), torch.ones(n_numeric, dtype=torch.float64)
    if n_numeric:
        numeric = x[:, :n_numeric].to(torch.float64)
        mean = numeric.mean(dim=0)
        std = numeric.std(dim=0, unbiased=False)
        std = torch.where(std > 1e-12, std, torch.ones_like(std))  # a constant column must not divide by 0
    return mean, std


def _train(model: TabularMLP, x: torch.Tensor, y: torch.Tensor, x_valid: torch.Tensor, y_valid: torch.Tensor,
           recipe: Recipe, generator: torch.Generator, stop_after: int | None = None, on_epoch: Any = None) -> dict[str, Any]:
    positives = float(y.sum())
    # Weighting positives by negatives/positives makes both classes weigh the same in the loss, so
    # the model's 0.5 threshold sits where balanced accuracy (the accuracy gate's metric) wants it.
    weight = (len(y) - positives) / positives if recipe.class_weight == "balanced" and 0 < positives < len(y) else 1.0
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor([weight], dtype=torch.float32))
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(y) / recipe.batch_size))
    planned = steps_per_epoch * recipe.epochs
    warmup = max(1, int(planned * recipe.warmup_fraction))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, planned - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    best_loss, best_epoch, best_state = math.inf, 0, copy.deepcopy(model.state_dict())
    train_curve: list[float] = []
    valid_curve: list[float] = []
    started, seen = time.perf_counter(), 0
    # The learning-rate schedule is planned over recipe.epochs; a refit follows the same curve and
    # stops after the epoch early stopping chose (stop_after).
    for epoch in range(1, (stop_after or recipe.epochs) + 1):
        model.train()
        order = torch.randperm(len(y), generator=generator)
        total = 0.0
        for start in range(0, len(y), recipe.batch_size):
            batch = order[start : start + recipe.batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model.logits(x[batch]), y[batch])
            loss.backward()
            if recipe.clip_norm is not None:
                nn.utils.clip_grad_norm_(model.parameters(), recipe.clip_norm)
            optimizer.step()
            schedule.step()
            total += loss.detach().item() * len(batch)
            seen += len(batch)
        train_curve.append(round(total / len(y), 6))
        if len(y_valid) == 0:
            best_epoch, best_state = epoch, copy.deepcopy(model.state_dict())
            continue
        model.eval()
        with torch.no_grad():
            valid_loss = float(loss_fn(model.logits(x_valid), y_valid))
        valid_curve.append(round(valid_loss, 6))
        if on_epoch is not None:
            on_epoch(epoch, valid_loss)
        logger.debug("mlp epoch %d: train loss %.5f, validation loss %.5f", epoch, train_curve[-1], valid_loss)
        if valid_loss < best_loss - recipe.min_delta:
            best_loss, best_epoch, best_state = valid_loss, epoch, copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= recipe.patience:
            break
    elapsed = time.perf_counter() - started
    model.load_state_dict(best_state)  # the best validation loss's weights, not the last epoch's
    return {
        "recipe": {**asdict(recipe), "hidden": list(recipe.hidden), "optimizer": "AdamW",
                   "schedule": "linear warm-up, then cosine decay to 0", "loss": "BCE with logits",
                   "bf16_autocast": False, "threads": 1},
        "pos_weight": round(weight, 6),
        "rows": {"train": int(len(y)), "validation": int(len(y_valid))},
        "epochs_run": len(train_curve),
        "best_epoch": best_epoch,
        "best_validation_loss": None if best_loss == math.inf else round(best_loss, 6),
        "stopped_early": len(train_curve) < recipe.epochs,
        "train_loss": train_curve,
        "validation_loss": valid_curve,
        "samples_per_s": round(seen / elapsed, 1) if elapsed > 0 else None,
        "seconds": round(elapsed, 3),
    }


# -- compressors that retrain: rebuild the module from a parent ONNX file, then fit to its scores --


def module_from_onnx(path: Any) -> tuple[TabularMLP, Any]:
    """Rebuild the ``TabularMLP`` a gatewise ``mlp`` parent was exported from, with its weights.

    Reads the input contract from the file's metadata and the initializers the exporter names
    after the module's parameters and buffers (``mean``, ``std``, ``net.K.weight``, ...). Raises
    ValueError for a file of another shape: pruning and distillation need the MLP itself.
    """
    import onnx
    from onnx import numpy_helper

    from gatewise.scoring import read_input_spec

    spec = read_input_spec(path)
    tensors = {t.name: np.array(numpy_helper.to_array(t)) for t in onnx.load(str(path)).graph.initializer}
    layers = sorted({int(name.split(".")[1]) for name in tensors if name.startswith("net.") and name.endswith(".weight")})
    if not layers or (spec.numeric and not {"mean", "std"} <= set(tensors)):
        raise ValueError("the parent is not an ONNX export of gatewise's 'mlp' trainer (no net.K.weight / mean / std initializers)")
    weights = [tensors[f"net.{k}.weight"] for k in layers]
    hidden = tuple(int(w.shape[0]) for w in weights[:-1])
    n = len(spec.numeric)
    mean = torch.from_numpy(np.asarray(tensors.get("mean", np.zeros(n)), dtype=np.float64))
    std = torch.from_numpy(np.asarray(tensors.get("std", np.ones(n)), dtype=np.float64))
    module = TabularMLP(mean, std, tuple(len(v) for _, v in spec.categorical), hidden)
    linears = [m for m in module.net if isinstance(m, nn.Linear)]
    if len(linears) != len(layers) or any(tuple(l.weight.shape) != w.shape for l, w in zip(linears, weights)):
        raise ValueError("the parent's layer shapes do not match an MLP over its input contract")
    with torch.no_grad():
        for linear, k in zip(linears, layers):
            linear.weight.copy_(torch.from_numpy(tensors[f"net.{k}.weight"]))
            linear.bias.copy_(torch.from_numpy(tensors[f"net.{k}.bias"]))
    module.eval()
    return module, spec


def prune_hidden_units(module: TabularMLP, cardinalities: tuple[int, ...], rows: np.ndarray, keep: float) -> TabularMLP:
    """A narrower copy of ``module``: each hidden layer keeps its ``keep`` share of units (at least 1).

    A unit's importance is its mean activation on ``rows`` times the L2 norm of its outgoing
    weights: what it contributes downstream on real inputs. Rows of the incoming weight and bias
    and columns of the next layer's weight are dropped, so the layers are really narrower.
    """
    linears = [m for m in module.net if isinstance(m, nn.Linear)]
    hidden = tuple(max(1, int(round(l.out_features * keep))) for l in linears[:-1])
    narrow = TabularMLP(module.mean.double(), module.std.double(), cardinalities, hidden)
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32))
        parts = []
        if module.n_numeric:
            parts.append((x[:, : module.n_numeric] - module.mean) / module.std)
        if module.n_onehot:
            parts.append((x.index_select(1, module.onehot_column) == module.onehot_code).to(x.dtype))
        h = torch.cat(parts, dim=1)
        kept_in = torch.arange(linears[0].in_features)
        targets = [m for m in narrow.net if isinstance(m, nn.Linear)]
        for i, (linear, target) in enumerate(zip(linears, targets)):
            out = torch.relu(linear(h)) if i < len(linears) - 1 else linear(h)
            if i < len(linears) - 1:
                importance = out.mean(dim=0) * linears[i + 1].weight.norm(dim=0)
                kept_out = torch.sort(torch.topk(importance, hidden[i]).indices).values
            else:
                kept_out = torch.arange(linear.out_features)
            target.weight.copy_(linear.weight[kept_out][:, kept_in])
            target.bias.copy_(linear.bias[kept_out])
            h, kept_in = out, kept_out
    narrow.eval()
    return narrow


def fit_to_teacher(student: TabularMLP, rows: np.ndarray, teacher_logits: np.ndarray, epochs: int, lr: float,
                   batch_size: int, seed: int) -> dict[str, Any]:
    """Train ``student`` to reproduce the teacher's logits on ``rows`` (mean squared error on logits).

    Matching logits keeps the teacher's ranking and its decision threshold, which is what the
    accuracy gate compares with the parent. AdamW with cosine decay; one thread; seeded.
    """
    x = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32))
    target = torch.from_numpy(np.asarray(teacher_logits, dtype=np.float32))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    losses: list[float] = []
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            generator = torch.Generator().manual_seed(seed)
            for parameter in student.parameters():
                parameter.requires_grad_(True)
            optimizer = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.0)
            steps = max(1, epochs * math.ceil(len(x) / batch_size))
            schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, steps)
            student.train()
            for _ in range(epochs):
                order = torch.randperm(len(x), generator=generator)
                total = 0.0
                for start in range(0, len(x), batch_size):
                    batch = order[start : start + batch_size]
                    optimizer.zero_grad(set_to_none=True)
                    loss = torch.mean((student.logits(x[batch]) - target[batch]) ** 2)
                    loss.backward()
                    nn.utils.clip_grad_norm_(student.parameters(), 1.0)
                    optimizer.step()
                    schedule.step()
                    total += loss.detach().item() * len(batch)
                losses.append(round(total / len(x), 6))
    finally:
        torch.set_num_threads(threads)
    student.eval()
    for parameter in student.parameters():
        parameter.requires_grad_(False)
    return {"epochs": epochs, "lr": lr, "batch_size": batch_size, "seed": seed, "loss": "MSE on logits", "loss_curve": losses}


def teacher_logits(module: TabularMLP, rows: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return module.logits(torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32))).numpy()
