"""Stage baselines: the cheap generators p-diff must beat (memorization study, arXiv 2506.07998)."""
from __future__ import annotations

from typing import Any

import torch

from ...core.artifacts import BASELINES
from ...core.config import RunConfig
from ...core.runtime import make_generator, seed_everything
from ...generator import baselines as baseline_models
from ..contract import RunView, StageContext
from ..loaders import load_codec, load_layout, training_rows


def run(ctx: StageContext) -> dict[str, Any]:
    """The copies the ruler starts from (always), then the memorization study's baselines, the
    autoencoder's reconstructions and decoder-only samples (unless baselines are turned off)."""
    seed_everything(ctx.seed)
    generator = make_generator(ctx.seed)
    b = ctx.config.baselines
    groups = {"copies": baseline_models.copies(training_rows(ctx.run), b.copy_noise, b.num_models, generator).params}
    if b.enabled:
        groups |= make_baselines(ctx.run, ctx.config, ctx.device, generator)
    ctx.save(BASELINES, groups)
    return {"groups": len(groups)}


def make_baselines(run: RunView, config: RunConfig, device: torch.device,
                   generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Each baseline group as (n, D) vectors, built from the training checkpoints only."""
    b = config.baselines
    zoo = training_rows(run)
    layout = load_layout(run)
    groups: dict[str, torch.Tensor] = {}
    for sigma in b.noise_sigmas:
        groups[f"noise-abs-{sigma:g}"] = baseline_models.noise_addition(zoo, sigma, b.num_models, generator).params
    for sigma in b.relative_sigmas:
        groups[f"noise-rel-{sigma:g}"] = baseline_models.relative_noise(zoo, layout, sigma, b.num_models, generator).params
    groups[f"averaged-{b.average_m}"] = baseline_models.averaged(zoo, b.average_m, b.num_models, generator).params
    groups["gaussian"] = baseline_models.gaussian(zoo, b.num_models, generator).params
    model = load_codec(run, config, device)
    groups["ae-reconstruction"] = model.decode(model.encode(zoo)).float().cpu()
    # The paper's "no diffusion" ablation: decode random latents drawn from the latents' own scale.
    noise = torch.randn(b.num_models, model.stats.mean.numel(), generator=generator)
    groups["decoder-only"] = model.decode(noise).float().cpu()
    return groups
