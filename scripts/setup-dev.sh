#!/usr/bin/env bash
# Test set-up: the package with its test extras, pinned by constraints.txt, and the system tools
# the tests drive (headless Chromium for the HTML report). Idempotent; run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
pip install -e ".[dev]" -c constraints.txt
bash scripts/install-katib-sdk.sh
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "setup-dev: chromium is missing; install Debian's 'chromium' package (the report test needs it)" >&2
    fi
fi
