"""Command line: `python -m pdiff run | presets | report | analyse | export | store`. Parses and calls the library."""
from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from .core import config as cfg
from .core import distributed, plugins, safety
from .core.errors import ConfigError, RunError
from .core.presets import PRESET_HELP, preset
from .core.progress import TqdmReporter
from .core.rundir import RunDir, runs_root
from .core.runtime import resolve_device
from .core.threads import configure_threads
from .export import check_export, save_export
from .guide import guide
from .pipeline.report import answer_lines, answer_record, format_table, metrics_table, text_table
from .pipeline.runner import load_run_config, run_pipeline, run_stage
from .pipeline.status import require_current
from .pipeline.store import STORE_DIR, Store, store_for
from .pipeline.table import get_stage


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C: the running stage is recorded as interrupted and resumes."""


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        with _sigterm_interrupts():
            _threads(getattr(args, "threads", None))
            plugins.load(plugins.from_env() + list(getattr(args, "plugins", None) or []))
            return args.func(args)
    except (ConfigError, RunError) as exc:
        print(f"error{_rank_tag()}: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print("\nterminated: finished stages are kept; run the same command again to resume", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("\ninterrupted: finished stages are kept; run the same command again to resume", file=sys.stderr)
        return 130
    except OSError as exc:  # a file or folder the user named: one line, not a traceback
        where = f" ({safety.printable(str(exc.filename))})" if exc.filename else ""
        print(f"error{_rank_tag()}: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except Exception as exc:
        if distributed.current().world == 1:
            raise
        # Under torchrun: say which rank failed; torchrun then stops the others instead of hanging.
        print(f"error{_rank_tag()}: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        distributed.teardown()


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Turn SIGTERM (kill, a job scheduler, a closing service) into `Terminated` for the duration."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _rank_tag() -> str:
    rank = distributed.current()
    return f" (rank {rank.rank} of {rank.world})" if rank.world > 1 else ""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pdiff", description="Neural network parameter diffusion explorer")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run (or resume) the whole pipeline")
    run.add_argument("--preset", help="named preset (see `presets`); default: digits for a new run, the run's "
                                      "stored config for an existing --out")
    run.add_argument("--out", help="run directory (default: $PDIFF_RUNS or runs/, named after preset and config); "
                                   "an existing run resumes with its stored config plus any --set")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config value, e.g. --set autoencoder.steps=500 (repeatable)")
    run.add_argument("--zoo", metavar="DIR", help="import the checkpoints in DIR (state dicts: .safetensors, .pt, "
                                                  ".pth; optional zoo.json / zoo.csv) instead of training a zoo "
                                                  "(zoo.dir); register their classifier with --plugin")
    run.add_argument("--no-generator", action="store_true",
                     help="explore the zoo alone: the zoo stage, evaluate and analyse, no generator (generate=false)")
    run.add_argument("--force", metavar="STAGE", help="redo STAGE and every stage after it")
    run.add_argument("--until", metavar="STAGE", help="stop after STAGE")
    run.add_argument("--data-root", help="local folder of torchvision-style datasets (data.root)")
    run.add_argument("--download", action="store_true", help="allow downloading the dataset into --data-root")
    run.add_argument("--device", help="auto, cpu or cuda[:N] (device)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--threads", help="CPU threads per stage: a count; default: one per core (also PDIFF_THREADS or "
                                       "OMP_NUM_THREADS); how they wait is chosen from the load at start")
    _plugin_option(run)
    run.set_defaults(func=_run)

    presets = sub.add_parser("presets", help="list presets (and with --keys every config key)")
    presets.add_argument("--keys", action="store_true", help="print every config key with its default")
    presets.set_defaults(func=_presets)

    report = sub.add_parser("report", help="print a run's answer (new or copied?), its ruler and its scorecard")
    report.add_argument("run", help="run directory")
    report.add_argument("--json", action="store_true", help="print JSON instead of a table")
    report.set_defaults(func=_report)

    analyse = sub.add_parser("analyse", help="(re)compute a run's analysis stage")
    analyse.add_argument("run", help="run directory")
    _plugin_option(analyse)
    analyse.set_defaults(func=_analyse)

    guide = sub.add_parser("guide", help="ask a run conditioned on accuracy for models of given accuracies")
    guide.add_argument("run", help="run directory (made with diffusion.condition=accuracy, e.g. --preset mnist1d-guided)")
    guide.add_argument("--accuracy", type=float, nargs="+", required=True, metavar="PERCENT",
                       help="requested test accuracies in percent, e.g. --accuracy 40 60 75")
    guide.add_argument("--models", type=int, default=50, help="models per requested accuracy (default 50)")
    guide.add_argument("--scale", type=float, default=2.0, help="guidance scale: 0 unconditional, 1 conditional, "
                                                                "> 1 pushed further (default 2)")
    guide.add_argument("--seed", type=int, default=0)
    guide.add_argument("--json", action="store_true", help="print JSON records instead of a table")
    _plugin_option(guide)
    guide.set_defaults(func=_guide)
    export = sub.add_parser("export", help="write one model of a run as a full classifier state dict (safetensors)")
    export.add_argument("run", help="run directory")
    export.add_argument("--group", default="generated",
                        help="zoo, heldout, fresh, generated, copies or a baseline (default generated)")
    export.add_argument("--index", type=int, default=0, help="the model's index in its group (default 0)")
    export.add_argument("--out", required=True, help="the .safetensors file to write")
    export.add_argument("--no-check", action="store_true",
                        help="skip re-evaluating the exported classifier on the run's test split")
    _plugin_option(export)
    export.set_defaults(func=_export)

    store = sub.add_parser("store", help="the shared store of finished stages: size, prune, clear")
    store.add_argument("--root", help="the folder whose runs share the store (default: $PDIFF_RUNS or runs/)")
    action = store.add_mutually_exclusive_group()
    action.add_argument("--prune", action="store_true", help="remove entries no run links to any more")
    action.add_argument("--clear", action="store_true", help="remove the whole store (runs keep their files)")
    store.set_defaults(func=_store)
    return parser


def _plugin_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plugin", dest="plugins", action="append", default=[], metavar="MODULE",
                        help=f"import MODULE (a module name or a .py file) first: it registers your datasets, "
                             f"classifiers or presets (repeatable; also ${plugins.ENV}, comma-separated)")


def _overrides_from_args(args: argparse.Namespace) -> dict:
    overrides = cfg.parse_set(args.overrides)
    for flag, key in (("data_root", "data.root"), ("device", "device")):
        if getattr(args, flag):
            overrides[key] = getattr(args, flag)
    if args.download:
        overrides["data.download"] = True
    if getattr(args, "zoo", None):
        overrides["zoo.dir"] = str(Path(args.zoo).expanduser().resolve())  # resumable from any folder
    if getattr(args, "no_generator", False):
        overrides["generate"] = False
    return overrides


def _config_from_args(args: argparse.Namespace, existing: RunDir | None) -> cfg.RunConfig:
    """An existing run without --preset resumes from its stored config; otherwise the preset
    (digits by default). --set and the flags apply on top either way."""
    overrides = _overrides_from_args(args)
    if existing is not None and args.preset is None:
        return cfg.with_overrides(load_run_config(existing), overrides)
    return cfg.with_overrides(preset(args.preset or "digits"), overrides)


def default_run_path(preset_name: str, config: cfg.RunConfig, overrides: dict) -> Path:
    """runs/<preset> for a plain preset, runs/<preset>-<config hash> once anything is overridden."""
    name = preset_name if not overrides else f"{preset_name}-{cfg.config_hash(config)}"
    return runs_root() / name


def _run(args: argparse.Namespace) -> int:
    if args.out is not None and not args.out.strip():
        raise ConfigError("--out is empty; give a folder for the run, or leave --out out for the default")
    if args.out is not None:
        safety.check_run_path(args.out)
    for stage in (args.force, args.until):
        if stage is not None:
            get_stage(stage)  # an unknown stage fails before anything is read or written
    existing = RunDir(args.out) if args.out and RunDir(args.out).exists() else None
    config = _config_from_args(args, existing)
    preset_name = args.preset or ("zoo-" + Path(config.zoo.dir).name if config.zoo.dir else "digits")
    path = Path(args.out) if args.out else default_run_path(preset_name, config, _overrides_from_args(args))
    rank = distributed.setup()
    main = rank.rank == 0
    if main:
        print(f"run directory: {path}" + (f" ({rank.world} processes)" if rank.world > 1 else ""))
    with TqdmReporter(disable=args.quiet or not main) as reporter:
        run = run_pipeline(path, config, force=args.force, report=reporter, until=args.until,
                           log=print if main else None)
    if main and run.stage_done("evaluate"):
        _print_table(run)
    return 0


def _threads(flag: str | None) -> None:
    """The command line chooses the threads (core/threads.py; `python -m pdiff` chose the wait policy
    before torch loaded, this sets the count from --threads)."""
    try:
        configure_threads(flag, chosen_by="the command line")
    except ValueError as exc:
        raise ConfigError(f"{exc} (--threads, PDIFF_THREADS or OMP_NUM_THREADS)") from None


def _print_table(run: RunDir, as_json: bool = False) -> None:
    """The verdict and the ruler above the scorecard (or all of it as JSON)."""
    table = metrics_table(run)
    if as_json:
        print(json.dumps(answer_record(table), indent=2))
    else:
        print("\n".join([*answer_lines(table), format_table(table.rows)]))
    if table.note:
        print(f"note: {table.note}", file=sys.stderr)


def _presets(args: argparse.Namespace) -> int:
    for name, text in PRESET_HELP.items():
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
    _print_table(_open_run(args.run), args.json)
    return 0


def _analyse(args: argparse.Namespace) -> int:
    run = _open_run(args.run)
    config = load_run_config(run)
    require_current(run, "evaluate", "nothing to analyse")
    with TqdmReporter() as reporter:
        run_stage(run, config, "analyse", resolve_device(config.device), reporter)
    _print_table(run)
    return 0


def _guide(args: argparse.Namespace) -> int:
    if not 1 <= args.models <= 100_000:
        raise ConfigError(f"--models must be from 1 to 100,000, got {args.models}")
    if args.scale < 0 or not all(0 <= a <= 100 for a in args.accuracy):
        raise ConfigError("--scale must be >= 0 and every --accuracy a percentage from 0 to 100")
    run = _open_run(args.run)
    require_current(run, "evaluate", "guided generation needs the run's evaluation")
    records = guide(run, args.accuracy, args.models, args.scale, args.seed)
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    rows = [[f"{r['requested']:.1f}", f"{r['achieved_median']:.2f}", f"{r['achieved_q25']:.2f}-{r['achieved_q75']:.2f}",
             f"{r['achieved_min']:.2f}", f"{r['max_iou_median']:.3f}", f"{r['nn_distance_median']:.3f}",
             "yes" if r["inside_zoo_range"] else "no"] for r in records]
    print(f"{args.models} models per level, guidance scale {args.scale:g}")
    print(text_table(["requested", "achieved median", "IQR", "min", "max IoU to zoo", "NN dist", "in zoo range"],
                     rows))
    return 0


def _export(args: argparse.Namespace) -> int:
    run = _open_run(args.run)
    exported = save_export(run, args.group, args.index, args.out)
    recorded = exported.meta["recorded_accuracy"]
    print(f"wrote {args.out}: {exported.meta['arch']} classifier, {args.group} #{exported.meta['index']}"
          + ("" if recorded is None else f", recorded test accuracy {recorded:.2f}%"))
    if not args.no_check:
        measured = check_export(run, args.out)
        print(f"checked: the exported classifier scores {measured:.2f}% on the run's test split")
        if recorded is not None and abs(measured - recorded) > 1e-3:  # recorded in float32
            raise RunError(f"the exported classifier scores {measured:.2f}%, the run recorded {recorded:.2f}%")
    return 0


def _store(args: argparse.Namespace) -> int:
    root = Path(args.root) if args.root else runs_root()
    store = store_for(root / "run") or Store(root / STORE_DIR)
    if args.clear:
        print(f"removed {store.clear()} stored stages from {store.root}")
    elif args.prune:
        print(f"removed {store.prune()} stored stages no run uses from {store.root}")
    else:
        entries = store.entries()
        print(f"{store.root}: {len(entries)} stored stages, {store.size_bytes() / 2**20:.1f} MiB "
              f"(shared with the runs by hard links where possible)")
    return 0
