#!/usr/bin/env bash
# Subgroup rows (each 32-lane subgroup owns its rows, no barrier) against the default pick of
# matvec.wgsl on the decode shapes of TinyLlama-1.1B and Llama-2-7B (bench_matvec sweep with
# SGR=1), plus the mat-vec op tests on the H100. Binaries gzipped in .dev/lead/.
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
D=.dev/lead
for b in bench_matvec ops_matvec; do gunzip -kf $D/$b.gz; chmod +x $D/$b; done
timeout 100 $D/ops_matvec > $OUT/ops_matvec.txt 2>&1; echo "ops_matvec rc $?"
grep "test result" $OUT/ops_matvec.txt
SGR=1 TYPES=${TYPES:-q4_K,q6_K,q8_0,f16} timeout 300 $D/bench_matvec sweep > $OUT/sweep.txt 2>&1; echo "sweep rc $?"
grep -v XDG $OUT/sweep.txt | cut -c1-400
