"""The Katib paper's workload: a Gluon MLP on MNIST, trained with MXNet.

Parameters (Katib's names): ``lr``, ``num-layers`` (hidden layers, really used), ``optimizer``
(sgd|adam|ftrl|...), ``batch-size``, ``num-epochs``; also ``num-hidden`` (units per layer),
``seed`` and ``data-dir``. Reports ``Train-accuracy`` and ``Validation-accuracy`` every epoch,
with a checkpoint, and resumes from the last one - also one PBT copied from another trial, with
this trial's (perturbed) ``lr``, ``optimizer`` and ``batch-size``; ``num-layers`` and
``num-hidden`` must match the checkpoint's.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ._mxnet import import_mxnet
from .checkpoints import check_same_shape, latest_checkpoint, report_with_checkpoint
from .data import load_mnist


def train(config: dict[str, Any]) -> None:
    mx = import_mxnet()
    from mxnet import autograd, gluon

    lr = float(config.get("lr", 0.01))
    num_layers = int(config.get("num-layers", 2))
    num_hidden = int(config.get("num-hidden", 128))
    optimizer = str(config.get("optimizer", "sgd"))
    batch_size = int(config.get("batch-size", 64))
    epochs = int(config.get("num-epochs", 10))
    seed = int(config.get("seed", 0))
    data = load_mnist(config.get("data-dir"))

    mx.random.seed(seed)
    np.random.seed(seed)
    net = gluon.nn.HybridSequential()
    for _ in range(num_layers):
        net.add(gluon.nn.Dense(num_hidden, activation="relu"))
    net.add(gluon.nn.Dense(10))
    net.initialize(mx.init.Xavier())
    net.hybridize()
    trainer = gluon.Trainer(net.collect_params(), optimizer, {"learning_rate": lr})
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

    shape = {"num-layers": num_layers, "num-hidden": num_hidden}
    first_epoch = 0
    with latest_checkpoint() as (directory, state):
        if directory is not None:
            check_same_shape(state.get("shape", shape), shape)
            net.load_parameters(str(directory / "net.params"))
            if state.get("optimizer", optimizer) == optimizer:  # PBT may have switched it
                trainer.load_states(str(directory / "trainer.states"))
                trainer.set_learning_rate(lr)  # the saved states hold the old lr
            first_epoch = state["epoch"]

    train_x, train_y = mx.nd.array(data.train_x), mx.nd.array(data.train_y)
    loader = gluon.data.DataLoader(gluon.data.ArrayDataset(train_x, train_y), batch_size=batch_size, shuffle=True)
    for epoch in range(first_epoch, epochs):
        train_acc = mx.metric.Accuracy()
        for x, y in loader:
            with autograd.record():
                out = net(x)
                loss = loss_fn(out, y)
            loss.backward()
            trainer.step(x.shape[0])
            train_acc.update(y, out)
        val_acc = mx.metric.Accuracy()
        val_acc.update(mx.nd.array(data.val_y), net(mx.nd.array(data.val_x)))

        def save(path: os.PathLike[str]) -> None:
            net.save_parameters(os.path.join(path, "net.params"))
            trainer.save_states(os.path.join(path, "trainer.states"))

        metrics = {"epoch": epoch + 1, "Train-accuracy": train_acc.get()[1], "Validation-accuracy": val_acc.get()[1]}
        report_with_checkpoint(metrics, {"epoch": epoch + 1, "optimizer": optimizer, "shape": shape}, save)
