#!/usr/bin/env bash
# The cooperative-matrix prefill mat-mul on the H100: its op tests (max errors per type),
# then bench_matmul_coop (MODE: all = tile sweep + model shapes; models; sweep). Binaries in
# .dev/coop/ (the stripped ops_matmul_coop test executable and the bench_matmul_coop
# example, release builds), Vulkan loader debs in .gl/. Results under $OUT.
set -u
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
D=.dev/coop
O=${OUT:-out}; mkdir -p "$O"
timeout ${TEST_S:-90} $D/ops_matmul_coop --nocapture --test-threads=1 >"$O/tests.txt" 2>&1
echo "tests rc $? at ${SECONDS}s" | tee -a "$O/summary.txt"
grep -E "SUMMARY|test result|panicked|FAILED|rror" "$O/tests.txt" | head -40 | tee -a "$O/summary.txt"
timeout ${BENCH_S:-150} $D/bench_matmul_coop ${MODE:-all} >"$O/bench.txt" 2>&1
echo "bench rc $? at ${SECONDS}s" | tee -a "$O/summary.txt"
grep -E "best|geomean|GEMMs per layer|rror" "$O/bench.txt" | tee -a "$O/summary.txt"
