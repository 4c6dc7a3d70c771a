# tests/cli_paper.sh (sourced by tests/cli.sh): `ptune reproduce --settings` (the paper's
# study as an editable file): bad files get one line naming the file and the key.
echo '{"task": "qa", "lr_tokn": [5e-3, 5e-4]}' >"$T/pp_unknown.json"
expect_error reproduce_settings_unknown_key "$T/pp_unknown.json: unknown setting \"lr_tokn\"" \
    $P reproduce --model tests/fixtures/llama_tiny --settings "$T/pp_unknown.json" --out "$T/pp_r1"
echo '{"batch": "two"}' >"$T/pp_type.json"
expect_error reproduce_settings_type "$T/pp_type.json: \"batch\" must be an integer" \
    $P reproduce --model tests/fixtures/llama_tiny --settings "$T/pp_type.json" --out "$T/pp_r2"
echo '{"pool": "max"}' >"$T/pp_pool.json"
expect_error reproduce_settings_pool "\"pool\" is 'max'" \
    $P reproduce --model tests/fixtures/llama_tiny --settings "$T/pp_pool.json" --out "$T/pp_r3"
echo '{"deep_layers": "3,1"}' >"$T/pp_layers.json"
expect_error reproduce_settings_layers "deep_layers '3,1'" \
    $P reproduce --model tests/fixtures/llama_tiny --settings "$T/pp_layers.json" --out "$T/pp_r4"
# the shipped file is the defaults: it loads, and every key it names is one the loader knows
out=$($P reproduce --model tests/fixtures/llama_tiny --settings settings/paper.json --out "$T/pp_r5" --quick 2>&1 | head -3)
grep -q "unknown setting\|must be" <<<"$out" && fail reproduce_settings_shipped "$out" || pass reproduce_settings_shipped
