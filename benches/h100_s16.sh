#!/usr/bin/env bash
# Sixteenth session's check of attention_coop's layouts on the H100: op tests, generate tests,
# bench_attention's coop table, fast-path goldens, then an A/B of prompt speed against the
# fifteenth session's build ($A, default .dev/fin2/wgllama) with the new one (.dev/s16/).
# It ran builds of cb2ca54 / 09391bf: `bench_attention coop` and the CoopLayout cases of
# ops_attention exist only there (reverted in 1bec324); on later builds those lines fall back
# to bench_attention's default table and the old attention tests.
set -u
for f in .gl/*.deb; do dpkg -x "$f" / 2>/dev/null; done; ldconfig
D=.dev/s16; for z in $D/*.gz; do gunzip -kf $z; chmod +x ${z%.gz}; done
mkdir -p /work; ln -sfn $PWD /work/main
O=${OUT:-/tmp/out}; mkdir -p "$O"
timeout 120 $D/ops_attention --test-threads 4 >"$O/ops_attention.txt" 2>&1
grep -E "test result|FAILED|panicked" "$O/ops_attention.txt"
timeout 200 $D/generate --test-threads 2 >"$O/generate.txt" 2>&1
grep -E "test result|FAILED|panicked" "$O/generate.txt"
timeout 100 $D/bench_attention coop >"$O/bench_attention.txt" 2>&1; grep prefill "$O/bench_attention.txt"
for g in golden/models/*/*.golden.safetensors; do
    v=${g%.golden.safetensors}; m=$v; [ -e "$m" ] || m=$v.gguf
    echo "== $m (fast)"; timeout 60 $D/wgllama golden model -m "$m" --golden "$g" --precision fast | tail -n +3
done >"$O/golden-fast.txt" 2>&1
grep -cE "PASS" "$O/golden-fast.txt"; grep -E "FAIL" "$O/golden-fast.txt" | head
A=${A:-.dev/fin2/wgllama} B=$D/wgllama OUT=$O/ab ARGS="--pp 512,2048 --tg 0 --precision fast" \
    ROUNDS=${ROUNDS:-2} MODELS=${MODELS:-tinyllama-f16 tinyllama-q4_k_m llama2-7b-f16} \
    timeout ${ABT:-330} bash benches/h100_ab.sh
