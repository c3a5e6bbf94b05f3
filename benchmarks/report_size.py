"""How long does ``raytune-k8s report`` take on a big experiment (10,000 trials)?

Runs a real experiment of trivial trials through ``raytune_k8s.run`` (random search over four
parameters, ASHA early stopping, five reports per trial), then times ``raytune_k8s.report``
on its directory. ``--reuse DIR`` times the report of an experiment made before.

    python -m benchmarks.report_size                 # 10,000 trials (Tune alone takes a while)
    python -m benchmarks.report_size --trials 200
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

from . import _report


def trial(config: dict[str, Any]) -> None:
    """Five reports of a smooth function of the parameters, no sleeping."""
    from ray import tune

    base = (config["x"] - 1.0) ** 2 + abs(math.log10(config["lr"]) + 2) + 0.1 * config["layers"]
    base += {"relu": 0.0, "tanh": 0.3, "sigmoid": 0.6}[config["activation"]]
    for step in range(1, 6):
        tune.report({"loss": base + 1.0 / step})


def spec(trials: int) -> dict[str, Any]:
    return {
        "name": f"report-size-{trials}",
        "objective": {"type": "minimize", "objectiveMetricName": "loss"},
        "algorithm": {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": 0}]},
        "earlyStopping": {"algorithmName": "asha", "algorithmSettings": [{"name": "max_t", "value": 5}, {"name": "grace_period", "value": 2}]},
        "parallelTrialCount": 4,
        "maxTrialCount": trials,
        "maxFailedTrialCount": trials,
        "parameters": [
            {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-3", "max": "3"}},
            {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "1e-4", "max": "1", "distribution": "logUniform"}},
            {"name": "layers", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "4"}},
            {"name": "activation", "parameterType": "categorical", "feasibleSpace": {"list": ["relu", "tanh", "sigmoid"]}},
        ],
        "trial": {"function": "benchmarks.report_size:trial", "resources": {"cpu": 0.5}},
    }


def main() -> None:
    parser = _report.arg_parser(__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--storage", type=Path, default=Path("/tmp/raytune-k8s-report-size"))
    parser.add_argument("--reuse", type=Path, help="an experiment directory to report on instead of running one")
    parser.add_argument("--note", default="", help="how the reused directory was made, kept with the figures")
    args = parser.parse_args()
    trials = 40 if args.smoke else args.trials
    if args.reuse:
        experiment_dir, tune_s = args.reuse, None
    else:
        import raytune_k8s

        start = time.monotonic()
        summary = raytune_k8s.run(spec(trials), storage_path=args.storage, resume_if_exists=True)
        tune_s = time.monotonic() - start
        experiment_dir = Path(summary["experiment_dir"])
    from raytune_k8s.reporting import report

    runs = []  # (wall s, CPU s); the first call pays the imports of optuna, plotly and sklearn
    for _ in range(1 if args.smoke else 3):
        start, cpu = time.monotonic(), time.process_time()
        path = report(experiment_dir)
        runs.append((round(time.monotonic() - start, 2), round(time.process_time() - cpu, 2)))
    result = {
        "experiment_dir": str(experiment_dir),
        "note": args.note,
        "trials": len(json.loads((experiment_dir / "summary.json").read_text())["trial_table"]),
        "tune_s": tune_s,
        "report_wall_cpu_s": runs,
        "report_mb": path.stat().st_size / 1e6,
        "load_average": os.getloadavg(),
    }
    print(json.dumps(result, indent=2))
    if not args.smoke:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "report_size.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
