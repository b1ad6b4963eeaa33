#!/usr/bin/env bash
# The H100 correctness run (issues 3 and 4): the release binary and two op-test binaries,
# carried in .dev/ with the Vulkan loader in .gl/ (see DEVELOPERS.md), run on the device.
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
B=.dev/wgllama
$B adapters
$B golden kernels
for g in golden/models/*/*.golden.safetensors; do
    v=${g%.golden.safetensors}; m=$v; [ -e "$m" ] || m=$v.gguf
    echo "== $m"; $B golden model -m "$m" --golden "$g" --max-abs 1e-3 | tail -n +2
done
$B run -m golden/models/tiny-gqa/tiny-gqa-q4_k_m.gguf -p "Once upon a time" -n 100 --seed 1
$B run -m golden/models/tiny-gqa/hf-bf16-sharded -p "the robot" -n 100 --temp 0
for t in .dev/ops_*; do echo "== $t"; $t 2>&1 | grep -E "test result|panicked|FAILED"; done
