#!/usr/bin/python3
"""reference_eval.py: float64 PyTorch reference for `ptune eval --positions`.

Writes (committed; CI has no torch):
  tests/fixtures/eval_positions.jsonl      40 arithmetic + 24 QA records (ptune data gen, seeds 7 and 8)
  tests/fixtures/ref_eval_positions.txt    per target position, counted from the start and from the
                                           end: rows, teacher-forced argmax accuracy, mean cross-entropy;
                                           then the mean loss and exact match over all target tokens
The model is models/default; rows are encoded as docs/data.md says (BOS + input, then " " + target,
then EOS: `ptune eval --eos`). Token ids come from `./ptune tokenize` (the tokenizer has its own
reference tests); the forward is scripts/reference.py's llama_forward in float64.

Run from the repository root after `make`:   /usr/bin/python3 scripts/reference_eval.py
"""
import json, os, subprocess, sys
import torch
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as R

NPOS = 8
MODEL, DATA, OUT = "models/default", "tests/fixtures/eval_positions.jsonl", "tests/fixtures/ref_eval_positions.txt"

def sh(*a, **kw):
    return subprocess.run(a, check=True, capture_output=True, text=True, **kw).stdout

def tokenize(texts, special):
    args = ["./ptune", "tokenize", "--model", MODEL, "--jsonl"] + ([] if special else ["--no-special"])
    out = sh(*args, input="".join(json.dumps(t) + "\n" for t in texts))
    return [[int(x) for x in l.split()] for l in out.strip().split("\n")]

def main():
    recs = []
    for task, n, seed in [("arithmetic", 40, 7), ("qa", 24, 8)]:
        sh("./ptune", "data", "gen", task, "--n", str(n), "--seed", str(seed), "--out", "/tmp/ref_eval_%s.jsonl" % task)
        recs += [json.loads(l) for l in open("/tmp/ref_eval_%s.jsonl" % task)]
    with open(DATA, "w") as f:
        for r in recs:
            f.write(json.dumps({"input": r["input"], "target": r["target"]}) + "\n")
    cfg = json.load(open(MODEL + "/config.json"))
    W = {k: v.double() for k, v in R.read_safetensors(MODEL + "/model.safetensors").items()}
    inp = tokenize([r["input"] for r in recs], True)
    tgt = tokenize([" " + r["target"] for r in recs], False)
    n = [[0] * NPOS for _ in range(2)]
    acc = [[0.0] * NPOS for _ in range(2)]
    loss = [[0.0] * NPOS for _ in range(2)]
    tot, ntok, em, margin = 0.0, 0, 0, float("inf")
    for a, t in zip(inp, tgt):
        t = t + [cfg["eos_token_id"]]
        ids = a + t
        lp = torch.log_softmax(R.llama_forward(W, cfg, torch.tensor([ids]), [len(ids)])[0][0], -1)
        ok = 1
        for i, y in enumerate(t):
            row = lp[len(a) + i - 1]
            top = torch.topk(row, 2).values
            margin = min(margin, (top[0] - top[1]).item())
            hit, l = int(row.argmax().item() == y), -row[y].item()
            ok &= hit
            tot, ntok = tot + l, ntok + 1
            for side, k in ((0, i), (1, len(t) - 1 - i)):
                if k < NPOS:
                    n[side][k] += 1; acc[side][k] += hit; loss[side][k] += l
        em += ok
    with open(OUT, "w") as f:
        f.write("# side k n acc loss  (side 0: from the start, 1: from the end; k = 0 first/last)\n")
        for side in range(2):
            for k in range(NPOS):
                if n[side][k]:
                    f.write("%d %d %d %.9f %.9f\n" % (side, k, n[side][k], acc[side][k] / n[side][k], loss[side][k] / n[side][k]))
        f.write("total %d %.9f %.9f\n" % (ntok, tot / ntok, em / len(recs)))
    print("wrote %s and %s: %d rows, %d target tokens, smallest top-2 log-prob margin %.2e"
          % (DATA, OUT, len(recs), ntok, margin))

main()
