#!/usr/bin/env bash
# The H100 correctness run: golden kernels, every golden model on the exact and the fast path,
# two runs, and the op-test binaries. The release binary and op-test executables are carried
# in $D (default .dev/lead; gzipped ones are unpacked) with the Vulkan loader in .gl/. Each
# path is judged on its own default tolerance (`ModelTolerance::for_precision`), the exact one
# tightened to max abs 1e-3.
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
D=${D:-.dev/lead}
for z in "$D"/*.gz; do [ -e "$z" ] && gunzip -kf "$z" && chmod +x "${z%.gz}"; done
B=$D/wgllama
$B adapters | head -3
$B golden kernels | tail -3
for g in golden/models/*/*.golden.safetensors; do
    v=${g%.golden.safetensors}; m=$v; [ -e "$m" ] || m=$v.gguf
    echo "== $m (exact)"; $B golden model -m "$m" --golden "$g" --max-abs 1e-3 --precision exact | tail -n +3
    echo "== $m (fast)"; $B golden model -m "$m" --golden "$g" --precision fast | tail -n +3
done
$B run -m golden/models/tiny-gqa/tiny-gqa-q4_k_m.gguf -p "Once upon a time" -n 100 --seed 1 2>&1 | tail -2
$B run -m golden/models/tiny-gqa/hf-bf16-sharded -p "the robot" -n 100 --temp 0 2>&1 | tail -2
for t in $D/ops_*; do
    [ "${t%.gz}" = "$t" ] || continue
    echo "== $t"
    $t >/tmp/ops.txt 2>&1
    grep -E "test result|FAILED|skipped" /tmp/ops.txt
    grep -B2 -A2 "panicked" /tmp/ops.txt | head -20
done
