"""The stages of a run, each declared once: what it reads, what it writes, and its function.

A `Stage` names the config keys it reads, the artifacts it reads and writes (names from
artifacts.py), and a code version to bump whenever its code changes what it writes. The pipeline
turns these declarations into fingerprints (fingerprint.py) to decide what to reuse; the app, the
report, the ablation runner and the tests take stage order and artifact names from `STAGES`.
Each stage function takes a `StageContext`, reads its inputs from the run directory, writes its
outputs there (`ctx.save`) and returns its key metrics.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from . import baselines as baseline_models
from . import distributed
from .analysis import analyse_run
from .artifacts import ANALYSIS, AUTOENCODER, BASE, BASELINES, DENOISER, EVALUATION, GENERATED, NAN_MEANS_UNDEFINED, ZOO
from .autoencoder import reconstruction_error, train_autoencoder
from .classifiers import build_classifier
from .collect import collect_checkpoints, heldout_mask, reinit_target, train_classifier
from .config import RunConfig
from .data import Dataset, load_dataset
from .denoisers import build_denoiser
from .divergence import check_finite
from .evaluate import BatchedEvaluator
from .loaders import add_prefix, load_generator, load_layout, load_task, load_zoo, model_groups, training_rows
from .params import Normalizer, select_target
from .runs import RunDir, RunError
from .runtime import make_generator, seed_everything
from .sample import LatentStats
from .training import Progress, batch_index, train_steps
from .whitening import LatentWhitening

StageProgress = Callable[[str, int, int, dict], None]  # (stage, done, total, info)


@dataclass
class StageContext:
    """What a stage function gets: the run, its config and device, progress, and whether this
    process writes (under torchrun only rank 0 does; the pipeline decides)."""

    run: RunDir
    config: RunConfig
    device: torch.device
    stage: str
    index: int
    report: StageProgress | None = None
    writer: bool = True
    cache: dict[str, Any] = field(default_factory=dict)  # loaded once per pipeline invocation (the dataset)

    @property
    def seed(self) -> int:
        """Per-stage seed: stages are reproducible on their own, in any process."""
        return self.config.seed * 1000 + self.index

    def progress(self, done: int, total: int, info: dict | None = None) -> None:
        if self.report is not None:
            self.report(self.stage, done, total, info or {})

    def save(self, name: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any] | None = None) -> None:
        if name not in NAN_MEANS_UNDEFINED:  # a NaN weight is never saved as a finished result
            check_finite(name, tensors)
        if self.writer:
            self.run.save(name, tensors, meta)

    def dataset(self) -> Dataset:
        if "dataset" not in self.cache:
            self.cache["dataset"] = load_dataset(self.config.data)
        return self.cache["dataset"]


@dataclass(frozen=True)
class Stage:
    """One stage's contract. `config_keys` are dotted keys or whole sections it reads; `reads`
    and `writes` are artifact names; `uses_data` adds the dataset's content and the classifier's
    identity to its fingerprint; `main_only` stages run on rank 0 alone under torchrun."""

    name: str
    run: Callable[[StageContext], dict[str, Any]]
    config_keys: tuple[str, ...]
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    version: int = 1
    uses_data: bool = False
    main_only: bool = False


# --------------------------------------------------------------------------- collect


def collect(ctx: StageContext) -> dict[str, Any]:
    """Train the classifier (per seed), then save K checkpoints of the target parameters."""
    config = ctx.config
    dataset = ctx.dataset()
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
        if config.collect.reinit:  # a zoo from chance to trained (see collect.reinit_target)
            torch.manual_seed(ctx.seed + 7919 * s + 1)
            reinit_target(model, build_classifier(config.classifier.arch, dataset.input_shape, dataset.num_classes),
                          target)
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
    ctx.save(BASE, base_state, meta)
    ctx.save(ZOO, {"params": params, "steps": torch.cat(steps), "seed": torch.cat(seed_index),
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


# --------------------------------------------------------------------------- generator


def autoencoder(ctx: StageContext) -> dict[str, Any]:
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


def diffusion(ctx: StageContext) -> dict[str, Any]:
    """Train the denoiser on the training checkpoints' latents (epsilon MSE), in whitened
    coordinates when `diffusion.whiten` > 0 (see whitening.py)."""
    seed_everything(ctx.seed)
    config = ctx.config.diffusion
    generator_model = load_generator(ctx.run, ctx.config, ctx.device, with_denoiser=False)
    latents = generator_model.encode(training_rows(ctx.run)).float()
    coords = LatentWhitening.fit(latents.cpu(), config.whiten) if config.whiten > 0 else None
    if coords is not None:
        latents = coords.standardize(latents)
    process = generator_model.diffusion
    denoiser = build_denoiser(config, latents.shape[1], process).to(ctx.device)
    gen = make_generator(distributed.rank_seed(ctx.seed), ctx.device)
    zoo = load_zoo(ctx.run)
    accuracy = (zoo["accuracy"][~zoo["heldout"]] / 100).to(ctx.device)  # the condition, in [0, 1]

    def loss(net: nn.Module) -> torch.Tensor:
        index = batch_index(len(latents), config.batch_size, gen, ctx.device)
        model = net
        if config.condition == "accuracy":  # classifier-free guidance: drop a share of the conditions
            drop = torch.rand(len(index), generator=gen, device=gen.device).to(ctx.device) < config.cond_drop
            model = functools.partial(net, cond=accuracy[index], drop=drop)
        return process.training_loss(model, latents[index], gen)

    history = train_steps(denoiser, loss, config.steps, config.lr, 0.0, ctx.progress, ctx.config.precision)
    state = add_prefix(denoiser.state_dict(), "model.") | {"loss": torch.tensor(history.loss)}
    if coords is not None:
        state |= add_prefix(coords.state(), "coords.")
    ctx.save(DENOISER, state, {"loss_every": history.every, "length": latents.shape[1]})
    return {"final_loss": history.loss[-1], "latent_dims": latents.shape[1]}


def sample(ctx: StageContext) -> dict[str, Any]:
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


def baselines(ctx: StageContext) -> dict[str, Any]:
    """The memorization study's baselines, the autoencoder's reconstructions, and decoder-only
    samples (an empty file when baselines are turned off, so the stage's outputs are always there)."""
    groups: dict[str, torch.Tensor] = {}
    if ctx.config.baselines.enabled:
        seed_everything(ctx.seed)
        groups = make_baselines(ctx.run, ctx.config, ctx.device, make_generator(ctx.seed))
    ctx.save(BASELINES, groups)
    return {"groups": len(groups)}


def make_baselines(run: RunDir, config: RunConfig, device: torch.device,
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
    model = load_generator(run, config, device, with_denoiser=False)
    groups["ae-reconstruction"] = model.decode(model.encode(zoo)).float().cpu()
    # The paper's "no diffusion" ablation: decode random latents drawn from the latents' own scale.
    noise = torch.randn(b.num_models, model.stats.mean.numel(), generator=generator)
    groups["decoder-only"] = model.decode(noise).float().cpu()
    return groups


# --------------------------------------------------------------------------- judging


def evaluate(ctx: StageContext) -> dict[str, Any]:
    """Batched accuracy, test predictions and ensemble probabilities of every group, and the
    accuracy along the denoising trajectory."""
    task = load_task(ctx.run, ctx.config, ctx.device, ctx.dataset())
    e = ctx.config.evaluate
    evaluator = BatchedEvaluator(task.model, task.layout, task.dataset.x_test, task.dataset.y_test,
                                 e.chunk_size, e.batch_size, ctx.config.precision)
    groups = model_groups(ctx.run)
    out: dict[str, torch.Tensor] = {"labels": task.dataset.y_test}
    total = sum(len(v) for v in groups.values())
    done = 0
    for name, vectors in groups.items():
        result = evaluator.evaluate_sharded(vectors, _group_progress(ctx, name, done, total))
        done += len(vectors)
        out[f"{name}.accuracy"], out[f"{name}.predictions"] = result.accuracy, result.predictions
        out[f"{name}.mean_probs"] = result.mean_probs
    generated = ctx.run.load(GENERATED)[0]
    trajectory = generated["trajectory"]
    if trajectory.numel():
        points, models, dim = trajectory.shape
        acc = evaluator.evaluate_sharded(trajectory.reshape(points * models, dim)).accuracy
        out["trajectory.accuracy"] = acc.reshape(points, models)
        out["trajectory.steps"] = generated["trajectory_steps"]
    ctx.save(EVALUATION, out, {"groups": list(groups), "chunk_size": evaluator.chunk_size})
    return {f"{g}_median": out[f"{g}.accuracy"].median().item() for g in ("zoo", "generated")} | {
        f"{g}_best": out[f"{g}.accuracy"].max().item() for g in ("zoo", "generated")}


def analyse(ctx: StageContext) -> dict[str, Any]:
    """Similarity, neighbours, projections and the scorecard (see analysis.py)."""
    seed_everything(ctx.seed)
    tensors, meta, headline = analyse_run(ctx.run, ctx.config, ctx.device, ctx.progress)
    ctx.save(ANALYSIS, tensors, meta)
    return headline


# --------------------------------------------------------------------------- the contract

STAGES: tuple[Stage, ...] = (
    Stage("collect", collect, ("seed", "precision", "data.name", "data.train_subset", "data.test_subset",
                               "classifier", "collect"), (), (BASE, ZOO), uses_data=True),
    Stage("autoencoder", autoencoder, ("seed", "precision", "autoencoder"), (ZOO,), (AUTOENCODER,)),
    Stage("diffusion", diffusion, ("seed", "precision", "diffusion"), (ZOO, AUTOENCODER), (DENOISER,), version=2),
    Stage("sample", sample, ("seed", "sample"), (ZOO, AUTOENCODER, DENOISER), (GENERATED,), version=2),
    Stage("baselines", baselines, ("seed", "baselines"), (ZOO, AUTOENCODER), (BASELINES,), main_only=True),
    Stage("evaluate", evaluate, ("precision", "evaluate"), (BASE, ZOO, GENERATED, BASELINES), (EVALUATION,),
          version=2, uses_data=True),
    Stage("analyse", analyse, ("seed", "analysis"), (ZOO, AUTOENCODER, GENERATED, BASELINES, EVALUATION), (ANALYSIS,),
          version=5, main_only=True),
)
STAGE_NAMES: list[str] = [s.name for s in STAGES]
BY_NAME: dict[str, Stage] = {s.name: s for s in STAGES}
PRODUCER: dict[str, str] = {name: s.name for s in STAGES for name in s.writes}
# Config keys no stage's result depends on: where data comes from (its content is fingerprinted)
# and the requested device (the device kind it resolves to is fingerprinted instead).
NOT_RESULTS = ("device", "data.root", "data.download")


def upstream(stage: Stage) -> list[str]:
    """The stages whose artifacts `stage` reads, in pipeline order."""
    producers = {PRODUCER[name] for name in stage.reads}
    return [s for s in STAGE_NAMES if s in producers]


def get_stage(name: str) -> Stage:
    if name not in BY_NAME:
        raise RunError(f"unknown stage {name!r}; stages are: {', '.join(STAGE_NAMES)}")
    return BY_NAME[name]
