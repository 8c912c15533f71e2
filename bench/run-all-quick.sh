#!/usr/bin/env bash
# Runs every benchmark in quick mode (CI): each prints one JSON object on
# stdout, figures are not asserted; a benchmark that fails fails the script.
# Needs the workspace built (`npx tsc -b`).
set -euo pipefail
cd "$(dirname "$0")/.."
for name in rollout-path weight-sync overlap control-plane-cost failover; do
  printf '\n== bench %s --quick\n' "$name" >&2
  node bench/run.mjs "$name" --quick
done
