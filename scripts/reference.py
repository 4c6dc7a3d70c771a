#!/usr/bin/python3
"""reference.py: plain-PyTorch reference forward passes and the parity fixtures.

Writes everything under tests/fixtures/ (committed; CI has no torch):
  llama_tiny/            HF dir, model_type llama, F32, untied head, theta 1e4
  llama_tiny_f16/, llama_tiny_bf16/   the same weights rounded to F16 / BF16
  llama_tiny.bin         the same weights as a llama2.c .bin (version 0, Meta layout)
  llama_tiny.gguf        the same weights as GGUF v3, F32 (Q/K permuted as llama.cpp)
  llama_tiny_q8_0.gguf   the same, 2-D weights as Q8_0
  llama3_tiny/           HF dir, llama3 rope_scaling, theta 5e5, tied head
  qwen2_tiny/            HF dir, model_type qwen2, QKV bias, tied head
  gemma_tiny/            HF dir, model_type gemma (Gemma 1): head_dim 24 != 64/4, GeGLU,
                         sqrt(d) embedding scale, RMSNorm (1 + w) with w ~ N(0, 0.2), tied head
  gemma_tiny.gguf        the same weights as GGUF v3 (arch gemma) as llama.cpp's converter
                         writes it: norms stored as 1 + w, Q/K not permuted, no output.weight
  gpt2_tiny/             HF dir, model_type gpt2, Conv1D [in,out], names without prefix
  gpt2_tiny_f16/         the same rounded to F16, names with the "transformer." prefix
  gpt2_tiny.gguf         the F32 GPT-2 as GGUF v3 (arch gpt2)
  ref_<name>.safetensors input_ids I32 [2,T], lens I32 [2], logits F32 [2,T,V],
                         hidden F32 [L+1,2,T,d] (HF output_hidden_states order)
  ref_shared_logits.safetensors   logits of ../shared/fixtures/{aidreams,stories}260K.bin
  ref_greedy_aidreams.json        greedy generations of aidreams260K.bin with its tokenizer
The reference computes in float64 from the stored (possibly rounded or dequantized)
weights. A padded batch: row b has lens[b] real tokens (right padding with id 0),
positions 0..T-1, keys at or beyond lens[b] are masked, padded query rows are computed.

Run from the repository root:   /usr/bin/python3 scripts/reference.py
(Debian's python3-torch and python3-numpy; no other package. Deterministic: a rerun
rewrites byte-identical files. The shared-fixture parts are skipped with a message
when ../shared/fixtures is absent.)
"""
import json, math, os, struct, sys
import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures")
SHARED = next((p for p in [os.path.join(ROOT, "..", "shared", "fixtures"), "/work/shared/fixtures"]
               if os.path.isfile(os.path.join(p, "README.md"))), None)
torch.set_default_dtype(torch.float64)

# ---------------------------------------------------------------- reference models
def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

def layernorm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = (x - mu).pow(2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b

def gelu_tanh(x):
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))

def silu(x):
    return torch.nn.functional.silu(x)

def head_dim(cfg):
    """Gemma (and newer Llama-family configs) give head_dim; otherwise d / heads."""
    return cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]

def llama_family(cfg, stored=torch.float32):
    """What a Llama-like family changes, as in Hugging Face's modeling code:
    (embedding scale, RMSNorm weight -> scale, MLP activation). Gemma 1 multiplies
    the embeddings by sqrt(hidden_size), computed by HF as a tensor in the hidden
    dtype (the stored dtype: float32 here), scales RMSNorm by (1 + w) computed in
    float32 (GemmaRMSNorm: 1.0 + weight.float()), and runs gelu_pytorch_tanh(gate)
    * up whatever hidden_act says."""
    if cfg.get("model_type") == "gemma":
        scale = torch.tensor(cfg["hidden_size"] ** 0.5, dtype=stored).double()
        return scale, lambda w: (1.0 + w.float()).double(), gelu_tanh
    return None, lambda w: w, silu

def rope_inv_freq(cfg, hd):
    inv = 1.0 / (cfg.get("rope_theta", 10000.0) ** (torch.arange(0, hd, 2).double() / hd))
    sc = cfg.get("rope_scaling")
    if sc and sc.get("rope_type", sc.get("type")) == "llama3":  # Llama 3.1 frequency smoothing
        f, lo, hi, old = sc["factor"], sc["low_freq_factor"], sc["high_freq_factor"], sc["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        scaled = torch.where(wavelen > old / lo, inv / f, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        medium = (wavelen >= old / hi) & (wavelen <= old / lo)
        inv = torch.where(medium, (1 - smooth) * scaled / f + smooth * scaled, scaled)
    return inv

def attention(q, k, v, lens):
    """q [B,H,T,hd], k/v [B,KV,T,hd]; causal + key padding mask."""
    B, H, T, hd = q.shape
    rep = H // k.shape[1]
    k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    s = q @ k.transpose(-1, -2) / math.sqrt(hd)
    i = torch.arange(T)
    allowed = (i[None, :] <= i[:, None])[None] & (i[None, None, :] < torch.tensor(lens)[:, None, None])
    s = s.masked_fill(~allowed[:, None], float("-inf"))
    return torch.softmax(s, -1) @ v

def llama_forward(W, cfg, ids, lens, interleaved=False, family=None):
    """W: HF tensor names (model.layers.N...). interleaved=True: Q/K rows in Meta
    order and RoPE on pairs (2i, 2i+1) (checks the permutation semantically).
    Llama, Qwen2 and Gemma 1 (llama_family: embedding scale, (1 + w) norms, GeGLU;
    `family` overrides that triple, for the self-checks)."""
    d, H = cfg["hidden_size"], cfg["num_attention_heads"]
    KV, hd = cfg.get("num_key_value_heads", H), head_dim(cfg)
    eps, B, T = cfg["rms_norm_eps"], ids.shape[0], ids.shape[1]
    emb_scale, nw, act = family or llama_family(cfg)
    ang = torch.arange(T).double()[:, None] * rope_inv_freq(cfg, hd)[None]  # [T, hd/2]
    cos, sin = ang.cos(), ang.sin()

    def rope(x):  # [B,h,T,hd]
        if interleaved:
            a, b = x[..., 0::2], x[..., 1::2]
            return torch.stack([a * cos - b * sin, a * sin + b * cos], -1).flatten(-2)
        a, b = x[..., : hd // 2], x[..., hd // 2:]
        return torch.cat([a * cos - b * sin, b * cos + a * sin], -1)

    def lin(x, name):
        y = x @ W[name + ".weight"].T
        return y + W[name + ".bias"] if name + ".bias" in W else y

    x = W["model.embed_tokens.weight"][ids]
    if emb_scale is not None:
        x = x * emb_scale
    hidden = [x]
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        h = rmsnorm(x, nw(W[p + "input_layernorm.weight"]), eps)
        q = lin(h, p + "self_attn.q_proj").view(B, T, H, hd).transpose(1, 2)
        k = lin(h, p + "self_attn.k_proj").view(B, T, KV, hd).transpose(1, 2)
        v = lin(h, p + "self_attn.v_proj").view(B, T, KV, hd).transpose(1, 2)
        o = attention(rope(q), rope(k), v, lens).transpose(1, 2).reshape(B, T, H * hd)
        x = x + lin(o, p + "self_attn.o_proj")
        h = rmsnorm(x, nw(W[p + "post_attention_layernorm.weight"]), eps)
        x = x + lin(act(lin(h, p + "mlp.gate_proj")) * lin(h, p + "mlp.up_proj"), p + "mlp.down_proj")
        if l < cfg["num_hidden_layers"] - 1:
            hidden.append(x)
    x = rmsnorm(x, nw(W["model.norm.weight"]), eps)
    hidden.append(x)
    head = W.get("lm_head.weight", W["model.embed_tokens.weight"])
    return x @ head.T, torch.stack(hidden)

def gpt2_forward(W, cfg, ids, lens):
    """W: names without the transformer. prefix; Conv1D weights [in, out]."""
    d, H, eps = cfg["n_embd"], cfg["n_head"], cfg["layer_norm_epsilon"]
    B, T, hd = ids.shape[0], ids.shape[1], d // H
    conv = lambda x, n: x @ W[n + ".weight"] + W[n + ".bias"]
    x = W["wte.weight"][ids] + W["wpe.weight"][:T][None]
    hidden = [x]
    for l in range(cfg["n_layer"]):
        p = "h.%d." % l
        h = layernorm(x, W[p + "ln_1.weight"], W[p + "ln_1.bias"], eps)
        q, k, v = [t.view(B, T, H, hd).transpose(1, 2) for t in conv(h, p + "attn.c_attn").split(d, -1)]
        x = x + conv(attention(q, k, v, lens).transpose(1, 2).reshape(B, T, d), p + "attn.c_proj")
        h = layernorm(x, W[p + "ln_2.weight"], W[p + "ln_2.bias"], eps)
        x = x + conv(gelu_tanh(conv(h, p + "mlp.c_fc")), p + "mlp.c_proj")
        if l < cfg["n_layer"] - 1:
            hidden.append(x)
    x = layernorm(x, W["ln_f.weight"], W["ln_f.bias"], eps)
    hidden.append(x)
    return x @ W["wte.weight"].T, torch.stack(hidden)

# ---------------------------------------------------------------- file writers
ST_DT = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int32: "I32"}

def tbytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()

def write_safetensors(path, tensors, meta=None):
    header, blobs, off = {}, [], 0
    if meta:
        header["__metadata__"] = meta
    for name, t in tensors.items():
        b = tbytes(t)
        header[name] = {"dtype": ST_DT[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))

def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header, data = json.loads(f.read(n)), f.read()
    out = {}
    for k, e in header.items():
        if k == "__metadata__":
            continue
        raw = data[e["data_offsets"][0]:e["data_offsets"][1]]
        np_dt = {"F32": np.float32, "F16": np.float16, "BF16": np.int16, "I32": np.int32}[e["dtype"]]
        t = torch.from_numpy(np.frombuffer(raw, np_dt).copy()).view(e["shape"])
        out[k] = t.view(torch.bfloat16) if e["dtype"] == "BF16" else t
    return out

def write_hf_dir(path, cfg, W, dtype):
    os.makedirs(path, exist_ok=True)
    c = dict(cfg, torch_dtype={torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}[dtype])
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(c, f, indent=2, sort_keys=True)
        f.write("\n")
    write_safetensors(os.path.join(path, "model.safetensors"), {k: v.to(dtype) for k, v in W.items()},
                      {"format": "pt"})

def meta_permute(w, n_heads):
    """HF rotate_half rows -> Meta interleaved rows (inverse of HF's convert permute);
    llama2.c's export and llama.cpp's converter apply the same permutation."""
    return w.reshape(n_heads, 2, w.shape[0] // n_heads // 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)

def hf_permute(w, n_heads):
    """Meta interleaved rows -> HF rotate_half rows (HF's convert_llama_weights_to_hf)."""
    return w.reshape(n_heads, w.shape[0] // n_heads // 2, 2, *w.shape[1:]).transpose(1, 2).reshape(w.shape)

def write_llama2c(path, cfg, W):
    d, L, H = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]
    KV, hd, S, V = cfg["num_key_value_heads"], d // H, cfg["max_position_embeddings"], cfg["vocab_size"]
    tied = "lm_head.weight" not in W
    f32 = lambda t: t.to(torch.float32).contiguous().numpy().tobytes()
    lay = lambda n, perm=None: b"".join(f32(perm(W["model.layers.%d.%s" % (l, n)]) if perm else W["model.layers.%d.%s" % (l, n)]) for l in range(L))
    parts = [struct.pack("<7i", d, cfg["intermediate_size"], L, H, KV, V if tied else -V, S),
             f32(W["model.embed_tokens.weight"]), lay("input_layernorm.weight"),
             lay("self_attn.q_proj.weight", lambda w: meta_permute(w, H)),
             lay("self_attn.k_proj.weight", lambda w: meta_permute(w, KV)),
             lay("self_attn.v_proj.weight"), lay("self_attn.o_proj.weight"),
             lay("post_attention_layernorm.weight"), lay("mlp.gate_proj.weight"),
             lay("mlp.down_proj.weight"), lay("mlp.up_proj.weight"), f32(W["model.norm.weight"])]
    ang = torch.arange(S).double()[:, None] * rope_inv_freq({}, hd)[None]
    parts += [f32(ang.cos()), f32(ang.sin())]  # legacy freq_cis tables, unused by readers
    if not tied:
        parts.append(f32(W["lm_head.weight"]))
    with open(path, "wb") as f:
        f.write(b"".join(parts))

def read_llama2c(path):
    """A llama2.c .bin as an HF-layout config and F32 weight dict."""
    raw = open(path, "rb").read()
    d, hid, L, H, KV, V, S = struct.unpack("<7i", raw[:28])
    tied, V, hd = V > 0, abs(V), d // H
    a, pos = np.frombuffer(raw, np.float32, offset=28), 0
    def take(*shape):
        nonlocal pos
        n = int(np.prod(shape))
        t = torch.from_numpy(a[pos:pos + n].copy()).view(*shape)
        pos += n
        return t
    W = {"model.embed_tokens.weight": take(V, d)}
    for n, shape in [("input_layernorm", (d,)), ("self_attn.q_proj", (H * hd, d)), ("self_attn.k_proj", (KV * hd, d)),
                     ("self_attn.v_proj", (KV * hd, d)), ("self_attn.o_proj", (d, H * hd)),
                     ("post_attention_layernorm", (d,)), ("mlp.gate_proj", (hid, d)), ("mlp.down_proj", (d, hid)),
                     ("mlp.up_proj", (hid, d))]:
        for l in range(L):
            w = take(*shape)
            w = hf_permute(w, H) if n == "self_attn.q_proj" else hf_permute(w, KV) if n == "self_attn.k_proj" else w
            W["model.layers.%d.%s.weight" % (l, n)] = w
    W["model.norm.weight"] = take(d)
    take(S, hd // 2), take(S, hd // 2)
    if not tied:
        W["lm_head.weight"] = take(V, d)
    assert pos == a.size, "trailing data in " + path
    cfg = dict(hidden_size=d, intermediate_size=hid, num_hidden_layers=L, num_attention_heads=H,
               num_key_value_heads=KV, vocab_size=V, max_position_embeddings=S, rms_norm_eps=1e-5, rope_theta=10000.0)
    return cfg, W

# GGUF v3: header, key/values, tensor infos (dims innermost first), aligned data.
GG_U32, GG_I32, GG_F32, GG_STR, GG_ARR = 4, 5, 6, 8, 9
GGML_F32, GGML_F16, GGML_Q8_0 = 0, 1, 8

def gg_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b

def gg_kv(key, typ, val):
    out = gg_str(key) + struct.pack("<I", typ)
    if typ == GG_STR:
        return out + gg_str(val)
    if typ == GG_ARR:
        et, items = val
        body = b"".join(gg_str(x) for x in items) if et == GG_STR else struct.pack("<%d%s" % (len(items), {GG_F32: "f", GG_I32: "i"}[et]), *items)
        return out + struct.pack("<IQ", et, len(items)) + body
    return out + struct.pack({GG_U32: "<I", GG_I32: "<i", GG_F32: "<f"}[typ], val)

def q8_0(w):
    """Quantizes rows of w (float32 [.., n], n % 32 == 0) as llama.cpp's reference does;
    returns (block bytes, dequantized float32 tensor)."""
    x = w.to(torch.float32).numpy().reshape(-1, 32)
    d = np.abs(x).max(1) / 127.0
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1), 0).astype(np.float32)
    v = x * inv[:, None]
    q = (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int8)
    d16 = d.astype(np.float16)
    blocks = np.zeros(x.shape[0], dtype=[("d", "<f2"), ("q", "i1", 32)])
    blocks["d"], blocks["q"] = d16, q
    deq = (q.astype(np.float32) * d16.astype(np.float32)[:, None]).reshape(w.shape)
    return blocks.tobytes(), torch.from_numpy(deq)

def write_gguf(path, kvs, tensors, align=32):
    """tensors: list of (name, torch tensor in row-major torch shape, ggml type)."""
    infos, blobs, off, deq = [], [], 0, {}
    for name, t, typ in tensors:
        if typ == GGML_Q8_0:
            b, deq[name] = q8_0(t)
        else:
            b = tbytes(t.to(torch.float16 if typ == GGML_F16 else torch.float32))
        infos.append(gg_str(name) + struct.pack("<I", t.dim()) + struct.pack("<%dQ" % t.dim(), *reversed(t.shape))
                     + struct.pack("<IQ", typ, off))
        pad = (align - len(b) % align) % align
        blobs.append(b + b"\0" * pad)
        off += len(b) + pad
    kvs = [("general.alignment", GG_U32, align)] + kvs
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(gg_kv(*kv) for kv in kvs) + b"".join(infos)
    head += b"\0" * ((align - len(head) % align) % align)
    with open(path, "wb") as f:
        f.write(head + b"".join(blobs))
    return deq

def read_gguf(path):
    """Minimal reader to check the writer: {name: (ggml type, torch-order shape, bytes)}, {key: value}."""
    raw, pos = open(path, "rb").read(), 0
    def rd(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, raw, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]
    def rs():
        nonlocal pos
        n = rd("Q"); s = raw[pos:pos + n].decode(); pos += n
        return s
    def rv(t):
        if t == GG_STR: return rs()
        if t == GG_ARR:
            et, n = rd("I"), rd("Q")
            return [rv(et) for _ in range(n)]
        return rd({GG_U32: "I", GG_I32: "i", GG_F32: "f"}[t])
    assert raw[:4] == b"GGUF"; pos = 4
    ver, nt, nkv = rd("I"), rd("Q"), rd("Q")
    kv = {}
    for _ in range(nkv):
        k = rs(); kv[k] = rv(rd("I"))
    infos = []
    for _ in range(nt):
        name = rs(); nd = rd("I"); dims = [rd("Q") for _ in range(nd)]; typ = rd("I"); off = rd("Q")
        infos.append((name, typ, dims[::-1], off))
    align = kv.get("general.alignment", 32)
    base = (pos + align - 1) // align * align
    out = {}
    for name, typ, shape, off in infos:
        n = int(np.prod(shape))
        nb = {GGML_F32: 4 * n, GGML_F16: 2 * n, GGML_Q8_0: n // 32 * 34}[typ]
        out[name] = (typ, shape, raw[base + off: base + off + nb])
    return out, kv

def gguf_vocab(V):
    toks = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % i for i in range(256)]
    toks += ["\u2581t%d" % i for i in range(V - len(toks))]
    return [("tokenizer.ggml.model", GG_STR, "llama"), ("tokenizer.ggml.tokens", GG_ARR, (GG_STR, toks)),
            ("tokenizer.ggml.scores", GG_ARR, (GG_F32, [-float(i) for i in range(V)])),
            ("tokenizer.ggml.token_type", GG_ARR, (GG_I32, [2, 3, 3] + [6] * 256 + [1] * (V - 259))),
            ("tokenizer.ggml.bos_token_id", GG_U32, 1), ("tokenizer.ggml.eos_token_id", GG_U32, 2)]

def write_gguf_llama(path, cfg, W, qtype):
    d, L, H, KV = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    kvs = [("general.architecture", GG_STR, "llama"), ("general.name", GG_STR, "llama_tiny"),
           ("general.file_type", GG_U32, 7 if qtype == GGML_Q8_0 else 0),
           ("llama.context_length", GG_U32, cfg["max_position_embeddings"]), ("llama.embedding_length", GG_U32, d),
           ("llama.block_count", GG_U32, L), ("llama.feed_forward_length", GG_U32, cfg["intermediate_size"]),
           ("llama.rope.dimension_count", GG_U32, d // H), ("llama.attention.head_count", GG_U32, H),
           ("llama.attention.head_count_kv", GG_U32, KV), ("llama.rope.freq_base", GG_F32, cfg["rope_theta"]),
           ("llama.attention.layer_norm_rms_epsilon", GG_F32, cfg["rms_norm_eps"]),
           ("llama.vocab_size", GG_U32, cfg["vocab_size"])] + gguf_vocab(cfg["vocab_size"])
    T = [("token_embd.weight", W["model.embed_tokens.weight"], qtype)]
    names = [("attn_norm", "input_layernorm"), ("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"),
             ("attn_v", "self_attn.v_proj"), ("attn_output", "self_attn.o_proj"), ("ffn_norm", "post_attention_layernorm"),
             ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"), ("ffn_down", "mlp.down_proj")]
    for l in range(L):
        for g, h in names:
            w = W["model.layers.%d.%s.weight" % (l, h)]
            w = meta_permute(w, H) if g == "attn_q" else meta_permute(w, KV) if g == "attn_k" else w
            T.append(("blk.%d.%s.weight" % (l, g), w, GGML_F32 if w.dim() == 1 else qtype))
    T.append(("output_norm.weight", W["model.norm.weight"], GGML_F32))
    if "lm_head.weight" in W:
        T.append(("output.weight", W["lm_head.weight"], qtype))
    deq = write_gguf(path, kvs, T)
    # Dequantized weights back in HF names/layout, for the Q8_0 reference.
    Wd = dict(W)
    for l in range(L):
        for g, h in names:
            key = "blk.%d.%s.weight" % (l, g)
            if key in deq:
                w = deq[key]
                Wd["model.layers.%d.%s.weight" % (l, h)] = hf_permute(w, H) if g == "attn_q" else hf_permute(w, KV) if g == "attn_k" else w
    if "token_embd.weight" in deq: Wd["model.embed_tokens.weight"] = deq["token_embd.weight"]
    if "output.weight" in deq: Wd["lm_head.weight"] = deq["output.weight"]
    return Wd

def write_gguf_gpt2(path, cfg, W):
    d, L = cfg["n_embd"], cfg["n_layer"]
    kvs = [("general.architecture", GG_STR, "gpt2"), ("general.name", GG_STR, "gpt2_tiny"), ("general.file_type", GG_U32, 0),
           ("gpt2.context_length", GG_U32, cfg["n_positions"]), ("gpt2.embedding_length", GG_U32, d),
           ("gpt2.feed_forward_length", GG_U32, 4 * d), ("gpt2.block_count", GG_U32, L),
           ("gpt2.attention.head_count", GG_U32, cfg["n_head"]),
           ("gpt2.attention.layer_norm_epsilon", GG_F32, cfg["layer_norm_epsilon"])]
    T = [("token_embd.weight", W["wte.weight"], GGML_F32), ("position_embd.weight", W["wpe.weight"], GGML_F32)]
    for l in range(L):
        for g, h in [("attn_norm", "ln_1"), ("attn_qkv", "attn.c_attn"), ("attn_output", "attn.c_proj"),
                     ("ffn_norm", "ln_2"), ("ffn_up", "mlp.c_fc"), ("ffn_down", "mlp.c_proj")]:
            w = W["h.%d.%s.weight" % (l, h)]
            T.append(("blk.%d.%s.weight" % (l, g), w.T.contiguous() if w.dim() == 2 else w, GGML_F32))  # Conv1D -> [out,in]
            T.append(("blk.%d.%s.bias" % (l, g), W["h.%d.%s.bias" % (l, h)], GGML_F32))
    T += [("output_norm.weight", W["ln_f.weight"], GGML_F32), ("output_norm.bias", W["ln_f.bias"], GGML_F32),
          ("output.weight", W["wte.weight"], GGML_F32)]  # the converter stores the tied head again
    write_gguf(path, kvs, T)

GEMMA_TENSORS = [("attn_norm", "input_layernorm"), ("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"),
                 ("attn_v", "self_attn.v_proj"), ("attn_output", "self_attn.o_proj"),
                 ("ffn_norm", "post_attention_layernorm"), ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"),
                 ("ffn_down", "mlp.down_proj")]

def write_gguf_gemma(path, cfg, W):
    """As llama.cpp's GemmaModel converter (conversion/gemma.py, formerly in
    convert_hf_to_gguf.py) writes a Gemma 1 checkpoint: gemma.* keys with head_dim as
    attention.key_length/value_length and no rope keys (llama.cpp defaults the base to
    1e4 and runs NEOX RoPE, HF's rotate_half layout, so Q/K are not permuted); every
    *norm.weight stored as w + 1 (in the checkpoint's dtype: float32 here, as HF's
    GemmaRMSNorm computes it); lm_head skipped, the head is token_embd."""
    d, L, H = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]
    hd = head_dim(cfg)
    kvs = [("general.architecture", GG_STR, "gemma"), ("general.name", GG_STR, "gemma_tiny"),
           ("general.file_type", GG_U32, 0), ("gemma.context_length", GG_U32, cfg["max_position_embeddings"]),
           ("gemma.embedding_length", GG_U32, d), ("gemma.block_count", GG_U32, L),
           ("gemma.feed_forward_length", GG_U32, cfg["intermediate_size"]), ("gemma.attention.head_count", GG_U32, H),
           ("gemma.attention.head_count_kv", GG_U32, cfg["num_key_value_heads"]),
           ("gemma.attention.layer_norm_rms_epsilon", GG_F32, cfg["rms_norm_eps"]),
           ("gemma.attention.key_length", GG_U32, hd), ("gemma.attention.value_length", GG_U32, hd)]
    kvs += gguf_vocab(cfg["vocab_size"])
    plus1 = lambda w: w + 1  # float32 + 1 in float32, as the converter does on an F32 checkpoint
    T = [("token_embd.weight", W["model.embed_tokens.weight"], GGML_F32)]
    for l in range(L):
        for g, h in GEMMA_TENSORS:
            w = W["model.layers.%d.%s.weight" % (l, h)]
            T.append(("blk.%d.%s.weight" % (l, g), plus1(w) if g.endswith("_norm") else w, GGML_F32))
    T.append(("output_norm.weight", plus1(W["model.norm.weight"]), GGML_F32))
    write_gguf(path, kvs, T)

# ---------------------------------------------------------------- tiny models
def rand_llama(seed, cfg, bias=False):
    """Norm weights around 1 (Llama) or around 0 (Gemma, which scales by 1 + w);
    Gemma's embeddings N(0, 1/d), so that after the sqrt(d) scale the stream is O(1)
    and the MLP (and its GELU variant) visibly moves the logits."""
    g = torch.Generator().manual_seed(seed)
    d, L, H, KV, F, V = (cfg[k] for k in ["hidden_size", "num_hidden_layers", "num_attention_heads",
                                         "num_key_value_heads", "intermediate_size", "vocab_size"])
    hd = head_dim(cfg)
    gemma = cfg["model_type"] == "gemma"
    n0 = 0 if gemma else 1
    r = lambda *s, std=1.0: (torch.randn(*s, generator=g, dtype=torch.float32) * std)
    W = {"model.embed_tokens.weight": r(V, d, std=d ** -0.5 if gemma else 1.0)}
    for l in range(L):
        p = "model.layers.%d." % l
        W[p + "input_layernorm.weight"] = n0 + r(d, std=0.2)
        for n, o, i in [("q", H * hd, d), ("k", KV * hd, d), ("v", KV * hd, d), ("o", d, H * hd)]:
            W[p + "self_attn.%s_proj.weight" % n] = r(o, i, std=i ** -0.5)
            if bias and n != "o":
                W[p + "self_attn.%s_proj.bias" % n] = r(o, std=0.5)
        W[p + "post_attention_layernorm.weight"] = n0 + r(d, std=0.2)
        W[p + "mlp.gate_proj.weight"] = r(F, d, std=d ** -0.5)
        W[p + "mlp.up_proj.weight"] = r(F, d, std=d ** -0.5)
        W[p + "mlp.down_proj.weight"] = r(d, F, std=F ** -0.5)
    W["model.norm.weight"] = n0 + r(d, std=0.2)
    if not cfg["tie_word_embeddings"]:
        W["lm_head.weight"] = r(V, d, std=d ** -0.5)
    return W

def rand_gpt2(seed, cfg):
    g = torch.Generator().manual_seed(seed)
    d, L, V, P = cfg["n_embd"], cfg["n_layer"], cfg["vocab_size"], cfg["n_positions"]
    r = lambda *s, std=1.0: (torch.randn(*s, generator=g, dtype=torch.float32) * std)
    W = {"wte.weight": r(V, d, std=0.5), "wpe.weight": r(P, d, std=0.5)}
    for l in range(L):
        p = "h.%d." % l
        for n, i, o in [("attn.c_attn", d, 3 * d), ("attn.c_proj", d, d), ("mlp.c_fc", d, 4 * d), ("mlp.c_proj", 4 * d, d)]:
            W[p + n + ".weight"] = r(i, o, std=i ** -0.5)
            W[p + n + ".bias"] = r(o, std=0.2)
        for n in ["ln_1", "ln_2"]:
            W[p + n + ".weight"], W[p + n + ".bias"] = 1 + r(d, std=0.2), r(d, std=0.2)
    W["ln_f.weight"], W["ln_f.bias"] = 1 + r(d, std=0.2), r(d, std=0.2)
    return W

LLAMA_CFG = dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=64, intermediate_size=128,
                 num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=300,
                 max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                 hidden_act="silu", attention_bias=False, bos_token_id=1, eos_token_id=2)
LLAMA3_CFG = dict(LLAMA_CFG, rope_theta=500000.0, tie_word_embeddings=True, max_position_embeddings=512,
                  rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                    original_max_position_embeddings=64))
QWEN2_CFG = dict(LLAMA_CFG, architectures=["Qwen2ForCausalLM"], model_type="qwen2", rope_theta=1000000.0,
                 rms_norm_eps=1e-6, tie_word_embeddings=True, use_sliding_window=False, max_position_embeddings=128)
del QWEN2_CFG["attention_bias"]
# Gemma 1 as in google/gemma-2b's config.json (hidden_act "gelu", hidden_activation
# "gelu_pytorch_tanh": HF runs the tanh GELU either way), scaled down; head_dim 24
# is not hidden_size / heads = 16, so a loader that derives it fails the shapes.
GEMMA_CFG = dict(architectures=["GemmaForCausalLM"], model_type="gemma", hidden_size=64, intermediate_size=96,
                 num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=24, vocab_size=300,
                 max_position_embeddings=64, rms_norm_eps=1e-6, rope_theta=10000.0, hidden_act="gelu",
                 hidden_activation="gelu_pytorch_tanh", attention_bias=False, tie_word_embeddings=True,
                 bos_token_id=2, eos_token_id=1, pad_token_id=0)
GPT2_CFG = dict(architectures=["GPT2LMHeadModel"], model_type="gpt2", n_embd=64, n_layer=2, n_head=4, n_positions=64,
                n_ctx=64, vocab_size=300, layer_norm_epsilon=1e-5, activation_function="gelu_new",
                bos_token_id=0, eos_token_id=0)

def batch(seed, V):
    g = torch.Generator().manual_seed(seed)
    lens = [11, 7]
    ids = torch.randint(3, V, (2, 11), generator=g)
    ids[1, lens[1]:] = 0  # right padding
    return ids, lens

def f64(W):
    return {k: v.double() for k, v in W.items()}

def save_ref(name, ids, lens, logits, hidden):
    write_safetensors(os.path.join(OUT, "ref_%s.safetensors" % name),
                      {"input_ids": ids.to(torch.int32), "lens": torch.tensor(lens, dtype=torch.int32),
                       "logits": logits.float(), "hidden": hidden.float()})
    print("  ref_%s: logits %s max|.| %.3f, hidden %s" % (name, list(logits.shape), logits.abs().max(), list(hidden.shape)))

def rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()

def make_tiny():
    os.makedirs(OUT, exist_ok=True)
    ids, lens = batch(1234, 300)
    # Llama, three dtypes and three formats.
    W = rand_llama(1, LLAMA_CFG)
    for dt, suffix in [(torch.float32, ""), (torch.float16, "_f16"), (torch.bfloat16, "_bf16")]:
        write_hf_dir(os.path.join(OUT, "llama_tiny" + suffix), LLAMA_CFG, W, dt)
        logits, hidden = llama_forward(f64({k: v.to(dt) for k, v in W.items()}), LLAMA_CFG, ids, lens)
        save_ref("llama_tiny" + suffix, ids, lens, logits, hidden)
        if dt == torch.float32:
            ref_logits = logits
    # Self-checks: the Meta layout with interleaved RoPE is the same model; the .bin
    # and GGUF files read back to the same weights.
    Wm = dict(W)
    for l in range(2):
        p = "model.layers.%d.self_attn." % l
        Wm[p + "q_proj.weight"] = meta_permute(W[p + "q_proj.weight"], 4)
        Wm[p + "k_proj.weight"] = meta_permute(W[p + "k_proj.weight"], 2)
    li, _ = llama_forward(f64(Wm), LLAMA_CFG, ids, lens, interleaved=True)
    print("  check: interleaved Meta layout vs HF layout rel %.2e" % rel(li, ref_logits))
    assert rel(li, ref_logits) < 1e-12
    write_llama2c(os.path.join(OUT, "llama_tiny.bin"), LLAMA_CFG, W)
    _, Wb = read_llama2c(os.path.join(OUT, "llama_tiny.bin"))
    assert set(Wb) == set(W) and all(torch.equal(Wb[k], W[k]) for k in W)
    write_gguf_llama(os.path.join(OUT, "llama_tiny.gguf"), LLAMA_CFG, W, GGML_F32)
    tg, kv = read_gguf(os.path.join(OUT, "llama_tiny.gguf"))
    assert kv["llama.attention.head_count_kv"] == 2 and len(kv["tokenizer.ggml.tokens"]) == 300
    wq = torch.from_numpy(np.frombuffer(tg["blk.1.attn_q.weight"][2], np.float32).copy()).view(tg["blk.1.attn_q.weight"][1])
    wk = torch.from_numpy(np.frombuffer(tg["blk.0.attn_k.weight"][2], np.float32).copy()).view(tg["blk.0.attn_k.weight"][1])
    assert torch.equal(hf_permute(wq, 4), W["model.layers.1.self_attn.q_proj.weight"])
    assert torch.equal(hf_permute(wk, 2), W["model.layers.0.self_attn.k_proj.weight"])
    Wq = write_gguf_llama(os.path.join(OUT, "llama_tiny_q8_0.gguf"), LLAMA_CFG, W, GGML_Q8_0)
    tq, _ = read_gguf(os.path.join(OUT, "llama_tiny_q8_0.gguf"))
    assert tq["blk.0.ffn_down.weight"][0] == GGML_Q8_0 and len(tq["blk.0.ffn_down.weight"][2]) == 64 * 128 // 32 * 34
    logits, hidden = llama_forward(f64(Wq), LLAMA_CFG, ids, lens)
    print("  check: Q8_0 dequantized vs F32 logits rel %.2e" % rel(logits, ref_logits))
    save_ref("llama_tiny_q8_0", ids, lens, logits, hidden)
    # Llama-3 rope scaling, Qwen2 bias.
    for name, cfg, seed, bias in [("llama3_tiny", LLAMA3_CFG, 3, False), ("qwen2_tiny", QWEN2_CFG, 4, True)]:
        Wv = rand_llama(seed, cfg, bias)
        write_hf_dir(os.path.join(OUT, name), cfg, Wv, torch.float32)
        logits, hidden = llama_forward(f64(Wv), cfg, ids, lens)
        save_ref(name, ids, lens, logits, hidden)
    nos = llama_forward(f64(rand_llama(3, LLAMA3_CFG)), dict(LLAMA3_CFG, rope_scaling=None), ids, lens)[0]
    print("  check: llama3 scaling changes logits by rel %.2e" % rel(nos, llama_forward(f64(rand_llama(3, LLAMA3_CFG)), LLAMA3_CFG, ids, lens)[0]))
    make_gemma(ids, lens)
    # GPT-2.
    Wg = rand_gpt2(5, GPT2_CFG)
    write_hf_dir(os.path.join(OUT, "gpt2_tiny"), GPT2_CFG, Wg, torch.float32)
    save_ref("gpt2_tiny", ids, lens, *gpt2_forward(f64(Wg), GPT2_CFG, ids, lens))
    write_hf_dir(os.path.join(OUT, "gpt2_tiny_f16"), GPT2_CFG, {"transformer." + k: v for k, v in Wg.items()}, torch.float16)
    save_ref("gpt2_tiny_f16", ids, lens, *gpt2_forward(f64({k: v.half() for k, v in Wg.items()}), GPT2_CFG, ids, lens))
    write_gguf_gpt2(os.path.join(OUT, "gpt2_tiny.gguf"), GPT2_CFG, Wg)
    assert read_gguf(os.path.join(OUT, "gpt2_tiny.gguf"))[0]["blk.1.attn_qkv.weight"][1] == [192, 64]

def make_gemma(ids, lens):
    W = rand_llama(6, GEMMA_CFG)
    write_hf_dir(os.path.join(OUT, "gemma_tiny"), GEMMA_CFG, W, torch.float32)
    logits, hidden = llama_forward(f64(W), GEMMA_CFG, ids, lens)
    save_ref("gemma_tiny", ids, lens, logits, hidden)
    # Self-checks: the activation is torch's tanh GELU; each Gemma difference moves the logits.
    x = torch.linspace(-6, 6, 101)
    assert (gelu_tanh(x) - torch.nn.functional.gelu(x, approximate="tanh")).abs().max() < 1e-15
    scale, nw, act = llama_family(GEMMA_CFG)
    for what, fam in [("no sqrt(d) embedding scale", (None, nw, act)), ("norms w, not 1 + w", (scale, lambda w: w, act)),
                      ("silu, not gelu_tanh", (scale, nw, silu)),
                      ("erf GELU, not tanh", (scale, nw, lambda t: torch.nn.functional.gelu(t)))]:
        e = rel(llama_forward(f64(W), GEMMA_CFG, ids, lens, family=fam)[0], logits)
        print("  check: gemma with %s: logits move by rel %.2e" % (what, e))
        # Ten times the parity bound, so a C forward making the mistake fails. Not for
        # erf vs tanh GELU (~1e-4 here): that is pinned by the gelu_tanh kernel tests.
        assert e > 1e-3 or what.startswith("erf")
    # The GGUF file reads back as the converter writes it: 1 + w norms, unpermuted Q/K, no head.
    write_gguf_gemma(os.path.join(OUT, "gemma_tiny.gguf"), GEMMA_CFG, W)
    tg, kv = read_gguf(os.path.join(OUT, "gemma_tiny.gguf"))
    f32 = lambda name: torch.from_numpy(np.frombuffer(tg[name][2], np.float32).copy()).view(tg[name][1])
    assert kv["gemma.attention.key_length"] == 24 and "output.weight" not in tg
    assert torch.equal(f32("blk.2.attn_q.weight"), W["model.layers.2.self_attn.q_proj.weight"])
    assert torch.equal(f32("blk.1.attn_k.weight"), W["model.layers.1.self_attn.k_proj.weight"])
    assert torch.equal(f32("blk.0.ffn_norm.weight"), 1 + W["model.layers.0.post_attention_layernorm.weight"])
    assert torch.equal(f32("output_norm.weight"), (1.0 + W["model.norm.weight"].float()))

# ---------------------------------------------------------------- shared fixtures
class Llama2cTokenizer:
    """llama2.c tokenizer.bin: int32 max_token_length, then per token: f32 score, int32 len, bytes."""
    def __init__(self, path, V):
        raw, pos = open(path, "rb").read(), 4
        self.pieces, self.scores = [], []
        for _ in range(V):
            s, n = struct.unpack_from("<fi", raw, pos)
            self.pieces.append(raw[pos + 8: pos + 8 + n]); self.scores.append(s); pos += 8 + n
        self.lookup = {}
        for i, p in enumerate(self.pieces):
            self.lookup.setdefault(p, i)  # first id wins, like a stable sorted lookup

    def encode(self, text):
        ids = [1]  # BOS
        b = text.encode()
        if b:
            ids.append(self.lookup[b" "])  # run.c's dummy prefix
        i = 0
        while i < len(b):  # one UTF-8 code point at a time, bytes (+3) when absent
            n = 1
            while i + n < len(b) and (b[i + n] & 0xC0) == 0x80 and n < 4:
                n += 1
            cp = b[i:i + n]
            ids += [self.lookup[cp]] if cp in self.lookup else [c + 3 for c in cp]
            i += n
        while True:  # merge the best-scoring adjacent pair (leftmost on ties)
            best, at = None, -1
            for j in range(len(ids) - 1):  # BOS included, as run.c does
                m = self.lookup.get(self.pieces[ids[j]] + self.pieces[ids[j + 1]])
                if m is not None and (best is None or self.scores[m] > self.scores[best]):
                    best, at = m, j
            if best is None:
                break
            ids[at:at + 2] = [best]
        return ids

    def piece(self, prev, tok):
        p = self.pieces[tok]
        if prev == 1 and p[:1] == b" ":
            p = p[1:]
        if len(p) == 6 and p[:3] == b"<0x" and p[5:] == b">":
            p = bytes([int(p[3:5], 16)])
        return p

    def decode(self, ids, prev):
        out = b""
        for t in ids:
            out += self.piece(prev, t)
            prev = t
        return out.decode("utf-8", errors="replace")

def make_shared():
    if SHARED is None:
        print("  ../shared/fixtures absent: skipping ref_shared_logits and ref_greedy_aidreams")
        return
    T = {}
    for name in ["aidreams260K", "stories260K"]:
        cfg, W = read_llama2c(os.path.join(SHARED, name + ".bin"))
        g = torch.Generator().manual_seed(77)
        ids = torch.cat([torch.tensor([1]), torch.randint(3, cfg["vocab_size"], (15,), generator=g)])[None]
        logits, _ = llama_forward(f64(W), cfg, ids, [16])
        T[name + "_ids"] = ids[0].to(torch.int32)
        T[name + "_logits"] = logits[0].float()
        print("  %s: logits [16, %d], max|.| %.3f" % (name, cfg["vocab_size"], logits.abs().max()))
    write_safetensors(os.path.join(OUT, "ref_shared_logits.safetensors"), T)
    cfg, W = read_llama2c(os.path.join(SHARED, "aidreams260K.bin"))
    W = f64(W)
    tok = Llama2cTokenizer(os.path.join(SHARED, "aidreams260K.tok512.bin"), cfg["vocab_size"])
    cases = []
    for prompt in ["I dreamed", "The old house by the sea", "In my dream a robot"]:
        pids = tok.encode(prompt)
        ids, gen, margin = list(pids), [], 1e9
        for _ in range(40):
            lg = llama_forward(W, cfg, torch.tensor([ids]), [len(ids)])[0][0, -1]
            top = torch.topk(lg, 2).values
            margin = min(margin, (top[0] - top[1]).item())
            nxt = int(lg.argmax())
            gen.append(nxt); ids.append(nxt)
            if nxt == 2:
                break
        text = tok.decode(gen, pids[-1])
        full = tok.decode(pids[1:] + gen, pids[0])
        print("  greedy %r -> %r (min top-2 margin %.3g)" % (prompt, text, margin))
        cases.append(dict(prompt=prompt, prompt_ids=pids, generated_ids=gen, text=text, full_text=full,
                          min_top2_margin=round(margin, 6)))
    with open(os.path.join(OUT, "ref_greedy_aidreams.json"), "w") as f:
        head = dict(model="aidreams260K.bin", tokenizer="aidreams260K.tok512.bin", max_new_tokens=40, stop_at_eos=2)
        f.write(json.dumps(head, ensure_ascii=False)[:-1] + ',\n "cases": [\n  ')
        f.write(",\n  ".join(json.dumps(c, ensure_ascii=False) for c in cases) + "\n ]\n}\n")

if __name__ == "__main__":
    make_tiny()
    make_shared()
    print("wrote", OUT)
