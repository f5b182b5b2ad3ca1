"""Stage import (in place of collect): a zoo of checkpoints trained elsewhere, read, checked,
measured and stored as collect stores the zoo it trains, so every later stage works unchanged.

What the target is here: collect trains one classifier and varies only the target, so every
checkpoint shares the frozen rest, BatchNorm statistics included. Checkpoints of independent runs
share nothing. So by default (`zoo.target=all`) a checkpoint's vector is its whole state dict's
floating-point tensors, running statistics included: evaluating the vector is evaluating the
checkpoint exactly, and `base.safetensors` (the first training checkpoint's state) lends only its
integer counters. Selectors (`last-norm:1,head.*`) suit fine-tunes of one network: the checkpoints
must then agree outside the target, which is checked, or the vectors would be judged on a rest
that is not theirs.

Which checkpoints learn and which are the ruler's fresh-training end: `zoo.fresh` holds out whole
runs (zoo/metadata.py). With `zoo.align` every vector is stored neuron-aligned to the first
training run's last checkpoint (zoo/alignment.py), each run moved as one: the same functions, in
one order of hidden units.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ...core.artifacts import BASE, ZOO
from ...core.errors import RunError
from ...judge.evaluate import BatchedEvaluator
from ...zoo.alignment import align_runs, permutable_groups, permutation_spec, run_representatives
from ...zoo.checkpoints import check_fits, find_checkpoints, load_state, shared_rest_misfit
from ...zoo.classifiers import build_classifier
from ...zoo.datasets import Dataset
from ...zoo.metadata import Checkpoint, describe, run_index, runs_in_order, split_fresh
from ...zoo.params import ParamLayout, layout_of_state, select_state_target
from ..contract import StageContext


def run(ctx: StageContext) -> dict[str, Any]:
    """Read every checkpoint in zoo.dir, check it fits the classifier, store the target vectors
    (aligned when asked), hold out the fresh-training runs and measure each checkpoint's accuracy."""
    config, z = ctx.config, ctx.config.zoo
    dataset = ctx.dataset()
    model = build_classifier(config.classifier.arch, dataset.input_shape, dataset.num_classes)
    expected = model.state_dict()
    folder = Path(z.dir).expanduser()
    paths = find_checkpoints(folder)
    checkpoints = describe(folder, paths)
    train, fresh, fresh_note = split_fresh(checkpoints, z.fresh)
    target = select_state_target(model, z.target)
    layout = layout_of_state(expected, target)
    vectors, base_state = _read(ctx, paths, checkpoints, expected, layout, train[0], dataset)
    runs = runs_in_order(checkpoints)
    index = torch.tensor(run_index(checkpoints, runs))
    reference = int(run_representatives(index)[train[0]])  # the first training run's last checkpoint
    alignment = _alignment(z.align, model, layout, checkpoints, reference, z.target)
    if alignment["aligned"]:
        vectors = align_runs(vectors[reference], vectors, index, permutation_spec(model), layout, seed=ctx.seed)
    model.load_state_dict(base_state)
    model = model.to(ctx.device).eval()
    params = vectors[train]
    accuracy = BatchedEvaluator(model, layout, dataset.x_test, dataset.y_test).evaluate_sharded(params).accuracy
    val_accuracy = BatchedEvaluator(model, layout, dataset.x_val, dataset.y_val).evaluate_sharded(params).accuracy
    steps = torch.tensor([c.step for c in checkpoints])
    meta = _meta(layout, dataset, folder, checkpoints, train, fresh, runs) | {
        "fresh_note": fresh_note, "alignment": alignment}
    tensors = {"params": params, "steps": steps[train], "seed": index[train],
               "heldout": torch.zeros(len(train), dtype=torch.uint8), "accuracy": accuracy, "val_accuracy": val_accuracy}
    if fresh:
        tensors |= {"fresh.params": vectors[fresh], "fresh.steps": steps[fresh], "fresh.seed": index[fresh]}
    ctx.save(BASE, base_state, meta)
    ctx.save(ZOO, tensors, meta)
    return {"dim": layout.dim, "num_checkpoints": len(train), "fresh": len(fresh),
            "runs": len([r for r in runs if r is not None]), "aligned": alignment["aligned"],
            "zoo_accuracy_mean": accuracy.mean().item()} | {f"{k}_samples": v for k, v in meta["splits"].items()}


def _read(ctx: StageContext, paths: list[Path], checkpoints: list[Checkpoint], expected: dict[str, torch.Tensor],
          layout: ParamLayout, reference: int, dataset: Dataset) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(N, D) target vectors of every file, and the full state of checkpoint `reference` (the base).

    Files are read one at a time and only their target is kept, so a zoo of large networks needs
    the memory of its vectors, not of its files."""
    arch, target = ctx.config.classifier.arch, set(layout.names)
    vectors = torch.empty(len(paths), layout.dim)
    first: dict[str, torch.Tensor] = {}
    base: dict[str, torch.Tensor] = {}
    for i, (path, checkpoint) in enumerate(zip(paths, checkpoints)):
        state = load_state(path, checkpoint.file)
        check_fits(state, expected, checkpoint.file, arch, dataset.input_shape, dataset.num_classes)
        state = {k: state[k].to(v.dtype) for k, v in expected.items()}  # the classifier's order and dtypes
        first = first or state
        differs = shared_rest_misfit(state, first, target)
        if differs:
            raise RunError(f"zoo file {checkpoint.file} differs from {checkpoints[0].file} in {differs}, outside the "
                           f"target (zoo.target={ctx.config.zoo.target}): checkpoints of a partial target must share "
                           f"the rest of the network; for independent runs use zoo.target=all")
        vectors[i] = layout.flatten({k: state[k].float() for k in layout.names})
        if i == reference:
            base = state
        ctx.progress(i + 1, len(paths), {"phase": "reading checkpoints"})
    return vectors, base


def _alignment(mode: str, model: torch.nn.Module, layout: ParamLayout, checkpoints: list[Checkpoint],
               reference: int, target: str) -> dict[str, Any]:
    """Whether the vectors are stored neuron-aligned, and why (zoo.align)."""
    record = {"aligned": False, "reference": checkpoints[reference].file}
    runs = runs_in_order(checkpoints)
    if mode == "off":
        return record | {"why": "zoo.align=off: stored in each checkpoint's own order of hidden units"}
    if mode == "auto" and runs == [runs[0]] and runs[0] is not None:
        return record | {"why": "one run: its checkpoints share their hidden units' order"}
    try:
        groups = permutable_groups(permutation_spec(model), layout.names)
    except ValueError as exc:
        why = str(exc)
    else:
        why = "" if groups else (f"no layer's hidden units lie wholly inside the target (zoo.target={target}), so "
                                 f"permuting them would change the shared rest")
    if why and mode == "on":
        raise RunError(f"zoo.align=on: {why}")
    if why:
        return record | {"why": why}
    return record | {"aligned": True, "why": f"hidden units of {', '.join(groups)} matched to "
                                             f"{checkpoints[reference].file} (Git Re-Basin weight matching), each "
                                             f"run's checkpoints moved together"}


def _meta(layout: ParamLayout, dataset: Dataset, folder: Path, checkpoints: list[Checkpoint], train: list[int],
          fresh: list[int], runs: list[str | None]) -> dict[str, Any]:
    return {"layout": layout.to_json(), "target": layout.names, "input_shape": list(dataset.input_shape),
            "num_classes": dataset.num_classes,
            "splits": {"train": len(dataset.y_train), "validation": len(dataset.y_val), "test": len(dataset.y_test)},
            "source": "import", "dir": str(folder.resolve()), "runs": runs,
            "fresh_runs": list(dict.fromkeys(checkpoints[i].run for i in fresh)),
            "checkpoints": [checkpoints[i].record() for i in train],
            "fresh_checkpoints": [checkpoints[i].record() for i in fresh]}
