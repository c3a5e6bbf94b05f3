"""The trial program of examples/optimization-job.yaml: trains an MLP on MNIST with the
hyperparameters an OptimizationJob gives it, and reports the validation loss and accuracy after
each epoch the way Kubeflow Trainer's trainers do: with the SDK's ``update_trainjob_status``,
which sends them to the TrainJob status endpoint named by ``$KUBEFLOW_TRAINER_SERVER_URL``.
The helper drops an update sent within 5 s of the previous one, so the program waits out that
interval before each update: otherwise a fast epoch's metrics, the last ones included, are lost.

Kubeflow Trainer's OptimizationJob passes each parameter as the environment variable
``KUBEFLOW_TRAINER_OPT_<NAME>`` (the name in capitals): here ``KUBEFLOW_TRAINER_OPT_LR`` and
``KUBEFLOW_TRAINER_OPT_MOMENTUM``. The data are the 5,000 MNIST digits that need no download
(``raytune_k8s.trials.data.load_mnist``; ``$MNIST_DIR`` for the IDX files of the full set).
"""

import argparse
import os
import time

import torch
from torch import nn

from raytune_k8s.trials.data import load_mnist


#: update_trainjob_status sends at most one update in this many seconds (and drops the others).
THROTTLE_S = 5.1


def hyperparameter(name: str) -> float:
    value = os.environ.get(f"KUBEFLOW_TRAINER_OPT_{name}")
    if value is None:
        raise SystemExit(f"KUBEFLOW_TRAINER_OPT_{name} is not set: run this program as an OptimizationJob's trial")
    return float(value)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    args = parser.parse_args()
    lr, momentum = hyperparameter("LR"), hyperparameter("MOMENTUM")
    torch.manual_seed(0)
    torch.set_num_threads(1)
    data = load_mnist()
    train_x, train_y = torch.from_numpy(data.train_x), torch.from_numpy(data.train_y)
    val_x, val_y = torch.from_numpy(data.val_x), torch.from_numpy(data.val_y)
    model = nn.Sequential(nn.Linear(784, args.hidden), nn.ReLU(), nn.Linear(args.hidden, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    loss_fn = nn.CrossEntropyLoss()
    print(f"training with lr {lr}, momentum {momentum} on {data.source}", flush=True)
    from kubeflow.trainer.backends.kubernetes.utils import update_trainjob_status

    sent = time.monotonic() - THROTTLE_S
    for epoch in range(1, args.epochs + 1):
        model.train()
        for idx in torch.randperm(len(train_y)).split(args.batch_size):
            optimizer.zero_grad()
            loss_fn(model(train_x[idx]), train_y[idx]).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            out = model(val_x)
            loss = loss_fn(out, val_y).item()
            accuracy = (out.argmax(1) == val_y).float().mean().item()
        time.sleep(max(0.0, THROTTLE_S - (time.monotonic() - sent)))
        delivered = update_trainjob_status(progress_percent=100 * epoch // args.epochs, metrics={"loss": loss, "accuracy": accuracy})
        sent = time.monotonic()
        print(f"epoch {epoch}: loss {loss:.4f}, accuracy {accuracy:.4f} ({'sent' if delivered else 'NOT sent'})", flush=True)


if __name__ == "__main__":
    main()
