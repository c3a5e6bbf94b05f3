"""Stand-in for ``/opt/pbt/pbt_test.py`` of Katib's ``simple-pbt`` image: a toy trainable for
Population Based Training whose best learning rate changes as it trains.

Flags: ``--lr``, ``--epochs``, ``--checkpoint DIR``. It resumes from ``DIR/state.json`` when
present (the step and the accuracy so far), trains ``--epochs`` more steps, writes the state
back, and prints ``epoch=N lr=... Validation-accuracy=...`` each step. Progress per step is
largest when ``lr`` is near a target that rises from 0.001 to 0.01 while accuracy is below 0.5,
then falls back: a fixed ``lr`` stalls, a schedule found by PBT keeps improving.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random


def best_lr(accuracy: float) -> float:
    """The learning rate that trains fastest at this accuracy (a triangle between 0.001 and 0.01)."""
    peak = 0.01 * (accuracy / 0.5 if accuracy < 0.5 else (1.0 - accuracy) / 0.5)
    return min(0.01, max(0.001, peak))


def step(accuracy: float, lr: float, rng: random.Random) -> float:
    ratio = max(lr, best_lr(accuracy)) / max(min(lr, best_lr(accuracy)), 1e-12)
    gain = 0.02 * math.exp(-(math.log(ratio) ** 2) / 2) * rng.random()  # fastest at the best lr
    return min(1.0, max(0.0, accuracy + gain - (0.002 if ratio > 8 else 0.0) + rng.gauss(0, 0.002)))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Toy PBT trainable (raytune-k8s stand-in for Katib's simple-pbt)")
    p.add_argument("--lr", type=float, default=0.0001)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--checkpoint", type=str, default="/var/log/katib/checkpoints/")
    args = p.parse_args(argv)
    os.makedirs(args.checkpoint, exist_ok=True)
    state_file = os.path.join(args.checkpoint, "state.json")
    state = {"step": 0, "accuracy": 0.0}
    if os.path.exists(state_file):
        with open(state_file) as f:
            state = json.load(f)
    rng = random.Random(state["step"] * 7919 + int(args.lr * 1e6))
    for _ in range(args.epochs):
        state["accuracy"] = step(state["accuracy"], args.lr, rng)
        state["step"] += 1
        print(f"epoch={state['step']} lr={args.lr:.4f} Validation-accuracy={state['accuracy']:.4f}", flush=True)
    with open(state_file + ".tmp", "w") as f:
        json.dump(state, f)
    os.replace(state_file + ".tmp", state_file)


if __name__ == "__main__":
    main()
