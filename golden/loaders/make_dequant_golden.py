#!/usr/bin/env python3
# Generates dequant/dequant.safetensors: for each quantised ggml type, a few blocks of
# raw bytes (`<type>.blocks`, u8) and the `gguf` package's dequantisation of them
# (`<type>.values`, f32). loaders/tests/dequant_golden.rs compares our CPU
# dequantisers against it, so the reference is an implementation we did not write.
#
# Pinned versions (also in requirements.txt): gguf==0.19.0, numpy==2.4.6
#   pip install -r requirements.txt && python3 make_dequant_golden.py
#
# The block bytes are random, except the f16 scale fields, which are set to random
# values in [-0.1, 0.1] (random bits could be NaN/Inf, which compare badly and say
# nothing about the layout). The safetensors file is written by hand to avoid another
# dependency: u64 header length, JSON header padded to 8 bytes, data.

import json
import os
import struct

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.quants import dequantize

SEED = 20240601
# (type, blocks, byte offsets of f16 scale fields within a block)
TYPES = [
    ("q8_0", T.Q8_0, 8, [0]),
    ("q4_0", T.Q4_0, 8, [0]),
    ("q5_0", T.Q5_0, 8, [0]),
    ("q4_K", T.Q4_K, 4, [0, 2]),      # d, dmin
    ("q5_K", T.Q5_K, 4, [0, 2]),      # d, dmin
    ("q6_K", T.Q6_K, 4, [208]),       # d comes last
    ("f16", T.F16, 64, None),
    ("bf16", T.BF16, 64, None),
]
BLOCK = {  # (values per block, bytes per block)
    T.Q8_0: (32, 34), T.Q4_0: (32, 18), T.Q5_0: (32, 22),
    T.Q4_K: (256, 144), T.Q5_K: (256, 176), T.Q6_K: (256, 210),
    T.F16: (1, 2), T.BF16: (1, 2),
}


def make_blocks(rng, qtype, n_blocks, scale_offsets):
    values_per_block, bytes_per_block = BLOCK[qtype]
    if qtype == T.F16:
        vals = rng.uniform(-4, 4, n_blocks).astype(np.float16)
        return vals.view(np.uint8).copy(), n_blocks
    if qtype == T.BF16:
        vals = rng.uniform(-4, 4, n_blocks).astype(np.float32)
        return (vals.view(np.uint32) >> 16).astype(np.uint16).view(np.uint8).copy(), n_blocks
    raw = rng.integers(0, 256, size=(n_blocks, bytes_per_block), dtype=np.uint8)
    for off in scale_offsets:
        scales = rng.uniform(-0.1, 0.1, n_blocks).astype(np.float16)
        scales[0] = 0.0  # one block with a zero scale
        raw[:, off:off + 2] = scales.view(np.uint8).reshape(n_blocks, 2)
    return raw.reshape(-1), n_blocks * values_per_block


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        arr = tensors[name]
        data = arr.tobytes()
        dtype = {np.dtype(np.uint8): "U8", np.dtype(np.float32): "F32"}[arr.dtype]
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"generator": "make_dequant_golden.py", "gguf": "0.19.0", "seed": str(SEED)}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)


def main():
    rng = np.random.default_rng(SEED)
    tensors = {}
    for name, qtype, n_blocks, scale_offsets in TYPES:
        blocks, n_values = make_blocks(rng, qtype, n_blocks, scale_offsets)
        values = dequantize(blocks, qtype).astype(np.float32).reshape(-1)
        assert values.size == n_values, (name, values.size, n_values)
        assert np.isfinite(values).all(), name
        tensors[f"{name}.blocks"] = blocks
        tensors[f"{name}.values"] = values
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dequant", "dequant.safetensors")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    write_safetensors(out, tensors)
    print(f"wrote {out} ({os.path.getsize(out)} bytes)")


if __name__ == "__main__":
    main()
