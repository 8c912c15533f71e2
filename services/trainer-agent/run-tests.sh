#!/usr/bin/env bash
# Runs the trainer agent's tests with Debian's Python (/usr/bin/python3).
# Installs nothing and regenerates nothing: it checks what the tests need
# and says exactly what is missing.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
PY="${PYTHON:-/usr/bin/python3}"

missing=()
for pair in grpc:python3-grpcio google.protobuf:python3-protobuf torch:python3-torch numpy:python3-numpy pytest:python3-pytest; do
  module="${pair%%:*}"
  package="${pair##*:}"
  "$PY" -c "import $module" >/dev/null 2>&1 || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "run-tests: $PY cannot import the Debian packages: ${missing[*]}" >&2
  echo "run-tests: install them with: apt-get install -y ${missing[*]}" >&2
  exit 2
fi
"$PY" -c 'import torch.distributed as d; assert d.is_available() and d.is_gloo_available()' >/dev/null 2>&1 || {
  echo "run-tests: this torch has no gloo backend (torch.distributed); the weight-transfer tests need it" >&2
  exit 2
}

# The integration tests run the real control plane and rollout worker.
problems=()
command -v node >/dev/null || problems+=("node is not on PATH")
command -v redis-server >/dev/null && command -v redis-cli >/dev/null || problems+=("redis-server/redis-cli missing: apt-get install -y redis-server")
for main in services/control-plane/dist/main.js services/rollout-worker/dist/main.js; do
  [ -f "$repo/$main" ] || problems+=("$main missing: build it with (cd $repo && npx tsc -b)")
done
if [ "${#problems[@]}" -gt 0 ]; then
  printf 'run-tests: %s\n' "${problems[@]}" >&2
  exit 2
fi

"$PY" -m pytest "$here/tests" -q "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "run-tests: pytest collected no tests; that is a failure here" >&2
  exit 1
fi
exit "$rc"
