#!/usr/bin/env bash
# Eighteenth session: SwiGLU folded into the gate/up mat-vec (matvec_swiglu). Correctness with
# build $D (golden kernels, every golden model on the fast path, the test binaries TESTS
# (default ops_matvec generate) carried in $D), then
# an A/B of decode against build $A (default .dev/s17final): `profile --pp 1 --tg 128` plain
# passes and `bench --pp 0 --tg 128`, alternating A and B, on MODELS. Gzipped binaries;
# Vulkan loader debs in .gl/. Results under $OUT.
set -u
for f in .gl/*.deb; do dpkg -x "$f" / 2>/dev/null; done; ldconfig
mkdir -p /work; ln -sfn "$PWD" /work/main
D=${D:-.dev/s18a}
A=${A:-.dev/s17final/wgllama}
for z in "$D"/*.gz "$A.gz"; do [ -e "$z" ] && gunzip -kf "$z" && chmod +x "${z%.gz}"; done
B=$D/wgllama
OUT=${OUT:-s18-out}
mkdir -p "$OUT"
if [ "${CHECK:-1}" = 1 ]; then
    {
        $B adapters | head -3
        $B golden kernels | tail -2
        for g in golden/models/*/*.golden.safetensors; do
            v=${g%.golden.safetensors}; m=$v; [ -e "$m" ] || m=$v.gguf
            echo "== $m (fast)"; $B golden model -m "$m" --golden "$g" --precision fast | tail -n +3
        done
        for t in ${TESTS:-ops_matvec generate}; do
            echo "== $t"; timeout 200 $D/$t 2>&1 | grep -E "test result|FAILED|panicked|skipped" | head
        done
    } > "$OUT/check.txt" 2>&1
    echo "golden: $(grep -c PASS "$OUT/check.txt") PASS, $(grep -c FAIL "$OUT/check.txt") FAIL"
    grep -E "test result|kernels" "$OUT/check.txt"
fi
ROUNDS=${ROUNDS:-2}
M=/tmp/wgllama-models
mkdir -p "$M"
. "$(dirname "$0")/model_args.sh"
for name in ${MODELS:-tinyllama-q4_k_m tinyllama-f16}; do
    path=$M/$name.gguf
    [ -f "$path" ] || timeout 300 "$B" synth --threads 16 $(args_of "$name") -o "$path" > "$OUT/synth-$name.txt" 2>&1
    for r in $(seq "$ROUNDS"); do
        for which in A B; do
            bin=$A; [ $which = B ] && bin=$B
            timeout 150 "$bin" profile -m "$path" --pp 1 --tg 128 > "$OUT/profile-$name-$which-$r.txt" 2>&1
            timeout 150 "$bin" bench -m "$path" --pp 0 --tg 128 -r 5 > "$OUT/bench-$name-$which-$r.txt" 2>&1
            echo "$name $which $r: plain $(grep -o 'plain pass [0-9.]* us' "$OUT/profile-$name-$which-$r.txt" | tail -1) tg128 $(grep -E '^\| ' "$OUT/bench-$name-$which-$r.txt" | tail -1 | awk -F'|' '{print $9}')"
        done
    done
    [ "${KEEP:-0}" = 1 ] || rm -f "$path"
done | tee "$OUT/summary.txt"
