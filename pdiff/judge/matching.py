"""Distances between neuron-aligned models: whether the analysis aligns, and aligning every group.

Why: a network with its hidden units renumbered computes the same function at a large L2
distance. When a zoo mixes independent runs, nearest-neighbour distances, parameter projections
and parameter-space fidelity would then measure how each run happened to number its units. So
the analysis aligns every model of every group (zoo, fresh, generated, baselines) to one
reference, the last training checkpoint of the zoo's first run, by weight matching
(zoo/alignment.py), and measures between the aligned vectors. The checkpoints of one run move
together (the permutation of the run's last one), so a run's own trajectory keeps its shape. One
reference for all, not a matching per pair: one assignment per model or run instead of one per
pair, the usual approximation (Git Re-Basin aligns to one model too). Behaviour (IoU of wrong
predictions) needs none: it compares functions. Aligned to one reference, two models that are
close as stored (a checkpoint and its copy, a generated model and its source) can be renumbered
differently, so nearest-neighbour distances take the nearer of the two frames, aligned and as
stored (judge/analysis.py, `nearest_in_frames`): both are distances under some renumbering.

`analysis.align`: "auto" aligns when the zoo mixes runs (or does not say which run a checkpoint
is from), "on" always (an architecture that cannot be aligned is then an error), "off" never.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

from ..core.errors import RunError
from ..zoo.alignment import PermutationSpec, align_runs, permutable_groups
from ..zoo.params import ParamLayout


@dataclass(frozen=True)
class Alignment:
    """Whether the analysis measured parameters between aligned models, and why (or why not)."""

    aligned: bool
    why: str

    def record(self) -> dict:
        return asdict(self)


def mixes_runs(runs: torch.Tensor) -> bool:
    """Whether run indices (-1: unknown) name more than one run, or leave some unknown."""
    return bool((runs < 0).any()) or runs.unique().numel() > 1


def choose(mode: str, runs: torch.Tensor, spec: PermutationSpec | str, names: Sequence[str],
           reference: int = 0) -> Alignment:
    """Whether to align (`spec` is the classifier's permutation spec, or why it has none; the
    reference is zoo #`reference`)."""
    if mode == "off":
        return Alignment(False, "analysis.align=off: distances between the parameters as stored")
    if mode == "auto" and not mixes_runs(runs):
        return Alignment(False, "one run: its checkpoints share the order of their hidden units")
    groups: tuple[str, ...] = ()
    if isinstance(spec, str):
        why = spec
    else:
        groups = permutable_groups(spec, names)
        why = "" if groups else "no layer's hidden units lie wholly inside the target, so none can be permuted"
    if why and mode == "on":
        raise RunError(f"analysis.align=on: {why}")
    if why:
        return Alignment(False, why)
    return Alignment(True, f"every model's hidden units ({', '.join(groups)}) matched to zoo #{reference} by weight "
                           f"matching, each run's checkpoints moved together")


def align_groups(groups: dict[str, torch.Tensor], runs: dict[str, torch.Tensor], reference: torch.Tensor,
                 spec: PermutationSpec, layout: ParamLayout, seed: int) -> dict[str, torch.Tensor]:
    """Every group's (N_g, D) vectors aligned to `reference` (D,); `runs[g]` (N_g,) says which of a
    group's models are checkpoints of one run (moved together); groups without are matched model
    by model."""
    out = {}
    for g, vectors in groups.items():
        together = runs.get(g, torch.full((len(vectors),), -1))
        out[g] = align_runs(reference.float(), vectors.float(), together, spec, layout, seed=seed) if len(vectors) \
            else vectors
    return out
