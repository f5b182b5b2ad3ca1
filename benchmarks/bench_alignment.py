"""Time neuron alignment (Git Re-Basin weight matching) of 100 whole-network small CNNs on digits.

    python -m benchmarks.bench_alignment [--seeds 5] [--models 100] [--steps 150] [--repeats 3] [--threads N]

Trains `--seeds` small CNNs (5,178 parameters, own BatchNorm statistics) from independent seeds,
then makes `--models` checkpoints of them, each randomly permuted, so matching has real work:
the ones from seed 0 are permuted copies of the reference (seed 0 itself) and must come back to
it exactly; the others are independent models that should only get closer. Prints the median
time of aligning all of them (target 10 s), the median relative distance to the reference before
and after, and checks that every aligned model makes the same predictions as before. Exits 1
when the time is over target, a permuted copy is not recovered to 1e-5 of the reference's norm,
or a prediction changed.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import pdiff

pdiff.configure_threads(chosen_by="benchmarks/bench_alignment.py")  # before torch loads

# isort: split
import torch
from torch import nn

from benchmarks.small_cnns import train
from benchmarks.targets import Target, check, exit_code
from pdiff.core.config import DataConfig
from pdiff.zoo.alignment import align_to, apply_permutation, permutation_spec, random_permutations, state_distance
from pdiff.zoo.datasets import load_dataset

TIME = Target("align 100 checkpoints, median (s)", "<=", 10.0)
RECOVERY = Target("worst permuted copy after alignment (relative distance)", "<=", 1e-5)
SAME_PREDICTIONS = Target("test predictions unchanged by alignment", "==", True)


@torch.no_grad()
def predictions(model: nn.Module, states: list[dict[str, torch.Tensor]], x: torch.Tensor) -> torch.Tensor:
    """(N, S) predicted classes of each state on `x`."""
    out = []
    for state in states:
        model.load_state_dict(state)
        out.append(model(x).argmax(1))
    return torch.stack(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="independently trained models")
    parser.add_argument("--models", type=int, default=100, help="checkpoints to align (permuted copies)")
    parser.add_argument("--steps", type=int, default=150, help="training steps per seed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    data = load_dataset(DataConfig(name="digits"))
    start = time.perf_counter()
    trained = [train(seed, data, args.steps) for seed in range(args.seeds)]
    model = trained[0]
    spec = permutation_spec(model)
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    sources = [i % args.seeds for i in range(args.models)]
    states = [apply_permutation(trained[s].state_dict(), spec, random_permutations(spec, g)) for s in sources]
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{args.models} small CNNs ({n_params} parameters, groups {spec.groups}) from {args.seeds} seeds x "
          f"{args.steps} steps, built in {time.perf_counter() - start:.1f} s; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")

    times, aligned = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        aligned = align_to(reference, states, spec)
        times.append(time.perf_counter() - start)
    t = statistics.median(times)

    scale = state_distance(reference, {k: torch.zeros_like(v) for k, v in reference.items()})
    before = [state_distance(reference, s) / scale for s in states]
    after = [state_distance(reference, s) / scale for s in aligned]
    copies = [d for d, s in zip(after, sources) if s == 0]
    independent = [(b, a) for b, a, s in zip(before, after, sources) if s != 0]
    same = torch.equal(predictions(model, states, data.x_test), predictions(model, aligned, data.x_test))
    model.load_state_dict(reference)

    print(f"align_to, {args.models} models: {t:.3f} s median of {args.repeats} "
          f"({', '.join(f'{x:.3f}' for x in times)})")
    print(f"relative distance to the reference (|a - b| / |a|), median: {statistics.median(before):.4f} before, "
          f"{statistics.median(after):.4f} after")
    if independent:
        print(f"  independent seeds ({len(independent)}): {statistics.median(b for b, _ in independent):.4f} "
              f"before, {statistics.median(a for _, a in independent):.4f} after; "
              f"{sum(a < b for b, a in independent)} of {len(independent)} closer")
    print(f"  permuted copies of the reference ({len(copies)}): worst {max(copies):.2e} after "
          f"(tolerance {RECOVERY.limit:.0e})")
    print(f"test-set predictions unchanged by alignment: {'yes' if same else 'NO'}")
    return exit_code([check(TIME, t), check(RECOVERY, max(copies)), check(SAME_PREDICTIONS, same)])


if __name__ == "__main__":
    sys.exit(main())
