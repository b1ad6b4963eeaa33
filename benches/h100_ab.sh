#!/usr/bin/env bash
# A/B of two release builds on the same synthesised models (run from the repository root on
# the device machine): bench -r 5 with ARGS (default: --pp 512 --tg 0; ARGS_A and ARGS_B
# override it per side, e.g. one build with and without an option) for build A
# ($A, default .dev/lead/wgllama) and build B ($B, default .dev/new/wgllama), alternating
# A, B ROUNDS times per model so that clock drift hits both alike. Gzipped binaries are
# unpacked; Vulkan loader debs in .gl/. MODELS: names as in h100_prefill.sh (default
# tinyllama-f16 llama2-7b-f16). Results under $OUT (default ./ab-out).
set -u
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
A=${A:-.dev/lead/wgllama}
B=${B:-.dev/new/wgllama}
for z in "$A.gz" "$B.gz"; do [ -e "$z" ] && gunzip -kf "$z" && chmod +x "${z%.gz}"; done
OUT=${OUT:-ab-out}
ARGS=${ARGS:---pp 512 --tg 0}
ARGS_A=${ARGS_A:-$ARGS}
ARGS_B=${ARGS_B:-$ARGS}
ROUNDS=${ROUNDS:-2}
MODELS=${MODELS:-tinyllama-f16 llama2-7b-f16}
M=/tmp/wgllama-models
mkdir -p "$OUT" "$M"
# shellcheck source=benches/model_args.sh
. "$(dirname "$0")/model_args.sh"
for name in $MODELS; do
    path=$M/$name.gguf
    # shellcheck disable=SC2046
    [ -f "$path" ] || timeout 300 "$A" synth --threads 16 $(args_of "$name") -o "$path" \
        >"$OUT/synth-$name.txt" 2>&1 || { echo "== $name: synthesis failed"; continue; }
    for r in $(seq "$ROUNDS"); do
        for which in A B; do
            bin=$A; args=$ARGS_A
            [ $which = B ] && bin=$B && args=$ARGS_B
            # shellcheck disable=SC2086
            timeout 150 "$bin" bench -m "$path" $args -r 5 >"$OUT/bench-$name-$which-$r.txt" 2>&1
            echo "$name $which round $r: $(grep -E '^\| ' "$OUT/bench-$name-$which-$r.txt" | tail -n +3 | awk -F'|' '{print $7 $9}' | tr -s ' ' | tr '\n' ';')"
        done
    done
    rm -f "$path"
done | tee "$OUT/summary.txt"
