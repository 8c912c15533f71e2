#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh) and runs every test: lint, import
# cycles, generated-code freshness, the TypeScript suites (unit, integration,
# end-to-end against real Redis, gRPC and processes) and benchmarks in quick
# mode. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."
TANDEM_SETUP_PYTHON="${TANDEM_SETUP_PYTHON:-0}" bash scripts/setup.sh

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }

step "lint"
pnpm --silent exec eslint --max-warnings 0 .
step "import cycles"
node scripts/check-import-cycles.mjs
step "generated protobuf stubs are up to date"
bash scripts/check-generated.sh
step "TypeScript tests (vitest)"
pnpm --silent exec vitest run --reporter=default
