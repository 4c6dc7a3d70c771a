#!/usr/bin/env bash
# placement-default.sh [OUT_DIR]: "does placement matter?" on the default model
# (docs/analysis.md), about 4 minutes on 2 cores: a 20-vector soft prompt from
# the fitted prior tuned for 300 steps on the held-out arithmetic phrasing
# "Increase a by b." with snapshots every 25 steps, then
#   1. its paths (ptune analyze posterior-path, figure);
#   2. ablation of each vector and of all (ptune analyze ablate, figure);
#   3. activations with and without the prompt, held-out and trained
#      phrasings (ptune acts --adapter, ptune analyze clusters --with/--without);
#   4. a --prior-weight sweep (ptune sweep --prior-weights), loss and exact
#      match against the mean squared Mahalanobis distance to the prior (figure);
#   5. the exclusion prior with margin=0.9 against c=5;
#   6. the report of the run.
# Needs /usr/bin/python3 (standard library only) to summarise the JSON.
set -euo pipefail
export PTUNE_COMPUTE=fp32
cd "$(dirname "$0")/.."
P=./ptune O=${1:-runs/placement}
rm -rf $O; mkdir -p $O
$P data gen arithmetic --phrasing heldout --pairs train --n 14000 --seed 301 --out $O/all.jsonl 2>/dev/null
grep -F '"question": "Increase ' $O/all.jsonl | head -n 2000 > $O/train.jsonl
$P data gen arithmetic --phrasing heldout --pairs test --n 1400 --seed 401 --out $O/all.jsonl 2>/dev/null
grep -F '"question": "Increase ' $O/all.jsonl | head -n 200 > $O/val.jsonl
$P data gen arithmetic --pairs test --n 200 --seed 402 --out $O/val_trained.jsonl 2>/dev/null
echo "== 1. snapshots and paths"
$P tune --method soft --tokens 20 --prior fitted:source=vocab --data $O/train.jsonl --val $O/val.jsonl --lr 3e-2 --steps 300 --batch 16 --seed 1 --eval-every 50 --snapshot-every 25 --quiet --out $O/run >/dev/null
$P analyze posterior-path --run $O/run --json --png $O/run/posterior_path.png > $O/path.json
/usr/bin/python3 -c "
import json; j=json.load(open('$O/path.json')); g=j['groups'][0]; v=g['vectors']
import statistics as st
print('snapshots', j['n_snapshots'], 'collapse_step', j['collapse_step'], 'min pairwise L2', g['min_pairwise_l2'])
print('path length median %.3f max %.3f; drift median %.3f; settle steps median %s, max %s' % (st.median(x['path_length'] for x in v), max(x['path_length'] for x in v), st.median(x['drift'] for x in v), st.median(x['nearest_token_settle_step'] for x in v), max(x['nearest_token_settle_step'] for x in v)))"
echo "== 2. ablation"
$P analyze ablate --run $O/run --data $O/val.jsonl --boot 1000 --seed 1 --json --png $O/run/ablate.png > $O/ablate.json
/usr/bin/python3 -c "
import json; j=json.load(open('$O/ablate.json')); print('tuned', j['tuned'])
for v in j['variants']:
    if v['scope']=='all': print('all ->', v['replacement'], 'd_loss %.3f [%.3f, %.3f] d_em %.3f [%.3f, %.3f]'%(v['d_loss'],v['d_loss_lo'],v['d_loss_hi'],v['d_em'],v['d_em_lo'],v['d_em_hi']))
one=[v for v in j['variants'] if v['scope']=='vector']
for r in ('vocab','prior','zero'):
    d=[v['d_loss'] for v in one if v['replacement']==r]; sig=sum(1 for v in one if v['replacement']==r and v['d_loss_lo']>0)
    print('one vector ->', r, 'd_loss min %.4f max %.4f; interval above 0 for %d of %d' % (min(d), max(d), sig, len(d)))"
echo "== 3. activations with the prompt"
$P acts --data $O/val.jsonl --layers 2,4 --pool mean --adapter $O/run --out $O/acts_ho_p.safetensors >/dev/null
$P acts --data $O/val.jsonl --layers 2,4 --pool mean --out $O/acts_ho.safetensors >/dev/null
$P acts --data $O/val_trained.jsonl --layers 2,4 --pool mean --adapter $O/run --out $O/acts_tr_p.safetensors >/dev/null
$P acts --data $O/val_trained.jsonl --layers 2,4 --pool mean --out $O/acts_tr.safetensors >/dev/null
$P analyze clusters --with $O/acts_ho_p.safetensors,$O/acts_tr_p.safetensors --without $O/acts_ho.safetensors,$O/acts_tr.safetensors --labels heldout,trained --layer 4 --permutations 200 --seed 1 --png $O/run/acts_compare.png --json > $O/mmd.json
/usr/bin/python3 -c "
import json; j=json.load(open('$O/mmd.json')); print('silhouette with %s without %s' % (j['silhouette_with'], j['silhouette_without']))
for t in j['tasks']: print(t['label'], 'mmd2 %.4f p %.4f n %d/%d' % (t['mmd2'], t['p_value'], t['n_with'], t['n_without']))"
echo "== 4. prior weight sweep"
$P sweep --priors 'fitted:source=vocab' --prior-weights 0,0.000001,0.001,0.01,0.1,1 --seeds 1 --lrs 3e-2 --data $O/train.jsonl --val $O/val.jsonl --steps 300 --batch 16 --eval-every 50 --eval --out $O/sw > $O/sweep.log 2>&1
for r in $O/sw/*/; do w=$(sed -nE 's/.*"prior_weight": *([0-9.e+-]+).*/\1/p' $r/run.json | head -1); w=${w:-0}
  vl=$(sed -nE 's/.*"val_loss": *([0-9.e+-]+).*/\1/p' $r/metrics.jsonl | tail -n 1)
  m2=$(sed -nE 's/.*"prior_m2": *([0-9.e+-]+).*/\1/p' $r/metrics.jsonl | tail -n 1)
  em=$($P eval --adapter $r --data $O/val.jsonl --json | sed -nE 's/.*"exact_match": *([0-9.e+-]+).*/\1/p')
  echo "{\"prior_weight\": $w, \"val_loss\": $vl, \"prior_m2\": ${m2:-null}, \"exact_match\": $em}"; done | sort -t: -k2 -g > $O/sweep_points.jsonl
cat $O/sweep_points.jsonl
/usr/bin/python3 -c "
import json, math
with open('$O/sweep_fig.jsonl', 'w') as out:
    for l in open('$O/sweep_points.jsonl'):
        r = json.loads(l)
        if r['prior_m2'] is None: continue
        r['log10_prior_m2'] = math.log10(r['prior_m2']); out.write(json.dumps(r) + '\\n')"
$P report --curves $O/sweep_fig.jsonl --x log10_prior_m2 --y val_loss,exact_match --title "prior weight sweep: loss and EM vs log10 mean Mahalanobis^2 to the prior" --out $O/sweep_fig.png
echo "== 5. exclusion margin"
$P prior sample --prior exclusion:margin=0.9 -n 20 --out $O/excl.safetensors 2>&1 | tail -2
$P prior sample --prior exclusion:c=5 -n 20 --out $O/excl_c.safetensors 2>&1 | tail -2
echo "== 6. report"
$P report $O/run --out $O/report.html | tail -1
