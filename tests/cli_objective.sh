# tests/cli_objective.sh (sourced by tests/cli.sh): `ptune tune --objective
# notebook` (docs/objective.md) trains on the default model and records the
# objective in run.json; --resume with another objective is refused, both ways.
if [ -f models/default/config.json ]; then
    $P data gen qa --n 24 --seed 7 --out "$T/ob_tr.jsonl" >/dev/null 2>&1
    ob_tune() { # DIR STEPS [more flags]
        local d=$1 s=$2; shift 2
        $P tune --method soft --tokens 6 --data "$T/ob_tr.jsonl" --val "$T/ob_tr.jsonl" --lr 3e-2 --steps "$s" \
            --batch 2 --eval-every 2 --quiet --out "$d" "$@"
    }
    if ob_tune "$T/ob_nb" 2 --objective notebook 2>/dev/null && grep -q '"objective": "notebook"' "$T/ob_nb/run.json" &&
        [ "$(grep -c train_loss "$T/ob_nb/metrics.jsonl")" = 2 ]; then
        pass tune_objective_notebook_runs
    else
        fail tune_objective_notebook_runs "no run.json with \"objective\": \"notebook\" and 2 steps in $T/ob_nb"
    fi
    ob_tune "$T/ob_nb" 4 --resume 2>"$T/ob_err1" && fail tune_objective_resume_refused "target resumed a notebook run" ||
        { grep -q "objective" "$T/ob_err1" && pass tune_objective_resume_refused ||
            fail tune_objective_resume_refused "$(cat "$T/ob_err1")"; }
    ob_tune "$T/ob_tg" 2 2>/dev/null
    if grep -q '"objective"' "$T/ob_tg/run.json" 2>/dev/null; then
        fail tune_objective_target_not_recorded "the default objective is in run.json (older runs would not resume)"
    else
        pass tune_objective_target_not_recorded
    fi
    ob_tune "$T/ob_tg" 4 --resume --objective notebook 2>"$T/ob_err2" &&
        fail tune_objective_resume_refused_2 "notebook resumed a target run" ||
        { grep -q "objective" "$T/ob_err2" && pass tune_objective_resume_refused_2 ||
            fail tune_objective_resume_refused_2 "$(cat "$T/ob_err2")"; }
    ob_tune "$T/ob_nb" 4 --resume --objective notebook 2>/dev/null && pass tune_objective_resume_same ||
        fail tune_objective_resume_same "a notebook run did not resume with --objective notebook"
    ob_tune "$T/ob_bad" 2 --objective paper 2>/dev/null && fail tune_objective_unknown "'paper' accepted" ||
        pass tune_objective_unknown
else
    skip cli_objective "models/default absent"
fi
