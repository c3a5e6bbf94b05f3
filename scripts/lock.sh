#!/usr/bin/env bash
# Refresh constraints.txt: resolve pyproject.toml's ranges (with the dev extra) to exact versions.
# Run after changing a dependency, then run the test suite before committing the new lock.
set -euo pipefail
cd "$(dirname "$0")/.."
pip install -q "uv>=0.5"
uv pip compile pyproject.toml --extra dev --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
    --no-header --upgrade -o constraints.txt
