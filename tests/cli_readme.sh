# tests/cli_readme.sh (sourced by tests/cli.sh; uses its pass, fail): the README's tables
# that come from a command say which commit produced them. Regenerating the demo table
# takes a minute (bash scripts/readme-tables.sh, by hand), so this checks what is fast:
# scripts/readme-tables.sh --check (the demo block, a commit above every table).
if [ -f scripts/readme-tables.sh ]; then
    out=$(bash scripts/readme-tables.sh --check 2>&1) && pass readme_tables_quoted ||
        fail readme_tables_quoted "$(tr '\n' ' ' <<<"$out")"
else
    fail readme_tables_quoted "scripts/readme-tables.sh is missing"
fi
