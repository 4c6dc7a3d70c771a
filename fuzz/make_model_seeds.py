#!/usr/bin/env python3
"""Writes micro model files (d 8, 1 layer, vocabulary 16, F32) as seeds for
fuzz/fuzz_model.c: a llama GGUF, a llama2.c .bin (version 0), and Llama and
GPT-2 safetensors files with the Hugging Face names and their config.json.
Plain struct, no PyTorch.
Usage: python3 fuzz/make_model_seeds.py OUT_DIR (fuzz/run.sh calls it)."""
import json
import os
import struct
import sys

D, H, KV, FF, V, L, SEQ = 8, 2, 2, 16, 16, 1, 8


def vals(n, seed):
    # deterministic small values; the fuzzer only needs well-formed files
    return [((i * 37 + seed * 11) % 17 - 8) / 64.0 for i in range(n)]


def gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gguf(path, arch="llama"):
    a = arch
    kvs = [("general.architecture", 8, a), ("general.alignment", 4, 32),
           (a + ".embedding_length", 4, D), (a + ".block_count", 4, L),
           (a + ".feed_forward_length", 4, FF), (a + ".attention.head_count", 4, H),
           (a + ".attention.head_count_kv", 4, KV), (a + ".context_length", 4, SEQ),
           (a + ".attention.layer_norm_rms_epsilon", 6, 1e-5), (a + ".rope.freq_base", 6, 10000.0)]
    # name, GGUF dims (ne0 = columns first); Gemma's head is the embedding (no output.weight)
    tensors = [("token_embd.weight", [D, V]), ("output_norm.weight", [D])]
    if arch != "gemma":
        tensors.append(("output.weight", [D, V]))
    for i in range(L):
        p = "blk.%d." % i
        tensors += [(p + "attn_norm.weight", [D]), (p + "attn_q.weight", [D, D]),
                    (p + "attn_k.weight", [D, D * KV // H]), (p + "attn_v.weight", [D, D * KV // H]),
                    (p + "attn_output.weight", [D, D]), (p + "ffn_norm.weight", [D]),
                    (p + "ffn_gate.weight", [D, FF]), (p + "ffn_up.weight", [D, FF]),
                    (p + "ffn_down.weight", [FF, D])]
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for k, t, v in kvs:
        out += gguf_str(k) + struct.pack("<I", t)
        out += gguf_str(v) if t == 8 else struct.pack("<I", v) if t == 4 else struct.pack("<f", v)
    data, off = b"", 0
    for i, (name, dims) in enumerate(tensors):
        n = 1
        for x in dims:
            n *= x
        out += gguf_str(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", x) for x in dims)
        out += struct.pack("<IQ", 0, off)
        blob = struct.pack("<%df" % n, *vals(n, i))
        blob += b"\0" * (-len(blob) % 32)
        data += blob
        off += len(blob)
    out += b"\0" * (-len(out) % 32)
    with open(path, "wb") as f:
        f.write(out + data)


def llama2c(path):
    hs = D // H
    out = struct.pack("<7i", D, FF, L, H, KV, V, SEQ)
    parts = [V * D, L * D, L * D * D, L * D * (D * KV // H), L * D * (D * KV // H), L * D * D, L * D,
             L * FF * D, L * D * FF, L * FF * D, D, SEQ * hs // 2, SEQ * hs // 2]
    for i, n in enumerate(parts):
        out += struct.pack("<%df" % n, *vals(n, i))
    with open(path, "wb") as f:
        f.write(out)


def write_st(path, shapes):
    header, data = {"__metadata__": {"format": "pt"}}, b""
    for i, (name, shp) in enumerate(shapes.items()):
        n = 1
        for x in shp:
            n *= x
        header[name] = {"dtype": "F32", "shape": shp, "data_offsets": [len(data), len(data) + 4 * n]}
        data += struct.pack("<%df" % n, *vals(n, i))
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


def safetensors(path):
    shapes = {"model.embed_tokens.weight": [V, D], "model.norm.weight": [D]}
    for i in range(L):
        p = "model.layers.%d." % i
        shapes.update({p + "input_layernorm.weight": [D], p + "self_attn.q_proj.weight": [D, D],
                       p + "self_attn.k_proj.weight": [D * KV // H, D], p + "self_attn.v_proj.weight": [D * KV // H, D],
                       p + "self_attn.o_proj.weight": [D, D], p + "post_attention_layernorm.weight": [D],
                       p + "mlp.gate_proj.weight": [FF, D], p + "mlp.up_proj.weight": [FF, D],
                       p + "mlp.down_proj.weight": [D, FF]})
    write_st(path, shapes)
    cfg = {"model_type": "llama", "hidden_size": D, "intermediate_size": FF, "num_hidden_layers": L,
           "num_attention_heads": H, "num_key_value_heads": KV, "vocab_size": V, "rms_norm_eps": 1e-5,
           "max_position_embeddings": SEQ, "tie_word_embeddings": True}
    return json.dumps(cfg)


def gpt2_safetensors(path):
    ff = 4 * D
    shapes = {"wte.weight": [V, D], "wpe.weight": [SEQ, D], "ln_f.weight": [D], "ln_f.bias": [D]}
    for i in range(L):
        p = "h.%d." % i
        shapes.update({p + "ln_1.weight": [D], p + "ln_1.bias": [D], p + "attn.c_attn.weight": [D, 3 * D],
                       p + "attn.c_attn.bias": [3 * D], p + "attn.c_proj.weight": [D, D], p + "attn.c_proj.bias": [D],
                       p + "ln_2.weight": [D], p + "ln_2.bias": [D], p + "mlp.c_fc.weight": [D, ff],
                       p + "mlp.c_fc.bias": [ff], p + "mlp.c_proj.weight": [ff, D], p + "mlp.c_proj.bias": [D]})
    write_st(path, shapes)
    return json.dumps({"model_type": "gpt2", "n_embd": D, "n_layer": L, "n_head": H, "vocab_size": V,
                       "n_positions": SEQ, "layer_norm_epsilon": 1e-5})


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    # the harness reads the first byte (mod 6) as the format: 0 gguf, 1 llama2.c, 2 Llama safetensors,
    # 3 Llama (or Gemma) config.json, 4 GPT-2 safetensors, 5 GPT-2 config.json
    for tag, name, fn in ((0, "micro.gguf", gguf), (0, "micro_gemma.gguf", lambda p: gguf(p, "gemma")),
                          (1, "micro.bin", llama2c), (2, "micro.safetensors", safetensors),
                          (4, "micro_gpt2.safetensors", gpt2_safetensors)):
        tmp = os.path.join(out, name + ".raw")
        cfg = fn(tmp)
        with open(tmp, "rb") as f:
            body = f.read()
        os.remove(tmp)
        with open(os.path.join(out, "seed_" + name), "wb") as f:
            f.write(bytes([tag]) + body)
        if cfg:
            cname = "seed_config.json" if tag == 2 else "seed_config_gpt2.json"
            with open(os.path.join(out, cname), "wb") as f:
                f.write(bytes([tag + 1]) + cfg.encode())
    # Gemma 1 shares Llama's tensor names: its config.json runs on format 3's weights
    gemma = {"model_type": "gemma", "hidden_size": D, "intermediate_size": FF, "num_hidden_layers": L,
             "num_attention_heads": H, "num_key_value_heads": KV, "head_dim": D // H, "vocab_size": V,
             "rms_norm_eps": 1e-6, "max_position_embeddings": SEQ, "hidden_activation": "gelu_pytorch_tanh"}
    with open(os.path.join(out, "seed_config_gemma.json"), "wb") as f:
        f.write(bytes([3]) + json.dumps(gemma).encode())


if __name__ == "__main__":
    main()
