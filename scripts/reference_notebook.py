#!/usr/bin/python3
"""reference_notebook.py: the paper notebooks' loss ("--objective notebook",
docs/objective.md) in plain PyTorch, float64, as a fixture for
tests/test_objective.c.

It follows GaussianPriors_Experiment_SQUAD.ipynb (github
venugopalkadamba/bayesian-prompt-tuning), cells 7-9, on a tiny model:
  model_inputs = tokenizer(inputs, max_length=512, truncation=True, padding="max_length")
  labels = tokenizer(answers, max_length=128, truncation=True, padding="max_length")["input_ids"]
      (tokenizer.pad_token_id = tokenizer.eos_token_id: the pads are EOS, not -100)
  add_virtual_tokens: inputs_embeds = cat([P, embed(input_ids)]), attention_mask = cat([ones(N), mask])
  labels = F.pad(labels, (0, inputs_embeds.size(1) - labels.size(1)), value=-100)
  base_model(inputs_embeds=..., attention_mask=..., labels=labels).loss
and HF's causal-LM loss: logits[:, :-1] against labels[:, 1:], mean over labels != -100.
The tokenizer is replaced by fixed token lists (BOS first, as Llama's tokenizer
adds it) and the lengths are scaled to the tiny model: max_length 24 for the
input, 16 for the answer (the notebook's 512 and 128), N = 5 virtual tokens.
The first input is longer than the labelled span (15 - 5 positions); the
second (6 ids) is shorter, so 4 of its labelled positions are EOS pads that the
attention mask hides (keys) while their queries still predict labels; one
answer is longer than 16 ids, so truncation is covered.

Writes tests/fixtures/notebook_llama_tiny.safetensors:
  input_ids I32 [2,24] (EOS-padded, as the notebook's), input_lens I32 [2],
  answer_ids I32 [2,A] (the answers' ids before truncation, -1 after),
  answer_lens I32 [2], ans_len I32 [1] (16), n_virtual I32 [1], eos I32 [1],
  labels I32 [2,29] (the notebook's labels tensor, -100 included),
  P F32 [N,d], loss F32 [1], grad_P F32 [N,d] (d loss / dP, float64 autograd).

Run from the repository root:   /usr/bin/python3 scripts/reference_notebook.py
Deterministic: a rerun rewrites a byte-identical file.
"""
import os, sys
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as R  # noqa: E402
from reference_grad import Model  # noqa: E402  (the same float64 model as test_grad_parity)

torch.set_default_dtype(torch.float64)
N, INPUT_LEN, ANS_LEN = 5, 24, 16
IN_LENS, ANS_RAW = [14, 6], [4, 20]  # with BOS


def main():
    m = Model("llama_tiny")
    bos, eos = m.cfg["bos_token_id"], m.cfg["eos_token_id"]
    g = torch.Generator().manual_seed(2020)
    rand = lambda k: [int(x) for x in torch.randint(3, m.V, (k,), generator=g)]
    inputs = [[bos] + rand(n - 1) for n in IN_LENS]
    answers = [[bos] + rand(n - 1) for n in ANS_RAW]
    # tokenizer(..., max_length=L, truncation=True, padding="max_length"), pad = EOS (right padding)
    def pad(ids, L):
        ids = ids[:L]
        return ids + [eos] * (L - len(ids)), [1] * len(ids) + [0] * (L - len(ids))
    input_ids = torch.tensor([pad(x, INPUT_LEN)[0] for x in inputs])
    mask = torch.tensor([pad(x, INPUT_LEN)[1] for x in inputs])
    labels = torch.tensor([pad(a, ANS_LEN)[0] for a in answers])
    P = torch.randn(N, m.d, generator=g, dtype=torch.float32).double().requires_grad_()
    # add_virtual_tokens
    x = m.embed(input_ids, P)
    attn = torch.cat([torch.ones(2, N, dtype=mask.dtype), mask], 1)
    labels = F.pad(labels, (0, x.shape[1] - labels.shape[1]), value=-100)
    # the HF forward: causal attention, keys masked where attention_mask == 0 (right
    # padding: keys below N + len), positions 0..S-1
    kvlen = [int(a.sum()) for a in attn]
    for l in range(m.L):
        x = m.layer(l, x, kvlen)
    W = m.W
    x = R.rmsnorm(x, m.nw(W["model.norm.weight"]), m.eps)
    logits = x @ W.get("lm_head.weight", W["model.embed_tokens.weight"]).T
    # LlamaForCausalLM's loss: shift, CrossEntropyLoss(ignore_index=-100), mean
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, m.V), labels[:, 1:].reshape(-1), ignore_index=-100)
    (grad,) = torch.autograd.grad(loss, [P])
    A = max(ANS_RAW)
    out = {
        "input_ids": input_ids.to(torch.int32),
        "input_lens": torch.tensor(IN_LENS, dtype=torch.int32),
        "answer_ids": torch.tensor([a + [-1] * (A - len(a)) for a in answers], dtype=torch.int32),
        "answer_lens": torch.tensor(ANS_RAW, dtype=torch.int32),
        "ans_len": torch.tensor([ANS_LEN], dtype=torch.int32),
        "n_virtual": torch.tensor([N], dtype=torch.int32),
        "eos": torch.tensor([eos], dtype=torch.int32),
        "labels": labels.to(torch.int32),
        "P": P.detach().float(),
        "loss": torch.tensor([loss.item()], dtype=torch.float32),
        "grad_P": grad.float(),
    }
    path = os.path.join(R.OUT, "notebook_llama_tiny.safetensors")
    R.write_safetensors(path, out)
    n_lab = int((labels[:, 1:] != -100).sum())
    print("  llama_tiny notebook: loss %.6f over %d labelled positions, max|grad| %.4g" %
          (loss.item(), n_lab, grad.abs().max().item()))
    print("wrote", path)


if __name__ == "__main__":
    main()
