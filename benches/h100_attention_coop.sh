#!/usr/bin/env bash
# Tensor-core prompt attention (attention_coop) on the H100: its op tests, bench_attention's
# table (old / register-tiled / coop at T = 512), then TinyLlama-1.1B Q4_K_M end to end (pp512,
# pp2048, the prefill profile) and the fast-path goldens. Binaries gzipped in .dev/lead/
# (wgllama, ops_attention, bench_attention), the Vulkan loader debs in .gl/. ATTN=0 skips
# bench_attention.
set -u
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
D=.dev/lead
for z in "$D"/*.gz; do gunzip -kf "$z" && chmod +x "${z%.gz}"; done
B=$D/wgllama
O=${OUT:-/tmp/out}; mkdir -p "$O"
timeout 120 $D/ops_attention --test-threads 4 >"$O/ops_attention.txt" 2>&1
grep -E "^test |test result|panicked" "$O/ops_attention.txt"
grep -E "^attention_coop" "$O/ops_attention.txt" | sed 's/ctx=[0-9]* //' | awk '{print $0}' | sort -t: -k2 | tail -4
[ "${ATTN:-1}" = 1 ] && timeout 150 $D/bench_attention 2>&1 | grep -E "adapter|prefill" >"$O/bench_attention.txt" &&
    cat "$O/bench_attention.txt"
M=/tmp/m; mkdir -p $M
timeout 90 $B synth --threads 14 --preset tinyllama-1.1b --dtype q4_k_m -o $M/tl.gguf >/dev/null 2>&1
timeout 90 $B bench -m $M/tl.gguf --pp 512,2048 --tg 0 -r 5 --precision fast >"$O/bench-tl.txt" 2>&1
grep -E "^\|" "$O/bench-tl.txt"
timeout 60 $B profile -m $M/tl.gguf --pp 512 --tg 0 --precision fast >"$O/profile-tl.txt" 2>&1
sed -n '/== prefill/,/plain pass/p' "$O/profile-tl.txt"
for g in golden/models/*/*.golden.safetensors; do
    v=${g%.golden.safetensors}; m=$v; [ -e "$m" ] || m=$v.gguf
    echo "== $m (fast)"; timeout 60 $B golden model -m "$m" --golden "$g" --precision fast | tail -n +3
done >"$O/golden-fast.txt" 2>&1
grep -E "PASS|FAIL|worst|max abs" "$O/golden-fast.txt" | head -40
