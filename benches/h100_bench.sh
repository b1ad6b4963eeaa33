#!/usr/bin/env bash
# The H100 speed run (issue 5): synthesised models of real shapes, `bench` (llama-bench style
# pp512 / tg128) and `profile` (per-shader times, decode vs the bandwidth floor) on each.
# Run from the repository root on the device machine: the release binary in .dev/wgllama,
# the Vulkan loader debs in .gl/. Results go under $OUT (default ./bench-out).
# Budget: must finish well within 9 minutes; each step has its own timeout and the large
# models are skipped once the budget runs low, so a slow step costs only itself.
set -u
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
B=.dev/wgllama
OUT=${OUT:-bench-out}
mkdir -p "$OUT"
M=/tmp/wgllama-models
mkdir -p "$M"
BUDGET=480 # seconds for everything; a step starts only if it can finish inside it

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
    [ $rc -ne 0 ] && echo "   exit $rc" | tee -a "$OUT/summary.txt"
    grep -E "^\| |per token|bandwidth floor|bytes per token|plain pass" "$OUT/$name.txt" |
        tee -a "$OUT/summary.txt"
    return $rc
}

step adapters 30 $B adapters

# name  synth arguments (smallest first: the 7B models go last and are skipped if time is short)
MODELS=(
    "tinyllama-q4_k_m|--preset tinyllama-1.1b --dtype q4_k_m -o $M/tinyllama-q4_k_m.gguf"
    "tinyllama-f16|--preset tinyllama-1.1b --dtype f16 -o $M/tinyllama-f16.gguf"
    "tinyllama-bf16-hf|--preset tinyllama-1.1b --dtype bf16 --format hf -o $M/tinyllama-bf16-hf"
    "llama2-7b-q4_k_m|--preset llama-2-7b --dtype q4_k_m -o $M/llama2-7b-q4_k_m.gguf"
    "llama2-7b-f16|--preset llama-2-7b --dtype f16 -o $M/llama2-7b-f16.gguf"
)
for entry in "${MODELS[@]}"; do
    name=${entry%%|*}
    args=${entry#*|}
    path=${args##*-o }
    case $name in llama2-7b*) big=1 ;; *) big=0 ;; esac
    synth_s=$((big ? 150 : 60))
    # shellcheck disable=SC2086
    step "synth-$name" $synth_s $B synth $args || continue
    step "bench-$name" $((big ? 90 : 60)) \
        $B bench -m "$path" --pp 512 --tg 128 -r 5 --csv "$OUT/bench-$name.csv"
    step "bench-$name-kvf16" $((big ? 60 : 40)) \
        $B bench -m "$path" --pp 0 --tg 128 -r 5 --kv-f16 --csv "$OUT/bench-$name-kvf16.csv"
    step "profile-$name" $((big ? 90 : 60)) \
        $B profile -m "$path" --pp 512 --tg 128 \
        --csv "$OUT/profile-$name.csv" --trace "$OUT/trace-$name.json"
    # The scenarios need a tokenizer; a synthesised model may carry none (then this fails alone).
    [ $big = 0 ] && step "scenarios-$name" 60 \
        $B bench -m "$path" --scenarios --tg 128 -r 3 --csv "$OUT/scenarios-$name.csv"
    rm -rf "$path" # disk: the 7B f16 model alone is 13 GB
done
echo "done in $SECONDS s" | tee -a "$OUT/summary.txt"
