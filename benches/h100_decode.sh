#!/usr/bin/env bash
# A decode-only H100 run (issue 6): synthesise TinyLlama-1.1B and Llama-2-7B Q4_K_M (in the
# background), optionally sweep mat-vec variants (SWEEP=q6_K,... : bench_matvec's TYPES) and
# run op-test binaries (.dev/lead/ops_*.gz), then per model `bench --tg 128` and `profile
# --tg 128 --ablate` (the plain pass with each kernel left out in turn). Variables: MODELS
# (default "tinyllama-q4_k_m llama2-7b-q4_k_m"; also tinyllama-f16 llama2-7b-f16), SWEEP.
set -u
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
D=.dev/lead
for z in $D/*.gz; do gunzip -kf "$z"; chmod +x "${z%.gz}"; done
B=$D/wgllama
OUT=${OUT:-bench-out}; mkdir -p "$OUT"
M=/tmp/wgllama-models; mkdir -p $M
MODELS=${MODELS:-"tinyllama-q4_k_m llama2-7b-q4_k_m"}
synth() { # name
    local preset=${1%-*} dtype=${1##*-}
    case $preset in tinyllama) preset=tinyllama-1.1b ;; llama2-7b) preset=llama-2-7b ;; esac
    timeout 420 $B synth --threads 8 --preset $preset --dtype $dtype -o $M/$1.gguf > $OUT/synth-$1.txt 2>&1
}
for m in $MODELS; do synth $m & done
$B adapters | head -2 > $OUT/adapters.txt
if [ -n "${SWEEP:-}" ]; then
    TYPES=$SWEEP timeout 200 $D/bench_matvec sweep > $OUT/sweep.txt 2>&1
    grep -E "best|^q|^f16|totals" $OUT/sweep.txt | cut -c1-400
fi
for t in $D/ops_*; do
    [ "${t%.gz}" = "$t" ] || continue
    $t > $OUT/$(basename $t).txt 2>&1; echo "$(basename $t): $(grep -E 'test result' $OUT/$(basename $t).txt)"
    grep -A3 panicked $OUT/$(basename $t).txt | head -12
done
wait
for m in $MODELS; do
    timeout 100 $B bench -m $M/$m.gguf --pp 0 --tg 128 -r 5 > $OUT/bench-$m.txt 2>&1
    grep -E "tg128" $OUT/bench-$m.txt
    timeout 150 $B profile -m $M/$m.gguf --pp 0 --tg 128 --ablate > $OUT/profile-$m.txt 2>&1
    grep -A40 "== decode:" $OUT/profile-$m.txt | grep -v "^$"
done
