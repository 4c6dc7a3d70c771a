#!/usr/bin/env python3
"""peft_crosscheck.py: load a ptune run directory with Hugging Face PEFT and print
its loss next to `ptune eval`'s.

Not run by the tests: it needs transformers and peft (pip install torch
transformers peft), which ptune's build machines do not have. It has not been
run by ptune's maintainers for this reason: its numbers are yours to report.

    python3 scripts/peft_crosscheck.py RUN_DIR [--data FILE.jsonl] [--ptune ./ptune]
                                       [--rows 64] [--old-positions]

What it does, for the run's model (run.json config.model, a Hugging Face
directory) and its soft (PROMPT_TUNING) or prefix (PREFIX_TUNING) adapter:
  1. base: the model without adapter, in transformers and in `ptune eval`;
     if these differ, the encodings of the rows differ (see below) and the
     adapter line says nothing about the adapter;
  2. adapter: PeftModel.from_pretrained(model, RUN_DIR) against
     `ptune eval --adapter RUN_DIR`. A prefix adapter is PEFT's past_key_values,
     a cache of N entries, so transformers numbers the real tokens N..N+T-1
     (LlamaModel / GPT2Model take position ids from the cache length);
     ptune places them there too since prefix runs record
     "prefix_positions": "peft" in run.json (docs/run-dir.md);
  3. with --old-positions (prefix only): PEFT again but with position_ids
     0..T-1 passed explicitly, which is what ptune computed before that change.

The loss is the mean cross-entropy over the target tokens of the data's
records, float32 on the CPU, one record at a time (no padding). The data must
be JSON Lines with "input" and "target" (default: run.json's config.val, else
config.data); --template and --eos follow run.json. Rows are encoded as
docs/data.md says for the usual case: [BOS as the tokenizer adds it] + input,
then " " + target (no space when the input is empty or ends in whitespace or
the target starts with whitespace) tokenized without special tokens, then EOS
with --eos. Tokenizers that add a space themselves (SentencePiece Llama 2) may
encode the target differently from ptune: step 1 and the token counts show it.
"""
import argparse
import json
import os
import subprocess
import sys

import torch


def ptune_eval(ptune, model, data, cfg, adapter):
    cmd = [ptune, "eval", "--model", model, "--data", data, "--json"]
    if cfg.get("template"):
        cmd += ["--template", cfg["template"]]
    if cfg.get("eos"):
        cmd += ["--eos"]
    if adapter:
        cmd += ["--adapter", adapter]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def render(rec, template):
    if not template:
        return rec.get("input", rec.get("prompt", ""))
    return template.replace("{input}", rec.get("input", "")).replace("{question}", rec.get("question", rec.get("input", ""))) \
        .replace("{context}", rec.get("context", ""))


def encode(tok, recs, cfg):
    rows = []
    for r in recs:
        inp, tgt = render(r, cfg.get("template")), str(r["target"])
        sep = "" if (not inp or inp[-1].isspace() or tgt[:1].isspace()) else " "
        a = tok(inp, add_special_tokens=True)["input_ids"]
        t = tok(sep + tgt, add_special_tokens=False)["input_ids"]
        if cfg.get("eos") and tok.eos_token_id is not None:
            t = t + [tok.eos_token_id]
        rows.append((a, t))
    return rows


@torch.no_grad()
def hf_loss(model, rows, n_virtual=0, position_ids_from_zero=False):
    tot, n = 0.0, 0
    for a, t in rows:
        ids = torch.tensor([a + t])
        kw = {}
        if position_ids_from_zero:
            kw["position_ids"] = torch.arange(ids.shape[1])[None]
        logits = model(input_ids=ids, **kw).logits[0].double()
        logits = logits[n_virtual:]  # PROMPT_TUNING returns the N virtual positions too
        lp = torch.log_softmax(logits, -1)
        for i, y in enumerate(t):
            tot -= lp[len(a) + i - 1, y].item()
            n += 1
    return tot / max(n, 1), n


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("--data")
    ap.add_argument("--ptune", default="./ptune")
    ap.add_argument("--rows", type=int, default=64, help="first N records only (default 64)")
    ap.add_argument("--old-positions", action="store_true")
    args = ap.parse_args()
    try:
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as e:
        sys.exit("peft_crosscheck: needs transformers and peft (%s)" % e)

    run = json.load(open(os.path.join(args.run_dir, "run.json")))
    cfg = run["config"]
    acfg = json.load(open(os.path.join(args.run_dir, "adapter_config.json")))
    peft_type = acfg.get("peft_type")
    if peft_type not in ("PROMPT_TUNING", "PREFIX_TUNING"):
        sys.exit("peft_crosscheck: %s is a %s run; only soft and prefix runs have a PEFT form" %
                 (args.run_dir, cfg.get("method")))
    if peft_type == "PREFIX_TUNING" and cfg.get("prefix_positions") != "peft":
        print("note: this prefix run predates \"prefix_positions\": \"peft\" (tokens at 0..T-1 in training); "
              "ptune eval refuses it, compare with --old-positions")
    model_dir = cfg["model"]
    if not os.path.isdir(model_dir):
        sys.exit("peft_crosscheck: the run's model %s is not a Hugging Face directory" % model_dir)
    data = args.data or cfg.get("val") or cfg["data"]
    recs = [json.loads(l) for l in open(data) if l.strip()][: args.rows]
    sub = "/tmp/peft_crosscheck_%d.jsonl" % os.getpid()
    with open(sub, "w") as f:
        for r in recs:
            f.write(json.dumps(r) + "\n")

    tok = AutoTokenizer.from_pretrained(model_dir)
    base = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    rows = encode(tok, recs, cfg)

    print("%d records of %s, model %s" % (len(recs), data, model_dir))
    hb, nb = hf_loss(base, rows)
    pb = ptune_eval(args.ptune, model_dir, sub, cfg, None)
    print("base     transformers %.6f (%d tokens)   ptune %.6f (%d tokens)" % (hb, nb, pb["loss"], pb["n_tokens"]))

    peft = PeftModel.from_pretrained(base, args.run_dir).eval()
    nv = acfg["num_virtual_tokens"] if peft_type == "PROMPT_TUNING" else 0
    ha, na = hf_loss(peft, rows, nv)
    try:
        pa = ptune_eval(args.ptune, model_dir, sub, cfg, args.run_dir)
        ps = "%.6f (%d tokens)" % (pa["loss"], pa["n_tokens"])
        rel = "   rel diff %.2e" % (abs(ha - pa["loss"]) / abs(pa["loss"]))
    except subprocess.CalledProcessError as e:
        ps, rel = "refused: %s" % e.stderr.strip(), ""
    print("%-8s PEFT         %.6f (%d tokens)   ptune %s%s" % (cfg["method"], ha, na, ps, rel))
    if args.old_positions and peft_type == "PREFIX_TUNING":
        ho, _ = hf_loss(peft, rows, 0, position_ids_from_zero=True)
        print("prefix   PEFT with position_ids 0..T-1 (ptune's placement before prefix_positions): %.6f" % ho)
    os.unlink(sub)


if __name__ == "__main__":
    main()
