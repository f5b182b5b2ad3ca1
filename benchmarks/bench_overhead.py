"""What a feature costs the default run: this checkout's run timed beside a baseline, pair by pair.

Two questions share this script. How much longer does the default run take than it did before a
change (the fresh-SGD reference and the copies baseline of the calibrated answer: `--baseline-checkout
DIR`, a checkout of the commit before, e.g. `git worktree add /tmp/before 5b422c2`)? And how much do
the denoiser snapshots and the dynamics stage add (`--baseline-set diffusion.snapshots=0`, the same
code with them off)? Each of N pairs runs A (this checkout, the preset as it is) and B (the baseline)
one after the other, alternating which goes first, each from nothing in its own temporary folder and
subprocess; the ratio A / B is taken per pair, so a machine whose speed drifts moves both halves of a
pair alike. The target (the issues' +15 %) is on the median ratio. Exits 1 on a miss or a failed run.

Run from the repository root on a quiet machine:
    python -m benchmarks.bench_overhead --baseline-set diffusion.snapshots=0 [--pairs 5]
    python -m benchmarks.bench_overhead --baseline-checkout /tmp/before [--pairs 5]
    python -m benchmarks.bench_overhead --baseline-checkout /tmp/before --set diffusion.snapshots=0
`--set` overrides this checkout's run (A), to measure one feature's cost apart from another's.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.bench_pipeline import run_once
from benchmarks.targets import Target, check, exit_code

RATIO = Target("median time ratio, this run / baseline", "<=", 1.15)


def timed(repo: Path, preset: str, sets: list[str], threads: int | None) -> float:
    """Wall seconds of one run from nothing; raises SystemExit(1) with the error if it fails."""
    with tempfile.TemporaryDirectory(prefix="pdiff-overhead-") as tmp:
        wall, _, code, tail = run_once(Path(tmp) / "run", preset, sets, threads, repo)
    if code != 0:
        print(f"a run of {repo} failed with exit code {code}:\n{tail}")
        raise SystemExit(1)
    return wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    baseline = parser.add_mutually_exclusive_group(required=True)
    baseline.add_argument("--baseline-checkout", type=Path, help="another checkout's code, the preset as it is")
    baseline.add_argument("--baseline-set", action="append", metavar="KEY=VALUE",
                          help="this checkout with these overrides")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help="overrides for this checkout's run (A), e.g. to leave out a feature measured apart")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--preset", default="digits")
    parser.add_argument("--threads", type=int, help="OMP_NUM_THREADS for both (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.baseline_checkout and not (args.baseline_checkout / "pdiff").is_dir():
        parser.error(f"--baseline-checkout {args.baseline_checkout} holds no pdiff package; give a checkout's root")
    base_repo = args.baseline_checkout.resolve() if args.baseline_checkout else REPO
    base_sets = args.baseline_set or []
    os.environ["PDIFF_STORE"] = "off"  # nothing may come from an earlier run's store
    a_sets = "".join(f" --set {s}" for s in args.sets)
    print(f"A: {REPO}, preset {args.preset}{a_sets} | B: {base_repo}, preset {args.preset} "
          f"{' '.join('--set ' + s for s in base_sets)}".rstrip())
    print(f"{args.pairs} pairs, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    ratios, walls_a, walls_b = [], [], []
    for i in range(args.pairs):
        jobs = [("A", REPO, args.sets), ("B", base_repo, base_sets)]
        walls = {name: timed(repo, args.preset, sets, args.threads) for name, repo, sets in
                 (jobs if i % 2 == 0 else jobs[::-1])}
        walls_a.append(walls["A"])
        walls_b.append(walls["B"])
        ratios.append(walls["A"] / walls["B"])
        print(f"pair {i + 1}: A {walls['A']:6.1f} s  B {walls['B']:6.1f} s  ratio {ratios[-1]:.3f}")
    print(f"\nmedian A {statistics.median(walls_a):.1f} s, B {statistics.median(walls_b):.1f} s; "
          f"ratios {min(ratios):.3f}-{max(ratios):.3f}")
    return exit_code([check(RATIO, statistics.median(ratios))])


if __name__ == "__main__":
    sys.exit(main())
