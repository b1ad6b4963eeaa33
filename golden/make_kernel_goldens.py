#!/usr/bin/env python3
"""Golden files for `wgllama golden kernels`: inputs and expected outputs of every kernel family,
computed by independent references -- numpy (float64) for the arithmetic and the `gguf` Python
package's dequantisers for the quantised blocks. Versions are pinned in golden/requirements.txt.

Run from the repository root:  python3 golden/make_kernel_goldens.py
Writes golden/kernels/kernels.safetensors. The file's metadata "cases" is a JSON list; each case
names its op, parameters, and the tensors (prefixed "<case>.") that hold its inputs and "want".

Weights are stored as raw bytes in ggml's layout (tensor "<case>.w", uint8) with "wdtype" and
"wshape" ([out, in], outermost first), exactly as a GGUF file would hold them.
"""
import json
import math

import numpy as np
import gguf
from gguf.quants import dequantize, quantize
from safetensors.numpy import save_file

rng = np.random.default_rng(20261123)
tensors: dict[str, np.ndarray] = {}
cases: list[dict] = []
QT = gguf.GGMLQuantizationType
BLOCK = {"q8_0": (32, 34), "q4_0": (32, 18), "q5_0": (32, 22), "q4_K": (256, 144), "q5_K": (256, 176), "q6_K": (256, 210)}
QTYPE = {"q8_0": QT.Q8_0, "q4_0": QT.Q4_0, "q5_0": QT.Q5_0, "q4_K": QT.Q4_K, "q5_K": QT.Q5_K, "q6_K": QT.Q6_K}


def add(name: str, op: str, params: dict, **arrays: np.ndarray) -> None:
    for k, v in arrays.items():
        if v.dtype == np.float64:
            v = v.astype(np.float32)
        tensors[f"{name}.{k}"] = np.ascontiguousarray(v)
    cases.append({"name": name, "op": op, "params": params})


def random_blocks(dtype: str, rows: int, cols: int) -> np.ndarray:
    """Random quant bytes with small, finite f16 scales: every bit pattern of the quants is legal."""
    qk, nbytes = BLOCK[dtype]
    nb = rows * cols // qk
    raw = rng.integers(0, 256, size=(nb, nbytes), dtype=np.uint8)
    def f16(lo, hi):
        return rng.uniform(lo, hi, size=nb).astype(np.float16).view(np.uint8).reshape(nb, 2)
    if dtype in ("q8_0", "q4_0", "q5_0"):
        raw[:, 0:2] = f16(-0.05, 0.05)  # d at the start
    elif dtype in ("q4_K", "q5_K"):
        raw[:, 0:2] = f16(0.0005, 0.01)  # d
        raw[:, 2:4] = f16(0.0005, 0.01)  # dmin
    elif dtype == "q6_K":
        raw[:, 208:210] = f16(-0.005, 0.005)  # d at the end
    return raw.reshape(rows, cols // qk * nbytes)


def weight(dtype: str, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """(raw ggml bytes, float64 values the bytes stand for)."""
    if dtype == "f32":
        v = rng.standard_normal((rows, cols)).astype(np.float32) * 0.1
        return v.view(np.uint8).reshape(rows, -1), v.astype(np.float64)
    if dtype == "f16":
        v = (rng.standard_normal((rows, cols)) * 0.1).astype(np.float16)
        return v.view(np.uint8).reshape(rows, -1), v.astype(np.float64)
    if dtype == "bf16":
        f = (rng.standard_normal((rows, cols)) * 0.1).astype(np.float32)
        bits = (f.view(np.uint32) >> 16).astype(np.uint16)  # truncation: any bf16 pattern is a valid input
        v = (bits.astype(np.uint32) << 16).view(np.float32)
        return bits.view(np.uint8).reshape(rows, -1), v.astype(np.float64)
    raw = random_blocks(dtype, rows, cols)
    return raw, dequantize(raw, QTYPE[dtype]).astype(np.float64).reshape(rows, cols)


# --- dequantisation: gguf's dequantisers are the reference -------------------------------
for dtype, (rows, cols) in [("q8_0", (3, 96)), ("q4_0", (3, 96)), ("q5_0", (3, 96)),
                            ("q4_K", (2, 512)), ("q5_K", (2, 512)), ("q6_K", (2, 512)),
                            ("f16", (5, 33)), ("bf16", (5, 33))]:
    w, v = weight(dtype, rows, cols)
    add(f"dequant_{dtype}_{rows}x{cols}", "dequant", {"wdtype": dtype, "wshape": [rows, cols]}, w=w, want=v)

# quantize() output too: real quantiser blocks, not only random ones.
for dtype in ("q8_0", "q4_0", "q5_0"):
    x = rng.standard_normal((4, 128)).astype(np.float32)
    raw = quantize(x, QTYPE[dtype])
    add(f"dequant_{dtype}_quantized_4x128", "dequant", {"wdtype": dtype, "wshape": [4, 128]},
        w=raw, want=dequantize(raw, QTYPE[dtype]).astype(np.float64))

# --- mat-vec (T=1) and mat-mul (T>1): y = x W^T ------------------------------------------
for dtype, (n, k) in [("f32", (67, 96)), ("f16", (67, 96)), ("bf16", (67, 96)), ("q8_0", (67, 544)),
                      ("q4_0", (67, 96)), ("q5_0", (67, 544)), ("q4_K", (67, 512)), ("q5_K", (33, 512)),
                      ("q6_K", (67, 768))]:
    w, v = weight(dtype, n, k)
    for t in (1, 5):
        x = rng.standard_normal((t, k)).astype(np.float32)
        add(f"matmul_{dtype}_t{t}_n{n}_k{k}", "matmul", {"wdtype": dtype, "wshape": [n, k], "t": t},
            w=w, x=x, want=x.astype(np.float64) @ v.T)

# --- embedding lookup ---------------------------------------------------------------------
for dtype, (vocab, d) in [("f32", (50, 64)), ("f16", (50, 64)), ("bf16", (50, 64)), ("q8_0", (50, 64)),
                          ("q4_K", (20, 256)), ("q6_K", (20, 256))]:
    w, v = weight(dtype, vocab, d)
    ids = rng.integers(0, vocab, size=7).astype(np.uint32)
    add(f"embedding_{dtype}_v{vocab}_d{d}", "embedding", {"wdtype": dtype, "wshape": [vocab, d]},
        w=w, tokens=ids, want=v[ids])

# --- RMSNorm --------------------------------------------------------------------------------
for t, d in [(1, 64), (3, 1000), (2, 4097)]:
    x = rng.standard_normal((t, d)).astype(np.float32) * 2
    g = rng.uniform(0.5, 1.5, size=d).astype(np.float32)
    x64 = x.astype(np.float64)
    want = x64 / np.sqrt((x64 ** 2).mean(axis=1, keepdims=True) + 1e-5) * g
    add(f"rmsnorm_t{t}_d{d}", "rmsnorm", {"eps": 1e-5}, x=x, w=g, want=want)

# --- element-wise ---------------------------------------------------------------------------
for t, f in [(1, 1000), (3, 4097)]:
    a = rng.standard_normal((t, f)).astype(np.float32)
    b = rng.standard_normal((t, f)).astype(np.float32)
    add(f"add_t{t}_f{f}", "add", {}, a=a, b=b, want=a.astype(np.float64) + b)
    g64, u64 = a.astype(np.float64), b.astype(np.float64)
    add(f"silu_mul_t{t}_f{f}", "silu_mul", {}, gate=a, up=b, want=g64 / (1 + np.exp(-g64)) * u64)

# --- softmax with temperature, argmax ---------------------------------------------------------
for n, temp in [(1000, 1.0), (32000, 0.7)]:
    z = rng.standard_normal((2, n)).astype(np.float32) * 3
    s = z.astype(np.float64) / temp
    e = np.exp(s - s.max(axis=1, keepdims=True))
    add(f"softmax_n{n}_temp{temp}", "softmax", {"temperature": temp}, x=z, want=e / e.sum(axis=1, keepdims=True))
    add(f"argmax_n{n}", "argmax", {}, x=z[0], want=np.array([int(np.argmax(z[0]))], dtype=np.uint32))


# --- RoPE: both pair conventions, with and without Llama-3 frequency scaling ----------------------
def inv_freq(hd: int, theta: float, scaling: dict | None) -> np.ndarray:
    """The frequencies as transformers computes them (float32, Llama-3 smoothing when scaled)."""
    f = 1.0 / (theta ** (np.arange(0, hd, 2, dtype=np.int64).astype(np.float32) / hd))
    if scaling is None:
        return f.astype(np.float32)
    factor, lo, hi, old = (scaling[k] for k in ("factor", "low_freq_factor", "high_freq_factor",
                                                 "original_max_position_embeddings"))
    low_wavelen, high_wavelen = old / lo, old / hi
    wavelen = 2 * math.pi / f
    out = np.where(wavelen > low_wavelen, f / factor, f)
    smooth = (old / wavelen - lo) / (hi - lo)
    smoothed = (1 - smooth) * out / factor + smooth * out
    medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
    return np.where(medium, smoothed, out).astype(np.float32)


LLAMA3 = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
for layout in ("interleaved", "rotate_half"):
    for heads, hd, pos, scaling in [(3, 64, 0, None), (5, 128, 600, LLAMA3)]:
        t = 4
        x = rng.standard_normal((t, heads, hd)).astype(np.float32)
        theta = 500000.0 if scaling else 10000.0
        f = inv_freq(hd, theta, scaling)
        ang = (np.arange(pos, pos + t, dtype=np.float32)[:, None] * f[None, :]).astype(np.float64)  # [t, hd/2]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        x64 = x.astype(np.float64)
        if layout == "interleaved":
            a, b = x64[..., 0::2], x64[..., 1::2]
            y = np.empty_like(x64)
            y[..., 0::2], y[..., 1::2] = a * c - b * s, a * s + b * c
        else:
            a, b = x64[..., : hd // 2], x64[..., hd // 2:]
            y = np.concatenate([a * c - b * s, a * s + b * c], axis=-1)
        params = {"layout": layout, "theta": theta, "pos": pos, "scaling": scaling}
        add(f"rope_{layout}_h{heads}_hd{hd}_pos{pos}{'_llama3' if scaling else ''}", "rope", params,
            x=x, inv_freq=f, want=y)

# --- attention: causal GQA over a KV cache --------------------------------------------------------
for t, heads, kv_heads, hd, pos in [(1, 4, 4, 64, 37), (5, 6, 2, 64, 0), (3, 8, 1, 128, 600)]:
    length = pos + t
    q = rng.standard_normal((t, heads, hd)).astype(np.float32)
    k = rng.standard_normal((length, kv_heads, hd)).astype(np.float32)
    v = rng.standard_normal((length, kv_heads, hd)).astype(np.float32)
    out = np.zeros((t, heads, hd))
    for i in range(t):
        for h in range(heads):
            g = h // (heads // kv_heads)
            sc = k[: pos + i + 1, g].astype(np.float64) @ q[i, h].astype(np.float64) / math.sqrt(hd)
            p = np.exp(sc - sc.max())
            out[i, h] = (p / p.sum()) @ v[: pos + i + 1, g]
    add(f"attention_t{t}_h{heads}_kv{kv_heads}_hd{hd}_pos{pos}", "attention", {"pos": pos},
        q=q, k=k, v=v, want=out)

meta = {"cases": json.dumps(cases), "made_by": "golden/make_kernel_goldens.py",
        "versions": json.dumps({"numpy": np.__version__, "gguf": "0.19.0"})}
save_file(tensors, "golden/kernels/kernels.safetensors", metadata=meta)
print(f"{len(cases)} cases, {sum(v.nbytes for v in tensors.values())} bytes")
