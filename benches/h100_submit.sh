#!/usr/bin/env bash
# Prompt-pass submissions (issue 7): pp512 wall time against the prompt pass's GPU time, per
# `bench --submit-every` (body dispatches per queue submission). Synthesises the MODELS (default
# TinyLlama Q4_K_M and F16, Llama-2-7B Q4_K_M) first, then runs nothing else beside the timing.
# Binaries in $D (default .dev/lead; gzipped ones unpacked), loader debs in .gl/, results in $OUT.
set -u
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
D=${D:-.dev/lead}
for z in "$D"/*.gz; do [ -e "$z" ] && gunzip -kf "$z" && chmod +x "${z%.gz}"; done
B=$D/wgllama
OUT=${OUT:-submit-out}
MODELS=${MODELS:-tinyllama-q4_k_m tinyllama-f16 llama2-7b-q4_k_m}
EVERY=${EVERY:-8 24 48 96 100000}
M=/tmp/wgllama-models
mkdir -p "$OUT" "$M"
synth() { # name
    local preset=${1%-*} dtype=${1##*-}
    case $preset in tinyllama) preset=tinyllama-1.1b ;; llama2-7b) preset=llama-2-7b ;; esac
    [ -f "$M/$1.gguf" ] || timeout 400 $B synth --threads 8 --preset $preset --dtype $dtype \
        -o "$M/$1.gguf" >"$OUT/synth-$1.txt" 2>&1
}
for m in $MODELS; do synth "$m" & done
wait
$B adapters | head -2 >"$OUT/adapters.txt"
for m in $MODELS; do
    for e in $EVERY; do
        timeout 100 $B bench -m "$M/$m.gguf" --pp 512 --tg 0 -r 10 --submit-every "$e" \
            >"$OUT/bench-$m-$e.txt" 2>&1
        echo "$m every=$e $(grep -E '^\| .*pp512' "$OUT/bench-$m-$e.txt" | awk -F'|' '{print $8, $9}')"
    done
    timeout 90 $B profile -m "$M/$m.gguf" --pp 512 --tg 0 >"$OUT/profile-$m.txt" 2>&1
    grep "plain pass" "$OUT/profile-$m.txt"
done
