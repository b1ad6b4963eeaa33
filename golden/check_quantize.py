#!/usr/bin/env python3
"""Checks a `wgllama quantize` output with the independent `gguf` package (golden/requirements.txt):
every tensor is read back through gguf's dequantisers, Q/K rows un-permuted, and compared with
the float32 Hugging Face source. Prints per-tensor type and NMSE; fails beyond ggml's usual error.

    python3 golden/check_quantize.py OUT.gguf HF_FOLDER
"""
import json
import sys

import numpy as np
import gguf
from gguf.quants import dequantize
from safetensors.numpy import load_file

LIMIT = {"Q4_K": 1e-2, "Q5_0": 1e-2, "Q6_K": 1e-3, "Q8_0": 1e-4, "F16": 1e-6, "F32": 0.0}
HF = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
      "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
      "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}


def hf_name(name: str) -> str:
    fixed = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
             "output.weight": "lm_head.weight"}
    if name in fixed:
        return fixed[name]
    _, i, kind, _ = name.split(".")
    return f"model.layers.{i}.{HF[kind]}.weight"


def unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def main() -> None:
    out, folder = sys.argv[1], sys.argv[2]
    cfg = json.load(open(f"{folder}/config.json"))
    src = load_file(f"{folder}/model.safetensors")
    failed = []
    for t in gguf.GGUFReader(out).tensors:
        if t.name == "rope_freqs.weight":
            continue
        shape = [int(s) for s in reversed(t.shape)]
        got = dequantize(t.data, t.tensor_type).astype(np.float64).reshape(shape)
        if t.name.endswith("attn_q.weight"):
            got = unpermute(got, cfg["num_attention_heads"])
        elif t.name.endswith("attn_k.weight"):
            got = unpermute(got, cfg["num_key_value_heads"])
        want = src[hf_name(t.name)].astype(np.float64)
        nmse = float(((got - want) ** 2).mean() / (want ** 2).mean())
        kind = t.tensor_type.name
        ok = nmse <= LIMIT.get(kind, 0.0)
        print(f"{t.name:28} {kind:5} nmse {nmse:.2e} {'ok' if ok else 'FAIL'}")
        if not ok:
            failed.append(t.name)
    if failed:
        sys.exit(f"beyond ggml's usual error: {failed}")
    print("all tensors within ggml's usual error")


if __name__ == "__main__":
    main()
