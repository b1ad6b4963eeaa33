#!/usr/bin/env bash
# Decode sweep of one environment variable on the H100: per model, per value of $VAR in
# VALUES, `bench --pp 0 --tg 128 -r 5` and the plain decode pass from `profile`, values
# alternating in ROUNDS rounds. Variables: VAR, VALUES (space-separated; "-" = unset), MODELS,
# ROUNDS (1), D (binary dir, default .dev/lead).
set -u
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
D=${D:-.dev/lead}
for z in $D/*.gz; do gunzip -kf "$z"; chmod +x "${z%.gz}"; done
B=$D/wgllama
OUT=${OUT:-bench-out}; mkdir -p "$OUT"
M=/tmp/wgllama-models; mkdir -p $M
. benches/model_args.sh
MODELS=${MODELS:-"tinyllama-f16 llama2-7b-f16"}
ROUNDS=${ROUNDS:-1}
for m in $MODELS; do
    [ -e $M/$m.gguf ] || timeout 400 $B synth --threads 14 $(args_of $m) -o $M/$m.gguf > $OUT/synth-$m.txt 2>&1 &
done
wait
$B adapters | head -2 > $OUT/adapters.txt
for m in $MODELS; do
    for r in $(seq $ROUNDS); do
        for v in $VALUES; do
            tag=$m-${v//,/_}-r$r
            if [ "$v" = - ]; then unset "$VAR"; else export "$VAR=$v"; fi
            timeout 120 $B bench -m $M/$m.gguf --pp 0 --tg 128 -r 5 > $OUT/bench-$tag.txt 2>&1
            timeout 120 $B profile -m $M/$m.gguf --pp 0 --tg 128 > $OUT/profile-$tag.txt 2>&1
            printf "%-22s %s=%-10s r%s %s | %s\n" $m "$VAR" "$v" $r \
                "$(grep -oE 'tg128 \| [0-9.]+ ± [0-9.]+ \| [0-9.]+' $OUT/bench-$tag.txt)" \
                "$(grep -oE 'plain pass [0-9.]+ us' $OUT/profile-$tag.txt)"
        done
    done
done
