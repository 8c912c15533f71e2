#!/usr/bin/env bash
# Sets up everything Tandem needs on a fresh Debian machine, idempotently:
# Node check, pnpm, redis-server (apt-get), workspace dependencies, build.
# Safe to run again: each step is skipped when already satisfied.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[setup] %s\033[0m\n' "$*" >&2; exit 1; }

PNPM_VERSION=9.15.9

# --- Node ---------------------------------------------------------------
command -v node >/dev/null || die "Node.js 20 or newer is required (https://nodejs.org); it is not on PATH."
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "Node.js 20 or newer is required; found $(node --version)."

# --- apt packages ---------------------------------------------------------
APT_UPDATED=0
apt_install() {
  # apt_install <package>...: installs what is missing, with one apt-get update.
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "need root to install ${missing[*]}: run 'apt-get install -y ${missing[*]}' as root."
    sudo="sudo"
  fi
  command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} with your package manager."
  say "installing ${missing[*]} (apt-get)"
  if [ "$APT_UPDATED" -eq 0 ]; then
    $sudo apt-get update -qq >/dev/null || die "apt-get update failed; check network access to the Debian mirrors."
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null \
    || die "apt-get install ${missing[*]} failed."
}

if ! command -v redis-server >/dev/null; then
  apt_install redis-server
  # Tandem starts its own redis-server processes; the distribution's
  # service is not needed (and may not start in a container anyway).
fi
command -v redis-server >/dev/null || die "redis-server is still missing after apt-get; install it and retry."

if [ "${TANDEM_SETUP_TEST_DEPS:-0}" = "1" ]; then
  # What the tests need beyond the demo: Debian's Python for the trainer
  # agent (/usr/bin/python3), Prometheus (promtool and the scrape test),
  # Chromium (the status-page browser test).
  apt_install python3-grpcio python3-protobuf python3-torch python3-numpy python3-pytest protobuf-compiler prometheus chromium
fi

# --- pnpm -------------------------------------------------------------------
if ! command -v pnpm >/dev/null || [ "$(pnpm --version 2>/dev/null)" != "$PNPM_VERSION" ]; then
  say "installing pnpm $PNPM_VERSION (npm install -g)"
  npm install -g "pnpm@$PNPM_VERSION" >/dev/null 2>&1 || die "npm install -g pnpm@$PNPM_VERSION failed; check access to the npm registry."
fi

# --- workspace ----------------------------------------------------------------
say "installing workspace dependencies (pnpm install)"
pnpm install --frozen-lockfile --prefer-offline >/dev/null 2>&1 || pnpm install --frozen-lockfile \
  || die "pnpm install failed; see the output above."

say "building (tsc -b)"
pnpm --silent build || die "build failed; see the compiler output above."
say "ready"
