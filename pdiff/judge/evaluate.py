"""Batched evaluation of many parameter vectors that share the rest of one network.

Every model of a run (zoo, generated, baselines) differs only in the target parameters. So the
network is split at the first stage that holds a target parameter: the shared prefix runs on the
test set once, and only the suffix runs per model, many models at a time: each suffix stage in
the cheapest batched form that computes it (see batched_stages.py; `torch.func.vmap` over
`functional_call` for stages without a direct form). Models are processed in chunks to bound
memory.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..core import distributed
from ..core.runtime import autocast
from ..core.training import Progress
from ..zoo.params import ParamLayout, write_vector
from .batched_forms import all_direct, plan_stages, run_stages

CPU_PASS_BYTES = 8 * 2**20  # the largest suffix activation of a pass on a CPU: about a cache's worth


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
    """Runs some stages of `root` in order, with root's own parameters: the shared prefix, or
    the suffix of one model. `names` are the stages' qualified names in root."""

    def __init__(self, root: nn.Module, named_stages: list[tuple[str, nn.Module]]) -> None:
        super().__init__()
        self.root = root
        self.names = tuple(name for name, _ in named_stages)
        self.stages = tuple(m for _, m in named_stages)  # a tuple, not a ModuleList: registered once, under root

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
    return StageRunner(model, stages[:first]), StageRunner(model, stages[first:])


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
        self.plans = plan_stages(list(zip(self.suffix.names, self.suffix.stages)), layout.names,
                                 per_model_convs=self.device.type == "cpu")
        self.batch_size = batch_size or len(y_test)
        with torch.no_grad():  # the shared prefix: once for all models
            self.features = torch.cat([prefix(x_test[i:i + self.batch_size].to(self.device))
                                       for i in range(0, len(y_test), self.batch_size)])
        if self.features.dim() == 4 and all_direct(self.plans):
            # channels innermost: the per-model BatchNorm pass then runs along contiguous
            # per-channel scales (several times faster on the digits suffix)
            self.features = self.features.contiguous(memory_format=torch.channels_last)
        state = dict(model.named_parameters()) | dict(model.named_buffers())
        targets = set(layout.names)
        self.fixed = {k: v.detach() for k, v in state.items() if k not in targets}  # shared by all models
        self.chunk_size = chunk_size or self._auto_chunk()

    def _auto_chunk(self) -> int:
        """Models per pass, from the size of one model's largest activation on the test batch.

        On a GPU: as many as fit in a quarter of the free memory (with 8x headroom for the
        tensors inside a stage). On a CPU small passes win, because their activations stay in
        cache: on the default digits run (one thread), 7 models per pass took 0.080 s for 500
        models, 1 per pass 0.164 s (per-pass overhead) and 60 per pass 0.32 s.
        """
        x = self.features[: min(8, len(self.features))]
        largest = x[0].numel()
        with torch.no_grad():
            for stage in self.suffix.stages:
                x = stage(x)
                largest = max(largest, x[0].numel())
        per_sample = largest * 4  # bytes
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
        with autocast(self.device, self.precision):
            return run_stages(self.plans, self.layout.unflatten(vectors), self.fixed, features)

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
                prob_sum[i:i + logits.shape[1]] += _softmax_sum(logits)
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


def _softmax_sum(logits: torch.Tensor) -> torch.Tensor:
    """(M, S, C) logits -> (S, C) sum of the M models' softmax probabilities.

    The softmax runs over a non-innermost dimension: with C = 10 classes innermost, torch's CPU
    softmax took a large share of the digits evaluation; along dimension 1 of the transposed view
    it is many times faster.
    """
    return logits.float().transpose(1, 2).softmax(1).sum(0).T


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
