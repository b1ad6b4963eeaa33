#!/usr/bin/env bash
# Int8 vs f32 activations in the matvec.wgsl family on the H100 (bench_matvec: sweep with the
# int8 variants, then per call, fused and per layer). Binary gzipped in .dev/lead/.
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
D=.dev/lead
gunzip -kf $D/bench_matvec.gz; chmod +x $D/bench_matvec
timeout 280 $D/bench_matvec ${MODE:-all} > $OUT/bench.txt 2>&1; echo "bench rc $?"
grep -v XDG $OUT/bench.txt | grep -E "best|totals|^--|q/k/v|gate/up:|layer|^(q/o|k/v|gate/up|down|output) " | cut -c1-300
