#!/usr/bin/python3
"""reference_grad.py: plain-PyTorch loss and prompt gradients for the prompt-tuning
methods, as fixtures for tests/test_grad_parity.c.

For each tiny model of tests/fixtures (llama_tiny, llama3_tiny, qwen2_tiny, gemma_tiny, gpt2_tiny)
and each method it writes tests/fixtures/grad_<model>_<method>.safetensors:
  input_ids I32 [2,T], lens I32 [2], labels I32 [2,T] (-1 = no loss; the logits at
  real position t predict labels[b,t]), n_virtual I32 [1], loss F32 [1] (mean
  cross-entropy over labelled positions), and per method
    soft:   P [N,d], grad_P [N,d]
    deep:   layers I32 [2] = (0, 1), P.<i> [N,d], grad_P.<i> [N,d]
    prefix: K.<l>, V.<l> [N,kv_dim] for every layer, grad_K.<l>, grad_V.<l>
Gradients are d(mean loss)/d(prompt), summed over the batch rows (the prompt is
shared), by autograd in float64 from the stored F32 weights.

Placement (as include/ptune/backward.h):
  soft:   rows [P_0..P_{N-1}, tok_0..tok_{T-1}], positions 0..N+T-1 (GPT-2 adds wpe to
          P too; Gemma multiplies P by sqrt(d) too: both are what HF does to
          inputs_embeds, so a PEFT prompt-tuning adapter means the same), keys valid
          below N + lens[b];
  deep:   before listed layer l its P_l is prepended to the layer input, the layer runs
          on positions 0..N+T-1 with keys below N + lens[b], the first N outputs are
          cut; unlisted layers see the T tokens at positions 0..T-1. Layer 0 = the
          input-level vectors (GPT-2: prepended after wte + wpe, no wpe of their own;
          Gemma: prepended after the sqrt(d) scale, not scaled themselves);
  prefix: as Hugging Face + PEFT (PREFIX_TUNING, prefix_projection false): the rows
          [K_0|V_0|K_1|V_1|...] of PEFT's prompt_embeddings [N, 2*L*kv_dim] are viewed
          and permuted as PeftModel.get_prompt does into past_key_values, a cache of N
          entries per layer, used as given (no RoPE on them: HF caches hold rotated
          keys). The real tokens then get position ids N..N+T-1 (LlamaModel and
          GPT2Model number new tokens from the cache length; GPT-2 adds wpe[N + t]),
          and each real query sees all N cache entries plus the causal real keys.

Run from the repository root:   /usr/bin/python3 scripts/reference_grad.py
Deterministic: a rerun rewrites byte-identical files.
"""
import json, math, os, sys
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as R  # noqa: E402  (model helpers and the safetensors writer)

torch.set_default_dtype(torch.float64)
FIX = R.OUT
N, T = 5, 8
LENS = [8, 5]
LABELS = {(0, 2): None, (0, 5): None, (0, 7): None, (1, 0): None, (1, 3): None, (1, 4): None}


def attend(q, k, v, kvlen, offset):
    """q [B,H,Tq,hd], k/v [B,KV,Tk,hd]; key j visible to query i when j <= i + offset
    and j < kvlen[b]."""
    B, H, Tq, hd = q.shape
    Tk = k.shape[2]
    rep = H // k.shape[1]
    k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    s = q @ k.transpose(-1, -2) / math.sqrt(hd)
    i, j = torch.arange(Tq)[:, None], torch.arange(Tk)[None, :]
    allowed = (j <= i + offset)[None] & (torch.arange(Tk)[None, None, :] < torch.tensor(kvlen)[:, None, None])
    s = s.masked_fill(~allowed[:, None], float("-inf"))
    return torch.softmax(s, -1) @ v


class Model:
    def __init__(self, name):
        path = os.path.join(FIX, name)
        self.cfg = json.load(open(os.path.join(path, "config.json")))
        W = R.read_safetensors(os.path.join(path, "model.safetensors"))
        self.W = {k: v.double() for k, v in W.items()}
        self.gpt2 = self.cfg["model_type"] == "gpt2"
        # Gemma 1: sqrt(d) embedding scale (after the prompt is prepended), (1 + w) norms, GeGLU.
        self.emb_scale, self.nw, self.act = R.llama_family(self.cfg)
        c = self.cfg
        if self.gpt2:
            self.d, self.H, self.L = c["n_embd"], c["n_head"], c["n_layer"]
            self.KV, self.eps, self.V = self.H, c["layer_norm_epsilon"], c["vocab_size"]
        else:
            self.d, self.H, self.L = c["hidden_size"], c["num_attention_heads"], c["num_hidden_layers"]
            self.KV, self.eps, self.V = c.get("num_key_value_heads", self.H), c["rms_norm_eps"], c["vocab_size"]
        self.hd = self.d // self.H if self.gpt2 else R.head_dim(c)
        self.kvd = self.KV * self.hd

    def embed(self, ids, P, pos0=0):
        """Input rows at positions pos0.. (pos0 = the cache length, HF's offset)."""
        W = self.W
        if self.gpt2:
            x = W["wte.weight"][ids]
            if P is not None:
                x = torch.cat([P[None].expand(ids.shape[0], -1, -1), x], 1)
            return x + W["wpe.weight"][pos0: pos0 + x.shape[1]][None]
        x = W["model.embed_tokens.weight"][ids]
        if P is not None:
            x = torch.cat([P[None].expand(ids.shape[0], -1, -1), x], 1)
        return x if self.emb_scale is None else x * self.emb_scale

    def layer(self, l, x, kvlen, past=None, pos0=0):
        """x [B,S,d] at positions pos0..pos0+S-1; past = this layer's cache entries
        (K, V [B,KV,Np,hd], used as given) or None."""
        W, B, S, H, KV, hd = self.W, x.shape[0], x.shape[1], self.H, self.KV, self.hd
        Np = 0 if past is None else past[0].shape[2]
        kvl = [k + Np for k in kvlen]
        if self.gpt2:
            p = "h.%d." % l
            conv = lambda t, n: t @ W[n + ".weight"] + W[n + ".bias"]
            h = R.layernorm(x, W[p + "ln_1.weight"], W[p + "ln_1.bias"], self.eps)
            q, k, v = [t.view(B, S, H, hd).transpose(1, 2) for t in conv(h, p + "attn.c_attn").split(self.d, -1)]
        else:
            p = "model.layers.%d." % l
            def lin(t, name):
                y = t @ W[name + ".weight"].T
                return y + W[name + ".bias"] if name + ".bias" in W else y
            ang = (pos0 + torch.arange(S)).double()[:, None] * R.rope_inv_freq(self.cfg, hd)[None]
            cos, sin = ang.cos(), ang.sin()
            def rope(t):
                a, b = t[..., : hd // 2], t[..., hd // 2:]
                return torch.cat([a * cos - b * sin, b * cos + a * sin], -1)
            h = R.rmsnorm(x, self.nw(W[p + "input_layernorm.weight"]), self.eps)
            q = rope(lin(h, p + "self_attn.q_proj").view(B, S, H, hd).transpose(1, 2))
            k = rope(lin(h, p + "self_attn.k_proj").view(B, S, KV, hd).transpose(1, 2))
            v = lin(h, p + "self_attn.v_proj").view(B, S, KV, hd).transpose(1, 2)
        if past is not None:  # the cache update: its entries first, then the new keys
            k, v = torch.cat([past[0], k], 2), torch.cat([past[1], v], 2)
        o = attend(q, k, v, kvl, Np).transpose(1, 2).reshape(B, S, H * hd)
        if self.gpt2:
            x = x + conv(o, p + "attn.c_proj")
            h = R.layernorm(x, W[p + "ln_2.weight"], W[p + "ln_2.bias"], self.eps)
            return x + conv(R.gelu_tanh(conv(h, p + "mlp.c_fc")), p + "mlp.c_proj")
        x = x + lin(o, p + "self_attn.o_proj")
        h = R.rmsnorm(x, self.nw(W[p + "post_attention_layernorm.weight"]), self.eps)
        return x + lin(self.act(lin(h, p + "mlp.gate_proj")) * lin(h, p + "mlp.up_proj"), p + "mlp.down_proj")

    def peft_past(self, K, V, B):
        """PEFT's get_prompt for PREFIX_TUNING: prompt_embeddings [N, 2*L*kvd] with rows
        [K_0|V_0|K_1|V_1|...] (ptune's export, src/tune/adapter.c) repeated over the batch,
        viewed [B, N, 2L, KV, hd], permuted to [2L, B, KV, N, hd] and split in (K, V)
        pairs per layer."""
        Nv = K[0].shape[0]
        emb = torch.cat([t for l in range(self.L) for t in (K[l], V[l])], 1)
        pkv = emb[None].expand(B, -1, -1).reshape(B, Nv, 2 * self.L, self.KV, self.hd)
        pkv = pkv.permute(2, 0, 3, 1, 4).split(2)
        return [(kv[0], kv[1]) for kv in pkv]

    def loss(self, ids, lens, labels, method, prm):
        """Mean cross-entropy over labelled real positions."""
        W = self.W
        if method == "soft":
            x = self.embed(ids, prm["P"])
            for l in range(self.L):
                x = self.layer(l, x, [N + n for n in lens])
            x = x[:, N:]
        elif method == "deep":
            x = self.embed(ids, None)
            listed = dict(zip(prm["layers"], prm["P"]))
            for l in range(self.L):
                if l in listed:
                    P = listed[l][None].expand(x.shape[0], -1, -1)
                    x = self.layer(l, torch.cat([P, x], 1), [N + n for n in lens])[:, N:]
                else:
                    x = self.layer(l, x, lens)
        else:
            past = self.peft_past(prm["K"], prm["V"], ids.shape[0])
            Np = past[0][0].shape[2]  # the cache length: real tokens start there
            x = self.embed(ids, None, Np)
            for l in range(self.L):
                x = self.layer(l, x, lens, past[l], Np)
        if self.gpt2:
            x = R.layernorm(x, W["ln_f.weight"], W["ln_f.bias"], self.eps)
            head = W["wte.weight"]
        else:
            x = R.rmsnorm(x, self.nw(W["model.norm.weight"]), self.eps)
            head = W.get("lm_head.weight", W["model.embed_tokens.weight"])
        mask = labels >= 0
        logits = x[mask] @ head.T
        return torch.nn.functional.cross_entropy(logits, labels[mask].long(), reduction="mean")


def make(name, seed):
    m = Model(name)
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, m.V, (2, T), generator=g)
    ids[1, LENS[1]:] = 0
    labels = torch.full((2, T), -1, dtype=torch.int64)
    for (b, t) in sorted(LABELS):
        labels[b, t] = int(torch.randint(0, m.V, (1,), generator=g))
    base = {"input_ids": ids.to(torch.int32), "lens": torch.tensor(LENS, dtype=torch.int32),
            "labels": labels.to(torch.int32), "n_virtual": torch.tensor([N], dtype=torch.int32)}
    for method in ["soft", "deep", "prefix"]:
        out = dict(base)
        if method == "soft":
            P = (torch.randn(N, m.d, generator=g, dtype=torch.float32)).double().requires_grad_()
            prm, leaves, names = {"P": P}, [P], ["P"]
        elif method == "deep":
            Ps = [(torch.randn(N, m.d, generator=g, dtype=torch.float32)).double().requires_grad_() for _ in range(2)]
            prm, leaves, names = {"layers": [0, 1], "P": Ps}, Ps, ["P.0", "P.1"]
            out["layers"] = torch.tensor([0, 1], dtype=torch.int32)
        else:
            K = [(torch.randn(N, m.kvd, generator=g, dtype=torch.float32)).double().requires_grad_() for _ in range(m.L)]
            V = [(torch.randn(N, m.kvd, generator=g, dtype=torch.float32)).double().requires_grad_() for _ in range(m.L)]
            prm, leaves = {"K": K, "V": V}, K + V
            names = ["K.%d" % l for l in range(m.L)] + ["V.%d" % l for l in range(m.L)]
        loss = m.loss(ids, LENS, labels, method, prm)
        grads = torch.autograd.grad(loss, leaves)
        for nm, leaf, gr in zip(names, leaves, grads):
            out[nm] = leaf.detach().float()
            out["grad_" + nm] = gr.float()
        out["loss"] = torch.tensor([loss.item()], dtype=torch.float32)
        path = os.path.join(FIX, "grad_%s_%s.safetensors" % (name, method))
        R.write_safetensors(path, out)
        print("  %s %s: loss %.6f, max|grad| %.4g" % (name, method, loss.item(), max(g_.abs().max().item() for g_ in grads)))


if __name__ == "__main__":
    for i, name in enumerate(["llama_tiny", "llama3_tiny", "qwen2_tiny", "gpt2_tiny"]):
        make(name, 1000 + i)
    make("gemma_tiny", 1004)  # after the others, so their seeds (and files) stay as they were
    print("wrote", FIX)
