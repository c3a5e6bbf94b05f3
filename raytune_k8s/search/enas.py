"""ENAS (Pham et al. 2018, arXiv 1802.03268) as Katib runs it: an LSTM controller as a searcher.

The controller samples, layer by layer, one candidate operation of ``nasConfig`` and (from the
second layer on) a skip connection to each earlier layer, through attention over the earlier
layers' hidden states. An architecture is Katib's list ``[[op], [op, skip0], [op, skip0,
skip1], ...]``; a suggestion is Katib's two trial parameters, ``architecture`` and ``nn_config``.
Each finished trial's objective is a reward: the controller takes ``controller_train_steps``
REINFORCE steps (Adam) on the log-probability of the architecture that earned it, against a
moving-average baseline, with an entropy bonus and a penalty pulling the skip probability to
``controller_skip_target``.

:class:`EnasSearcher` is a Ray Tune ``Searcher`` whose whole state (controller weights,
optimiser, baseline, random generator, pending architectures) is a picklable dict, so it lives in
the searcher actor and survives its restart like the other searchers.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Sequence

import torch
from torch import nn

from ..spec.settings import Settings
from .space import SearchSpace
from ..spec import Objective, SpecError
from .stateful import StatefulSearcher
from ..spec.nas import NasConfig, Operation
from ..spec.nas_settings import EnasSettings

logger = logging.getLogger(__name__)

Architecture = list[list[int]]


class Controller(nn.Module):
    """The LSTM policy over architectures of ``num_layers`` layers and ``num_ops`` operations."""

    def __init__(self, num_ops: int, num_layers: int, settings: EnasSettings):
        super().__init__()
        h = settings.controller_hidden_size
        self.num_ops, self.num_layers, self.settings = num_ops, num_layers, settings
        self.lstm = nn.LSTMCell(h, h)
        self.start = nn.Parameter(torch.zeros(1, h))
        self.op_embedding = nn.Embedding(num_ops, h)
        self.op_logits = nn.Linear(h, num_ops)
        self.anchor_proj = nn.Linear(h, h, bias=False)
        self.query_proj = nn.Linear(h, h, bias=False)
        self.skip_score = nn.Linear(h, 1, bias=False)
        for p in self.parameters():
            nn.init.uniform_(p, -0.1, 0.1)

    def _shape(self, logits: torch.Tensor) -> torch.Tensor:
        s = self.settings
        if s.controller_temperature:
            logits = logits / s.controller_temperature
        if s.controller_tanh_const:
            logits = s.controller_tanh_const * torch.tanh(logits)
        return logits

    def forward(self, architecture: Architecture | None = None, generator: torch.Generator | None = None):
        """Sample an architecture (or score the given one): ``(architecture, log_prob, entropy,
        skip_penalty)``; the last three are tensors with gradients."""
        sampled: Architecture = []
        log_prob = torch.zeros(())
        entropy = torch.zeros(())
        skip_penalty = torch.zeros(())
        target = self.settings.controller_skip_target
        x: torch.Tensor = self.start
        state = None
        anchors: list[torch.Tensor] = []
        hiddens: list[torch.Tensor] = []
        for layer in range(self.num_layers):
            state = self.lstm(x, state)
            op_dist = torch.distributions.Categorical(logits=self._shape(self.op_logits(state[0]))[0])
            op = architecture[layer][0] if architecture is not None else int(torch.multinomial(op_dist.probs, 1, generator=generator))
            log_prob = log_prob + op_dist.log_prob(torch.tensor(op))
            entropy = entropy + op_dist.entropy()
            state = self.lstm(self.op_embedding(torch.tensor([op])), state)
            skips: list[int] = []
            if layer > 0:
                query = self.query_proj(state[0])
                scores = self.skip_score(torch.tanh(torch.cat(anchors) + query)).squeeze(-1)
                logits = self._shape(scores)
                skip_dist = torch.distributions.Bernoulli(logits=logits)
                if architecture is not None:
                    bits = torch.tensor(architecture[layer][1:], dtype=torch.float32)
                else:
                    bits = torch.bernoulli(skip_dist.probs.detach(), generator=generator)
                skips = [int(b) for b in bits]
                log_prob = log_prob + skip_dist.log_prob(bits).sum()
                entropy = entropy + skip_dist.entropy().sum()
                p = skip_dist.probs.clamp(1e-6, 1 - 1e-6)
                skip_penalty = skip_penalty + (p * torch.log(p / target) + (1 - p) * torch.log((1 - p) / (1 - target))).sum()
                chosen = [hiddens[j] for j, b in enumerate(skips) if b]
                x = torch.stack(chosen).mean(0) if chosen else state[0]
            else:
                x = state[0]
            hiddens.append(state[0])
            anchors.append(self.anchor_proj(state[0]))
            sampled.append([op, *skips])
        return sampled, log_prob, entropy, skip_penalty

    def operation_probabilities(self, layer: int = 0) -> list[float]:
        """The policy's operation probabilities at ``layer`` given the previous layers' most
        likely choices (for logs and tests)."""
        with torch.no_grad():
            x, state = self.start, None
            for i in range(layer + 1):
                state = self.lstm(x, state)
                probs = self._shape(self.op_logits(state[0]))[0].softmax(-1)
                if i == layer:
                    return probs.tolist()
                state = self.lstm(self.op_embedding(torch.tensor([int(probs.argmax())])), state)
                x = state[0]
        raise AssertionError("unreachable")


def nn_config(config: NasConfig, candidates: Sequence[Operation]) -> dict[str, Any]:
    """Katib's ``nn_config`` trial parameter: sizes and what each operation id means."""
    return {
        "num_layers": config.graph.num_layers,
        "input_sizes": config.graph.input_sizes,
        "output_sizes": config.graph.output_sizes,
        "embedding": {str(i): {"opt_id": i, "opt_type": op.type, "opt_params": op.params} for i, op in enumerate(candidates)},
    }


class EnasSearcher(StatefulSearcher):
    """Suggests ``{"architecture": "[[op], [op, skip]]", "nn_config": "{...}"}`` (JSON strings, as
    Katib's ENAS trial parameters) and learns from each finished trial's objective."""

    def __init__(self, nas_config: NasConfig, metric: str, mode: str, settings: EnasSettings | None = None, seed: int | None = None):
        super().__init__(metric=metric, mode=mode)
        self.settings = settings or EnasSettings()
        self.candidates = nas_config.candidates()
        self.num_layers = nas_config.graph.num_layers
        self._nn_config = json.dumps(nn_config(nas_config, self.candidates))
        torch.manual_seed(0 if seed is None else seed)
        self.controller = Controller(len(self.candidates), self.num_layers, self.settings)
        self.optimizer = torch.optim.Adam(self.controller.parameters(), lr=self.settings.controller_learning_rate)
        self.generator = torch.Generator().manual_seed(0 if seed is None else seed)
        self.baseline: float | None = None
        self.pending: dict[str, Architecture] = {}
        self.train_steps = 0

    def suggest(self, trial_id: str) -> dict[str, Any]:
        with torch.no_grad():
            architecture, *_ = self.controller(generator=self.generator)
        self.pending[trial_id] = architecture
        return {"architecture": json.dumps(architecture), "nn_config": self._nn_config}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        architecture = self.pending.pop(trial_id, None)
        if architecture is None:
            logger.warning("result for %s, which this controller did not suggest (or already learnt from): ignored", trial_id)
            return
        if error or not result or result.get(self.metric) is None:
            return
        reward = float(result[self.metric]) * (1.0 if self.mode == "max" else -1.0)
        self.learn(architecture, reward)

    def learn(self, architecture: Architecture, reward: float) -> None:
        """REINFORCE on ``architecture`` with advantage ``reward - baseline``."""
        s = self.settings
        decay = s.controller_baseline_decay
        self.baseline = reward if self.baseline is None else decay * self.baseline + (1 - decay) * reward
        advantage = reward - self.baseline
        for _ in range(s.controller_train_steps):
            _, log_prob, entropy, skip_penalty = self.controller(architecture)
            loss = -advantage * log_prob - (s.controller_entropy_weight or 0.0) * entropy
            if s.controller_skip_weight:
                loss = loss + s.controller_skip_weight * skip_penalty
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.train_steps += 1
            if self.train_steps % s.controller_log_every_steps == 0:
                logger.info("controller step %d: loss %.4f reward %.4f baseline %.4f", self.train_steps, loss.item(), reward, self.baseline)

    def get_state(self) -> dict:
        return {
            "controller": self.controller.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "baseline": self.baseline,
            "pending": dict(self.pending),
            "train_steps": self.train_steps,
        }

    def set_state(self, state: dict) -> None:
        self.controller.load_state_dict(state["controller"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        self.baseline = state["baseline"]
        self.pending = dict(state["pending"])
        self.train_steps = state["train_steps"]


class RandomArchitectureSearcher(EnasSearcher):
    """Random search over ENAS' space (the benchmark's baseline): every operation equally likely,
    each skip connection with probability ``controller_skip_target``; learns nothing."""

    def suggest(self, trial_id: str) -> dict[str, Any]:
        g, target = self.generator, self.settings.controller_skip_target
        architecture = [
            [int(torch.randint(len(self.candidates), (1,), generator=g)), *(int(torch.rand(1, generator=g) < target) for _ in range(layer))]
            for layer in range(self.num_layers)
        ]
        return {"architecture": json.dumps(architecture), "nn_config": self._nn_config}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        pass


def create_nas_searcher(nas_config: NasConfig, objective: Objective, settings: Settings) -> EnasSearcher:
    """The ENAS searcher of an experiment: ``algorithmSettings`` are Katib's controller settings
    (plus our ``random_state``)."""
    seed = settings.optional_integer("random_state")
    return EnasSearcher(nas_config, objective.metric, objective.mode, EnasSettings.from_settings(settings), seed)


def create(space: SearchSpace | None, objective: Objective, settings: Settings, nas_config: NasConfig | None = None) -> EnasSearcher:
    """The registry's signature; ENAS searches ``nasConfig``, not ``parameters``."""
    if nas_config is None:
        raise SpecError("nasConfig", "algorithm enas searches an architecture: the experiment needs spec.nasConfig")
    return create_nas_searcher(nas_config, objective, settings)
