"""Rewrite the numbers of README.md's explorer section from current runs, so that they are read, not typed.

Builds (or reuses, when finished) the default `digits` run, the `mnist1d` preset and a `digits` run
with a zoo of 20 checkpoints, all at seed 0, reads each one's metrics table, verdict, ruler and
sampling trajectory through pdiff, and replaces the block between the README's markers

    <!-- explorer-numbers:begin ... -->   ...   <!-- explorer-numbers:end -->

with a table of those numbers. `--check` only says whether the README is current (exit 1 if not).

Run from the repository root:
  python -m benchmarks.readme_explorer [--runs runs] [--check]
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

from pdiff.core.artifacts import EVALUATION
from pdiff.core.rundir import RunDir
from pdiff.judge import teaching
from pdiff.pipeline.report import metrics_table
from pdiff.pipeline.table import STAGE_NAMES

REPO = Path(__file__).resolve().parents[1]

BEGIN = "<!-- explorer-numbers:begin (written by `python -m benchmarks.readme_explorer`; do not edit by hand) -->"
END = "<!-- explorer-numbers:end -->"
RUNS = {  # folder name -> (label, CLI arguments)
    "digits": ("`digits` (default)", []),
    "mnist1d": ("`mnist1d`", ["--preset", "mnist1d"]),
    "digits-k20": ("`digits`, 20 checkpoints", ["--set", "collect.num_checkpoints=20"]),
}


def ensure(path: Path, args: list[str]) -> RunDir:
    run = RunDir(path)
    if not (run.exists() and all(run.stage_done(s) for s in STAGE_NAMES)):
        print(f"building {path} ...", flush=True)
        subprocess.run([sys.executable, "-m", "pdiff", "run", "--out", str(path), "--quiet", *args], cwd=REPO,
                       check=True)
    return run


def facts(run: RunDir) -> dict[str, str]:
    """One column of the table: the numbers the explorer shows for this run."""
    table = metrics_table(run)
    card, result = table.rows, table.verdict()
    gen, zoo = card["generated"], card["zoo"]
    out = {"answer": f"*{result.answer}*" + (" (weak evidence)" if result.weak else ""),
           "generated / zoo median accuracy": f"{gen['median']:.2f} % / {zoo['median']:.2f} %"}
    out["ruler position (the measure that decided)"] = (
        "–" if result.position is None else
        f"{result.position:.2f} [{result.position_ci[0]:.2f}, {result.position_ci[1]:.2f}] ({result.decided_by})")
    for measure, axis in (table.ruler or {}).items():
        if not axis.get("resolves"):
            out["ruler position (the measure that decided)"] += f"; {measure} cannot tell here"
    out["max IoU to the zoo: generated / zoo / fresh SGD / copies"] = " / ".join(
        f"{card[g]['max_iou_median']:.3f}" if g in card else "–" for g in ("generated", "zoo", "fresh", "copies"))
    out["distinct prediction sets: generated / as many zoo checkpoints"] = (
        f"{gen['distinct_predictions']} / {gen['zoo_distinct_same_n']:.0f} (of {gen['n']})")
    out["IoU within the group: generated / zoo"] = f"{gen['iou_within']:.3f} / {zoo['iou_within']:.3f}"
    out["checkpoints nearest to some generated model"] = f"{gen['nn_targets']} of {zoo['n']}"
    out["latent spread ratio; precision; recall"] = (f"{gen['latent_spread_ratio']:.2f}; {gen['latent_precision']:.2f}; "
                                                     f"{gen['latent_recall']:.2f}")
    out.update(trajectory(run, card))
    out["typical wrong test samples"] = f"{gen['errors_median']:.0f} of {gen['test_samples']}"
    out["cheap baselines as far along the ruler"] = ", ".join(m.split(" (")[0] for m in result.cheap_matches) or "none"
    seconds = sum((s or {}).get("seconds") or 0 for s in run.manifest()["stages"].values())
    out["stage time when it was built"] = f"{seconds:.0f} s"
    return out


def trajectory(run: RunDir, card: dict) -> dict[str, str]:
    """The Denoising page's numbers: the decoded x0-prediction at t = T and t = 0, decoded pure noise."""
    tensors, _ = run.load(EVALUATION)
    if "trajectory.accuracy" not in tensors:
        return {}
    steps, acc = tensors["trajectory.steps"].numpy(), tensors["trajectory.accuracy"].numpy()
    noise = tensors.get("decoder-only.accuracy")
    numbers = teaching.trajectory(steps, acc, tensors["zoo.accuracy"].numpy(),
                                  None if noise is None else noise.numpy(), card["zoo"]["test_samples"])
    out = {f"decoded x0-prediction at t = T / t = 0 (mean of {acc.shape[1]})":
           f"{numbers.first:.2f} % / {numbers.last:.2f} % (t = {numbers.t_max})"}
    if numbers.noise is not None:
        out["decoding pure noise: median accuracy; max IoU"] = (
            f"{numbers.noise:.2f} %; {card['decoder-only']['max_iou_median']:.3f}")
    return out


def block(columns: dict[str, dict[str, str]]) -> str:
    names = list(columns)
    rows = list(dict.fromkeys(k for c in columns.values() for k in c))
    lines = [BEGIN, "", "| seed 0 | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += ["| " + row + " | " + " | ".join(columns[n].get(row, "–") for n in names) + " |" for row in rows]
    return "\n".join([*lines, "", END])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="runs", help="where the runs are (or are built); default runs/")
    parser.add_argument("--check", action="store_true", help="only check that README.md is current")
    args = parser.parse_args()
    columns = {label: facts(ensure(Path(args.runs) / name, cli)) for name, (label, cli) in RUNS.items()}
    readme = REPO / "README.md"
    text = readme.read_text()
    pattern = re.compile(re.escape(BEGIN.split(" (")[0]) + r".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        print(f"README.md has no {BEGIN.split(' (')[0]} ... {END} block", file=sys.stderr)
        return 2
    new = pattern.sub(lambda _: block(columns), text)
    if args.check:
        print("README.md is current" if new == text else "README.md's explorer numbers differ from the runs")
        return 0 if new == text else 1
    readme.write_text(new)
    print(block(columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
