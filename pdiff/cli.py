"""Command line: `python -m pdiff run | presets | report | analyse`. Parses and calls the library."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import config as cfg
from . import distributed
from .runs import RunDir, RunError, runs_root


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (cfg.ConfigError, RunError) as exc:
        print(f"error{_rank_tag()}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: finished stages are kept; run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as exc:
        if distributed.current().world == 1:
            raise
        # Under torchrun: say which rank failed; torchrun then stops the others instead of hanging.
        print(f"error{_rank_tag()}: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        distributed.teardown()


def _rank_tag() -> str:
    rank = distributed.current()
    return f" (rank {rank.rank} of {rank.world})" if rank.world > 1 else ""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pdiff", description="Neural network parameter diffusion explorer")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run (or resume) the whole pipeline")
    run.add_argument("--preset", default="digits", help="named preset (see `presets`)")
    run.add_argument("--out", help="run directory (default: $PDIFF_RUNS or runs/, named after preset and config)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value, e.g. --set autoencoder.steps=500 (repeatable)")
    run.add_argument("--force", metavar="STAGE", help="redo STAGE and every stage after it")
    run.add_argument("--until", metavar="STAGE", help="stop after STAGE")
    run.add_argument("--data-root", help="local folder of torchvision-style datasets (data.root)")
    run.add_argument("--download", action="store_true", help="allow downloading the dataset into --data-root")
    run.add_argument("--device", help="auto, cpu or cuda[:N] (device)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=_run)

    presets = sub.add_parser("presets", help="list presets (and with --keys every config key)")
    presets.add_argument("--keys", action="store_true", help="print every config key with its default")
    presets.set_defaults(func=_presets)

    report = sub.add_parser("report", help="print a run's scorecard")
    report.add_argument("run", help="run directory")
    report.add_argument("--json", action="store_true", help="print JSON instead of a table")
    report.set_defaults(func=_report)

    analyse = sub.add_parser("analyse", help="(re)compute a run's analysis stage")
    analyse.add_argument("run", help="run directory")
    analyse.set_defaults(func=_analyse)
    return parser


def _config_from_args(args: argparse.Namespace) -> tuple[cfg.RunConfig, dict]:
    overrides = cfg.parse_set(args.overrides)
    for flag, key in (("data_root", "data.root"), ("device", "device")):
        if getattr(args, flag):
            overrides[key] = getattr(args, flag)
    if args.download:
        overrides["data.download"] = True
    return cfg.with_overrides(cfg.preset(args.preset), overrides), overrides


def default_run_path(preset: str, config: cfg.RunConfig, overrides: dict) -> Path:
    """runs/<preset> for a plain preset, runs/<preset>-<config hash> once anything is overridden."""
    name = preset if not overrides else f"{preset}-{cfg.config_hash(config)}"
    return runs_root() / name


def _run(args: argparse.Namespace) -> int:
    from .pipeline import run_pipeline
    from .progress import TqdmReporter

    config, overrides = _config_from_args(args)
    path = Path(args.out) if args.out else default_run_path(args.preset, config, overrides)
    rank = distributed.setup()
    if rank.rank == 0:
        print(f"run directory: {path}" + (f" ({rank.world} processes)" if rank.world > 1 else ""))
    with TqdmReporter(disable=args.quiet or rank.rank != 0) as reporter:
        run = run_pipeline(path, config, force=args.force, report=reporter, until=args.until)
    if rank.rank == 0 and run.stage_done("evaluate"):
        from .report import format_table, scorecard

        print(format_table(scorecard(run)))
    return 0


def _presets(args: argparse.Namespace) -> int:
    for name, text in cfg.PRESET_HELP.items():
        print(f"{name:20s} {text}")
    if args.keys:
        print("\nconfig keys (set with --set KEY=VALUE):")
        print("\n".join(f"  {line}" for line in cfg.describe_keys()))
    return 0


def _open_run(path: str) -> RunDir:
    run = RunDir(path)
    if not run.exists():
        raise RunError(f"{path} is not a pdiff run directory (no run.json); list runs under {runs_root()}")
    return run


def _report(args: argparse.Namespace) -> int:
    from .report import format_table, scorecard

    run = _open_run(args.run)
    if not run.stage_done("evaluate"):
        raise RunError(f"{run.path} has no finished evaluation yet; finish it with python -m pdiff run --out {run.path}")
    card = scorecard(run)
    print(json.dumps(card, indent=2) if args.json else format_table(card))
    return 0


def _analyse(args: argparse.Namespace) -> int:
    from .pipeline import load_run_config, run_stage
    from .progress import TqdmReporter
    from .runtime import resolve_device

    run = _open_run(args.run)
    config = load_run_config(run)
    with TqdmReporter() as reporter:
        run_stage(run, config, "analyse", resolve_device(config.device), reporter)
    from .report import format_table, scorecard

    print(format_table(scorecard(run)))
    return 0
