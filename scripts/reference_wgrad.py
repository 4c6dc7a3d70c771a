#!/usr/bin/python3
"""reference_wgrad.py: plain-PyTorch loss and weight gradients of the causal-LM loss,
as fixtures for tests/test_wgrad.c (full-parameter training, include/ptune/pretrain.h).

For llama_tiny (GQA, untied head), llama3_tiny (llama3 rope scaling, tied head) and
qwen2_tiny (QKV bias, tied head) of tests/fixtures it writes
tests/fixtures/wgrad_<model>.safetensors:
  input_ids I32 [2,T], lens I32 [2] (right padding with id 0), labels I32 [2,T]
  (labels[b,t] = input_ids[b,t+1] for t+1 < lens[b], else -1, with a few more -1),
  loss F32 [1] (mean cross-entropy over labelled positions), and
  grad.<HF name> F32 for every weight (tied head: its gradient is in
  model.embed_tokens.weight, as PyTorch accumulates it there).
Autograd in float64 from the stored F32 weights, with reference.py's llama_forward.

Run from the repository root:   /usr/bin/python3 scripts/reference_wgrad.py
Deterministic: a rerun rewrites byte-identical files.
"""
import json, os, sys
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as R  # noqa: E402

torch.set_default_dtype(torch.float64)
T, LENS = 9, [9, 6]


def make(name, seed):
    d = os.path.join(R.OUT, name)
    cfg = json.load(open(os.path.join(d, "config.json")))
    W = {k: v.double().requires_grad_() for k, v in R.read_safetensors(os.path.join(d, "model.safetensors")).items()}
    V = cfg["vocab_size"]
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, V, (2, T), generator=g)
    ids[1, LENS[1]:] = 0
    labels = torch.full((2, T), -1, dtype=torch.int64)
    for b in range(2):
        for t in range(LENS[b] - 1):
            labels[b, t] = ids[b, t + 1]
    labels[0, 2] = -1
    labels[1, 0] = -1
    logits, _ = R.llama_forward(W, cfg, ids, LENS)
    mask = labels >= 0
    loss = torch.nn.functional.cross_entropy(logits[mask], labels[mask], reduction="mean")
    loss.backward()
    out = {"input_ids": ids.to(torch.int32), "lens": torch.tensor(LENS, dtype=torch.int32),
           "labels": labels.to(torch.int32), "loss": torch.tensor([loss.item()], dtype=torch.float32)}
    for k in sorted(W):
        out["grad." + k] = W[k].grad.float()
    path = os.path.join(R.OUT, "wgrad_%s.safetensors" % name)
    R.write_safetensors(path, out)
    print("wrote %s (loss %.6f, %d gradients)" % (path, loss.item(), len(W)))


if __name__ == "__main__":
    for i, name in enumerate(["llama_tiny", "llama3_tiny", "qwen2_tiny"]):
        make(name, 100 + i)
