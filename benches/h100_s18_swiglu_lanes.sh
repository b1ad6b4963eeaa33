#!/usr/bin/env bash
# Eighteenth session probe: decode plain passes (`profile --pp 1 --tg 128`) of a probe build
# ($B, .dev/s18p) whose matvec_swiglu reads WGLLAMA_SWIGLU_OFF (the unfused gate/up +
# silu_mul path) and WGLLAMA_SWIGLU_LANES (workgroup lanes: 2 x the subgroups' rows), on
# MODELS. Two rounds, variants alternating. Results under $OUT.
set -u
for f in .gl/*.deb; do dpkg -x "$f" / 2>/dev/null; done; ldconfig
B=${B:-.dev/s18p/wgllama}
gunzip -kf "$B.gz"; chmod +x "$B"
OUT=${OUT:-lanes-out}; mkdir -p "$OUT"
M=/tmp/wgllama-models; mkdir -p "$M"
. "$(dirname "$0")/model_args.sh"
for name in ${MODELS:-llama2-7b-f16 llama2-7b-q4_k_m}; do
    path=$M/$name.gguf
    [ -f "$path" ] || timeout 300 "$B" synth --threads 16 $(args_of "$name") -o "$path" > "$OUT/synth-$name.txt" 2>&1
    for r in 1 2; do
        for v in off 64 128 256; do
            if [ $v = off ]; then env="WGLLAMA_SWIGLU_OFF=1"; else env="WGLLAMA_SWIGLU_LANES=$v"; fi
            env $env timeout 150 "$B" profile -m "$path" --pp 1 --tg 128 > "$OUT/profile-$name-$v-$r.txt" 2>&1
            echo "$name $v $r: $(grep -o 'plain pass [0-9.]* us' "$OUT/profile-$name-$v-$r.txt" | tail -1) $(grep -E 'swiglu' "$OUT/profile-$name-$v-$r.txt" | tail -1 | cut -c1-60)"
        done
    done
    rm -f "$path"
done | tee "$OUT/summary.txt"
