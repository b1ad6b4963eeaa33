#!/usr/bin/env bash
# The matvec.wgsl family on the H100: a sweep of kernel variants and old-vs-new per call, fused
# q/k/v and gate/up and a whole layer (bench_matvec), then its op tests. Binaries in
# .dev/matvec/ (bench_matvec, ops_matvec: `cargo build --release --example bench_matvec`,
# `cargo test --release --no-run --test ops_matvec`, stripped), Vulkan loader debs in .gl/.
# About 2 minutes of wall time.
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
D=.dev/matvec
timeout 200 $D/bench_matvec all > $OUT/bench.txt 2>&1; echo "bench rc $?"
grep -v XDG $OUT/bench.txt | grep -E "best|totals|^(q4_K|q6_K|q8_0|f16)  [^N]|^--|q/k/v|gate/up:|layer|^(q/o|k/v|gate/up|down|output) " | cut -c1-330
timeout 60 $D/ops_matvec --test-threads 4 > $OUT/tests.txt 2>&1; echo "ops_matvec rc $?"
grep -E "test result|FAILED|panicked" $OUT/tests*.txt | head -20
