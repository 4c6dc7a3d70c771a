#!/usr/bin/env bash
# Bytes per token of a tokenizer on corpus files (docs/corpus.md):
#   bash scripts/tok_compression.sh TOKENIZER FILE...
# Each file is split into its documents at "<|endoftext|>" (the separators are
# not counted); every document is encoded without special tokens.
set -euo pipefail
cd "$(dirname "$0")/.."
tok=$1; shift
printf 'file\tdocs\tbytes\ttokens\tbytes/token\n'
for f in "$@"; do
    node -e '
        const s = require("fs").readFileSync(process.argv[1], "utf8");
        const docs = s.split("<|endoftext|>").filter((d) => d.length);
        let b = 0;
        for (const d of docs) { b += Buffer.byteLength(d); console.log(JSON.stringify(d)); }
        process.stderr.write(docs.length + " " + b + "\n");' "$f" > /tmp/pt_tokc.$$.jsonl 2> /tmp/pt_tokc.$$.n
    read -r nd nb < /tmp/pt_tokc.$$.n
    nt=$(./ptune tokenize --tokenizer "$tok" --jsonl --no-special < /tmp/pt_tokc.$$.jsonl | wc -w)
    printf '%s\t%s\t%s\t%s\t%s\n' "$(basename "$f")" "$nd" "$nb" "$nt" "$(awk -v b="$nb" -v t="$nt" 'BEGIN{printf "%.3f", b/t}')"
    rm -f /tmp/pt_tokc.$$.jsonl /tmp/pt_tokc.$$.n
done
