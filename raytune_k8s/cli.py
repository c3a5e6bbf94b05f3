"""``raytune-k8s``: argument parsing only; the work is done by the package's functions."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from .spec import SpecError, parse_cpu, parse_memory
from .results.summary import SUCCEEDED, SUMMARY_FILE, katib_status, optimization_job_status
from .reporting import REPORT_FILE
from .results.table import print_table

EXIT_FAILED, EXIT_BAD_INPUT = 1, 2


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "verbose", False):
        from .experiment.runtime import VERBOSE_ENV

        os.environ[VERBOSE_ENV] = "1"  # read by the run, and by a driver submitted from here
    from .experiment.runner import ExperimentExistsError
    from .results.tune_state import ResumeError

    try:
        return args.func(args)
    except SpecError as exc:
        for line in exc.lines():
            print(f"error: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ExperimentExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ResumeError as exc:  # what the resume found, and what is safe
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="raytune-k8s", description="Katib-style tuning experiments on Ray Tune.")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run an experiment file")
    p.add_argument("spec", help="experiment YAML file")
    p.add_argument("--address", help="Ray cluster to join (default: $RAY_ADDRESS, else an embedded local Ray)")
    p.add_argument("--storage-path", help="where experiments are stored (default: $RAYTUNE_K8S_STORAGE or ~/ray_results)")
    p.add_argument("--resume-if-exists", action="store_true", help="continue the experiment if its directory already exists")
    _quota_options(p)
    p.add_argument("--no-report", dest="report", action="store_false", help=f"do not write {REPORT_FILE} at the end")
    p.add_argument("--optuna-storage", metavar="URL",
                   help="mirror the trials live into this Optuna storage (a journal file path or an RDB URL like "
                        "sqlite:///x.db), for optuna-dashboard URL")
    _verbose_option(p)
    p.set_defaults(func=_run)

    p = sub.add_parser("validate", help="check an experiment file and exit")
    p.add_argument("spec")
    p.set_defaults(func=_validate)

    p = sub.add_parser("resume", help="continue an interrupted experiment")
    p.add_argument("experiment_dir")
    p.add_argument("--address", help="Ray cluster to join (default: $RAY_ADDRESS, else an embedded local Ray)")
    _quota_options(p)
    p.add_argument("--no-report", dest="report", action="store_false", help=f"do not write {REPORT_FILE} at the end")
    _verbose_option(p)
    p.set_defaults(func=_resume)

    p = sub.add_parser("results", help="show an experiment's trials, best first")
    p.add_argument("experiment_dir")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--katib", action="store_true", help="print the Experiment status block in Katib's shape (YAML)")
    p.add_argument("--optimization-job", action="store_true",
                   help="print the status block of a Kubeflow Trainer OptimizationJob: conditions and result (YAML)")
    p.set_defaults(func=_results)

    p = sub.add_parser("report", help=f"write an experiment's {REPORT_FILE} (plots and trials; opens offline)")
    p.add_argument("experiment_dir")
    p.set_defaults(func=_report_html)

    p = sub.add_parser("export", help="copy a finished experiment into an Optuna storage, for optuna-dashboard")
    p.add_argument("experiment_dir")
    p.add_argument("--optuna-storage", metavar="URL", required=True, help="a journal file path or an RDB URL like sqlite:///x.db")
    p.set_defaults(func=_export)

    p = sub.add_parser("cluster", help="a local simulated autoscaling Ray cluster (development, tests, benchmarks); "
                                       "the KubeRay cluster's volumes for an experiment")
    cluster = p.add_subparsers(required=True, metavar="ACTION")
    q = cluster.add_parser("up", help="start it in the background (fake worker nodes stand in for worker pods)")
    q.add_argument("--worker-cpus", type=_whole_number, default=1, help="CPUs per worker node, a whole number (default 1)")
    q.add_argument("--max-workers", type=int, default=4, help="most worker nodes at once (default 4)")
    q.add_argument("--idle-timeout-s", type=float, default=60, help="idle seconds before a worker is removed (default 60)")
    q.add_argument("--pod-start-s", type=float, default=0, help="seconds each worker takes to start, as a pod's scheduling and image pull (default 0)")
    q.set_defaults(func=_cluster_up)
    q = cluster.add_parser("down", help="stop the cluster 'cluster up' started (only its processes)")
    q.set_defaults(func=_cluster_down)
    q = cluster.add_parser("volumes", help="print the kustomize patch (JSON6902) that mounts an experiment's volumes in "
                                           "the KubeRay worker pods (cluster/README.md, 'Volumes')")
    q.add_argument("spec", metavar="EXPERIMENT", help="experiment YAML file")
    q.add_argument("--worker-group", default="cpu2", choices=("cpu2", "gpu1"),
                   help="the RayCluster's worker group to patch (default cpu2; gpu1 with components/gpu-workers)")
    q.set_defaults(func=_cluster_volumes)
    return parser


def _quota_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quota-cpu", type=_quantity(parse_cpu), metavar="CPU",
                   help="the tenant's vCPU quota for trials (like 6 or 1500m); caps parallelTrialCount "
                        "(default: the quota in the head's environment on our RayCluster, else none)")
    p.add_argument("--quota-memory", type=_quantity(parse_memory), metavar="MEMORY",
                   help="the tenant's memory quota for trials (like 12Gi); caps parallelTrialCount")


def _quota(args: argparse.Namespace) -> Any:
    from .scaling.quota import Quota

    if args.quota_cpu is None and args.quota_memory is None:
        return None
    return Quota.parse(cpu=args.quota_cpu, memory=args.quota_memory)


def _verbose_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="store_true",
                   help="also show Ray's and Tune's logs and the trials' own output ($RAYTUNE_K8S_VERBOSE=1 does too)")


def _quantity(parse: Any) -> Any:
    def check(text: str) -> str:
        try:
            parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    return check


def _whole_number(text: str) -> int:
    """A positive whole number as ``ray start`` takes it ("1" and "1.0" are both 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0 or value != int(value):
        raise argparse.ArgumentTypeError(f"a Ray node takes a positive whole number of CPUs, not {text}")
    return int(value)


def _run(args: argparse.Namespace) -> int:
    from .experiment.runner import run

    summary = run(
        Path(args.spec), address=args.address, storage_path=args.storage_path, resume_if_exists=args.resume_if_exists, quota=_quota(args),
        report=args.report, optuna_storage=args.optuna_storage,
    )
    code = _report(summary)
    if args.report and (Path(summary["experiment_dir"]) / REPORT_FILE).exists():
        print(f"report: {Path(summary['experiment_dir']) / REPORT_FILE}")
    return code


def _cluster_up(args: argparse.Namespace) -> int:
    import signal
    import threading

    from .sim import cluster as localcluster

    def stop_like_ctrl_c(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # SIGTERM (kill, a supervisor) while the head starts: stop what was started, as on Ctrl-C.
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, stop_like_ctrl_c) if in_main else None
    try:
        state = localcluster.start_background_cluster(args.worker_cpus, args.max_workers, args.idle_timeout_s,
                                                      pod_start_s=args.pod_start_s)
    except (RuntimeError, ValueError, TimeoutError) as exc:
        print(f"error: {exc}\n(every process it started is stopped)", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted: every process it started is stopped", file=sys.stderr)
        return 130
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    print(
        f"local autoscaling Ray cluster up: 0..{state['max_workers']} workers x {state['worker_cpus']:g} CPU, "
        f"idle timeout {state['idle_timeout_s']:g} s, pod start {state['pod_start_s']:g} s (head pid {state['pid']}, state in {state['state_file']})\n"
        f"dashboard and Jobs API: {state['dashboard_url']}\n\n"
        f"export RAY_ADDRESS={state['address']} RAY_AUTH_MODE=token RAYTUNE_K8S_WORKER_CPU={state['worker_cpus']:g} RAYTUNE_K8S_WORKER_MEMORY=0 "
        f"RAYTUNE_K8S_FAILED_STARTS={state['failed_starts']}\n\n"
        f"then:  raytune-k8s run examples/<experiment>.yaml\n"
        f"or:    ray job submit --address {state['dashboard_url']} --working-dir . -- "
        f"raytune-k8s run examples/<experiment>.yaml\n"
        f"stop:  raytune-k8s cluster down"
    )
    return 0


def _cluster_down(args: argparse.Namespace) -> int:
    from .sim import cluster as localcluster

    state = localcluster.stop_background_cluster()
    if state is None:
        print(f"no cluster is recorded in {localcluster.state_file_path()}")
        return 0
    print(f"stopped the local cluster at {state['address']}")
    return 0


def _cluster_volumes(args: argparse.Namespace) -> int:
    from .reporting.volumes_patch import volumes_patch, warnings_of

    patch = volumes_patch(args.spec, args.worker_group)
    for warning in warnings_of(patch):
        print(warning, file=sys.stderr)
    print(patch, end="")
    return 0


def _resume(args: argparse.Namespace) -> int:
    from .experiment.runner import resume

    return _report(resume(args.experiment_dir, address=args.address, quota=_quota(args), report=args.report))


def _report_html(args: argparse.Namespace) -> int:
    from .reporting import report

    print(report(args.experiment_dir))
    return 0


def _export(args: argparse.Namespace) -> int:
    from .reporting import export

    name = export(args.experiment_dir, args.optuna_storage)
    print(f"study {name!r} written to {args.optuna_storage}; see it with: optuna-dashboard {args.optuna_storage}")
    return 0


def _validate(args: argparse.Namespace) -> int:
    from .experiment.runner import check

    loaded = check(Path(args.spec))  # a file, whatever its name ends with
    spec = loaded.spec
    for note in loaded.notes:
        print(f"note: {note}", file=sys.stderr)
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{args.spec}: ok ({loaded.format} {spec.name}: {spec.algorithm.name}, {len(spec.parameters)} parameters, "
          f"{spec.max_trials or 'unlimited'} trials, {spec.parallel_trials} in parallel)")
    return 0


def _results(args: argparse.Namespace) -> int:
    path = Path(args.experiment_dir).expanduser() / SUMMARY_FILE
    if not path.exists():
        raise SpecError("", f"{path} does not exist (is this an experiment directory that has run?)")
    summary = json.loads(path.read_text())
    if args.katib:
        import yaml

        print(yaml.safe_dump({"status": katib_status(summary)}, sort_keys=False), end="")
    elif args.optimization_job:
        import yaml

        print(yaml.safe_dump({"status": optimization_job_status(summary)}, sort_keys=False), end="")
    elif args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_table(summary)
    return 0


def _report(summary: dict[str, Any]) -> int:
    print_table(summary)
    return 0 if summary["status"] == SUCCEEDED else EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
