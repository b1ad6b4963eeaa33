#!/usr/bin/env bash
# Nineteenth session probe: decode plain passes (`profile --pp 1 --tg 128`) of a probe build
# ($D, .dev/s19p) whose subgroup-rows consumer mat-vecs (matvec_sgr: q/k/v, gate/up, LM head)
# read WGLLAMA_TURNS (rows each subgroup takes in turn, a grid's subgroups apart: TURNS times
# fewer workgroups) and WGLLAMA_TURNS_LANES (their workgroup lanes). Variants "T" or "T:L".
# First ops_matvec with TURNS=1 and 3. Rounds alternate the variants. Results under $OUT.
set -u
for f in .gl/*.deb; do dpkg -x "$f" / 2>/dev/null; done; ldconfig
mkdir -p /work; ln -sfn "$PWD" /work/main
D=${D:-.dev/s19p}
for z in "$D"/*.gz; do gunzip -kf "$z"; chmod +x "${z%.gz}"; done
B=$D/wgllama
OUT=${OUT:-turns-out}; mkdir -p "$OUT"
if [ "${CHECK:-1}" = 1 ]; then
    for t in 1 3; do
        echo "== ops_matvec TURNS=$t"
        WGLLAMA_TURNS=$t timeout 120 "$D/ops_matvec" 2>&1 | grep -E "test result|FAILED|panicked" | head
    done | tee "$OUT/ops.txt"
fi
M=/tmp/wgllama-models; mkdir -p "$M"
. "$(dirname "$0")/model_args.sh"
for name in ${MODELS:-tinyllama-q4_k_m tinyllama-f16 llama2-7b-q4_k_m llama2-7b-f16}; do
    path=$M/$name.gguf
    [ -f "$path" ] || timeout 300 "$B" synth --threads 16 $(args_of "$name") -o "$path" > "$OUT/synth-$name.txt" 2>&1
    for r in $(seq "${ROUNDS:-2}"); do
        for v in ${VARIANTS:-1 2 4 4:32}; do
            t=${v%%:*}; env="WGLLAMA_TURNS=$t"
            [ "$v" != "$t" ] && env="$env WGLLAMA_TURNS_LANES=${v#*:}"
            env $env timeout 150 "$B" profile -m "$path" --pp 1 --tg 128 > "$OUT/profile-$name-$v-$r.txt" 2>&1
            echo "$name $v $r: $(grep -o 'plain pass [0-9.]* us' "$OUT/profile-$name-$v-$r.txt" | tail -1) | $(grep -E '^matvec_multi' "$OUT/profile-$name-$v-$r.txt" | tail -1 | cut -c1-62)"
        done
    done
    rm -f "$path"
done | tee "$OUT/summary.txt"
