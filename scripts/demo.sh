#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs the demo: an asynchronous
# RL run on simulated GPUs, with the synchronous baseline first.
# Extra arguments go to `tandem demo` (see `tandem demo --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ $# -eq 0 ]; then set -- --compare-sync; fi
exec node services/cli/dist/main.js demo "$@"
