"""A stand-in training program for command trials: prints ``step=N loss=V`` lines."""

import argparse

parser = argparse.ArgumentParser()
parser.add_argument("--x", type=float, required=True)
parser.add_argument("--steps", type=int, default=3)
args = parser.parse_args()
for step in range(1, args.steps + 1):
    print(f"step={step} loss={(args.x - 1.0) ** 2 + 1.0 / step:.6f}", flush=True)
