"""Stage autoencoder: fit the normalizer and train the parameter autoencoder on the training checkpoints."""
from __future__ import annotations

from typing import Any

import torch

from ...core import distributed
from ...core.artifacts import AUTOENCODER
from ...core.runtime import make_generator, seed_everything
from ...generator.autoencoder import reconstruction_error, train_autoencoder
from ...generator.normalizer import Normalizer
from ...generator.sampling import LatentStats
from ..contract import StageContext
from ..loaders import add_prefix, load_layout, training_rows


def run(ctx: StageContext) -> dict[str, Any]:
    """Fit the per-tensor normalizer and train the autoencoder on the training checkpoints."""
    seed_everything(ctx.seed)
    params = training_rows(ctx.run)
    layout = load_layout(ctx.run)
    normalizer = Normalizer.fit(params, layout, ctx.config.autoencoder.centre)
    data = normalizer.normalize(params).float().to(ctx.device)
    model, history = train_autoencoder(data, ctx.config.autoencoder,
                                       make_generator(distributed.rank_seed(ctx.seed), ctx.device), ctx.progress,
                                       ctx.config.precision)
    latents = model.encode(data).detach()
    stats = LatentStats.fit(latents)
    error = reconstruction_error(model, data)
    state = (add_prefix(model.state_dict(), "model.") | add_prefix(normalizer.state(), "normalizer.")
             | {"latent.mean": stats.mean, "latent.scale": stats.scale, "latent.low": stats.low,
                "latent.high": stats.high, "loss": torch.tensor(history.loss)})
    ctx.save(AUTOENCODER, state, {"dim": layout.dim, "loss_every": history.every})
    return {"final_loss": history.loss[-1], "reconstruction_mse": error}
