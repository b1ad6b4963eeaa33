#!/usr/bin/env bash
# Nineteenth session probe 3: decode attention alone (`bench_attention`'s table: chains at
# positions 128, 512, 2048, 4095 of the TinyLlama and Llama-2-7B shapes) and ops_attention,
# with the probe build's WGLLAMA_ATT="batch,min_chunk" (.dev/s19q; probe2.patch) unset ("-")
# or set. Results under $OUT.
set -u
for f in .gl/*.deb; do dpkg -x "$f" / 2>/dev/null; done; ldconfig
mkdir -p /work; ln -sfn "$PWD" /work/main
D=${D:-.dev/s19q}
for z in "$D"/*.gz; do gunzip -kf "$z"; chmod +x "${z%.gz}"; done
OUT=${OUT:-att-out}; mkdir -p "$OUT"
for v in ${VARIANTS:-- 2,16 1,8}; do
    e=""; [ "$v" != - ] && e="WGLLAMA_ATT=$v"
    env $e timeout 120 "$D/ops_attention" > "$OUT/ops-$v.txt" 2>&1
    echo "ops_attention $v: $(grep -E 'test result' "$OUT/ops-$v.txt")"
    env $e timeout 200 "$D/bench_attention" > "$OUT/bench-$v.txt" 2>&1
    grep -E "^ +[0-9.]+ us +decode .* new" "$OUT/bench-$v.txt" | sed "s/^/$v /" | cut -c1-60
done | tee "$OUT/summary.txt"
