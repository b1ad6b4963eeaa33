#!/usr/bin/env bash
# The H100 speed run (issues 6 and 7): synthesised models of real shapes, `bench`
# (llama-bench style pp512 / pp2048 / tg128) and `profile` (per-shader times, decode vs the
# bandwidth floor) on each. Run from the repository root on the device machine: the release
# binary in .dev/lead/wgllama (or wgllama.gz there), the Vulkan loader debs in .gl/. Results go under $OUT (default
# ./bench-out). The 7B models are synthesised in the background (10 of the 16 cores) while
# the TinyLlama models are measured, so the slow Q4_K_M synthesis costs no extra time.
# Every step has a timeout; steps stop starting once BUDGET seconds are used.
# Variables: PRECISION (passed to bench/profile as --precision when set), ONLY (a regex of
# model names to run), PROFILE=0 to skip profiles, SCEN=0 to skip scenarios.
set -u
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
B=${B:-.dev/lead/wgllama}
[ -e "$B.gz" ] && gunzip -kf "$B.gz" && chmod +x "$B"
OUT=${OUT:-bench-out}
BUDGET=${BUDGET:-540}
ONLY=${ONLY:-.}
mkdir -p "$OUT"
M=/tmp/wgllama-models
mkdir -p "$M"
PREC=()
[ -n "${PRECISION:-}" ] && PREC=(--precision "$PRECISION")

# step NAME SECONDS COMMAND...: runs COMMAND with a timeout, its output to $OUT/NAME.txt.
step() {
    local name=$1 limit=$2
    shift 2
    if ((SECONDS + limit > BUDGET)); then
        echo "== $name: skipped ($SECONDS s used of $BUDGET)" | tee -a "$OUT/summary.txt"
        return 1
    fi
    echo "== $name ($SECONDS s)" | tee -a "$OUT/summary.txt"
    timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
    local rc=$?
    [ $rc -ne 0 ] && { echo "   exit $rc" | tee -a "$OUT/summary.txt"; tail -5 "$OUT/$name.txt"; }
    grep -E "^\| |per token|bandwidth floor|bytes per token|plain pass|measuring" "$OUT/$name.txt" |
        tee -a "$OUT/summary.txt"
    return $rc
}

step adapters 30 $B adapters

# The 7B models, in the background from the start.
want() { echo "$1" | grep -Eq "$ONLY"; }
(
    want llama2-7b-q4_k_m && timeout 300 $B synth --threads 10 --preset llama-2-7b --dtype q4_k_m \
        -o $M/llama2-7b-q4_k_m.gguf >"$OUT/synth-llama2-7b-q4_k_m.txt" 2>&1
    want llama2-7b-f16 && timeout 120 $B synth --threads 10 --preset llama-2-7b --dtype f16 \
        -o $M/llama2-7b-f16.gguf >"$OUT/synth-llama2-7b-f16.txt" 2>&1
) &
BG=$!

measure() { # name path big
    local name=$1 path=$2 big=$3
    step "bench-$name" $((big ? 120 : 60)) \
        $B bench -m "$path" --pp 512,2048 --tg 128 -r 5 "${PREC[@]}" --csv "$OUT/bench-$name.csv"
    step "bench-$name-kvf16" $((big ? 60 : 40)) \
        $B bench -m "$path" --pp 0 --tg 128 -r 5 --kv-f16 "${PREC[@]}" --csv "$OUT/bench-$name-kvf16.csv"
    [ "${PROFILE:-1}" = 1 ] && step "profile-$name" $((big ? 90 : 60)) \
        $B profile -m "$path" --pp 512 --tg 128 --ablate "${PREC[@]}" --csv "$OUT/profile-$name.csv"
    [ "${SCEN:-1}" = 1 ] && [ "$big" = 0 ] && step "scenarios-$name" 60 \
        $B bench -m "$path" --scenarios --tg 128 -r 3 "${PREC[@]}" --csv "$OUT/scenarios-$name.csv"
    return 0
}

SMALL=(
    "tinyllama-q4_k_m|--preset tinyllama-1.1b --dtype q4_k_m -o $M/tinyllama-q4_k_m.gguf"
    "tinyllama-f16|--preset tinyllama-1.1b --dtype f16 -o $M/tinyllama-f16.gguf"
    "tinyllama-bf16-hf|--preset tinyllama-1.1b --dtype bf16 --format hf -o $M/tinyllama-bf16-hf"
)
for entry in "${SMALL[@]}"; do
    name=${entry%%|*}
    args=${entry#*|}
    path=${args##*-o }
    want "$name" || continue
    # shellcheck disable=SC2086
    step "synth-$name" 90 $B synth --threads 6 $args || continue
    measure "$name" "$path" 0
    rm -rf "$path"
done

echo "waiting for the 7B synthesis ($SECONDS s)" | tee -a "$OUT/summary.txt"
wait $BG
for name in llama2-7b-q4_k_m llama2-7b-f16; do
    path=$M/$name.gguf
    want "$name" || continue
    grep -E "wrote|s$" "$OUT/synth-$name.txt" | tail -1 | tee -a "$OUT/summary.txt"
    [ -f "$path" ] || { echo "== $name: no model (synthesis failed or timed out)" | tee -a "$OUT/summary.txt"; continue; }
    measure "$name" "$path" 1
    rm -rf "$path" # disk: the 7B f16 model alone is 13 GB
done
echo "done in $SECONDS s" | tee -a "$OUT/summary.txt"
