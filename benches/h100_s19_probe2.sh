#!/usr/bin/env bash
# Nineteenth session probe 2: decode plain passes (`profile --pp 1 --tg 128`) of a probe build
# ($B, .dev/s19q; results/2026-11-25-h100-s19/probe2.patch) that reads WGLLAMA_ATT="batch,
# min_chunk" (decode attention: keys per key group a batch, fewest keys a split) and
# WGLLAMA_Q6_BIG="lanes,unroll" (the int8 Q6_K mat-vec for K > 4096: the down projections).
# Variants are "env=value" words ("-" = none), alternating over two rounds. Results under $OUT.
set -u
for f in .gl/*.deb; do dpkg -x "$f" / 2>/dev/null; done; ldconfig
B=${B:-.dev/s19q/wgllama}
gunzip -kf "$B.gz"; chmod +x "$B"
OUT=${OUT:-probe2-out}; mkdir -p "$OUT"
M=/tmp/wgllama-models; mkdir -p "$M"
. "$(dirname "$0")/model_args.sh"
variants_of() {
    case $1 in
    tinyllama-*) echo "- WGLLAMA_ATT=2,16 WGLLAMA_ATT=1,8 WGLLAMA_ATT=4,64 WGLLAMA_Q6_BIG=32,2 WGLLAMA_Q6_BIG=128,2" ;;
    llama2-*) echo "- WGLLAMA_ATT=4,16 WGLLAMA_ATT=2,8 WGLLAMA_ATT=4,64 WGLLAMA_Q6_BIG=32,2 WGLLAMA_Q6_BIG=128,1" ;;
    esac
}
n=0
for name in ${MODELS:-tinyllama-q4_k_m llama2-7b-q4_k_m tinyllama-f16}; do
    path=$M/$name.gguf
    [ -f "$path" ] || timeout 300 "$B" synth --threads 16 $(args_of "$name") -o "$path" > "$OUT/synth-$name.txt" 2>&1
    for r in 1 2; do
        for v in $(variants_of "$name"); do
            n=$((n + 1))
            f="$OUT/profile-$name-$n.txt"
            if [ "$v" = - ]; then timeout 150 "$B" profile -m "$path" --pp 1 --tg 128 > "$f" 2>&1
            else env "$v" timeout 150 "$B" profile -m "$path" --pp 1 --tg 128 > "$f" 2>&1; fi
            echo "$name $v $r: $(grep -o 'plain pass [0-9.]* us' "$f" | tail -1) | $(grep -E '^attention_decode' "$f" | tail -1 | cut -c1-62)"
        done
    done
    rm -f "$path"
done | tee "$OUT/summary.txt"
