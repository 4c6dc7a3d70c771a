# cli_data.sh: the published data formats through the CLI (sourced by tests/cli.sh, which
# defines P, T, pass, fail, skip, expect_error): DeepMind MATH .txt pairs, SQuAD as Hugging
# Face JSON Lines and C4 .json.gz from tests/fixtures/data, --format, the plain-text warning,
# --rows subsets, and the flags on every command that reads data.
D=tests/fixtures/data
MATH=$D/arithmetic__add_or_sub.txt SQ=$D/squad_hf.jsonl C4=$D/c4_sample.json.gz

# detected formats, parsed examples field by field (data check --examples: one JSON line each)
out=$($P data check --data "$MATH" --examples 2>&1)
grep -qx 'format math-txt, 8 examples (0 language-model)' <<<"$out" &&
    grep -qxF '{"line":3,"input":"Question: Work out 0.1 - -2263.\nAnswer:","target":"2263.1","answers":["2263.1"],"lm":false}' <<<"$out" &&
    grep -qxF '{"line":15,"input":"Question: Sum 5 and -96.\nAnswer:","target":"-91","answers":["-91"],"lm":false}' <<<"$out" &&
    pass data_math_txt_detected || fail data_math_txt_detected "$out"
out=$($P data check --data "$SQ" --examples 2>&1)
grep -qx 'format squad-jsonl, 3 examples (0 language-model)' <<<"$out" &&
    grep -qF '"target":"Levi'"'"'s Stadium","answers":["Levi'"'"'s Stadium","Levi'"'"'s Stadium in Santa Clara, California","Santa Clara, California"]' <<<"$out" &&
    grep -qF '{"line":3,"input":"Atop the Main Building'"'"'s gold dome is a golden statue of the Virgin Mary.\nQuestion: What sits on top of the Main Building?\nAnswer:","target":"a golden statue of the Virgin Mary"' <<<"$out" &&
    pass data_squad_jsonl_detected || fail data_squad_jsonl_detected "$out"
out=$($P data check --data "$C4" --examples 2>&1)
grep -qx 'format c4, 3 examples (3 language-model)' <<<"$out" &&
    grep -qF '{"line":3,"input":"","target":"Foil plaid lycra and spandex shortall with metallic slinky insets. Attached metallic elastic belt with O-ring.",' <<<"$out" &&
    pass data_c4_gz_detected || fail data_c4_gz_detected "$out"
# a gzip file made here with gzip(1), any extension rule seen through .gz
if command -v gzip >/dev/null 2>&1; then
    printf 'What is 2+3?\t5\nCapital of France?\tParis\n' | gzip -c >"$T/qa.tsv.gz"
    out=$($P data check --data "$T/qa.tsv.gz" --examples 2>&1)
    grep -qx 'format tsv, 2 examples (0 language-model)' <<<"$out" && grep -qF '"target":"Paris"' <<<"$out" &&
        pass data_gz_any || fail data_gz_any "$out"
else
    skip data_gz_any "gzip absent"
fi

# --format: forced, refused when the file is not one, unknown names
out=$($P data check --data "$MATH" --format text 2>&1)
grep -qx 'format text, 16 examples (16 language-model)' <<<"$out" && pass data_format_forced || fail data_format_forced "$out"
printf 'What is 1 + 1?\n2\nWhat is 2 + 2?\n4\nWhat is 3 + 3?\n' >"$T/odd.txt"
printf 'What is 1 + 1?\n2\n\nWhat is 2 + 2?\n4\n' >"$T/blank.txt"
expect_error data_math_odd "$T/odd.txt:5: odd number of lines (5)" $P data check --data "$T/odd.txt" --format math-txt
expect_error data_math_blank "$T/blank.txt:3: empty line" $P data check --data "$T/blank.txt" --format math-txt
expect_error data_squad_forced "not SQuAD JSON" $P data check --data "$SQ" --format squad
expect_error data_c4_forced "$SQ:1: C4 record has no \"text\"" $P data check --data "$SQ" --format c4
expect_error data_format_unknown "--format 'csv': use jsonl, squad, squad-jsonl" $P data check --data "$MATH" --format csv

# the warning: read as plain text but looks like MATH pairs / JSON lines; none when --format text
err=$($P data check --data "$T/odd.txt" 2>&1 >/dev/null)
grep -q "odd.txt: warning: read as plain text, but it looks like DeepMind MATH question/answer lines except for an odd number of lines (5)" <<<"$err" &&
    [ -z "$($P data check --data "$T/odd.txt" --format text 2>&1 >/dev/null)" ] &&
    [ -z "$($P data check --data "$MATH" 2>&1 >/dev/null)" ] &&
    pass data_text_warning_math || fail data_text_warning_math "$err"
printf '# exported records\n{"input": "a", "target": "b"}\n{"input": "c", "target": "d"}\n' >"$T/jl.txt"
err=$($P data check --data "$T/jl.txt" 2>&1 >/dev/null)
grep -q "jl.txt: warning: read as plain text, but 2 of its 3 lines look like JSON objects" <<<"$err" &&
    pass data_text_warning_json || fail data_text_warning_json "$err"

# --rows: a seeded subset in file order; same seed same subset, another seed another
for i in $(seq 1 100); do printf '{"input": "q%d", "target": "a%d"}\n' "$i" "$i"; done >"$T/hundred.jsonl"
sub() { $P data check --data "$T/hundred.jsonl" --rows 5 --seed "$1" --examples 2>/dev/null | grep -o '"line":[0-9]*' | tr '\n' ' '; }
a=$(sub 1) b=$(sub 1) c=$(sub 2)
sorted=$(tr ' ' '\n' <<<"$a" | grep . | cut -d: -f2 | sort -n | tr '\n' ' ')
[ "$(wc -w <<<"$a")" -eq 5 ] && [ "$a" = "$b" ] && [ "$a" != "$c" ] &&
    [ "$sorted" = "$(tr ' ' '\n' <<<"$a" | grep . | cut -d: -f2 | tr '\n' ' ')" ] &&
    pass data_rows_seeded || fail data_rows_seeded "seed1 '$a' again '$b' seed2 '$c'"
out=$($P data check --data "$T/hundred.jsonl" --rows 1000 2>&1)
grep -qx 'format jsonl, 100 examples (0 language-model)' <<<"$out" && pass data_rows_more_than_file || fail data_rows_more_than_file "$out"
expect_error data_rows_negative "--rows must be >= 1" $P data check --data "$MATH" --rows -2

# every command that reads data takes --format and --rows (models/default: the embedded model)
if [ -f models/default/config.json ]; then
    out=$($P tune --method soft --tokens 2 --data "$MATH" --val "$MATH" --format math-txt --rows 4 --val-rows 3 \
        --lr 0.01 --steps 1 --batch 2 --seed 3 --out "$T/dt_tune" 2>&1)
    grep -q '"rows": 4' "$T/dt_tune/run.json" 2>/dev/null && grep -q '"val_rows": 3' "$T/dt_tune/run.json" &&
        grep -q '"data_format": "math-txt"' "$T/dt_tune/run.json" && pass data_flags_tune || fail data_flags_tune "$out"
    expect_error data_flags_tune_format "--format 'csv'" $P tune --method soft --tokens 2 --data "$MATH" --format csv \
        --lr 0.01 --steps 1 --batch 2 --out "$T/dt_bad"
    expect_error data_flags_tune_val_rows "--val-rows needs --val" $P tune --method soft --tokens 2 --data "$MATH" \
        --val-rows 2 --lr 0.01 --steps 1 --batch 2 --out "$T/dt_bad"
    out=$($P eval --data "$SQ" --format squad-jsonl --rows 2 --seed 5 --json 2>&1)
    grep -q '"n": 2,' <<<"$out" && pass data_flags_eval || fail data_flags_eval "$out"
    expect_error data_flags_eval_format "--format 'csv'" $P eval --data "$SQ" --format csv
    out=$($P acts --data "$C4" --format c4 --rows 2 --seed 1 --layers 0 --pool mean --out "$T/dt_acts.safetensors" 2>&1)
    grep -q "dt_acts.safetensors: 2 rows x" <<<"$out" && pass data_flags_acts || fail data_flags_acts "$out"
    out=$($P prior fit --source acts --data "$C4" --format c4 --rows 2 --seed 1 --pool mean --out "$T/dt_fit.safetensors" 2>&1)
    grep -q "fit acts: d=.* count=2 " <<<"$out" && pass data_flags_prior_fit || fail data_flags_prior_fit "$out"
    out=$($P prior sample --prior "fitted:source=acts,data=$C4,rows=2,format=c4,pool=mean" -n 2 --seed 1 \
        --out "$T/dt_sample.safetensors" 2>&1)
    [ -f "$T/dt_sample.safetensors" ] && pass data_flags_prior_spec || fail data_flags_prior_spec "$out"
    out=$($P sweep --priors isotropic --seeds 1 --lrs 0.01 --steps 1 --batch 2 --tokens 2 --data "$MATH" --val "$MATH" \
        --format math-txt --rows 4 --val-rows 2 --eval --out "$T/dt_sweep" 2>&1)
    r=$(ls -d "$T"/dt_sweep/*/ 2>/dev/null | head -n 1)
    [ -n "$r" ] && grep -q '"val_rows": 2' "$r/run.json" && pass data_flags_sweep || fail data_flags_sweep "$out"
else
    skip data_flags_commands "models/default absent"
fi
