#!/usr/bin/env python3
"""Tiny Llama models for the golden model tests, deterministic from fixed seeds.

Run from the repository root:  python3 golden/make_models.py
Writes golden/models/<name>/... : Hugging Face folders (config.json, tokenizer.json,
model.safetensors or shards) and GGUF files laid out as llama.cpp's converter writes them
(llama.cpp tensor names, Q/K rows permuted, tokenizer.ggml.* metadata, Q4_K_M's tensor-type mix
with its fallbacks for rows not divisible by 256). golden/make_model_goldens.py then runs
transformers on them. Versions: golden/requirements.txt.

Quantised files use simple numpy quantisers (not ggml's search): the goldens are computed from
what the `gguf` package's dequantisers read back, so only the format has to be exact.
"""
import json
import math
import os
import shutil

import numpy as np
import gguf
from gguf.quants import dequantize, quantize
from safetensors.numpy import save_file

QT = gguf.GGMLQuantizationType
OUT = "golden/models"

# ------------------------------------------------------------------------------------------
# A small byte-fallback BPE vocabulary (Llama-2 / SentencePiece style), trained on a text.
TEXT = ("Once upon a time there was a little robot who lived in a quiet town. Every day the robot "
        "walked to the river and counted the stones. The town was small, the river was wide, and "
        "the robot was happy. def main():\n    print('hello, world')\n    return 42\n") * 3


def train_vocab(size: int) -> tuple[list[str], list[float], list[int], list[str]]:
    specials = ["<unk>", "<s>", "</s>"]
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    words = [list("▁" + w) for w in TEXT.replace("\n", " ").split(" ") if w]
    chars = sorted({c for w in words for c in w})
    vocab = specials + byte_tokens + chars
    merges: list[str] = []
    while len(vocab) < size:
        pairs: dict[tuple[str, str], int] = {}
        for w in words:
            for a, b in zip(w, w[1:]):
                pairs[(a, b)] = pairs.get((a, b), 0) + 1
        if not pairs:
            break
        (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        merges.append(f"{a} {b}")
        vocab.append(a + b)
        for w in words:
            i = 0
            while i < len(w) - 1:
                if w[i] == a and w[i + 1] == b:
                    w[i:i + 2] = [a + b]
                else:
                    i += 1
    # Pad with unused tokens so the vocabulary has exactly `size` entries.
    while len(vocab) < size:
        vocab.append(f"<unused{len(vocab)}>")
    n_base = 3 + 256 + len(chars)
    scores = [0.0] * 3 + [0.0] * 256 + [-1000.0 - i for i in range(len(chars))] + \
             [-float(i) for i in range(len(vocab) - n_base)]
    types = [2, 3, 3] + [6] * 256 + [1] * (len(vocab) - 259)  # unknown, control, byte, normal
    return vocab, scores, types, merges


def tokenizer_json(vocab: list[str], merges: list[str]) -> dict:
    """A Llama-2 style tokenizer.json: BPE with byte fallback, '▁' for spaces, BOS added."""
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True} for i, t in enumerate(vocab[:3])
        ],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        "pre_tokenizer": None,
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}},
        },
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"},
            {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": {t: i for i, t in enumerate(vocab)}, "merges": merges},
    }


# ------------------------------------------------------------------------------------------
# Model configurations.
MODELS = {
    # GQA 4/2, head_dim 64, untied; ffn 672 is not a multiple of 256, so Q4_K_M falls back there.
    "tiny-gqa": dict(vocab=320, hidden=256, layers=2, heads=4, kv_heads=2, ffn=672, theta=10000.0,
                     tied=False, scaling=None, seed=1,
                     formats=["hf-f32", "hf-bf16-sharded", "gguf-f32", "gguf-q8_0", "gguf-q4_k_m"]),
    # MQA (1 kv head), head_dim 128, tied embeddings, Llama-3 rope scaling.
    "tiny-llama3": dict(vocab=384, hidden=256, layers=2, heads=2, kv_heads=1, ffn=512, theta=500000.0,
                        tied=True, seed=2,
                        scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
                        formats=["hf-f16", "gguf-f32", "gguf-q4_k_m"]),
    # MHA 4/4, head_dim 32, three layers.
    "tiny-mha": dict(vocab=288, hidden=128, layers=3, heads=4, kv_heads=4, ffn=352, theta=10000.0,
                     tied=False, scaling=None, seed=3, formats=["hf-f32", "gguf-q8_0"]),
}


def make_weights(c: dict) -> dict[str, np.ndarray]:
    """HF-named float32 weights. Scales keep activations O(1) so logits are not degenerate."""
    rng = np.random.default_rng(c["seed"])
    d, f, hd = c["hidden"], c["ffn"], c["hidden"] // c["heads"]
    def lin(out, inp):
        return (rng.standard_normal((out, inp)) / math.sqrt(inp)).astype(np.float32)
    # Tied models read logits off the embedding: a smaller scale keeps them from saturating.
    embed_std = 0.25 if c["tied"] else 1.0
    w = {"model.embed_tokens.weight": (rng.standard_normal((c["vocab"], d)) * embed_std).astype(np.float32),
         "model.norm.weight": rng.uniform(0.8, 1.2, d).astype(np.float32)}
    for i in range(c["layers"]):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = rng.uniform(0.8, 1.2, d).astype(np.float32)
        w[p + "self_attn.q_proj.weight"] = lin(c["heads"] * hd, d) * 2.0
        w[p + "self_attn.k_proj.weight"] = lin(c["kv_heads"] * hd, d) * 2.0
        w[p + "self_attn.v_proj.weight"] = lin(c["kv_heads"] * hd, d)
        w[p + "self_attn.o_proj.weight"] = lin(d, c["heads"] * hd)
        w[p + "post_attention_layernorm.weight"] = rng.uniform(0.8, 1.2, d).astype(np.float32)
        w[p + "mlp.gate_proj.weight"] = lin(f, d)
        w[p + "mlp.up_proj.weight"] = lin(f, d)
        w[p + "mlp.down_proj.weight"] = lin(d, f)
    if not c["tied"]:
        w["lm_head.weight"] = lin(c["vocab"], d) * 4.0
    return w


def hf_config(c: dict) -> dict:
    return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": c["vocab"],
            "hidden_size": c["hidden"], "intermediate_size": c["ffn"], "num_hidden_layers": c["layers"],
            "num_attention_heads": c["heads"], "num_key_value_heads": c["kv_heads"],
            "head_dim": c["hidden"] // c["heads"], "max_position_embeddings": 256, "rms_norm_eps": 1e-5,
            "rope_theta": c["theta"], "rope_scaling": c["scaling"], "tie_word_embeddings": c["tied"],
            "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu", "attention_bias": False,
            "mlp_bias": False, "torch_dtype": "float32"}


def to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """Round-to-nearest-even float32 -> bfloat16 bit patterns."""
    u = x.astype(np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def write_hf(folder: str, c: dict, w: dict, vocab, merges, fmt: str) -> None:
    os.makedirs(folder, exist_ok=True)
    cfg = hf_config(c)
    if fmt == "hf-f16":
        arrays = {k: v.astype(np.float16) for k, v in w.items()}
        cfg["torch_dtype"] = "float16"
    elif fmt.startswith("hf-bf16"):
        # numpy has no bfloat16: write the safetensors file by hand from the bit patterns.
        arrays = {k: to_bf16_bits(v) for k, v in w.items()}
        cfg["torch_dtype"] = "bfloat16"
    else:
        arrays = dict(w)
    with open(f"{folder}/config.json", "w") as fh:
        json.dump(cfg, fh, indent=2)
    with open(f"{folder}/tokenizer.json", "w") as fh:
        json.dump(tokenizer_json(vocab, merges), fh, ensure_ascii=False)
    names = sorted(arrays)
    shards = [names[: len(names) // 2], names[len(names) // 2:]] if "sharded" in fmt else [names]
    index = {}
    for i, part in enumerate(shards):
        fname = "model.safetensors" if len(shards) == 1 else f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        write_safetensors(f"{folder}/{fname}", {k: arrays[k] for k in part}, bf16="bf16" in fmt)
        index.update({k: fname for k in part})
    if len(shards) > 1:
        with open(f"{folder}/model.safetensors.index.json", "w") as fh:
            json.dump({"metadata": {"total_size": sum(a.nbytes for a in arrays.values())}, "weight_map": index}, fh, indent=1)


def write_safetensors(path: str, arrays: dict, bf16: bool) -> None:
    if not bf16:
        save_file(arrays, path, metadata={"format": "pt"})
        return
    header, offset, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for k in sorted(arrays):
        b = arrays[k].tobytes()
        header[k] = {"dtype": "BF16", "shape": list(arrays[k].shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as fh:
        fh.write(len(h).to_bytes(8, "little") + h + b"".join(blobs))


# ------------------------------------------------------------------------------------------
# GGUF, as llama.cpp's converter lays it out.
def permute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's converter reorders each head's rows so RoPE pairs become adjacent (2i, 2i+1)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def q4_k(x: np.ndarray) -> np.ndarray:
    """Q4_K blocks: per 32-value sub-block x ~= d*sc*q - dmin*m, q in 0..15, 6-bit sc and m."""
    blocks = x.reshape(-1, 8, 32).astype(np.float64)
    lo = np.minimum(blocks.min(axis=2), 0.0)
    hi = blocks.max(axis=2)
    scale = np.maximum(hi - lo, 1e-12) / 15.0
    mins = -lo
    d = np.maximum(scale.max(axis=1), 1e-12) / 63.0
    dmin = np.maximum(mins.max(axis=1), 1e-12) / 63.0
    d16, dmin16 = d.astype(np.float16), dmin.astype(np.float16)
    d, dmin = d16.astype(np.float64), dmin16.astype(np.float64)
    sc = np.clip(np.round(scale / d[:, None]), 1, 63).astype(np.uint8)
    m = np.clip(np.round(mins / dmin[:, None]), 0, 63).astype(np.uint8)
    step = d[:, None] * sc
    q = np.clip(np.round((blocks + (dmin[:, None] * m)[:, :, None]) / step[:, :, None]), 0, 15).astype(np.uint8)
    scales = np.zeros((len(blocks), 12), np.uint8)
    scales[:, 0:4] = sc[:, 0:4] | ((sc[:, 4:8] >> 4) << 6)
    scales[:, 4:8] = m[:, 0:4] | ((m[:, 4:8] >> 4) << 6)
    scales[:, 8:12] = (sc[:, 4:8] & 0xF) | ((m[:, 4:8] & 0xF) << 4)
    qs = (q[:, 0::2, :] | (q[:, 1::2, :] << 4)).reshape(len(blocks), 128)  # low nibbles: even sub-blocks
    out = np.concatenate([d16.view(np.uint8).reshape(-1, 2), dmin16.view(np.uint8).reshape(-1, 2), scales, qs], axis=1)
    return out.reshape(x.shape[0], -1)


def q6_k(x: np.ndarray) -> np.ndarray:
    """Q6_K blocks: per 16-value sub-block x ~= d*sc*(q-32), q in 0..63, int8 sc."""
    blocks = x.reshape(-1, 16, 16).astype(np.float64)
    scale = np.maximum(np.abs(blocks).max(axis=2), 1e-12) / 31.0
    d = scale.max(axis=1) / 127.0
    d16 = d.astype(np.float16)
    d = np.maximum(d16.astype(np.float64), 1e-12)
    sc = np.clip(np.round(scale / d[:, None]), 1, 127).astype(np.int8)
    q = np.clip(np.round(blocks / (d[:, None] * sc)[:, :, None]) + 32, 0, 63).astype(np.uint8).reshape(-1, 256)
    ql = np.zeros((len(q), 128), np.uint8)
    qh = np.zeros((len(q), 64), np.uint8)
    for half in range(2):
        y = q[:, 128 * half:128 * half + 128]
        l = np.arange(32)
        ql[:, 64 * half + l] = (y[:, l] & 0xF) | ((y[:, l + 64] & 0xF) << 4)
        ql[:, 64 * half + 32 + l] = (y[:, l + 32] & 0xF) | ((y[:, l + 96] & 0xF) << 4)
        qh[:, 32 * half + l] = (y[:, l] >> 4) | ((y[:, l + 32] >> 4) << 2) | ((y[:, l + 64] >> 4) << 4) | ((y[:, l + 96] >> 4) << 6)
    out = np.concatenate([ql, qh, sc.view(np.uint8), d16.view(np.uint8).reshape(-1, 2)], axis=1)
    return out.reshape(x.shape[0], -1)


def encode(x: np.ndarray, qtype) -> tuple[np.ndarray, object]:
    if qtype == QT.F32:
        return x.astype(np.float32), None
    if qtype == QT.F16:
        return x.astype(np.float16), None
    if qtype == QT.Q4_K:
        return q4_k(x), QT.Q4_K
    if qtype == QT.Q6_K:
        return q6_k(x), QT.Q6_K
    return quantize(x.astype(np.float32), qtype), qtype


def q4_k_m_type(name: str, layer: int, n_layers: int, cols: int):
    """llama.cpp's Q4_K_M mix: Q6_K for output, attn_v and ffn_down of the layers its rule picks,
    Q4_K elsewhere; rows not divisible by 256 fall back (Q4_K -> Q5_0, Q6_K -> Q8_0)."""
    if name.endswith("_norm.weight"):
        return QT.F32
    more_bits = layer < n_layers // 8 or layer >= 7 * n_layers // 8 or (layer - n_layers // 8) % 3 == 2
    if name == "output.weight" or (layer >= 0 and more_bits and (".attn_v." in name or ".ffn_down." in name)):
        t = QT.Q6_K
    else:
        t = QT.Q4_K
    if cols % 256:
        t = {QT.Q6_K: QT.Q8_0, QT.Q4_K: QT.Q5_0}[t]
    return t


def gguf_name(hf: str) -> tuple[str, int]:
    fixed = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    if hf in fixed:
        return fixed[hf], -1
    parts = hf.split(".")
    i, rest = int(parts[2]), ".".join(parts[3:])
    table = {"input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
             "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
             "self_attn.o_proj.weight": "attn_output.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
             "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
             "mlp.down_proj.weight": "ffn_down.weight"}
    return f"blk.{i}.{table[rest]}", i


def llama3_rope_factors(c: dict) -> np.ndarray:
    """rope_freqs.weight as llama.cpp's converter writes it: per pair, the divisor of the frequency."""
    s, hd = c["scaling"], c["hidden"] // c["heads"]
    freqs = 1.0 / (c["theta"] ** (np.arange(0, hd, 2, dtype=np.float32) / hd))
    low_wavelen = s["original_max_position_embeddings"] / s["low_freq_factor"]
    high_wavelen = s["original_max_position_embeddings"] / s["high_freq_factor"]
    out = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(s["factor"])
        else:
            smooth = (s["original_max_position_embeddings"] / wavelen - s["low_freq_factor"]) / (s["high_freq_factor"] - s["low_freq_factor"])
            out.append(1.0 / ((1 - smooth) / s["factor"] + smooth))
    return np.array(out, dtype=np.float32)


def write_gguf(path: str, c: dict, w: dict, vocab, scores, types, fmt: str) -> None:
    hd = c["hidden"] // c["heads"]
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name(os.path.basename(path))
    writer.add_context_length(256)
    writer.add_embedding_length(c["hidden"])
    writer.add_block_count(c["layers"])
    writer.add_feed_forward_length(c["ffn"])
    writer.add_head_count(c["heads"])
    writer.add_head_count_kv(c["kv_heads"])
    writer.add_rope_freq_base(c["theta"])
    writer.add_rope_dimension_count(hd)
    writer.add_key_length(hd)
    writer.add_value_length(hd)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(c["vocab"])
    ftype = {"gguf-f32": gguf.LlamaFileType.ALL_F32, "gguf-q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
             "gguf-q4_k_m": gguf.LlamaFileType.MOSTLY_Q4_K_M}[fmt]
    writer.add_file_type(ftype)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(vocab)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_add_bos_token(True)
    if c["scaling"]:
        writer.add_tensor("rope_freqs.weight", llama3_rope_factors(c))
    for hf in sorted(w, key=lambda n: (gguf_name(n)[1], n)):
        name, layer = gguf_name(hf)
        x = w[hf]
        if name.endswith("attn_q.weight"):
            x = permute_qk(x, c["heads"])
        elif name.endswith("attn_k.weight"):
            x = permute_qk(x, c["kv_heads"])
        if x.ndim == 1 or fmt == "gguf-f32":
            qtype = QT.F32
        elif fmt == "gguf-q8_0":
            qtype = QT.Q8_0
        else:
            qtype = q4_k_m_type(name, layer, c["layers"], x.shape[1])
        data, raw = encode(x, qtype)
        if raw is None:
            writer.add_tensor(name, data)
        else:
            writer.add_tensor(name, data, raw_dtype=raw)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def check_quantisers() -> None:
    """Our Q4_K / Q6_K writers must round-trip through gguf's dequantisers with ggml-like error."""
    x = np.random.default_rng(0).standard_normal((8, 512)).astype(np.float32)
    for fn, t, limit in [(q4_k, QT.Q4_K, 2e-2), (q6_k, QT.Q6_K, 2e-3)]:
        y = dequantize(fn(x), t).reshape(x.shape)
        nmse = float(((y - x) ** 2).mean() / (x ** 2).mean())
        assert nmse < limit, f"{t.name} quantiser nmse {nmse}"
        print(f"{t.name} quantiser round trip nmse {nmse:.2e}")


def main() -> None:
    check_quantisers()
    if os.path.isdir(OUT):
        for entry in os.listdir(OUT):
            p = os.path.join(OUT, entry)
            if os.path.isdir(p) and entry in MODELS:
                shutil.rmtree(p)
    for name, c in MODELS.items():
        vocab, scores, types, merges = train_vocab(c["vocab"])
        w = make_weights(c)
        for fmt in c["formats"]:
            if fmt.startswith("hf"):
                write_hf(f"{OUT}/{name}/{fmt}", c, w, vocab, merges, fmt)
            else:
                os.makedirs(f"{OUT}/{name}", exist_ok=True)
                write_gguf(f"{OUT}/{name}/{name}-{fmt[5:]}.gguf", c, w, vocab, scores, types, fmt)
    for root, _, files in sorted(os.walk(OUT)):
        for f in sorted(files):
            print(f"{os.path.join(root, f)}  {os.path.getsize(os.path.join(root, f))} bytes")


if __name__ == "__main__":
    main()
