#!/usr/bin/env bash
# Attention on the H100: op tests (ops_attention) and bench_attention (MODE: "" table,
# "sweep", "all"). Binaries in .dev/attn/ (bench_attention, ops_attention test executable),
# Vulkan loader debs in .gl/. About 90 s of command time for "all".
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
cd .dev/attn
MODE=${1:-all}
timeout 150 ./ops_attention --test-threads 4 > $OUT/tests.txt 2>&1
grep -E "^test |test result|panicked" $OUT/tests.txt | grep -v "running for over"
timeout 240 ./bench_attention $MODE 2>&1 | grep -v XDG > $OUT/bench.txt
grep -v sweep $OUT/bench.txt
# Best sweep configurations per shape, dtype and position.
grep sweep $OUT/bench.txt | sort -k3,6 -k1,1n | awk '{k=$3" "$4" "$5" "$6; if (!(k in seen)) {seen[k]=1; print}}'
