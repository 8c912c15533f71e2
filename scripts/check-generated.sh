#!/usr/bin/env bash
# Fails when packages/protocol/src/gen differs from what proto/ generates.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r packages/protocol/src/gen "$tmp/committed"
bash scripts/gen-proto.sh >/dev/null
if ! diff -r "$tmp/committed" packages/protocol/src/gen >/dev/null; then
  diff -r "$tmp/committed" packages/protocol/src/gen | head -20 >&2
  echo "packages/protocol/src/gen is out of date: run 'pnpm gen:proto' and commit the result" >&2
  rm -rf packages/protocol/src/gen && cp -r "$tmp/committed" packages/protocol/src/gen
  exit 1
fi
echo "generated stubs match proto/"
