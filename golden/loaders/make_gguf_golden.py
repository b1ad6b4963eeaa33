#!/usr/bin/env python3
# Writes gguf/tiny-llama-gguf-py.gguf: a tiny Llama written by the `gguf` package's own
# GGUFWriter, with Q8_0 / Q4_0 / Q5_0 matrices quantised by `gguf.quants.quantize`.
# loaders/tests/gguf_py_golden.rs opens it (a file we did not write ourselves), checks
# the config and shapes, and checks that our quantisers produce the same bytes.
#
# Pinned versions (also in requirements.txt): gguf==0.19.0, numpy==2.4.6
#   pip install -r requirements.txt && python3 make_gguf_golden.py
#
# Weights: value i of each tensor (row-major, PyTorch order) is
#   ((i * 37 + k) % 101) / 101 - 0.5, with k the tensor's position in the list below.

import os

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T

VOCAB, HIDDEN, LAYERS, HEADS, KV_HEADS, FFN = 8, 32, 1, 2, 1, 64
HEAD_DIM = HIDDEN // HEADS


def values(shape, k):
    n = int(np.prod(shape))
    i = np.arange(n, dtype=np.int64)
    return (((i * 37 + k) % 101) / 101.0 - 0.5).astype(np.float32).reshape(shape)


TENSORS = [  # (name, PyTorch shape, ggml type)
    ("token_embd.weight", (VOCAB, HIDDEN), T.F16),
    ("blk.0.attn_norm.weight", (HIDDEN,), T.F32),
    ("blk.0.attn_q.weight", (HEADS * HEAD_DIM, HIDDEN), T.Q8_0),
    ("blk.0.attn_k.weight", (KV_HEADS * HEAD_DIM, HIDDEN), T.Q8_0),
    ("blk.0.attn_v.weight", (KV_HEADS * HEAD_DIM, HIDDEN), T.Q8_0),
    ("blk.0.attn_output.weight", (HIDDEN, HEADS * HEAD_DIM), T.Q8_0),
    ("blk.0.ffn_norm.weight", (HIDDEN,), T.F32),
    ("blk.0.ffn_gate.weight", (FFN, HIDDEN), T.Q4_0),
    ("blk.0.ffn_up.weight", (FFN, HIDDEN), T.Q5_0),
    ("blk.0.ffn_down.weight", (HIDDEN, FFN), T.Q8_0),
    ("output_norm.weight", (HIDDEN,), T.F32),
    ("output.weight", (VOCAB, HIDDEN), T.BF16),
]


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gguf", "tiny-llama-gguf-py.gguf")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    w = gguf.GGUFWriter(out, "llama")
    w.add_name("tiny gguf-py llama")
    w.add_context_length(256)
    w.add_embedding_length(HIDDEN)
    w.add_block_count(LAYERS)
    w.add_feed_forward_length(FFN)
    w.add_rope_dimension_count(HEAD_DIM)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(500000.0)
    w.add_tokenizer_model("llama")
    tokens = ["<unk>", "<s>", "</s>", "\u2581", "a", "b", "\u2581a", "ab"]
    w.add_token_list(tokens)
    w.add_token_scores([0.0, 0.0, 0.0, -1.0, -2.0, -3.0, -0.5, -0.25])
    w.add_token_types([2, 3, 3, 1, 1, 1, 1, 1])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    # Metadata of the less common value types, nested arrays included.
    w.add_array("test.nested", [[1, 2, 3], ["x", "y"], [[0.5]]])
    w.add_int8("test.i8", -5)
    w.add_uint64("test.u64", 1 << 40)
    w.add_float64("test.f64", 0.125)
    w.add_bool("test.bool", True)
    for k, (name, shape, qtype) in enumerate(TENSORS):
        x = values(shape, k)
        if qtype == T.F32:
            w.add_tensor(name, x)
        elif qtype == T.F16:
            w.add_tensor(name, x.astype(np.float16))
        else:
            q = gguf.quants.quantize(x, qtype)
            w.add_tensor(name, q, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")


if __name__ == "__main__":
    main()
