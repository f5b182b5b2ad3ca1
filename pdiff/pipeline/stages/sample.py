"""Stage sample: draw new parameter vectors from the trained generator."""
from __future__ import annotations

from typing import Any

from ...core import distributed
from ...core.artifacts import GENERATED
from ...core.runtime import make_generator, seed_everything
from ..contract import StageContext
from ..loaders import load_generator


def run(ctx: StageContext) -> dict[str, Any]:
    """Sample N latents, decode them, and keep a few samples' denoising trajectories."""
    seed_everything(ctx.seed)
    s = ctx.config.sample
    model = load_generator(ctx.run, ctx.config, ctx.device)
    ctx.progress(0, 1, {"phase": f"{s.sampler} sampling of {s.num_models} models"})
    share = distributed.shard(s.num_models)  # under torchrun each rank samples its share
    keep = s.trajectory_models if distributed.is_main() else 0
    samples = model.sample(share.stop - share.start, make_generator(distributed.rank_seed(ctx.seed), ctx.device),
                           s.sampler, s.steps, s.eta, keep, s.trajectory_points, s.clip_x0,
                           s.accuracy if s.accuracy >= 0 else None, s.guidance)
    ctx.save(GENERATED, {"params": distributed.gather_rows(samples.params),
                         "latents": distributed.gather_rows(samples.latents),
                         "trajectory": samples.trajectory, "trajectory_steps": samples.trajectory_steps},
             {"sampler": s.sampler})
    ctx.progress(1, 1, {})
    return {"num_models": s.num_models}
