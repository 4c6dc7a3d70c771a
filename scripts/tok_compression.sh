#!/usr/bin/env bash
# Bytes per token of a tokenizer on corpus files (docs/corpus.md):
#   bash scripts/tok_compression.sh TOKENIZER FILE.jsonl...
# Each record is rendered as the model reads it ({"text"}, or input + " " +
# target) and encoded without special tokens; bytes are those of the text.
set -euo pipefail
cd "$(dirname "$0")/.."
tok=$1; shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'file\tdocs\tbytes\ttokens\tbytes/token\n'
for f in "$@"; do
    node -e '
        let n = 0, b = 0;
        for (const l of require("fs").readFileSync(process.argv[1], "utf8").split("\n")) {
            if (!l) continue;
            const r = JSON.parse(l);
            let d;
            if (typeof r.text === "string") d = r.text;
            else { const i = r.input, t = String(r.target); d = i + (i === "" || /\s$/.test(i) || /^\s/.test(t) ? "" : " ") + t; }
            n++; b += Buffer.byteLength(d); console.log(JSON.stringify(d));
        }
        process.stderr.write(n + " " + b + "\n");' "$f" > "$tmp/docs.jsonl" 2> "$tmp/n"
    read -r nd nb < "$tmp/n"
    nt=$(./ptune tokenize --tokenizer "$tok" --jsonl --no-special < "$tmp/docs.jsonl" | wc -w)
    printf '%s\t%s\t%s\t%s\t%s\n' "$(basename "$f")" "$nd" "$nb" "$nt" "$(awk -v b="$nb" -v t="$nt" 'BEGIN{printf "%.3f", b/t}')"
done
