"""Stand-in for ``/app/main.py`` of Katib's ``xgboost-lightgbm`` image (an XGBoostJob's program).

Katib's example gives that image only arguments: ``--job_type=Train`` and LightGBM parameters as
``--key=value`` (``--learning_rate=0.1 --num_leaves=50 --num_trees=100 --metric=binary_logloss,auc
...``). The real program writes them to a config file and runs the ``lightgbm`` CLI, whose
evaluation lines Katib's filter ``(\\w+\\s\\w+)\\s:\\s((-?\\d+)(\\.\\d+)?)`` reads::

    [LightGBM] [Info] Iteration:7, valid_1 auc : 0.981

This prints the same lines from scikit-learn's ``HistGradientBoostingClassifier`` (LightGBM's
algorithm), trained on the offline MNIST digits as a binary task (digit >= 5), pooled to 7x7 so
that 100 trees take about a second. When ``--data`` and every ``--valid_data`` file exist they
are read instead (whitespace-separated, label first, as LightGBM's examples). The usual
parameters map to scikit-learn's (feature_fraction per split, not per tree); bagging,
tree_learner and the like are accepted and ignored. ``num_threads`` defaults to 1, not all cores:
on data this small, OpenMP threads spinning on a busy machine cost up to 20x the time.

In an XGBoostJob every replica gets ``MASTER_ADDR``, ``MASTER_PORT``, ``WORLD_SIZE``, ``RANK`` and
(with workers) ``WORKER_ADDRS``, ``WORKER_PORT``; the real program builds LightGBM's machine list
from them. Here they are only logged: every rank trains the same model on all the data, as each
machine of a feature-parallel LightGBM run holds all of it, and prints its own evaluation lines
(Katib reads the master's, RANK 0).
"""

from __future__ import annotations

import argparse
import os
import re
import time
from typing import Callable

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import log_loss, roc_auc_score
from threadpoolctl import threadpool_limits

from ..data import load_mnist

#: LightGBM's binary metrics by the name it prints: the score of labels and P(label = 1).
METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "binary_logloss": lambda y, p: float(log_loss(y, p, labels=[0, 1])),
    "auc": lambda y, p: float(roc_auc_score(y, p)),
    "binary_error": lambda y, p: float(np.mean((p > 0.5) != y)),
}
_ALIASES = {"num_trees": ("num_iterations", "num_iteration", "n_iter", "num_tree", "num_round", "num_rounds",
                          "num_boost_round", "n_estimators", "max_iter"),
            "min_data_in_leaf": ("min_data_per_leaf", "min_data", "min_child_samples", "min_samples_leaf"),
            "feature_fraction": ("sub_feature", "colsample_bytree"),
            "lambda_l2": ("reg_lambda", "lambda", "l2_regularization"),
            "num_leaves": ("num_leaf", "max_leaves", "max_leaf", "max_leaf_nodes"),
            "learning_rate": ("shrinkage_rate", "eta"),
            "valid_data": ("test", "valid", "test_data", "valid_filenames"),
            "data": ("train", "train_data", "train_data_file", "data_filename"),
            "metric": ("metrics", "metric_types"),
            "num_threads": ("num_thread", "nthread", "nthreads", "n_jobs")}
_METRIC_ALIASES = {"binary": "binary_logloss"}


def _metric_names(params: dict[str, str]) -> list[str]:
    names = [_METRIC_ALIASES.get(m, m) for m in params.get("metric", "binary_logloss").split(",")]
    return list(dict.fromkeys(names))


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, dict[str, str]]:
    """``--job_type`` and the LightGBM parameters (``--key=value``, aliases to their main name)."""
    p = argparse.ArgumentParser(
        description="LightGBM training as in Kubeflow's lightgbm-dist example (raytune-k8s stand-in for "
                    "Katib's xgboost-lightgbm image); other arguments are LightGBM parameters, --key=value")
    p.add_argument("--job_type", help="Job type to execute", choices=["Train", "Predict"], required=True)
    args, extra = p.parse_known_args(argv)
    alias_of = {alias: name for name, aliases in _ALIASES.items() for alias in aliases}
    params: dict[str, str] = {}
    for arg in extra:
        m = re.match(r"--(.+)=([^\s]+)", arg)  # as the real program's config writer
        if m is not None:
            params[alias_of.get(m.group(1), m.group(1))] = m.group(2)
    unknown = [m for m in _metric_names(params) if m not in METRICS]
    if unknown:
        p.error(f"metric {unknown[0]!r} is not one of {', '.join(METRICS)}")
    return args, params


def _datasets(params: dict[str, str]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, features, labels): "training", then "valid_1", "valid_2", ... as LightGBM names them."""
    files = [params.get("data", ""), *params.get("valid_data", "").split(",")]
    if all(f and os.path.isfile(f) for f in files):
        tables = [np.loadtxt(f, ndmin=2) for f in files]
        return [(name, t[:, 1:], t[:, 0].astype(np.int64))
                for name, t in zip(["training"] + [f"valid_{i}" for i in range(1, len(files))], tables)]
    data = load_mnist()

    def pool(x: np.ndarray) -> np.ndarray:
        return x.reshape(-1, 7, 4, 7, 4).mean(axis=(2, 4)).reshape(len(x), -1)

    return [("training", pool(data.train_x), (data.train_y >= 5).astype(np.int64)),
            ("valid_1", pool(data.val_x), (data.val_y >= 5).astype(np.int64))]


def train(params: dict[str, str]) -> None:
    """Fit, then print each iteration's evaluation in LightGBM's format."""
    start = time.time()
    sets = _datasets(params)
    (_, x, y) = sets[0]
    print(f"[LightGBM] [Info] Number of positive: {int(y.sum())}, number of negative: {int(len(y) - y.sum())}",
          flush=True)
    model = HistGradientBoostingClassifier(
        learning_rate=float(params.get("learning_rate", 0.1)),
        max_iter=int(params.get("num_trees", 100)),
        max_leaf_nodes=int(params.get("num_leaves", 31)),
        min_samples_leaf=int(params.get("min_data_in_leaf", 20)),
        max_bins=min(int(params.get("max_bin", 255)), 255),
        max_features=float(params.get("feature_fraction", 1.0)),
        l2_regularization=float(params.get("lambda_l2", 0.0)),
        early_stopping=False, random_state=int(params.get("seed", 0)),
    ).fit(x, y)
    metrics = _metric_names(params)
    if params.get("is_training_metric", "false").lower() not in ("true", "1", "+"):
        sets = sets[1:]
    freq = max(int(params.get("metric_freq", 1)), 1)
    stages = [list(model.staged_predict_proba(features)) for _, features, _ in sets]
    for it in range(1, model.n_iter_ + 1):
        if it % freq:
            continue
        for (name, _, labels), probs in zip(sets, stages):
            for metric in metrics:
                value = METRICS[metric](labels, probs[it - 1][:, 1])
                print(f"[LightGBM] [Info] Iteration:{it}, {name} {metric} : {value:g}")
    print(f"[LightGBM] [Info] Finished training in {time.time() - start:.3f} seconds", flush=True)


def main(argv: list[str] | None = None) -> None:
    args, params = parse_args(argv)
    env = {k: os.environ.get(k, "") for k in ("MASTER_ADDR", "MASTER_PORT", "WORKER_ADDRS", "WORKER_PORT")}
    world_size, rank = int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("RANK", 0))
    print("extract cluster info from env variables \n" + "".join(f"{k.lower()}: {v} \n" for k, v in env.items())
          + f"world_size: {world_size} \nrank: {rank} \n", flush=True)
    if args.job_type == "Predict":
        print("starting the predict job", flush=True)
    else:
        print("starting the train job", flush=True)
        threads = int(params.get("num_threads", 1))
        with threadpool_limits(limits=threads if threads > 0 else None):
            train(params)
    print("Finish distributed job", flush=True)


if __name__ == "__main__":
    main()
