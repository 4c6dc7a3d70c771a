#!/usr/bin/env bash
# readme-tables.sh [--check]: the tables in README.md that come from a command.
#   - The demo table (`make demo`, scripts/demo-default.sh) is regenerated: the
#     demo runs into a temporary directory (about a minute on 2 cores) and its
#     table replaces the block between <!-- demo-table begin --> and
#     <!-- demo-table end -->, headed by the commit, date and CPU that made it.
#   - The other tables are quoted, not regenerated: the default model's quality
#     (scripts/quality-default.sh, needs corpus/out and writes
#     models/default/quality.json) and the performance table (`make bench`, an
#     hour, machine-dependent). The sentence before each names the commit(s)
#     and the CPU that produced it.
# --check (fast; tests/cli_readme.sh): the demo block is there, names a commit
# and holds the table's five rows, and every |-table of README.md has the word
# commit and a hash in the five lines above it; with git, each hash must be a
# commit of this repository. Prints
# one line per problem and exits 1 if there is any.
set -euo pipefail
cd "$(dirname "$0")/.."
readme=README.md
begin='<!-- demo-table begin: scripts/readme-tables.sh writes this block -->'
end='<!-- demo-table end -->'

# known_commit HASH: true when HASH names a commit (or when this is not a git checkout).
known_commit() {
    git rev-parse --git-dir >/dev/null 2>&1 || return 0
    git cat-file -e "$1^{commit}" 2>/dev/null
}

if [ "${1:-}" = --check ]; then
    bad=0
    problem() { echo "readme-tables: $*"; bad=1; }
    nb=$(grep -cxF "$begin" "$readme" || true) ne=$(grep -cxF "$end" "$readme" || true)
    if [ "$nb" != 1 ] || [ "$ne" != 1 ]; then
        problem "$readme: expected one '$begin' and one '$end' line, found $nb and $ne"
    else
        block=$(awk -v b="$begin" -v e="$end" '$0 == b { p = 1 } p { print } $0 == e { p = 0 }' "$readme")
        c=$(grep -oE 'at commit [0-9a-f]{7,40}' <<<"$block" | head -n 1 | cut -d' ' -f3 || true)
        if [ -z "$c" ]; then problem "$readme: the demo block names no commit ('at commit HASH')"
        elif ! known_commit "$c"; then problem "$readme: the demo block's commit $c is not in this repository"; fi
        rows=$(grep -cE '^    (prior|no prompt|isotropic|fitted|exclusion) ' <<<"$block" || true)
        [ "$rows" = 5 ] || problem "$readme: the demo block has $rows of the table's 5 lines (header, no prompt, 3 priors)"
    fi
    # every |-table: a commit in the 5 lines above its first row
    while IFS=: read -r line _; do
        ctx=$(sed -n "$((line > 5 ? line - 5 : 1)),$((line - 1))p" "$readme")
        cs=""
        grep -qw 'commits\?' <<<"$ctx" && cs=$(grep -owE '[0-9a-f]{7,40}' <<<"$ctx" | grep '[0-9]' || true)
        if [ -z "$cs" ]; then problem "$readme:$line: table without the commit that produced it in the 5 lines above"; continue; fi
        for c in $cs; do known_commit "$c" || problem "$readme:$line: commit $c is not in this repository"; done
    done < <(awk '/^\|/ && prev !~ /^\|/ { print NR ":" } { prev = $0 }' "$readme")
    [ -x scripts/demo-default.sh ] || [ -f scripts/demo-default.sh ] || problem "scripts/demo-default.sh is missing"
    exit $bad
fi

[ -x ./ptune ] || { echo "readme-tables: build ./ptune first (make)" >&2; exit 1; }
grep -qxF "$begin" "$readme" && grep -qxF "$end" "$readme" ||
    { echo "readme-tables: $readme lacks the '$begin' / '$end' lines" >&2; exit 1; }
tmp=$(mktemp -d /tmp/pt_readme.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
# uncommitted changes outside README.md make the figures those of no commit: say so
if git rev-parse --git-dir >/dev/null 2>&1 && [ -n "$(git status --porcelain --untracked-files=no -- . ':!README.md')" ]; then
    commit="$commit + uncommitted changes"
fi
cpu=$(sed -nE 's/^model name\s*: *//p' /proc/cpuinfo | head -n 1)
flags=$(grep -o 'amx_bf16\|avx512_bf16\|avx512f\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ' | sed 's/ $//')
echo "readme-tables: running scripts/demo-default.sh (DEMO_OUT=$tmp/demo)"
DEMO_OUT="$tmp/demo" bash scripts/demo-default.sh >"$tmp/demo.log" 2>&1 ||
    { tail -n 20 "$tmp/demo.log" >&2; echo "readme-tables: the demo failed" >&2; exit 1; }
secs=$(sed -nE 's/^demo: ([0-9]+) s;.*/\1/p' "$tmp/demo.log")
{
    echo "$begin"
    echo "\`make demo\` at commit $commit ($(date -u +%Y-%m-%d), $cpu, $(nproc) cores, $flags; fp32): ${secs:-?} s."
    echo
    sed 's/^/    /' "$tmp/demo/table.txt"
    echo "$end"
} >"$tmp/block"
awk -v b="$begin" -v e="$end" -v f="$tmp/block" '
    $0 == b { while ((getline l < f) > 0) print l; skip = 1; next }
    $0 == e { skip = 0; next }
    !skip' "$readme" >"$tmp/README.md"
cp "$tmp/README.md" "$readme"
cat "$tmp/block"
