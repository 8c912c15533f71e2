#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh, with the Python packages) and runs
# every test: lint, import cycles, generated-code freshness, the TypeScript
# suites (unit, integration against real Redis and gRPC, end-to-end with the
# real processes), the Python trainer-agent tests, and every benchmark in
# quick mode (figures printed, not asserted). Stops at the first failure and
# ends with one line "tests: N passed, M failed".
set -euo pipefail
cd "$(dirname "$0")/.."
TANDEM_SETUP_TEST_DEPS=1 bash scripts/setup.sh

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
mkdir -p .tandem
passed=0
failed=0
summary() { echo "tests: ${passed} passed, ${failed} failed"; }
trap summary EXIT

step "lint"
pnpm --silent exec eslint --max-warnings 0 .
step "import cycles"
node scripts/check-import-cycles.mjs
step "generated protobuf stubs are up to date"
bash scripts/check-generated.sh
step "test sources type-check"
pnpm --silent exec tsc -p test/tsconfig.json

step "TypeScript tests (vitest: unit, integration, end-to-end)"
vitest_rc=0
pnpm --silent exec vitest run --reporter=default --reporter=json --outputFile=.tandem/vitest.json || vitest_rc=$?
read -r vp vf < <(node -e 'const r=require("./.tandem/vitest.json");console.log(r.numPassedTests, r.numFailedTests + (r.numRuntimeErrorTestSuites||0))' 2>/dev/null || echo "0 1")
passed=$((passed + vp)); failed=$((failed + vf))
[ "$vitest_rc" -eq 0 ] || exit "$vitest_rc"

if [ -x services/trainer-agent/run-tests.sh ]; then
  step "Python tests (trainer agent, /usr/bin/python3)"
  py_rc=0
  py_out=$(bash services/trainer-agent/run-tests.sh 2>&1) || py_rc=$?
  printf '%s\n' "$py_out"
  pp=$(printf '%s\n' "$py_out" | grep -Eo '[0-9]+ passed' | tail -1 | grep -Eo '[0-9]+' || echo 0)
  pf=$(printf '%s\n' "$py_out" | grep -Eo '[0-9]+ failed' | tail -1 | grep -Eo '[0-9]+' || echo 0)
  passed=$((passed + pp)); failed=$((failed + pf))
  [ "$py_rc" -eq 0 ] || { [ "$pf" -gt 0 ] || failed=$((failed + 1)); exit "$py_rc"; }
fi

if [ -x bench/run-all-quick.sh ]; then
  step "benchmarks, quick mode (figures not asserted)"
  bash bench/run-all-quick.sh
fi
