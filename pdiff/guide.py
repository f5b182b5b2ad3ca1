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
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from .core.config import RunConfig
from .core.errors import RunError
from .core.rundir import RunDir
from .core.runtime import make_generator, resolve_device
from .generator.sampling import Samples
from .judge import metrics
from .judge.evaluate import BatchedEvaluator, Evaluation
from .judge.projection import PCABasis
from .pipeline.loaders import load_evaluation, load_generator, load_task, load_zoo, model_groups
from .pipeline.runner import load_run_config


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


def guide(run: RunDir, levels: list[float], models: int = 50, scale: float = 2.0, seed: int = 0,
          device: str | None = None) -> list[dict]:
    """One record per requested level (see `GuidedResult`); each level uses its own seed."""
    config = load_run_config(run)
    helper = Guide(run, config, resolve_device(device or config.device))
    return [asdict(helper.request(level, models, scale, seed + i)) for i, level in enumerate(levels)]
