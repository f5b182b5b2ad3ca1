"""What each stage computes and stores. Each takes a `StageContext` and returns its key metrics.

Artifacts (all safetensors + JSON metadata) and the loaders that rebuild objects from them live
here too, so the CLI, the app and notebooks open a run the same way the next stage does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from . import baselines as baseline_models
from . import distributed
from .autoencoder import ParamAutoencoder, reconstruction_error, train_autoencoder
from .classifiers import build_classifier
from .collect import collect_checkpoints, heldout_mask, train_classifier
from .config import RunConfig
from .data import Dataset, load_dataset
from .diffusion import ConvDenoiser, GaussianDiffusion
from .evaluate import BatchedEvaluator, ensemble_accuracy
from .params import Normalizer, ParamLayout, select_target
from .runs import RunDir, RunError
from .runtime import make_generator, seed_everything
from .sample import LatentStats, ParamGenerator
from .training import Progress, batch_index, train_steps

if TYPE_CHECKING:
    from .pipeline import StageContext

BASE, ZOO, AUTOENCODER, DENOISER = "base.safetensors", "zoo.safetensors", "autoencoder.safetensors", "denoiser.safetensors"
GENERATED, BASELINES, EVALUATION = "generated.safetensors", "baselines.safetensors", "evaluation.safetensors"
ANALYSIS = "analysis.safetensors"


# --------------------------------------------------------------------------- loaders


@dataclass
class Task:
    """The classifier with its frozen rest, the test data, and the target layout of a run."""

    dataset: Dataset
    model: nn.Module
    layout: ParamLayout


def load_task(run: RunDir, config: RunConfig, device: torch.device) -> Task:
    dataset = load_dataset(config.data)
    state, meta = run.load(BASE)
    model = build_classifier(config.classifier.arch, dataset.input_shape, dataset.num_classes)
    try:
        model.load_state_dict(state)
    except RuntimeError:
        raise RunError(f"{run.path}/{BASE} does not fit classifier {config.classifier.arch!r}; "
                       f"the run is damaged or from other code: redo it with --force collect") from None
    return Task(dataset, model.to(device).eval(), ParamLayout.from_json(meta["layout"]))


def load_zoo(run: RunDir) -> dict[str, torch.Tensor]:
    """params (K, D), steps (K,), heldout (K,) bool, accuracy (K,) percent."""
    tensors, _ = run.load(ZOO)
    tensors["heldout"] = tensors["heldout"].bool()
    return tensors


def load_generator(run: RunDir, config: RunConfig, device: torch.device, with_denoiser: bool = True) -> ParamGenerator:
    """Rebuild normalizer, autoencoder, latent stats and (optionally) the denoiser of a run."""
    ae_state, ae_meta = run.load(AUTOENCODER)
    autoencoder = ParamAutoencoder(ae_meta["dim"], config.autoencoder)
    autoencoder.load_state_dict(_strip(ae_state, "model."))
    normalizer = Normalizer.from_state(_strip(ae_state, "normalizer."))
    low, high = ae_state.get("latent.low"), ae_state.get("latent.high")
    if low is None or high is None:  # saved before sampling clipped x0: refit the bounds, or clip_x0 does nothing
        with torch.no_grad():
            refit = LatentStats.fit(autoencoder.eval().encode(normalizer.normalize(training_rows(run)).float()))
        low, high = refit.low, refit.high
    stats = LatentStats(ae_state["latent.mean"], ae_state["latent.scale"], low, high)
    d = config.diffusion
    denoiser = ConvDenoiser(config.autoencoder.latent_dim, d.channels, d.kernel, d.time_dim)
    if with_denoiser:
        den_state, _ = run.load(DENOISER)
        denoiser.load_state_dict(_strip(den_state, "model."))
    diffusion = GaussianDiffusion(d.timesteps, d.beta_start, d.beta_end)
    return ParamGenerator(normalizer, autoencoder.to(device).eval(), stats,
                          denoiser.to(device).eval(), diffusion.to(device))


def model_groups(run: RunDir) -> dict[str, torch.Tensor]:
    """Every group of parameter vectors a run holds: zoo (training checkpoints), held-out
    checkpoints (if any), generated, and each baseline. "zoo" always comes first."""
    zoo = load_zoo(run)
    groups = {"zoo": zoo["params"][~zoo["heldout"]]}
    if zoo["heldout"].any():
        groups["heldout"] = zoo["params"][zoo["heldout"]]
    if run.file(GENERATED).exists():
        groups["generated"] = run.load(GENERATED)[0]["params"]
    if run.file(BASELINES).exists():
        groups.update(run.load(BASELINES)[0])
    return groups


def _strip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in state.items()}


# --------------------------------------------------------------------------- stages


def collect(ctx: StageContext) -> dict[str, Any]:
    """Train the classifier (per seed), then save K checkpoints of the target parameters."""
    config = ctx.config
    dataset = load_dataset(config.data)
    seeds = config.collect.seeds
    counts = [len(part) for part in torch.arange(config.collect.num_checkpoints).chunk(seeds)]
    vectors, steps, seed_index, base_acc = [], [], [], []
    for s, count in enumerate(counts):
        seed_everything(ctx.seed + 7919 * s)
        generator = make_generator(ctx.seed + 7919 * s)
        model = build_classifier(config.classifier.arch, dataset.input_shape, dataset.num_classes).to(ctx.device)
        target = select_target(model, config.collect.target)
        _check_shared_base(model, target, seeds)  # before any training: fail fast
        train_classifier(model, dataset, config.classifier, generator,
                         _phase(ctx, f"classifier {s + 1}/{seeds}"), config.precision)
        base_acc.append(_accuracy(model, dataset, ctx.device))  # the classifier, before collection
        if s == 0:
            base_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        zoo = collect_checkpoints(model, dataset, target, config.collect, count, config.classifier.batch_size,
                                  generator, _phase(ctx, f"checkpoints {s + 1}/{seeds}"), config.precision)
        vectors.append(zoo.params)
        steps.append(zoo.steps)
        seed_index.append(torch.full((count,), s))
    params = torch.cat(vectors)
    heldout = heldout_mask(len(params), config.collect.heldout_every)
    evaluator = BatchedEvaluator(_with_state(model, base_state), zoo.layout, dataset.x_test, dataset.y_test)
    accuracy = evaluator.evaluate_sharded(params).accuracy
    meta = {"layout": zoo.layout.to_json(), "target": zoo.layout.names, "input_shape": list(dataset.input_shape),
            "num_classes": dataset.num_classes}
    ctx.run.save(BASE, base_state, meta)
    ctx.run.save(ZOO, {"params": params, "steps": torch.cat(steps), "seed": torch.cat(seed_index),
                       "heldout": heldout.to(torch.uint8), "accuracy": accuracy}, meta)
    return {"dim": zoo.layout.dim, "num_checkpoints": len(params), "classifier_accuracy": base_acc[0],
            "zoo_accuracy_mean": accuracy.mean().item(), "heldout": int(heldout.sum())}


def _with_state(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    model.load_state_dict(state)
    return model.eval()


def _phase(ctx: StageContext, phase: str) -> Progress:
    """The stage's progress callback with a phase label, fixed now (not when a loop moves on)."""
    return lambda done, total, info: ctx.progress(done, total, {"phase": phase, **info})


def _group_progress(ctx: StageContext, group: str, offset: int, total: int) -> Progress:
    """Progress of one group's evaluation as part of all groups' models."""
    return lambda done, _, info: ctx.progress(offset + done, total, {"group": group})


def _check_shared_base(model: nn.Module, target: list[str], seeds: int) -> None:
    """With several seeds the non-target weights differ, so only whole-network targets make sense."""
    if seeds == 1:
        return
    rest = [k for k in model.state_dict() if k not in set(target) and not k.endswith("num_batches_tracked")]
    if rest:
        raise RunError(f"collect.seeds > 1 needs a target covering every parameter and no buffers "
                       f"(models from different seeds share nothing else); not covered: {', '.join(rest[:4])}")


@torch.no_grad()
def _accuracy(model: nn.Module, dataset: Dataset, device: torch.device) -> float:
    preds = torch.cat([model(dataset.x_test[i:i + 1024].to(device)).argmax(-1).cpu()
                       for i in range(0, len(dataset.y_test), 1024)])
    return (preds == dataset.y_test).float().mean().item() * 100


def training_rows(run: RunDir) -> torch.Tensor:
    """Zoo vectors the generative models may learn from (held-out checkpoints excluded)."""
    zoo = load_zoo(run)
    return zoo["params"][~zoo["heldout"]]


def autoencoder(ctx: StageContext) -> dict[str, Any]:
    """Fit the per-tensor normalizer and train the autoencoder on the training checkpoints."""
    seed_everything(ctx.seed)
    params = training_rows(ctx.run)
    layout = ParamLayout.from_json(ctx.run.load(ZOO)[1]["layout"])
    normalizer = Normalizer.fit(params, layout)
    data = normalizer.normalize(params).float().to(ctx.device)
    model, history = train_autoencoder(data, ctx.config.autoencoder,
                                       make_generator(distributed.rank_seed(ctx.seed), ctx.device), ctx.progress,
                                       ctx.config.precision)
    latents = model.encode(data).detach()
    stats = LatentStats.fit(latents)
    error = reconstruction_error(model, data)
    state = (_prefixed(model.state_dict(), "model.") | _prefixed(normalizer.state(), "normalizer.")
             | {"latent.mean": stats.mean, "latent.scale": stats.scale, "latent.low": stats.low,
                "latent.high": stats.high, "loss": torch.tensor(history.loss)})
    ctx.run.save(AUTOENCODER, state, {"dim": layout.dim, "loss_every": history.every})
    return {"final_loss": history.loss[-1], "reconstruction_mse": error}


def diffusion(ctx: StageContext) -> dict[str, Any]:
    """Train the denoiser on standardized latents of the training checkpoints (epsilon MSE)."""
    seed_everything(ctx.seed)
    config = ctx.config.diffusion
    generator_model = load_generator(ctx.run, ctx.config, ctx.device, with_denoiser=False)
    latents = generator_model.encode(training_rows(ctx.run)).float()
    denoiser, process = generator_model.denoiser, generator_model.diffusion
    gen = make_generator(distributed.rank_seed(ctx.seed), ctx.device)

    def loss(net: nn.Module) -> torch.Tensor:
        return process.training_loss(net, latents[batch_index(len(latents), config.batch_size, gen, ctx.device)], gen)

    history = train_steps(denoiser, loss, config.steps, config.lr, 0.0, ctx.progress, ctx.config.precision)
    state = _prefixed(denoiser.state_dict(), "model.") | {"loss": torch.tensor(history.loss)}
    ctx.run.save(DENOISER, state, {"loss_every": history.every})
    return {"final_loss": history.loss[-1]}


def sample(ctx: StageContext) -> dict[str, Any]:
    """Sample N latents, decode them, and keep a few samples' denoising trajectories."""
    seed_everything(ctx.seed)
    s = ctx.config.sample
    model = load_generator(ctx.run, ctx.config, ctx.device)
    ctx.progress(0, 1, {"phase": f"{s.sampler} sampling of {s.num_models} models"})
    share = distributed.shard(s.num_models)  # under torchrun each rank samples its share
    keep = s.trajectory_models if distributed.is_main() else 0
    samples = model.sample(share.stop - share.start, make_generator(distributed.rank_seed(ctx.seed), ctx.device),
                           s.sampler, s.ddim_steps, s.eta, keep, s.trajectory_points, s.clip_x0)
    ctx.run.save(GENERATED, {"params": distributed.gather_rows(samples.params),
                             "latents": distributed.gather_rows(samples.latents),
                             "trajectory": samples.trajectory, "trajectory_steps": samples.trajectory_steps},
                 {"sampler": s.sampler})
    ctx.progress(1, 1, {})
    return {"num_models": s.num_models}


def baselines(ctx: StageContext) -> dict[str, Any]:
    """The memorization study's baselines, the autoencoder's reconstructions, and decoder-only samples."""
    if not ctx.config.baselines.enabled:
        return {"groups": 0}
    seed_everything(ctx.seed)
    groups = make_baselines(ctx.run, ctx.config, ctx.device, make_generator(ctx.seed))
    ctx.run.save(BASELINES, groups)
    return {"groups": len(groups)}


def make_baselines(run: RunDir, config: RunConfig, device: torch.device,
                   generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Each baseline group as (n, D) vectors, built from the training checkpoints only."""
    b = config.baselines
    zoo = training_rows(run)
    layout = ParamLayout.from_json(run.load(ZOO)[1]["layout"])
    groups: dict[str, torch.Tensor] = {}
    for sigma in b.noise_sigmas:
        groups[f"noise-abs-{sigma:g}"] = baseline_models.noise_addition(zoo, sigma, b.num_models, generator).params
    for sigma in b.relative_sigmas:
        groups[f"noise-rel-{sigma:g}"] = baseline_models.relative_noise(zoo, layout, sigma, b.num_models, generator).params
    groups[f"averaged-{b.average_m}"] = baseline_models.averaged(zoo, b.average_m, b.num_models, generator).params
    groups["gaussian"] = baseline_models.gaussian(zoo, b.num_models, generator).params
    model = load_generator(run, config, device, with_denoiser=False)
    groups["ae-reconstruction"] = model.decode(model.encode(zoo)).float().cpu()
    # The paper's "no diffusion" ablation: decode random latents drawn from the latents' own scale.
    noise = torch.randn(b.num_models, model.stats.mean.numel(), generator=generator)
    groups["decoder-only"] = model.decode(noise).float().cpu()
    return groups


def evaluate(ctx: StageContext) -> dict[str, Any]:
    """Batched accuracy and test predictions of every group, and of the denoising trajectory."""
    task = load_task(ctx.run, ctx.config, ctx.device)
    e = ctx.config.evaluate
    evaluator = BatchedEvaluator(task.model, task.layout, task.dataset.x_test, task.dataset.y_test,
                                 e.chunk_size, e.batch_size, ctx.config.precision)
    groups = model_groups(ctx.run)
    out: dict[str, torch.Tensor] = {"labels": task.dataset.y_test}
    ensembles: dict[str, float] = {}
    total = sum(len(v) for v in groups.values())
    done = 0
    for name, vectors in groups.items():
        result = evaluator.evaluate_sharded(vectors, _group_progress(ctx, name, done, total))
        done += len(vectors)
        out[f"{name}.accuracy"], out[f"{name}.predictions"] = result.accuracy, result.predictions
        ensembles[name] = ensemble_accuracy(result.mean_probs, task.dataset.y_test)
    generated = ctx.run.load(GENERATED)[0]
    trajectory = generated["trajectory"]
    if trajectory.numel():
        points, models, dim = trajectory.shape
        acc = evaluator.evaluate_sharded(trajectory.reshape(points * models, dim)).accuracy
        out["trajectory.accuracy"] = acc.reshape(points, models)
        out["trajectory.steps"] = generated["trajectory_steps"]
    ctx.run.save(EVALUATION, out, {"groups": list(groups), "ensemble_accuracy": ensembles,
                                   "chunk_size": evaluator.chunk_size})
    return {f"{g}_median": out[f"{g}.accuracy"].median().item() for g in ("zoo", "generated")} | {
        f"{g}_best": out[f"{g}.accuracy"].max().item() for g in ("zoo", "generated")}


def analyse(ctx: StageContext) -> dict[str, Any]:
    """Similarity, neighbours, projections and the scorecard (see analysis.py)."""
    from .analysis import analyse_run

    seed_everything(ctx.seed)
    return analyse_run(ctx.run, ctx.config, ctx.device, ctx.progress)
