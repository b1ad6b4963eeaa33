#!/bin/bash
# Seventeenth session: matmul_coop tiles of at most 24 KiB (two an SM on the H100) against the
# presets. D = folder with bench_matmul_coop.gz and ops_matmul_coop.gz; writes to $OUT.
# Modes: TESTS=1 runs the tile op tests first; SWEEP=1 the candidate sweep; PICKS the
# candidate indices for `bench_matmul_coop prompt`.
set -u
for f in .gl/*.deb; do dpkg -x $f / 2>/dev/null; done; ldconfig
mkdir -p /work; ln -sfn $PWD /work/main
D=${D:-.dev/s17}
for b in bench_matmul_coop ops_matmul_coop; do gunzip -c $D/$b.gz > /tmp/$b; chmod +x /tmp/$b; done
if [ "${TESTS:-1}" = 1 ]; then
  timeout 200 /tmp/ops_matmul_coop --test-threads 1 coop_every_tile coop_glu > $OUT/tests.txt 2>&1; echo "tests rc $?" >> $OUT/summary.txt
  grep -E "^test |test result" $OUT/tests.txt >> $OUT/summary.txt
fi
if [ "${SWEEP:-1}" = 1 ]; then
  timeout 330 /tmp/bench_matmul_coop sweep > $OUT/sweep.txt 2>&1; echo "sweep rc $?" >> $OUT/summary.txt
  grep "geomean\|best" $OUT/sweep.txt >> $OUT/summary.txt
fi
if [ -n "${PICKS:-}" ]; then
  timeout 200 /tmp/bench_matmul_coop prompt $PICKS > $OUT/prompt.txt 2>&1; echo "prompt rc $?" >> $OUT/summary.txt
  grep "prompt" $OUT/prompt.txt >> $OUT/summary.txt
fi
