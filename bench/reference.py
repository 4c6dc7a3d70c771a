#!/usr/bin/python3
"""Plain-PyTorch reference for ptune's benchmarks (run with Debian's torch:
/usr/bin/python3). Same shapes, same work, same FLOP formula as `ptune bench`.

  /usr/bin/python3 bench/reference.py forward --random-config C --batch B --seq T [--dtype fp32|bf16]
  /usr/bin/python3 bench/reference.py tune    --random-config C --batch B --seq T --tokens N [--dtype ..]
                                              [--loss-last K]

forward: torch.no_grad() forward with logits at every position.
tune:    one prompt-tuning step: N trainable soft-prompt vectors before the
         token embeddings, frozen weights (requires_grad False), loss on every
         real token (or the last K of each row), backward, AdamW on the prompt.
         Logits are computed at every position, as Hugging Face does by default.
Prints one JSON object: median_s (per forward or step), tokens_per_s, gflops,
peak_rss_mib. torch.set_num_threads(--threads, default 2); run it with
OMP_WAIT_POLICY=PASSIVE.

tune --ranks K (K > 1): the same step data parallel over K processes on this
machine, as PyTorch users do it (torch.distributed, gloo): --batch is the
global batch, rank r runs its contiguous share of the rows (ptune's split),
the loss is summed over its tokens and divided by the global token count,
then the prompt's gradient is all-reduced (summed) before AdamW. Rank 0
prints; median_s is its step, the all-reduce included; comm_s_per_step the
median of its seconds inside the all-reduce. bench/scaling.sh compares it with
`mpirun -np K ptune bench tune`.
"""
import argparse, json, math, os, resource, statistics, sys, tempfile, time

import torch
import torch.nn.functional as F

def load_cfg(path):
    c = json.load(open(path))
    if c.get("model_type") == "gpt2":
        d = c["n_embd"]
        return dict(arch="gpt2", d=d, hidden=c.get("n_inner") or 4 * d, L=c["n_layer"], H=c["n_head"],
                    KV=c["n_head"], hd=d // c["n_head"], V=c["vocab_size"], maxpos=c.get("n_positions", 1024),
                    eps=c.get("layer_norm_epsilon", 1e-5), tied=True)
    d = c["hidden_size"]
    H = c["num_attention_heads"]
    return dict(arch="llama", d=d, hidden=c["intermediate_size"], L=c["num_hidden_layers"], H=H,
                KV=c.get("num_key_value_heads", H), hd=c.get("head_dim", d // H), V=c["vocab_size"],
                maxpos=c.get("max_position_embeddings", 2048), eps=c.get("rms_norm_eps", 1e-5),
                theta=c.get("rope_theta", 10000.0), tied=c.get("tie_word_embeddings", False),
                bias=c.get("attention_bias", False) or c.get("model_type") == "qwen2")


def nonembed_params(c):
    d, hd, H, KV, hid, L = c["d"], c["hd"], c["H"], c["KV"], c["hidden"], c["L"]
    if c["arch"] == "gpt2":
        per = 4 * d + d * 3 * d + 3 * d + d * d + d + d * hid + hid + hid * d + d
        return L * per + 2 * d
    per = 2 * d + d * H * hd + 2 * d * KV * hd + H * hd * d + 3 * d * hid
    if c.get("bias"):
        per += H * hd + 2 * KV * hd
    return L * per + d


def make_weights(c, dtype):
    g = torch.Generator().manual_seed(0)
    r = lambda *s: (torch.randn(*s, generator=g) * 0.02).to(dtype)
    d, hd, H, KV, hid, V = c["d"], c["hd"], c["H"], c["KV"], c["hidden"], c["V"]
    W = {"emb": r(V, d), "layers": []}
    for _ in range(c["L"]):
        if c["arch"] == "gpt2":
            W["layers"].append(dict(ln1w=torch.ones(d, dtype=dtype), ln1b=torch.zeros(d, dtype=dtype),
                                    qkv=r(3 * d, d), qkvb=torch.zeros(3 * d, dtype=dtype), o=r(d, d),
                                    ob=torch.zeros(d, dtype=dtype), ln2w=torch.ones(d, dtype=dtype),
                                    ln2b=torch.zeros(d, dtype=dtype), fc=r(hid, d), fcb=torch.zeros(hid, dtype=dtype),
                                    pr=r(d, hid), prb=torch.zeros(d, dtype=dtype)))
        else:
            W["layers"].append(dict(n1=torch.ones(d, dtype=dtype), q=r(H * hd, d), k=r(KV * hd, d), v=r(KV * hd, d),
                                    o=r(d, H * hd), n2=torch.ones(d, dtype=dtype), gate=r(hid, d), up=r(hid, d),
                                    down=r(d, hid)))
    if c["arch"] == "gpt2":
        W["pos"] = r(c["maxpos"], d)
        W["fw"], W["fb"] = torch.ones(d, dtype=dtype), torch.zeros(d, dtype=dtype)
    else:
        W["fn"] = torch.ones(d, dtype=dtype)
    W["head"] = W["emb"] if c["tied"] else r(V, d)
    return W


def rms(x, w, eps):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * w


def rope_tables(c, S, dtype):
    hd = c["hd"]
    inv = 1.0 / (c["theta"] ** (torch.arange(0, hd, 2).float() / hd))
    ang = torch.arange(S).float()[:, None] * inv[None]
    emb = torch.cat([ang, ang], -1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def rot_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], -1)


def forward(c, W, x):
    """x: [B, S, d] input vectors -> logits [B, S, V]."""
    B, S, d = x.shape
    H, KV, hd = c["H"], c["KV"], c["hd"]
    if c["arch"] == "gpt2":
        x = x + W["pos"][:S]
    else:
        cos, sin = rope_tables(c, S, x.dtype)
    for P in W["layers"]:
        if c["arch"] == "gpt2":
            n = F.layer_norm(x, (d,), P["ln1w"], P["ln1b"], c["eps"])
            q, k, v = F.linear(n, P["qkv"], P["qkvb"]).split(d, -1)
        else:
            n = rms(x, P["n1"], c["eps"])
            q, k, v = F.linear(n, P["q"]), F.linear(n, P["k"]), F.linear(n, P["v"])
        q = q.view(B, S, H, hd).transpose(1, 2)
        k = k.view(B, S, KV, hd).transpose(1, 2)
        v = v.view(B, S, KV, hd).transpose(1, 2)
        if c["arch"] != "gpt2":
            q = q * cos + rot_half(q) * sin
            k = k * cos + rot_half(k) * sin
        if KV != H:
            k = k.repeat_interleave(H // KV, 1)
            v = v.repeat_interleave(H // KV, 1)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True) if hasattr(F, "scaled_dot_product_attention") \
            else torch.softmax((q @ k.transpose(-1, -2)) / math.sqrt(hd) +
                               torch.full((S, S), float("-inf"), dtype=q.dtype).triu(1), -1) @ v
        a = a.transpose(1, 2).reshape(B, S, H * hd)
        if c["arch"] == "gpt2":
            x = x + F.linear(a, P["o"], P["ob"])
            n = F.layer_norm(x, (d,), P["ln2w"], P["ln2b"], c["eps"])
            x = x + F.linear(F.gelu(F.linear(n, P["fc"], P["fcb"]), approximate="tanh"), P["pr"], P["prb"])
        else:
            x = x + F.linear(a, P["o"])
            n = rms(x, P["n2"], c["eps"])
            x = x + F.linear(F.silu(F.linear(n, P["gate"])) * F.linear(n, P["up"]), P["down"])
    x = F.layer_norm(x, (d,), W["fw"], W["fb"], c["eps"]) if c["arch"] == "gpt2" else rms(x, W["fn"], c["eps"])
    return F.linear(x, W["head"])


def flops(c, B, S, T_scored, step):
    lin = 2 * nonembed_params(c) * B * S
    att = 4 * c["L"] * B * c["H"] * S * S * c["hd"]
    head = 2 * B * T_scored * c["V"] * c["d"]
    return (2 * lin + 3 * att + 2 * head) if step else (lin + att + head)


def parse():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["forward", "tune"])
    ap.add_argument("--random-config", required=True)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--loss-last", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ranks", type=int, default=1)
    return ap.parse_args()


def run(rank, a, K=1, init=None):
    torch.set_num_threads(a.threads)
    dist = None
    if K > 1:
        import torch.distributed as dist
        dist.init_process_group("gloo", init_method=init, rank=rank, world_size=K)
    c = load_cfg(a.random_config)
    dt = torch.float32 if a.dtype == "fp32" else torch.bfloat16
    W = make_weights(c, dt)
    B, T = a.batch, a.seq
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, c["V"], (B, T), generator=g)
    times, comm = [], []
    if a.kind == "forward":
        S = T
        for i in range(a.warmup + a.runs):
            t0 = time.perf_counter()
            with torch.no_grad():
                logits = forward(c, W, F.embedding(ids, W["emb"]))
            if i >= a.warmup:
                times.append(time.perf_counter() - t0)
        fl = flops(c, B, S, T, False)
    else:
        N = a.tokens
        S = N + T
        prompt = (torch.randn(N, c["d"], generator=g) * 0.02).requires_grad_(True)
        opt = torch.optim.AdamW([prompt], lr=1e-3)
        labels = ids.clone()
        if a.loss_last:
            labels[:, : T - a.loss_last] = -100
        n_global = int((labels[:, 1:] != -100).sum())
        # this rank's rows: the first B % K ranks one more (ptune's pt_share)
        q, rem = divmod(B, K)
        lo = rank * q + min(rank, rem)
        hi = lo + q + (1 if rank < rem else 0)
        my_ids, my_labels = ids[lo:hi], labels[lo:hi]
        for i in range(a.warmup + a.runs):
            t0 = time.perf_counter()
            opt.zero_grad()
            if hi > lo:
                x = torch.cat([prompt.to(dt)[None].expand(hi - lo, N, c["d"]), F.embedding(my_ids, W["emb"])], 1)
                logits = forward(c, W, x)
                # position N-1+t predicts token t (t >= 1): loss on every real token after the first
                lg = logits[:, N:-1].float()
                if K > 1:
                    loss = F.cross_entropy(lg.reshape(-1, c["V"]), my_labels[:, 1:].reshape(-1), ignore_index=-100,
                                           reduction="sum") / n_global
                else:
                    loss = F.cross_entropy(lg.reshape(-1, c["V"]), my_labels[:, 1:].reshape(-1), ignore_index=-100)
                loss.backward()
            if prompt.grad is None:
                prompt.grad = torch.zeros_like(prompt)
            if K > 1:
                c0 = time.perf_counter()
                dist.all_reduce(prompt.grad)
                if i >= a.warmup:
                    comm.append(time.perf_counter() - c0)
            opt.step()
            if i >= a.warmup:
                times.append(time.perf_counter() - t0)
        fl = flops(c, B, S, T, True)
    med = statistics.median(times)
    out = dict(impl="pytorch", kind=a.kind, dtype=a.dtype, batch=B, seq=T, tokens=a.tokens if a.kind == "tune" else 0,
               runs=len(times), median_s=med, tokens_per_s=B * S / med, gflops=fl / med / 1e9,
               peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, torch=torch.__version__,
               threads=a.threads, ranks=K)
    if K > 1:
        out["comm_s_per_step"] = statistics.median(comm)
        dist.destroy_process_group()
    if rank == 0:
        print(json.dumps(out))
        sys.stdout.flush()


def main():
    a = parse()
    if a.ranks <= 1 or a.kind != "tune":
        run(0, a)
        return
    import torch.multiprocessing as mp
    fd, path = tempfile.mkstemp(prefix="pt_ref_dist_")
    os.close(fd)
    os.unlink(path)  # gloo's file store creates it
    try:
        mp.spawn(run, args=(a, a.ranks, "file://" + path), nprocs=a.ranks, join=True)
    finally:
        if os.path.exists(path):
            os.unlink(path)


if __name__ == "__main__":
    main()
