#!/usr/bin/env bash
# Decode with the subgroup mat-vec on the H100: kernel GB/s (bench_matmul) and tg128 on the
# Q4_K_M models. Binaries in .dev/ (wgllama, bench_matmul), Vulkan loader debs in .gl/.
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
B=.dev/wgllama
timeout 120 .dev/bench_matmul "" 2>&1 | grep -v XDG
timeout 120 .dev/bench_matmul sgsweep 2>&1 | grep -v XDG | tail -60
$B synth --preset tinyllama-1.1b --dtype q4_k_m -o /tmp/t.gguf >/dev/null
$B bench -m /tmp/t.gguf --pp 512 --tg 128 -r 5 2>&1 | grep "^|"
$B profile -m /tmp/t.gguf --pp 64 --tg 64 2>&1 | sed -n '/== decode/,$p' | head -8
$B synth --preset llama-2-7b --dtype q4_k_m -o /tmp/l.gguf >/dev/null
$B bench -m /tmp/l.gguf --pp 0 --tg 128 -r 5 2>&1 | grep "^|"
