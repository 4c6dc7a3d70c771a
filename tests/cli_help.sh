# tests/cli_help.sh (sourced by tests/cli.sh; uses its P, pass, fail): every
# command and sub-command answers --help with exit 0 and its usage on stdout.
# The tree comes from the help texts, so a new command or sub-command is walked
# without editing this file: `ptune --help` lists the commands ("  NAME  what");
# a usage line "ptune CMD WORD|WORD ..." in CMD's help names CMD's sub-commands
# (lower-case words: not --flags, not PLACEHOLDERS), walked the same way down to
# three words (ptune data gen arithmetic).

# help_walk WORD...: checks `ptune WORD... --help`, then walks the sub-commands its usage names.
help_walk() {
    local name out rc err subs sub
    name="help_$(IFS=_; echo "$*")"
    help_count=$((help_count + 1))
    out=$($P "$@" --help 2>"$T/help_err"); rc=$?
    err=$(head -n 1 "$T/help_err")
    if [ $rc -ne 0 ] || ! grep -qi usage <<<"$out"; then
        fail "$name" "ptune $* --help: exit $rc, stdout '$(head -n 1 <<<"$out")', stderr '$err'"
        return
    fi
    pass "$name"
    [ $# -ge 3 ] && return
    subs=$(sed -nE "s/.*ptune $* ([a-z][a-z0-9-]*(\|[a-z][a-z0-9-]*)*)( .*)?$/\1/p" <<<"$out" | tr '|' '\n' | sort -u)
    for sub in $subs; do help_walk "$@" "$sub"; done
}

help_count=0
out=$($P --help); rc=$?
[ $rc -eq 0 ] && grep -q "^usage: ptune <command>" <<<"$out" && pass help_top || fail help_top "exit $rc: $out"
for c in $(sed -nE 's/^  ([a-z][a-z0-9-]*) .*/\1/p' <<<"$out"); do
    if grep -qE "^  $c .*\(not available in this build\)" <<<"$out"; then
        # listed as not built (main.c's weak entry points): it must say so in one line, not crash
        expect_error "help_${c}_not_built" "'$c' is not available in this build" $P "$c" --help
        continue
    fi
    help_walk "$c"
done
# the walk must have gone below the commands (analyze, bench, data, prior have sub-commands)
n_cmds=$(sed -nE 's/^  ([a-z][a-z0-9-]*) .*/\1/p' <<<"$out" | grep -c .)
[ $help_count -gt "$n_cmds" ] && pass help_tree_walked ||
    fail help_tree_walked "$help_count help texts walked for $n_cmds commands: no sub-commands found"
