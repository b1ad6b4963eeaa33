#!/usr/bin/env bash
# gemm helper run: op tests (every depth, f16 x) then bench_matmul_coop exp.
set -u
D=.dev/gemm
O=${OUT:-out}; mkdir -p "$O"
cd $D && gunzip -f ops_matmul_coop.gz bench_matmul_coop.gz && chmod +x ops_matmul_coop bench_matmul_coop && cd - >/dev/null
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv > "$O/gpu.txt" 2>&1
timeout ${TEST_S:-110} $D/ops_matmul_coop --nocapture --test-threads=1 >"$O/tests.txt" 2>&1
echo "tests rc $? at ${SECONDS}s" | tee -a "$O/summary.txt"
grep -E "SUMMARY|test result|panicked|FAILED|rror" "$O/tests.txt" | head -40 | tee -a "$O/summary.txt"
timeout ${BENCH_S:-120} $D/bench_matmul_coop ${MODE:-exp} >"$O/bench.txt" 2>&1
echo "bench rc $? at ${SECONDS}s" | tee -a "$O/summary.txt"
grep -E "geomean|GEMMs per layer|rror" "$O/bench.txt" | tee -a "$O/summary.txt"
