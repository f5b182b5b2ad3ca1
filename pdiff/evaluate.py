"""Batched evaluation of many parameter vectors that share the rest of one network.

Every model of a run (zoo, generated, baselines) differs only in the target parameters. So the
network is split at the first stage that holds a target parameter: the shared prefix runs on the
test set once, and only the suffix runs per model, many models at a time through
`torch.func.vmap` over `functional_call`. Models are processed in chunks to bound memory.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, vmap

from . import distributed
from .params import ParamLayout, write_vector
from .runtime import autocast
from .training import Progress
CPU_PASS_BYTES = 8 * 2**20  # suffix input activations per pass on a CPU: about a cache's worth


@dataclass
class Evaluation:
    accuracy: torch.Tensor  # (N,) percent
    predictions: torch.Tensor  # (N, S) int16 predicted classes
    mean_probs: torch.Tensor  # (S, C) averaged softmax over the N models (ensemble)


def leaf_stages(model: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    """The model's forward pass as a flat list of (qualified name, module): nested Sequentials
    are unrolled (a ResNet's `layer4` becomes `layer4.0`, `layer4.1`); anything else is one stage."""
    if not isinstance(model, nn.Sequential):
        return [(prefix.rstrip("."), model)]
    stages: list[tuple[str, nn.Module]] = []
    for name, child in model.named_children():
        stages += leaf_stages(child, f"{prefix}{name}.")
    return stages


class StageRunner(nn.Module):
    """Runs some stages of `root` in order. Parameter names are root's, prefixed with `root.`,
    so `functional_call` can swap in target tensors by their usual names."""

    def __init__(self, root: nn.Module, stages: list[nn.Module]) -> None:
        super().__init__()
        self.root = root
        self.stages = tuple(stages)  # a tuple, not a ModuleList: the modules stay registered once, under root

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return x


def split_shared_prefix(model: nn.Module, target: list[str]) -> tuple[StageRunner, StageRunner]:
    """(prefix, suffix) at the first stage holding a target parameter (see `leaf_stages`).

    For a model that is not a Sequential the prefix is empty and the whole model runs per model.
    """
    stages = leaf_stages(model)
    holds = [any(t.startswith(name + ".") or not name for t in target) for name, _ in stages]
    first = holds.index(True) if any(holds) else len(stages)
    modules = [m for _, m in stages]
    return StageRunner(model, modules[:first]), StageRunner(model, modules[first:])


class BatchedEvaluator:
    """Accuracy and predictions of many target vectors on one test set."""

    def __init__(self, model: nn.Module, layout: ParamLayout, x_test: torch.Tensor, y_test: torch.Tensor,
                 chunk_size: int = 0, batch_size: int = 0, precision: str = "fp32") -> None:
        self.precision = precision
        self.device = next(model.parameters()).device
        self.layout = layout
        self.labels = y_test.to(self.device)
        self.model = model.eval()
        prefix, self.suffix = split_shared_prefix(model, layout.names)
        self.batch_size = batch_size or len(y_test)
        with torch.no_grad():  # the shared prefix: once for all models
            self.features = torch.cat([prefix(x_test[i:i + self.batch_size].to(self.device))
                                       for i in range(0, len(y_test), self.batch_size)])
        state = dict(self.suffix.named_parameters()) | dict(self.suffix.named_buffers())
        targets = {f"root.{name}" for name in layout.names}
        self.fixed = {k: v.detach() for k, v in state.items() if k not in targets}
        self.chunk_size = chunk_size or self._auto_chunk()

    def _auto_chunk(self) -> int:
        """Models per pass, from the size of one model's activations on the test batch.

        On a GPU: as many as fit in a quarter of the free memory (with 8x headroom for the
        suffix's intermediate tensors). On a CPU small passes win: on the default digits run,
        7 models per pass ran 1.3x (quiet machine) to 1.5x (loaded) faster than 60, because the
        activations of a small pass stay in cache while large ones stream through memory.
        """
        with torch.no_grad():
            probe = self.suffix(self.features[: min(8, len(self.features))])
        per_sample = max(self.features[0].numel(), probe[0].numel()) * 4  # bytes
        per_model = per_sample * min(self.batch_size, len(self.features))
        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            return int(max(1, min(4096, free // 4 // (8 * per_model))))
        return int(max(1, min(64, CPU_PASS_BYTES // per_model)))

    def _num_classes(self) -> int:
        with torch.no_grad():
            return int(self.suffix(self.features[:1]).shape[-1])

    def _logits(self, vectors: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """(M, D) vectors on (S', ...) features -> (M, S', C) logits."""
        def one(target: dict[str, torch.Tensor]) -> torch.Tensor:
            swapped = {f"root.{name}": value for name, value in target.items()}
            return functional_call(self.suffix, self.fixed | swapped, (features,))

        with autocast(self.device, self.precision):
            return vmap(one)(self.layout.unflatten(vectors))

    def evaluate_sharded(self, vectors: torch.Tensor, progress: Progress | None = None) -> Evaluation:
        """`evaluate`, with the models split across torchrun ranks and the results gathered.

        Every rank gets the full result, in the original model order; a single process just
        evaluates everything.
        """
        rank = distributed.current()
        if rank.world == 1:
            return self.evaluate(vectors, progress)
        part = self.evaluate(vectors[distributed.shard(len(vectors))], progress)
        prob_sum = distributed.sum_all(part.mean_probs * len(part.accuracy))
        return Evaluation(distributed.gather_rows(part.accuracy), distributed.gather_rows(part.predictions),
                          prob_sum / max(len(vectors), 1))

    @torch.no_grad()
    def evaluate(self, vectors: torch.Tensor, progress: Progress | None = None) -> Evaluation:
        """Evaluate (N, D) vectors; returns accuracy, predictions and the ensemble's mean probabilities."""
        n, s = len(vectors), len(self.labels)
        predictions = torch.empty(n, s, dtype=torch.int16)
        prob_sum: torch.Tensor | None = None  # (S, C), allocated once the class count is known
        for start in range(0, n, self.chunk_size):
            chunk = vectors[start:start + self.chunk_size].to(self.device, non_blocking=True).float()
            parts = []
            for i in range(0, s, self.batch_size):
                logits = self._logits(chunk, self.features[i:i + self.batch_size])  # (M, S', C)
                if prob_sum is None:
                    prob_sum = torch.zeros(s, logits.shape[-1], device=self.device)
                prob_sum[i:i + logits.shape[1]] += logits.float().softmax(-1).sum(0)
                parts.append(logits.argmax(-1))
            predictions[start:start + len(chunk)] = torch.cat(parts, dim=1).to(torch.int16).cpu()
            if progress is not None:
                progress(min(start + self.chunk_size, n), n, {})
        correct = predictions.to(self.labels.device) == self.labels[None]
        accuracy = correct.float().mean(1).cpu() * 100
        if prob_sum is None:  # no models (e.g. an empty shard): zeros of the right shape
            prob_sum = torch.zeros(s, self._num_classes(), device=self.device)
        mean_probs = prob_sum.cpu() / max(n, 1)
        return Evaluation(accuracy, predictions, mean_probs)


@torch.no_grad()
def evaluate_loop(model: nn.Module, layout: ParamLayout, vectors: torch.Tensor, x_test: torch.Tensor,
                  y_test: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: copy each vector into the model and run the whole test set (slow, simple)."""
    model.eval()
    device = next(model.parameters()).device
    x, y = x_test.to(device), y_test.to(device)
    preds = []
    for vector in vectors:
        write_vector(model, layout, vector.to(device))
        preds.append(model(x).argmax(-1).cpu())
    predictions = torch.stack(preds).to(torch.int16)
    return (predictions.to(y.device) == y[None]).float().mean(1).cpu() * 100, predictions


def ensemble_accuracy(mean_probs: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy (percent) of the averaged-probability ensemble."""
    return (mean_probs.argmax(-1) == labels.to(mean_probs.device)).float().mean().item() * 100
