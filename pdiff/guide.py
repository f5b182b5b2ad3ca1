"""Asking for accuracy: sample models at requested accuracies from a run whose denoiser is
conditioned on accuracy, and measure what came out.

The denoiser learned each checkpoint's *validation* accuracy as its condition, so a request is a
validation accuracy. For each requested level the generator samples N models with classifier-free
guidance (see `denoisers.GuidedDenoiser`), they are evaluated on the *test* split, which played
no part in the conditioning, and the record says what was asked, what was achieved (median and
interquartile range) and how close the models are to the zoo (median max IoU of wrong
predictions, median distance to the nearest checkpoint). Requests outside the zoo's validation
accuracy range are allowed: whether guidance extrapolates or only interpolates is one of the
things this answers (`inside_zoo_range` says which kind a level is).

`guided_samples` answers the app's requests: a request (accuracy, scale, models, seed) is sampled
and measured once, and the result, with the novelty of its models and their place on the run's
ruler, is kept in the run folder (`guided/<key>.safetensors`, written atomically; safetensors and
JSON only). The key also holds the stamps of every file the answer depends on, so a retrained
denoiser or a redone analysis never serves an old answer; the same request again is a file read.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save

from .core.artifacts import ANALYSIS, AUTOENCODER, BASE, DENOISER, EVALUATION, ZOO
from .core.config import RunConfig
from .core.errors import RunError
from .core.rundir import RunDir, load_tensors, save_tensors
from .core.runtime import make_generator, resolve_device
from .generator.sampling import Samples
from .judge import metrics, ruler
from .judge.evaluate import BatchedEvaluator, Evaluation
from .judge.projection import PCABasis
from .pipeline.loaders import load_evaluation, load_generator, load_task, load_zoo, model_groups
from .pipeline.runner import load_run_config
from .pipeline.status import stage_states

CACHE_DIR = "guided"
CACHE_VERSION = 1
INPUTS = (BASE, ZOO, AUTOENCODER, DENOISER, EVALUATION, ANALYSIS)  # the files an answer depends on


@dataclass(frozen=True)
class GuidedResult:
    requested: float  # percent, a validation accuracy (what the denoiser was conditioned on)
    scale: float
    models: int
    achieved_median: float  # test accuracy
    achieved_q25: float
    achieved_q75: float
    achieved_min: float
    achieved_max: float
    max_iou_median: float  # to the zoo: 1 = the same mistakes as some checkpoint
    nn_distance_median: float  # L2 to the nearest zoo checkpoint
    inside_zoo_range: bool  # requested within the zoo's [worst, best] validation accuracy


@dataclass
class Guide:
    """A run's conditional generator, evaluator and zoo, loaded once for many requests."""

    run: RunDir
    config: RunConfig
    device: torch.device

    def __post_init__(self) -> None:
        if self.config.diffusion.condition != "accuracy":
            raise RunError(f"{self.run.path} has an unconditional denoiser; guided generation needs a run made with "
                           f"--set diffusion.condition=accuracy (e.g. --preset mnist1d-guided)")
        self.generator = load_generator(self.run, self.config, self.device)
        task = load_task(self.run, self.config, self.device)
        self.evaluator = BatchedEvaluator(task.model, task.layout, task.dataset.x_test, task.dataset.y_test,
                                          self.config.evaluate.chunk_size, self.config.evaluate.batch_size)
        evaluated = load_evaluation(self.run)
        self.labels, self.zoo_predictions = evaluated.labels, evaluated.predictions["zoo"]
        self.zoo_accuracy = evaluated.accuracy["zoo"]  # test
        zoo = load_zoo(self.run)
        self.zoo_val_accuracy = zoo["val_accuracy"][~zoo["heldout"]]  # what requests are measured against
        self.zoo_params = model_groups(self.run)["zoo"].float()
        self.anchors = _anchors(self.run)

    def measure(self, request: GuidedRequest) -> GuidedSamples:
        """Sample one request and measure its models: test accuracy and predictions, max IoU to the
        training checkpoints (novelty), distance to the nearest one, the latent map, and the group's
        place on the run's ruler (when the run has one)."""
        start = time.perf_counter()
        samples, evaluation = self.sample(request.accuracy, request.models, request.scale, request.seed)
        iou = metrics.wrong_sets_iou(evaluation.predictions, self.labels, self.zoo_predictions)
        max_iou, max_index = metrics.max_iou_to_zoo(iou)
        distance, nn_index = metrics.nearest_neighbour(samples.params.float(), self.zoo_params)
        zoo_xy, guided_xy = self.latent_map(samples.latents)
        tensors = {"params": samples.params.float(), "latents": samples.latents.float(),
                   "accuracy": evaluation.accuracy.float(), "predictions": evaluation.predictions,
                   "max_iou": max_iou.float(), "max_iou_index": max_index, "nn_distance": distance.float(),
                   "nn_index": nn_index, "latent_xy": guided_xy.float(), "zoo_xy": zoo_xy.float()}
        values = {"behaviour": max_iou, "parameters": distance}
        summary = _summary(tensors, self.zoo_val_accuracy, request)
        summary["ruler"] = None if self.anchors is None else self._place(values)
        summary["seconds"] = time.perf_counter() - start
        return GuidedSamples(request, tensors, summary)

    def _place(self, values: dict[str, torch.Tensor]) -> dict[str, dict]:
        """The guided models' place on the ruler, by the ruler's own bootstrap (judge/ruler.py)."""
        axes, anchors = self.anchors
        groups = anchors | {"guided": values}
        return ruler.place(groups, "guided", axes, self.config.analysis.bootstrap, make_generator(self.config.seed))

    def latent_map(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """2D PCA coordinates of the zoo's standardized latents and of `latents` (N, L) in the same plane."""
        zoo = self.generator.encode(self.zoo_params).double().cpu()
        basis = PCABasis.fit(zoo)
        return basis.transform(zoo), basis.transform(latents.double().cpu())

    def sample(self, accuracy: float, models: int, scale: float, seed: int = 0) -> tuple[Samples, Evaluation]:
        """N models asked for `accuracy` (percent), and their evaluation on the test split."""
        s = self.config.sample
        samples = self.generator.sample(models, make_generator(seed, self.device), s.sampler, s.steps, s.eta,
                                        clip=s.clip_x0, accuracy=accuracy, guidance=scale)
        return samples, self.evaluator.evaluate(samples.params)

    def request(self, accuracy: float, models: int = 50, scale: float = 2.0, seed: int = 0) -> GuidedResult:
        samples, evaluation = self.sample(accuracy, models, scale, seed)
        params, achieved = samples.params, evaluation.accuracy
        iou = metrics.wrong_sets_iou(evaluation.predictions, self.labels, self.zoo_predictions)
        distance, _ = metrics.nearest_neighbour(params.float(), self.zoo_params)
        q25, q75 = torch.quantile(achieved.double(), torch.tensor([0.25, 0.75], dtype=torch.float64)).tolist()
        return GuidedResult(accuracy, scale, models, metrics.median(achieved), q25, q75, achieved.min().item(),
                            achieved.max().item(), metrics.median(metrics.max_iou_to_zoo(iou)[0]),
                            metrics.median(distance),
                            bool(self.zoo_val_accuracy.min() <= accuracy <= self.zoo_val_accuracy.max()))


@dataclass(frozen=True)
class GuidedRequest:
    """What the Guided page asks for: a (validation) accuracy in percent, a guidance scale, how many
    models, and the seed of their noise."""

    accuracy: float
    scale: float
    models: int
    seed: int = 0


@dataclass(frozen=True)
class GuidedSamples:
    """One request's models and what was measured on them (as stored in the run folder)."""

    request: GuidedRequest
    tensors: dict[str, torch.Tensor]  # params (N, D), latents, accuracy, predictions (N, S), max_iou, nn_distance,
    # max_iou_index, nn_index, latent_xy (N, 2) and zoo_xy (K, 2): the zoo's latents in the same PCA plane
    summary: dict[str, Any]  # achieved median / q25 / q75 / min / max, novelty and NN medians, the ruler, seconds


def _summary(tensors: dict[str, torch.Tensor], zoo_val: torch.Tensor, request: GuidedRequest) -> dict[str, Any]:
    achieved = tensors["accuracy"].double()
    q25, q75 = torch.quantile(achieved, torch.tensor([0.25, 0.75], dtype=torch.float64)).tolist()
    max_iou = metrics.median(tensors["max_iou"])
    return {"achieved_median": metrics.median(achieved), "achieved_q25": q25, "achieved_q75": q75,
            "achieved_min": achieved.min().item(), "achieved_max": achieved.max().item(),
            "max_iou_median": max_iou, "novelty_median": 1.0 - max_iou,
            "nn_distance_median": metrics.median(tensors["nn_distance"]),
            "zoo_val_range": [zoo_val.min().item(), zoo_val.max().item()],
            "inside_zoo_range": bool(zoo_val.min() <= request.accuracy <= zoo_val.max())}


def _anchors(run: RunDir) -> tuple[dict[str, ruler.Axis], dict[str, dict[str, torch.Tensor]]] | None:
    """The run's ruler (axes and the copies' and fresh SGD's per-model values) while its analysis is
    current; None otherwise, or when the run has no ruler."""
    if not stage_states(run, run.manifest())["analyse"].current:
        return None
    tensors, meta = run.load(ANALYSIS)
    records = meta.get("ruler")
    groups = (ruler.COPIES, ruler.FRESH)
    if not isinstance(records, dict) or any(f"{g}.max_iou" not in tensors for g in groups):
        return None
    axes = {m: ruler.Axis(**{**r, "copies_ci": tuple(r["copies_ci"]), "fresh_ci": tuple(r["fresh_ci"])})
            for m, r in records.items()}
    return axes, {g: {"behaviour": tensors[f"{g}.max_iou"], "parameters": tensors[f"{g}.nn_distance"]}
                  for g in groups}


def cache_key(run: RunDir, request: GuidedRequest) -> str:
    """A name for one request's answer: the request and the stamps of the files it depends on."""
    stamps = []
    for name in INPUTS:
        try:
            info = run.file(name).lstat()
        except OSError:
            continue
        stamps.append([name, info.st_mtime_ns, info.st_size])
    payload = json.dumps({"version": CACHE_VERSION, "request": asdict(request), "inputs": stamps}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def cache_path(run: RunDir, request: GuidedRequest) -> Path:
    return run.path / CACHE_DIR / f"{cache_key(run, request)}.safetensors"


def load_cached(run: RunDir, request: GuidedRequest) -> GuidedSamples | None:
    """The stored answer to `request`, or None when there is none (or it is damaged: it is redone)."""
    path = cache_path(run, request)
    if not path.is_file():
        return None
    try:
        tensors, meta = load_tensors(path)
    except RunError:
        return None
    if meta.get("request") != asdict(request) or "summary" not in meta:
        return None
    return GuidedSamples(request, tensors, meta["summary"])


def guided_samples(run: RunDir, request: GuidedRequest, helper: Callable[[], Guide]) -> tuple[GuidedSamples, bool]:
    """(the answer to `request`, whether it came from the run folder). `helper` builds (or returns a
    loaded) Guide only when the answer has to be computed; the answer is then stored atomically."""
    cached = load_cached(run, request)
    if cached is not None:
        return cached, True
    result = helper().measure(request)
    save_tensors(cache_path(run, request), result.tensors, {"request": asdict(request), "summary": result.summary})
    return result, False


def guided_bytes(result: GuidedSamples, run_name: str) -> bytes:
    """One request's models as a safetensors file to download: their parameter vectors (N, D), test
    accuracies and latents, with the request and the summary as JSON metadata (no pickle)."""
    tensors = {k: result.tensors[k].contiguous() for k in ("params", "accuracy", "latents", "max_iou", "nn_distance")}
    meta = {"pdiff": json.dumps({"run": run_name, "request": asdict(result.request), "summary": result.summary})}
    return save(tensors, metadata=meta)


def guide(run: RunDir, levels: list[float], models: int = 50, scale: float = 2.0, seed: int = 0,
          device: str | None = None) -> list[dict]:
    """One record per requested level (see `GuidedResult`); each level uses its own seed."""
    config = load_run_config(run)
    helper = Guide(run, config, resolve_device(device or config.device))
    return [asdict(helper.request(level, models, scale, seed + i)) for i, level in enumerate(levels)]
