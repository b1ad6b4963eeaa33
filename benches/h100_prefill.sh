#!/usr/bin/env bash
# Prefill only (issue 7), quick: pp512 / pp2048 (`bench -r 5`) and a prefill profile per model,
# the op tests of the tensor-core kernels first. Run from the repository root on the device
# machine with the release binary (and ops_matmul_coop, if carried) in .dev/lead (gzipped ones
# are unpacked) and the Vulkan loader debs in .gl/. MODELS: names from the list below
# (default: all four); results under $OUT (default ./prefill-out). About 150 s for all four.
set -u
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
D=${D:-.dev/lead}
for z in "$D"/*.gz; do [ -e "$z" ] && gunzip -kf "$z" && chmod +x "${z%.gz}"; done
B=$D/wgllama
OUT=${OUT:-prefill-out}
MODELS=${MODELS:-tinyllama-q4_k_m tinyllama-f16 llama2-7b-q4_k_m llama2-7b-f16}
M=/tmp/wgllama-models
mkdir -p "$OUT" "$M"
for t in "$D"/ops_matmul_coop "$D"/ops_attention; do
    [ -x "$t" ] || continue
    timeout 120 "$t" --test-threads 4 >"$OUT/$(basename "$t").txt" 2>&1
    grep -E "test result|FAILED|panicked" "$OUT/$(basename "$t").txt"
done
# shellcheck source=benches/model_args.sh
. "$(dirname "$0")/model_args.sh"
for name in $MODELS; do
    path=$M/$name.gguf
    # A model already there (synthesised ahead, e.g. in the background) is used as it is.
    # shellcheck disable=SC2046
    [ -f "$path" ] || timeout 300 $B synth --threads 16 $(args_of "$name") -o "$path" \
        >"$OUT/synth-$name.txt" 2>&1 || { echo "== $name: synthesis failed"; continue; }
    timeout 120 $B bench -m "$path" --pp 512,2048 --tg 0 -r 5 >"$OUT/bench-$name.txt" 2>&1
    grep -E "^\| " "$OUT/bench-$name.txt" | tail -2
    timeout 90 $B profile -m "$path" --pp 512 --tg 0 >"$OUT/profile-$name.txt" 2>&1
    sed -n '/== prefill/,/plain pass/p' "$OUT/profile-$name.txt"
    rm -f "$path"
done
