"""One-line definitions of every group of models and every metric of the scorecard.

The app shows them as help text where a number appears and on its Glossary page; the verdict
(verdict.py) and notebooks use the same words. Baseline groups carry their parameter in the name
(`noise-abs-0.01`, `averaged-16`), so `define_group` reads it from there.
"""
from __future__ import annotations

import re

from .verdict import BEYOND_ABOVE, COPIES_BELOW, FRESH_FROM

GROUPS: dict[str, str] = {
    "zoo": "the training checkpoints: the classifier's target parameters saved along one SGD run, "
           "which the autoencoder and the diffusion model learn from",
    "heldout": "checkpoints of the same SGD run kept out of the generator's training (`collect.heldout_every`): "
               "what a new checkpoint of that run looks like",
    "fresh": "fresh SGD: checkpoints of an independent SGD run from the zoo's starting point with another data "
             "order, which the generator never sees: what retraining gives (the ruler's 1); in an imported zoo, "
             "the checkpoints of whole runs held out for it (zoo.fresh)",
    "generated": "p-diff's models: latents sampled by the diffusion model from pure noise, then decoded into "
                 "parameters by the autoencoder's decoder",
    "copies": "copies by construction: random training checkpoints, each parameter moved by 1% of how much it "
              "varies across the zoo (the ruler's 0)",
    "noise-abs": "a random training checkpoint plus Gaussian noise of standard deviation {value} on every parameter",
    "noise-rel": "a random training checkpoint plus Gaussian noise of {value} times each tensor's own standard "
                 "deviation (how p-diff's own code perturbs models)",
    "averaged": "the average of {value} random training checkpoints (weight averaging; no training at all)",
    "gaussian": "every parameter drawn on its own from a Gaussian with that parameter's mean and standard "
                "deviation over the zoo (keeps the marginals, none of the correlations)",
    "ae-reconstruction": "each training checkpoint encoded and decoded by the autoencoder: what the autoencoder "
                         "keeps of a model",
    "decoder-only": "random latents drawn from a standard normal (pure noise, in the standardized latent space) "
                    "decoded without any diffusion: the paper's 'no diffusion' ablation",
}

METRICS: dict[str, str] = {
    "accuracy": "share of the test split a model classifies correctly, in percent; one test sample moves it "
                "by 100 / (test samples) points",
    "median": "the middle accuracy of a group's models (the typical model)",
    "best": "the highest accuracy in the group (the paper's headline number; it grows with the group's size)",
    "mean": "the average accuracy of the group's models",
    "min": "the lowest accuracy in the group",
    "std": "the sample standard deviation of the group's accuracies",
    "ci": "95% bootstrap interval: the range the statistic takes over resamples of the group's models; two "
          "groups differ only where their intervals do not overlap",
    "good": "share of the group's models in the zoo's range: at least the zoo's 5th-percentile accuracy less one "
            "point",
    "snapshot": "the denoiser's weights as they were at one training step (diffusion.snapshots keeps a few, "
                "log-spaced); the dynamics stage samples models from each and judges them like the final generator",
    "onset": "the onset of copying: the first snapshot from which every later snapshot's models are judged copies "
             "(none when the last one is not)",
    "ruler": "where a group sits between copies of the training checkpoints (0) and an independent SGD run (1, "
             "fresh SGD), on behaviour (max IoU, linear) and on parameters (nearest-checkpoint distance, log scale); "
             f"below {COPIES_BELOW} copies, up to {FRESH_FROM} between, up to {BEYOND_ABOVE} like fresh training, "
             "above that beyond; a measure whose two ends cannot be told apart on the task gives no position",
    "max_iou": "a model's largest IoU (intersection over union) between its set of wrong test samples and that "
               "of any training checkpoint (for the zoo itself: any other checkpoint); 1 = the same mistakes "
               "as some training checkpoint",
    "novelty": "1 - max IoU: how differently from every training checkpoint a model errs (0 = like one of them)",
    "nn_distance": "L2 distance in parameter space to the nearest training checkpoint (for the zoo: the nearest "
                   "other checkpoint, i.e. the spacing of the training set); between neuron-aligned models when "
                   "the zoo mixes runs (distances)",
    "distances": "'aligned': parameters were compared after matching every model's hidden units to the first "
                 "training checkpoint (weight matching), since renumbered units compute the same function far away "
                 "in L2 (a nearest-neighbour distance is the shorter of aligned and as stored); 'raw': as stored "
                 "(analysis.align)",
    "nn_agreement": "share of test samples on which a model and its nearest training checkpoint predict the "
                    "same class",
    "nn_top_share": "share of the group's models whose nearest training checkpoint is one of the three most "
                    "frequent ones: near 1 means the models pile up at a few checkpoints",
    "nn_targets": "how many different training checkpoints are the nearest one of some model in the group",
    "iou_within": "mean IoU of wrong-prediction sets between two different models of the same group: "
                  "1 = all make the same mistakes (no diversity)",
    "distinct_predictions": "how many different vectors of test predictions the group's models make; "
                            "a collapsed generator makes few however many models it samples",
    "zoo_distinct_same_n": "distinct prediction vectors of as many zoo checkpoints as the group has models, drawn "
                           "at random (median of 20 draws): the yardstick for the group's distinct predictions",
    "ensemble_gain": "accuracy of the group's averaged-probability ensemble minus its mean accuracy; positive "
                     "when its models make different mistakes",
    "errors_median": "wrong test samples of a typical model: with a handful of errors, IoU moves in large steps "
                     "and cannot tell a copy from a close relative",
    "latent_spread_ratio": "median over latent dimensions of the generated latents' spread over that of the "
                           "training latents (1 = same spread, near 0 = collapse, above 1 = noisier than the data); "
                           "the parameter spread ratio is the same over z-scored parameters",
    "latent_fd": "Fréchet distance between Gaussians fitted to a group's latents and the training latents (or to "
                 "their parameters), beside its floor: the same distance between two random halves of the zoo",
    "latent_precision": "share of a group's latents inside the training latents' k-NN neighbourhoods (realism; "
                        "k = 3, Kynkäänniemi et al. 2019); parameter precision: the same over parameters",
    "latent_recall": "share of training latents inside the group's k-NN neighbourhoods (coverage), beside the "
                     "recall of zoo halves: what one half of the zoo scores against the other",
}

# What each metric is called where people read it (the Glossary page); every key of METRICS has one.
METRIC_NAMES: dict[str, str] = {
    "accuracy": "accuracy", "median": "median", "best": "best", "mean": "mean", "min": "min", "std": "std",
    "ci": "95% interval", "good": "good", "ruler": "ruler position", "snapshot": "snapshot",
    "onset": "onset of copying", "distances": "distances (aligned or raw)", "max_iou": "max IoU", "novelty": "novelty",
    "nn_distance": "NN distance", "nn_agreement": "NN agreement", "nn_top_share": "top-3 NN share",
    "nn_targets": "NN targets", "iou_within": "IoU within", "distinct_predictions": "distinct predictions",
    "zoo_distinct_same_n": "the zoo's distinct predictions at the same count", "ensemble_gain": "ensemble gain",
    "errors_median": "test errors", "latent_spread_ratio": "spread ratio", "latent_fd": "Fréchet distance",
    "latent_precision": "precision", "latent_recall": "recall",
}

# The words of the method, for the Glossary page and the pipeline diagram (one line each, no formula
# a reader needs to know already).
TERMS: dict[str, str] = {
    "target parameters": "the part of the classifier that is generated: by default the last BatchNorm layer and the "
                         "linear head; every other weight (the frozen backbone) is the trained classifier's, shared "
                         "by every model of the run",
    "frozen backbone": "the rest of the classifier, trained once and never changed while the zoo is collected, so "
                       "even a poor guess of the target parameters sits on top of good features",
    "zoo": "the training checkpoints the generator learns from: the target parameters saved along one SGD run "
           "(K vectors of D numbers)",
    "normalization": "before the autoencoder, each parameter vector is centred on the zoo's mean and divided by one "
                     "spread (p-diff's preset: each tensor z-scored), so all coordinates speak on one scale",
    "autoencoder": "a network trained to squeeze each normalized parameter vector into a short code (the encoder) and "
                   "rebuild it from that code (the decoder); p-diff trains it with noise on its input and on the code",
    "latent": "the autoencoder's short code of one model (16 numbers by default), standardized over the zoo: where "
              "the diffusion model works",
    "diffusion": "a generative model that learns to undo noise: trained on latents noised to every level, it "
                 "generates by starting from pure noise and denoising step by step (DDPM; DDIM takes fewer steps)",
    "timestep": "t, the noise level of a diffusion step: t = 0 is clean, t = T - 1 (999 by default) is pure noise; "
                "sampling runs from T - 1 down to 0",
    "x0-prediction": "the denoiser's guess, at any step, of the clean latent it is heading for; decoded, it is a "
                     "whole classifier, which is what the Denoising page follows along sampling",
    "guidance": "classifier-free guidance: a denoiser trained with and without a condition (here an accuracy) mixes "
                "both predictions at sampling, scale 0 ignoring the request, 1 following it, above 1 pushing harder",
    "UMAP": "a 2D map that keeps each model's nearest neighbours near (McInnes et al. 2018); distances between far "
            "clusters mean little. PCA, the other map, keeps straight-line distances along the two main directions",
    "fresh SGD": "checkpoints of an independent SGD run from the same start with another data order, which the "
                 "generator never saw: what retraining gives, the ruler's 1",
    "copies": "training checkpoints with each parameter moved by 1% of its spread over the zoo: copies by "
              "construction, the ruler's 0",
    "the ruler": "where a group sits between copies (0) and fresh SGD (1), by its mistakes (max IoU) and by its "
                 "parameters (distance to the nearest checkpoint, log scale), each with a 95% bootstrap interval",
    "errs like": "the training checkpoint whose set of wrong test predictions overlaps most with a model's own "
                 "(its max-IoU checkpoint): the memorization evidence, often not the L2-nearest checkpoint",
}

_PARAMETRIC = re.compile(r"^(noise-abs|noise-rel|averaged)-(.+)$")


def define_group(name: str) -> str:
    """The one-line definition of a group of models (a baseline's parameter filled in)."""
    if name in GROUPS:
        return GROUPS[name]
    match = _PARAMETRIC.match(name)
    if match:
        return GROUPS[match.group(1)].format(value=match.group(2))
    return "a group of models this version of pdiff has no definition for"


def define_metric(key: str) -> str:
    """The one-line definition of a scorecard key (`max_iou_median` and `max_iou` share one)."""
    base = key.removesuffix("_ci").removesuffix("_median")
    return METRICS.get(key) or METRICS.get(base) or ""
