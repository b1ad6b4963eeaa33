#!/usr/bin/env bash
# Every repetition of pp512 (bench --each) on the H100, ROUNDS rounds per model, to see
# whether the 7B models' recurring "one slow repetition" is the first, a random one, or
# more. Models synthesised first (in parallel), measured after (nothing else running).
# Variables: MODELS (default llama2-7b-q4_k_m llama2-7b-f16 tinyllama-q4_k_m), ROUNDS (2),
# R (repetitions, 10), PP (512). Binary in .dev/lead/wgllama(.gz), loader debs in .gl/.
set -u
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
B=.dev/lead/wgllama
[ -e "$B.gz" ] && gunzip -kf "$B.gz" && chmod +x "$B"
OUT=${OUT:-pp-each-out}; mkdir -p "$OUT"
M=/tmp/wgllama-models; mkdir -p $M
. benches/model_args.sh
MODELS=${MODELS:-"llama2-7b-q4_k_m llama2-7b-f16 tinyllama-q4_k_m"}
for m in $MODELS; do
    # shellcheck disable=SC2046
    [ -e $M/$m.gguf ] || timeout 400 $B synth --threads 5 $(args_of $m) -o $M/$m.gguf > $OUT/synth-$m.txt 2>&1 &
done
wait
$B adapters | head -2 > $OUT/adapters.txt
for r in $(seq "${ROUNDS:-2}"); do
    for m in $MODELS; do
        timeout 120 $B bench -m $M/$m.gguf --pp "${PP:-512}" --tg 0 -r "${R:-10}" --each > $OUT/bench-$m-r$r.txt 2>&1
        echo "$m r$r: $(grep -E 'repetitions' $OUT/bench-$m-r$r.txt)"
    done
done
