#!/usr/bin/env python3
"""Golden logits for the tiny models in golden/models, from Hugging Face transformers (PyTorch,
float32 on the CPU, eager attention). Needs torch and transformers (pinned in
golden/requirements.txt) plus gguf; made on the H100 machine, where they are installed:

    python3 golden/make_model_goldens.py [OUT_DIR]

For every model file it writes <OUT_DIR>/<model>/<variant>.golden.safetensors with, per prompt i:
  tokens_<i>         int32 [n]          the prompt (BOS first)
  logits_<i>         f32  [n, vocab]    logits at every prompt position
  greedy_<i>         int32 [32]         greedy continuation (EOS ignored)
  greedy_logits_<i>  f32  [32, vocab]   the logits that chose each greedy token
The same file is the input of `wgllama logits --input`. Quantised GGUF files are read through
gguf's dequantisers, Q/K rows un-permuted, and run as float32 weights: the golden is exact for
what the file holds, so the engine's error is its own.
"""
import json
import os
import sys

import numpy as np
import torch
import transformers
import gguf
from gguf.quants import dequantize
from safetensors.numpy import save_file

torch.manual_seed(0)
GREEDY = 32
SRC = "golden/models"
OUT = sys.argv[1] if len(sys.argv) > 1 else SRC


def prompts(vocab: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for n in (1, 9, 40):
        body = rng.integers(3, vocab, size=n - 1)
        out.append(np.concatenate([[1], body]).astype(np.int32))
    return out


def unpermute_qk(w: np.ndarray, n_head: int) -> np.ndarray:
    return w.reshape(n_head, w.shape[0] // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


HF_OF_GGUF = {"attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
              "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
              "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}


def gguf_state_dict(path: str, cfg) -> dict[str, torch.Tensor]:
    r = gguf.GGUFReader(path)
    sd = {}
    for t in r.tensors:
        if t.name == "rope_freqs.weight":
            continue  # the config's rope_scaling describes the same frequencies
        shape = [int(s) for s in reversed(t.shape)]
        w = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape)
        if t.name.endswith("attn_q.weight"):
            w = unpermute_qk(w, cfg.num_attention_heads)
        elif t.name.endswith("attn_k.weight"):
            w = unpermute_qk(w, cfg.num_key_value_heads)
        if t.name == "token_embd.weight":
            name = "model.embed_tokens.weight"
        elif t.name == "output_norm.weight":
            name = "model.norm.weight"
        elif t.name == "output.weight":
            name = "lm_head.weight"
        else:
            _, i, kind, _ = t.name.split(".")
            name = f"model.layers.{i}.{HF_OF_GGUF[kind]}.weight"
        sd[name] = torch.from_numpy(w.copy())
    return sd


def run(model, toks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with torch.no_grad():
        ids = torch.from_numpy(toks.astype(np.int64))[None]
        logits = model(ids).logits[0].float().numpy()
        seq = ids
        greedy, greedy_logits = [], []
        for _ in range(GREEDY):
            last = model(seq).logits[0, -1].float()
            nxt = int(torch.argmax(last))
            greedy.append(nxt)
            greedy_logits.append(last.numpy())
            seq = torch.cat([seq, torch.tensor([[nxt]])], dim=1)
    return logits, np.array(greedy, np.int32), np.stack(greedy_logits)


def main() -> None:
    print("torch", torch.__version__, "transformers", transformers.__version__, "gguf", gguf.__version__ if hasattr(gguf, "__version__") else "?")
    torch.set_num_threads(8)
    for name in sorted(os.listdir(SRC)):
        mdir = os.path.join(SRC, name)
        if not os.path.isdir(mdir):
            continue
        hf_dirs = sorted(d for d in os.listdir(mdir) if d.startswith("hf-") and os.path.isdir(os.path.join(mdir, d)))
        cfg_path = os.path.join(mdir, hf_dirs[0], "config.json")
        cfg = transformers.AutoConfig.from_pretrained(os.path.dirname(cfg_path))
        variants = [(d, os.path.join(mdir, d)) for d in hf_dirs]
        variants += [(f[:-5], os.path.join(mdir, f)) for f in sorted(os.listdir(mdir)) if f.endswith(".gguf")]
        for variant, path in variants:
            if path.endswith(".gguf"):
                model = transformers.LlamaForCausalLM(cfg)
                sd = gguf_state_dict(path, cfg)
                if cfg.tie_word_embeddings:
                    sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
                missing, unexpected = model.load_state_dict(sd, strict=False)
                assert not unexpected and all("rotary" in m for m in missing), (missing, unexpected)
            else:
                model = transformers.LlamaForCausalLM.from_pretrained(path, torch_dtype=torch.float32)
            model = model.float().eval()
            model.config._attn_implementation = "eager"
            out: dict[str, np.ndarray] = {}
            for i, toks in enumerate(prompts(cfg.vocab_size, seed=7)):
                logits, greedy, greedy_logits = run(model, toks)
                out[f"tokens_{i}"] = toks
                out[f"logits_{i}"] = logits
                out[f"greedy_{i}"] = greedy
                out[f"greedy_logits_{i}"] = greedy_logits
            inv_freq = model.model.rotary_emb.inv_freq.float().numpy()
            out["inv_freq"] = inv_freq
            os.makedirs(os.path.join(OUT, name), exist_ok=True)
            dst = os.path.join(OUT, name, f"{variant}.golden.safetensors")
            meta = {"made_by": "golden/make_model_goldens.py", "model": path,
                    "versions": json.dumps({"torch": torch.__version__, "transformers": transformers.__version__})}
            save_file(out, dst, metadata=meta)
            print(f"{dst}: greedy_2 {out['greedy_2'][:8].tolist()}... logit std {out['logits_2'].std():.3f}")


if __name__ == "__main__":
    main()
