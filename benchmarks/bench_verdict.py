"""Is the answer to "new or copied?" right on cases whose answer is known? The confusion table.

For each task and seed: a fresh default run (UMAP off, the verdict does not read it), then every
case of `pdiff.calibration.known_cases` judged in the place of the run's generated models (copies
at three noise levels, one checkpoint repeated, random parameters, an unseen fresh SGD run,
averages of 16 checkpoints, a half-zoo generator). Prints each case's answer with its ruler
positions, then the confusion table (truth x answer) of the calibration tasks (digits, mnist1d)
and, apart, of the held-out task (an MLP on scikit-learn's make_classification, brought in through
register_tensors: the thresholds were not chosen on it). The run's own generated models are shown
too; they have no known answer. Exits 1 on any wrong answer, and when the fidelity caveat misses
the half-zoo generator (benchmarks/targets.py).

    python -m benchmarks.bench_verdict [--tasks digits mnist1d tabular] [--seeds 0 1 2] [--quick] [--keep DIR]

--quick shrinks every run (the test suite runs it on digits, one seed); its numbers only show
that the machinery works.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import pdiff

pdiff.configure_threads(chosen_by="benchmarks/bench_verdict.py")  # before torch loads

# isort: split
import torch

from benchmarks.targets import Target, check, exit_code
from pdiff.calibration import judge_case, known_cases
from pdiff.judge.verdict import ANSWERS
from pdiff.pipeline.report import metrics_table

WRONG = Target("wrong answers on cases of known nature", "<=", 0)
CAVEAT_MISSED = Target("half-zoo cases without the fidelity caveat", "<=", 0)
CALIBRATION = ("digits", "mnist1d")
QUICK = {"classifier.epochs": 10, "collect.num_checkpoints": 60, "collect.fresh": 40, "autoencoder.steps": 300,
         "diffusion.steps": 300, "diffusion.timesteps": 200, "sample.num_models": 40, "baselines.num_models": 40,
         "analysis.bootstrap": 200}


def register_tabular() -> None:
    """The held-out task: 4 classes of make_classification (3,000 samples, 20 features, 3 % label
    noise), standardized with the training split's statistics."""
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=3000, n_features=20, n_informative=8, n_redundant=4, n_classes=4,
                               class_sep=1.0, flip_y=0.03, random_state=0)
    x, y = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
    mean, std = x[:2000].mean(0), x[:2000].std(0)
    x = (x - mean) / std
    pdiff.register_tensors("tabular", x[:2000], y[:2000], x[2000:], y[2000:])


def task_config(task: str, seed: int, quick: bool) -> pdiff.RunConfig:
    base = pdiff.preset("mnist1d" if task == "mnist1d" else "digits")
    overrides = {"seed": seed, "analysis.umap": False, "device": "cpu"}
    if task == "tabular":
        overrides |= {"data.name": "tabular", "classifier.arch": "mlp"}
    return pdiff.with_overrides(base, overrides | (QUICK if quick else {}))


def judge_task(task: str, seed: int, root: Path, quick: bool) -> list[dict]:
    started = time.perf_counter()
    run = pdiff.run_pipeline(root / f"{task}-s{seed}", task_config(task, seed, quick))
    table = metrics_table(run)
    own = table.verdict()
    records = [{"task": task, "seed": seed, "case": "the run's generated models", "truth": None,
                "answer": own.answer, "positions": _positions(table.rows["generated"]), "caveat": bool(own.caveats)}]
    for case in known_cases(run, n=100 if not quick else 40, seed=seed):
        result = judge_case(run, case.params, root / "case")
        rows = metrics_table(pdiff.RunDir(root / "case")).rows
        uncovered = any(c.startswith("The generator does not cover") for c in result.caveats)
        records.append({"task": task, "seed": seed, "case": case.name, "truth": case.truth, "answer": result.answer,
                        "positions": _positions(rows["generated"]), "caveat": uncovered,
                        "caveat_ok": uncovered or not case.expect_uncovered})
    print(f"{task} seed {seed} ({time.perf_counter() - started:.0f} s); ruler anchors: "
          + ", ".join(f"{m} copies {a['copies']:.3g} / fresh {a['fresh']:.3g}"
                      + ("" if a["resolves"] else " (does not resolve)") for m, a in (table.ruler or {}).items()))
    for r in records:
        mark = "" if r["truth"] is None else ("ok" if r["answer"] == r["truth"] else "WRONG")
        mark += "" if r.get("caveat_ok", True) else " (fidelity caveat missed)"
        print(f"  {r['case']:28s} truth {r['truth']!s:22s} answer {r['answer']:22s} {r['positions']:32s} {mark}")
    return records


def _positions(row: dict) -> str:
    places = row.get("ruler") or {}
    return "  ".join(f"{m[:5]} {p['position']:+.2f}" if p.get("position") is not None else f"{m[:5]}   -  "
                     for m, p in places.items())


def confusion(records: list[dict], tasks: tuple[str, ...]) -> tuple[str, int]:
    """The confusion table of `tasks` (truth rows, answer columns) and its count of wrong answers."""
    chosen = [r for r in records if r["task"] in tasks and r["truth"] is not None]
    counts = Counter((r["truth"], r["answer"]) for r in chosen)
    truths = [a for a in ANSWERS if any(r["truth"] == a for r in chosen)]
    answers = [a for a in ANSWERS if any(r["answer"] == a for r in chosen)]
    width = max(len(a) for a in answers + truths) + 2
    lines = ["truth \\ answer".ljust(24) + "".join(a.rjust(width) for a in answers)]
    lines += [t.ljust(24) + "".join(str(counts.get((t, a), 0) or ".").rjust(width) for a in answers) for t in truths]
    wrong = sum(n for (t, a), n in counts.items() if t != a)
    return "\n".join(lines), wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["digits", "mnist1d", "tabular"],
                        choices=["digits", "mnist1d", "tabular"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--quick", action="store_true", help="small runs: checks the machinery, not the thresholds")
    parser.add_argument("--keep", help="keep the runs in this folder (default: a temporary one)")
    args = parser.parse_args(argv)
    register_tabular()
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        for task in args.tasks:
            for seed in args.seeds:
                records += judge_task(task, seed, root, args.quick)
    failed = 0
    for title, tasks in (("calibration tasks (digits, mnist1d)", CALIBRATION), ("held-out task (tabular)", ("tabular",))):
        if not any(r["task"] in tasks for r in records):
            continue
        table, wrong = confusion(records, tasks)
        print(f"\nconfusion table, {title}: {wrong} wrong\n{table}")
        failed += wrong
    missed = sum(not r.get("caveat_ok", True) for r in records)
    print(f"\n{sum(r['truth'] is not None for r in records)} cases of known nature")
    return exit_code([check(WRONG, failed), check(CAVEAT_MISSED, missed)])


if __name__ == "__main__":
    sys.exit(main())
