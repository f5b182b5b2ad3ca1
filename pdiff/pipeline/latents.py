"""Every model's latent code, as the analysis judged it, for readers that need the latents themselves
(the explorer's nearest checkpoints "in latent space"; the analysis stores only their projections).

This mirrors `stages.analyse.group_latents` on purpose instead of moving it: a stage's stored
results go stale when the code it imports changes, and a helper for readers should not make every
finished run stale. tests/test_neighbours.py checks that the two agree (the PCA of these latents is
the analysis' stored latent map).
"""
from __future__ import annotations

import torch

from ..core.artifacts import GENERATED
from ..core.config import RunConfig
from ..core.rundir import RunDir
from .loaders import load_codec, model_groups


def model_latents(run: RunDir, config: RunConfig, device: torch.device) -> dict[str, torch.Tensor]:
    """group -> (N, L) standardized latents: the encoder's view of each group's parameters, except the
    generated models, whose latents are the ones the diffusion sampled."""
    codec = load_codec(run, config, device)
    with torch.no_grad():
        latents = {g: codec.encode(vectors).float().cpu() for g, vectors in model_groups(run).items()}
    if "generated" in latents:
        latents["generated"] = run.load(GENERATED)[0]["latents"].float()
    return latents
