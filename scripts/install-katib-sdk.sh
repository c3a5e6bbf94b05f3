#!/usr/bin/env bash
# Katib's Python SDK (kubeflow-katib) beside raytune-k8s: without its declared dependencies, whose
# protobuf<5 pin would break Ray (see requirements-katib-sdk.txt). Idempotent; run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
pip install --no-deps -r requirements-katib-sdk.txt
