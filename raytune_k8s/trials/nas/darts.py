"""DARTS (Liu et al. 2018, arXiv 1806.09055) as Katib runs it: one trial searches a supernet.

The supernet stacks ``num_layers`` cells (reduction cells at a third and two thirds of the depth,
as in the paper); each cell has ``num_nodes`` nodes, every node sums a *mixed operation* on each
earlier state, and a mixed operation is the softmax(α)-weighted sum of every candidate
(``nasConfig``'s operations plus ``none``). First-order DARTS alternates an α step on a batch of
the validation half of the training data with a weight step on a batch of the training half.
The genotype keeps, per node, the two incoming edges whose strongest non-``none`` operation
weighs most, as the paper derives it.

``train(config)`` is the Ray Tune function trainable: it reports ``Validation-accuracy``,
``Train-accuracy``, ``loss`` and ``Best-Genotype`` every epoch with a checkpoint of the supernet,
α and both optimisers, and resumes from the last one. :class:`GenotypeNetwork` trains a derived
genotype from scratch (the benchmark's comparison with random architectures).
"""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Sequence, cast

import torch
from torch import nn

from ._data import Images, accuracy, mnist_images
from ...spec.nas import NasConfig, Operation, darts_search_space, parse_operation
from .ops import ConvBN, FactorizedReduce, Zero, build_operation
from ...spec.nas_settings import DartsSettings

NONE = "none"  # DARTS' extra candidate "no connection", never part of a genotype


class Genotype(NamedTuple):
    """Per node, the ``(operation name, input state)`` pairs it keeps; states 0 and 1 are the
    cell's inputs, 2.. its nodes. ``str()`` without spaces is Katib's ``Best-Genotype`` value."""

    normal: list[list[tuple[str, int]]]
    normal_concat: range
    reduce: list[list[tuple[str, int]]]
    reduce_concat: range

    def katib_string(self) -> str:
        return str(self).replace(" ", "")

    def operations(self) -> set[str]:
        return {name for cell in (self.normal, self.reduce) for node in cell for name, _ in node}


def reduction_layers(num_layers: int) -> set[int]:
    return {num_layers // 3, 2 * num_layers // 3}


# ---------------------------------------------------------------- the supernet


class MixedOperation(nn.Module):
    def __init__(self, candidates: Sequence[Operation | str], channels: int, stride: int):
        super().__init__()
        self.ops = nn.ModuleList(
            Zero(channels, stride) if isinstance(op, str) else build_operation(op, channels, channels, stride, affine=False)  # str: NONE
            for op in candidates
        )

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return sum(w * op(x) for w, op in zip(weights, self.ops))


class _Cell(nn.Module):
    """A cell's skeleton: preprocess both inputs to ``channels``, then nodes over earlier states."""

    def __init__(self, c_pp: int, c_p: int, channels: int, reduction_prev: bool, affine: bool):
        super().__init__()
        self.pre0 = FactorizedReduce(c_pp, channels, 2, affine) if reduction_prev else ConvBN(c_pp, channels, 1, affine=affine)
        self.pre1 = ConvBN(c_p, channels, 1, affine=affine)


class SearchCell(_Cell):
    def __init__(self, candidates, num_nodes: int, c_pp: int, c_p: int, channels: int, reduction: bool, reduction_prev: bool):
        super().__init__(c_pp, c_p, channels, reduction_prev, affine=False)
        self.num_nodes = num_nodes
        self.edges = nn.ModuleList(
            MixedOperation(candidates, channels, 2 if reduction and i < 2 else 1) for j in range(num_nodes) for i in range(2 + j)
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        offset = 0
        for _ in range(self.num_nodes):
            states.append(sum(self.edges[offset + i](h, weights[offset + i]) for i, h in enumerate(states)))
            offset += len(states) - 1
        return torch.cat(states[2:], dim=1)


def _stack(
    make_cell: Callable[[int, int, int, bool, bool], nn.Module], in_channels: int, num_layers: int, init_channels: int,
    stem_multiplier: int, num_nodes: int,
) -> tuple[nn.Module, nn.ModuleList, int]:
    """Stem, cells (channels double at each reduction) and the final channel count."""
    c_stem = stem_multiplier * init_channels
    stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
    c_pp, c_p, channels = c_stem, c_stem, init_channels
    cells = nn.ModuleList()
    reduction_prev = False
    for layer in range(num_layers):
        reduction = layer in reduction_layers(num_layers)
        channels = channels * 2 if reduction else channels
        cells.append(make_cell(c_pp, c_p, channels, reduction, reduction_prev))
        c_pp, c_p = c_p, num_nodes * channels
        reduction_prev = reduction
    return stem, cells, c_p


class Supernet(nn.Module):
    """All candidates on every edge, weighted by ``alpha_normal``/``alpha_reduce``."""

    def __init__(self, candidates: Sequence[Operation], input_shape: tuple[int, int, int], num_classes: int, num_layers: int,
                 init_channels: int, num_nodes: int, stem_multiplier: int):
        super().__init__()
        self.names = [op.name for op in candidates] + [NONE]
        ops: list[Operation | str] = [*candidates, NONE]
        self.num_nodes = num_nodes
        self.stem, self.cells, c_out = _stack(
            lambda c_pp, c_p, c, red, red_prev: SearchCell(ops, num_nodes, c_pp, c_p, c, red, red_prev),
            input_shape[0], num_layers, init_channels, stem_multiplier, num_nodes,
        )
        self.reductions = [layer in reduction_layers(num_layers) for layer in range(num_layers)]
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_out, num_classes))
        edges = sum(2 + j for j in range(num_nodes))
        self.alpha_normal = nn.Parameter(1e-3 * torch.randn(edges, len(ops)))
        self.alpha_reduce = nn.Parameter(1e-3 * torch.randn(edges, len(ops)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        normal, reduce = self.alpha_normal.softmax(-1), self.alpha_reduce.softmax(-1)
        for cell, reduction in zip(self.cells, self.reductions):
            s0, s1 = s1, cell(s0, s1, reduce if reduction else normal)
        return self.head(s1)

    def alphas(self) -> list[nn.Parameter]:
        return [self.alpha_normal, self.alpha_reduce]

    def weights(self) -> list[nn.Parameter]:
        return [p for name, p in self.named_parameters() if not name.startswith("alpha_")]

    def genotype(self) -> Genotype:
        concat = range(2, 2 + self.num_nodes)
        return Genotype(self._derive(self.alpha_normal), concat, self._derive(self.alpha_reduce), concat)

    def _derive(self, alpha: torch.Tensor) -> list[list[tuple[str, int]]]:
        weights = alpha.detach().softmax(-1)
        none = self.names.index(NONE)
        cell, offset = [], 0
        for j in range(self.num_nodes):
            inputs = 2 + j
            best = []  # (strength, input, operation) per incoming edge
            for i in range(inputs):
                row = weights[offset + i].clone()
                row[none] = -math.inf
                k = int(row.argmax())
                best.append((float(row[k]), i, self.names[k]))
            kept = sorted(best, key=lambda b: -b[0])[:2]
            cell.append([(name, i) for _, i, name in sorted(kept, key=lambda b: b[1])])
            offset += inputs
        return cell


# ---------------------------------------------------------------- a derived architecture


class GenotypeCell(_Cell):
    def __init__(self, nodes: list[list[tuple[str, int]]], c_pp: int, c_p: int, channels: int, reduction: bool, reduction_prev: bool):
        super().__init__(c_pp, c_p, channels, reduction_prev, affine=True)
        self.inputs = [[i for _, i in node] for node in nodes]
        self.ops = nn.ModuleList(
            nn.ModuleList(build_operation(parse_operation(name), channels, channels, 2 if reduction and i < 2 else 1) for name, i in node)
            for node in nodes
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.pre0(s0), self.pre1(s1)]
        for inputs, ops in zip(self.inputs, self.ops):
            states.append(sum(op(states[i]) for i, op in zip(inputs, cast(nn.ModuleList, ops))))  # torch types items as Module
        return torch.cat(states[2:], dim=1)


class GenotypeNetwork(nn.Module):
    """The discrete network of a genotype, the supernet's skeleton with one operation per kept edge."""

    def __init__(self, genotype: Genotype, input_shape: tuple[int, int, int], num_classes: int, num_layers: int,
                 init_channels: int, stem_multiplier: int):
        super().__init__()
        num_nodes = len(genotype.normal)
        self.stem, self.cells, c_out = _stack(
            lambda c_pp, c_p, c, red, red_prev: GenotypeCell(genotype.reduce if red else genotype.normal, c_pp, c_p, c, red, red_prev),
            input_shape[0], num_layers, init_channels, stem_multiplier, num_nodes,
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c_out, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.head(s1)


def random_genotype(names: Sequence[str], num_nodes: int, generator: torch.Generator) -> Genotype:
    """A genotype drawn uniformly from the same space DARTS derives from: per node, two distinct
    inputs and an operation for each."""

    def cell() -> list[list[tuple[str, int]]]:
        nodes = []
        for j in range(num_nodes):
            inputs = sorted(torch.randperm(2 + j, generator=generator)[:2].tolist())
            nodes.append([(names[int(torch.randint(len(names), (1,), generator=generator))], i) for i in inputs])
        return nodes

    concat = range(2, 2 + num_nodes)
    return Genotype(cell(), concat, cell(), concat)


def train_network(model: nn.Module, images: Images, settings: DartsSettings, seed: int = 0) -> float:
    """Train ``model`` for ``settings.num_epochs`` with DARTS' weight optimiser (SGD, cosine
    schedule, gradient clipping) on the training split; return its validation-split accuracy."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), settings.w_lr, momentum=settings.w_momentum, weight_decay=settings.w_weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, settings.num_epochs, eta_min=settings.w_lr_min)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(settings.num_epochs):
        model.train()
        for idx in torch.randperm(len(images.train_y), generator=generator).split(settings.batch_size):
            optimizer.zero_grad()
            loss_fn(model(images.train_x[idx]), images.train_y[idx]).backward()
            nn.utils.clip_grad_norm_(model.parameters(), settings.w_grad_clip)
            optimizer.step()
        schedule.step()
    return accuracy(model, images.val_x, images.val_y)


# ---------------------------------------------------------------- the search


class DartsSearch:
    """One DARTS search: supernet, α, both optimisers and the data split, one epoch at a time.

    Katib's split: the first half of the training data trains the weights, the second half
    trains α and gives ``Validation-accuracy``.
    """

    def __init__(self, settings: DartsSettings, candidates: Sequence[Operation], num_layers: int, images: Images, seed: int = 0):
        if not candidates:
            raise ValueError("DARTS needs at least one candidate operation")
        self.settings = settings
        torch.manual_seed(seed)
        self.model = Supernet(candidates, images.shape, 10, num_layers, settings.init_channels, settings.num_nodes, settings.stem_multiplier)
        s = settings
        self.w_optim = torch.optim.SGD(self.model.weights(), s.w_lr, momentum=s.w_momentum, weight_decay=s.w_weight_decay)
        self.alpha_optim = torch.optim.Adam(self.model.alphas(), s.alpha_lr, betas=(0.5, 0.999), weight_decay=s.alpha_weight_decay)
        self.schedule = torch.optim.lr_scheduler.CosineAnnealingLR(self.w_optim, s.num_epochs, eta_min=s.w_lr_min)
        half = len(images.train_y) // 2
        self.train_x, self.train_y = images.train_x[:half], images.train_y[:half]
        self.val_x, self.val_y = images.train_x[half:], images.train_y[half:]
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0
        self.best_accuracy = -1.0
        self.best_genotype = ""
        self.loss_fn = nn.CrossEntropyLoss()

    def run_epoch(self, log: Callable[[str], None] | None = None) -> dict[str, Any]:
        """Alternate α and weight steps over the training half; return the epoch's metrics."""
        s, model = self.settings, self.model
        model.train()
        train_order = torch.randperm(len(self.train_y), generator=self.generator).split(s.batch_size)
        val_order = torch.randperm(len(self.val_y), generator=self.generator).split(s.batch_size)
        correct = seen = 0
        total_loss = 0.0
        for step, (t_idx, v_idx) in enumerate(zip(train_order, val_order)):
            self.alpha_optim.zero_grad()
            self.loss_fn(model(self.val_x[v_idx]), self.val_y[v_idx]).backward()  # first order: w fixed
            self.alpha_optim.step()

            self.w_optim.zero_grad()
            logits = model(self.train_x[t_idx])
            loss = self.loss_fn(logits, self.train_y[t_idx])
            loss.backward()
            nn.utils.clip_grad_norm_(model.weights(), s.w_grad_clip)
            self.w_optim.step()

            correct += (logits.argmax(1) == self.train_y[t_idx]).sum().item()
            seen += len(t_idx)
            total_loss += loss.item() * len(t_idx)
            if log is not None and (step % s.print_step == 0 or step == len(train_order) - 1):
                log(f"Train: [{self.epoch + 1}/{s.num_epochs}] step {step}/{len(train_order) - 1} loss {total_loss / seen:.3f} accuracy {correct / seen:.1%}")
        self.schedule.step()
        self.epoch += 1
        val_accuracy = accuracy(model, self.val_x, self.val_y)
        genotype = model.genotype().katib_string()
        if val_accuracy > self.best_accuracy:
            self.best_accuracy, self.best_genotype = val_accuracy, genotype
        return {
            "epoch": self.epoch,
            "Train-accuracy": correct / max(1, seen),
            "Validation-accuracy": val_accuracy,
            "loss": total_loss / max(1, seen),
            "Genotype": genotype,
            "Best-Genotype": self.best_genotype,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "w_optim": self.w_optim.state_dict(),
            "alpha_optim": self.alpha_optim.state_dict(),
            "schedule": self.schedule.state_dict(),
            "generator": self.generator.get_state(),
            "epoch": self.epoch,
            "best_accuracy": self.best_accuracy,
            "best_genotype": self.best_genotype,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.w_optim.load_state_dict(state["w_optim"])
        self.alpha_optim.load_state_dict(state["alpha_optim"])
        self.schedule.load_state_dict(state["schedule"])
        self.generator.set_state(state["generator"])
        self.epoch, self.best_accuracy, self.best_genotype = state["epoch"], state["best_accuracy"], state["best_genotype"]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DartsSearch:
        """Build a search from a trial's config (see :func:`train`)."""
        settings, candidates, num_layers = parse_trial_config(config)
        images = mnist_images(
            config.get("data-dir"),
            int(config.get("image_size", 28)),
            _optional_int(config.get("train_size")),
        )
        return cls(settings, candidates, num_layers, images, int(config.get("seed", 0)))


# ---------------------------------------------------------------- trial config, Katib's way or ours


def katib_value(value: Any) -> Any:
    """A Katib DARTS trial parameter as Python: ``"{'num_epochs': '1'}"`` (JSON with single quotes,
    possibly still wrapped in the manifest's literal double quotes) -> dict; lists alike."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    while len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    if text[:1] in "{[":
        try:
            return json.loads(text.replace("'", '"'))
        except json.JSONDecodeError:
            return ast.literal_eval(text)
    return text


def parse_trial_config(config: Mapping[str, Any]) -> tuple[DartsSettings, list[Operation], int]:
    """Settings, candidates and depth from a trial config: Katib's trial parameters
    (``algorithm-settings``, ``search-space``, ``num-layers``) and/or our own keys (any DARTS
    setting by name, ``nasConfig`` as a dict in Katib's shape, ``num_layers``)."""
    raw_settings = dict(katib_value(config.get("algorithm-settings")) or {})
    raw_settings.update({k: v for k, v in config.items() if k in DartsSettings.__dataclass_fields__})
    settings = DartsSettings.from_mapping(raw_settings)
    nas = config.get("nasConfig", config.get("nas_config"))
    nas_config = None if nas is None else (nas if isinstance(nas, NasConfig) else NasConfig.model_validate(katib_value(nas)))
    names = katib_value(config.get("search-space"))
    if names is None:
        if nas_config is None:
            raise ValueError("a DARTS trial needs 'search-space' (Katib's operation names) or 'nasConfig'")
        names = darts_search_space(nas_config)
    if isinstance(names, str) or not names:
        raise ValueError(f"search-space must be a non-empty list of operation names, got {names!r}")
    candidates = [parse_operation(str(name)) for name in names]
    layers = config.get("num-layers", config.get("num_layers"))
    if layers is None and nas_config is not None:
        layers = nas_config.graph.num_layers
    if layers is None:
        raise ValueError("a DARTS trial needs 'num-layers' (or nasConfig.graphConfig.numLayers)")
    num_layers = int(katib_value(layers))
    if num_layers < 1:
        raise ValueError(f"num-layers must be >= 1, got {layers!r}")
    return settings, candidates, num_layers


def _optional_int(value: Any) -> int | None:
    return None if value in (None, "", "None") else int(value)


# ---------------------------------------------------------------- the Ray Tune trainable


CHECKPOINT_FILE = "darts.pt"


def train(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: one DARTS search, reported and checkpointed every epoch.

    Config: Katib's trial parameters or our keys (see :func:`parse_trial_config`), plus
    ``data-dir`` (IDX files; default the offline MNIST), ``image_size`` (pixels a side, default
    28), ``train_size`` (first n training images) and ``seed``.
    """
    from ..checkpoints import latest_checkpoint, report_with_checkpoint

    search = DartsSearch.from_config(config)
    with latest_checkpoint() as (directory, _):
        if directory is not None:
            search.load_state_dict(torch.load(directory / CHECKPOINT_FILE, weights_only=True))
    while search.epoch < search.settings.num_epochs:
        metrics = search.run_epoch()

        def save(path: Path) -> None:
            torch.save(search.state_dict(), path / CHECKPOINT_FILE)

        report_with_checkpoint(metrics, {"epoch": search.epoch}, save)
