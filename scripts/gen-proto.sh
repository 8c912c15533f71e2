#!/usr/bin/env bash
# Regenerates the TypeScript stubs in packages/protocol/src/gen from proto/.
# Generated code is never edited by hand; CI checks it is up to date.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf packages/protocol/src/gen
node_modules/.bin/buf lint
node_modules/.bin/buf generate
echo "generated packages/protocol/src/gen"
