#!/usr/bin/env bash
# Sweep of environment settings on the H100: per model, per configuration,
# `bench BENCH_ARGS -r R` (default --pp 0 --tg 128: decode) and (PROFILE=1, the default) the
# plain passes from `profile PROFILE_ARGS` (default the same), configurations alternating in
# ROUNDS rounds. Configurations: VAR and VALUES
# (space-separated values of one variable; "-" = unset), or CONFIGS (';'-separated, each a
# space-separated list of VAR=value, "-" = none). Also MODELS, ROUNDS (1), R (5), D (binary
# dir, default .dev/lead).
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
R=${R:-5}
PROFILE=${PROFILE:-1}
BENCH_ARGS=${BENCH_ARGS:---pp 0 --tg 128}
PROFILE_ARGS=${PROFILE_ARGS:-$BENCH_ARGS}
if [ -z "${CONFIGS:-}" ]; then
    CONFIGS=""
    for v in $VALUES; do
        if [ "$v" = - ]; then c=-; else c="$VAR=$v"; fi
        CONFIGS="${CONFIGS:+$CONFIGS;}$c"
    done
fi
IFS=';' read -ra CFGS <<< "$CONFIGS"
for m in $MODELS; do
    [ -e $M/$m.gguf ] || timeout 400 $B synth --threads 14 $(args_of $m) -o $M/$m.gguf > $OUT/synth-$m.txt 2>&1 &
done
wait
$B adapters | head -2 > $OUT/adapters.txt
for m in $MODELS; do
    for r in $(seq $ROUNDS); do
        i=0
        for c in "${CFGS[@]}"; do
            i=$((i + 1))
            set -- ; [ "$c" = - ] || set -- $c
            tag=$m-c$i-r$r
            # shellcheck disable=SC2086
            env "$@" timeout 120 $B bench -m $M/$m.gguf $BENCH_ARGS -r $R > $OUT/bench-$tag.txt 2>&1
            pass=""
            if [ "$PROFILE" = 1 ]; then
                # shellcheck disable=SC2086
                env "$@" timeout 120 $B profile -m $M/$m.gguf $PROFILE_ARGS > $OUT/profile-$tag.txt 2>&1
                pass=" | $(grep -oE 'plain pass [0-9.]+ (us|ms)' $OUT/profile-$tag.txt | tr '\n' ' ')"
            fi
            printf "%-18s c%s %-30s r%s %s%s\n" $m $i "$c" $r \
                "$(grep -oE '(pp|tg)[0-9]+ \| [0-9.]+ ± [0-9.]+ \| [0-9.]+' $OUT/bench-$tag.txt | tr '\n' ' ')" "$pass"
        done
    done
done
