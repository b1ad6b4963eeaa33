#!/usr/bin/env python3
"""Independent check of wgllama's k-quant quantisers: dequantise a GGUF written by
`loaders/tests/kquants.rs` (tensor `x` in F32 plus `q4_K`, `q5_K`, `q6_K` copies of it)
with the `gguf` package and bound each copy's normalised mean squared error.

Usage: python3 golden/loaders/check_kquants.py FILE.gguf   (versions: golden/requirements.txt)
"""
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

# As in kquants.rs: measured 5.05e-3 / 1.30e-3 / 3.18e-4; naive min/max fits give 6.0e-3 (Q4_K).
BOUNDS = {"q4_K": 5.5e-3, "q5_K": 1.4e-3, "q6_K": 3.4e-4}


def main() -> None:
    reader = GGUFReader(sys.argv[1])
    tensors = {t.name: t for t in reader.tensors}
    x = np.asarray(tensors["x"].data, dtype=np.float64).reshape(-1)
    failed = False
    for name, bound in BOUNDS.items():
        t = tensors[name]
        y = dequantize(t.data, t.tensor_type).astype(np.float64).reshape(-1)
        nmse = float(((y - x) ** 2).sum() / (x ** 2).sum())
        ok = nmse < bound
        failed |= not ok
        print(f"{name}: gguf-py dequantised nmse {nmse:.3e} (bound {bound:.1e}) {'ok' if ok else 'FAIL'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
