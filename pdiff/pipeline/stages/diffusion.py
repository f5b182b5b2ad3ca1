"""Stage diffusion: train the latent denoiser on the training checkpoints' latents."""
from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn

from ...core import distributed
from ...core.artifacts import DENOISER
from ...core.runtime import make_generator, seed_everything
from ...core.training import batch_index, log_spaced_steps, train_steps
from ...generator.denoisers import build_denoiser
from ...generator.diffusion import build_process
from ...generator.whitening import LatentWhitening
from ..contract import StageContext
from ..loaders import add_prefix, load_codec, load_zoo, training_rows


def run(ctx: StageContext) -> dict[str, Any]:
    """Train the denoiser on the training checkpoints' latents (DDPM's epsilon MSE, or flow
    matching's velocity MSE), in whitened coordinates when `diffusion.whiten` > 0 (whitening.py)."""
    seed_everything(ctx.seed)
    config = ctx.config.diffusion
    codec = load_codec(ctx.run, ctx.config, ctx.device)
    process = build_process(config).to(ctx.device)
    latents = codec.encode(training_rows(ctx.run)).float()
    coords = LatentWhitening.fit(latents.cpu(), config.whiten) if config.whiten > 0 else None
    if coords is not None:
        latents = coords.standardize(latents)
    denoiser = build_denoiser(config, latents.shape[1], process).to(ctx.device)
    gen = make_generator(distributed.rank_seed(ctx.seed), ctx.device)
    zoo = load_zoo(ctx.run)
    # The condition, in [0, 1]: each checkpoint's validation accuracy (the test split only measures).
    accuracy = (zoo["val_accuracy"][~zoo["heldout"]] / 100).to(ctx.device)

    def loss(net: nn.Module) -> torch.Tensor:
        index = batch_index(len(latents), config.batch_size, gen, ctx.device)
        model = net
        if config.condition == "accuracy":  # classifier-free guidance: drop a share of the conditions
            drop = torch.rand(len(index), generator=gen, device=gen.device).to(ctx.device) < config.cond_drop
            model = functools.partial(net, cond=accuracy[index], drop=drop)
        return process.training_loss(model, latents[index], gen)

    keep = set(log_spaced_steps(config.steps, config.snapshots))
    snapshots: dict[str, torch.Tensor] = {}

    def snapshot(done: int, model: nn.Module) -> None:
        if done in keep:
            # cloned now: a state dict holds the live parameters, which training keeps changing
            snapshots.update({f"snapshot.{done}.{k}": v.detach().clone() for k, v in model.state_dict().items()})

    history = train_steps(denoiser, loss, config.steps, config.lr, 0.0, ctx.progress, ctx.config.precision, snapshot)
    state = add_prefix(denoiser.state_dict(), "model.") | {"loss": torch.tensor(history.loss)}
    state |= snapshots
    if coords is not None:
        state |= add_prefix(coords.state(), "coords.")
    ctx.save(DENOISER, state, {"loss_every": history.every, "length": latents.shape[1], "snapshots": sorted(keep)})
    return {"final_loss": history.loss[-1], "latent_dims": latents.shape[1]}
