#!/usr/bin/env bash
# Start-up with and without the pipeline cache on the H100: `wgllama run` on a synthesised
# TinyLlama Q4_K_M, 8 tokens, wall time of the whole command and its stats line. The NVIDIA
# driver keeps its own shader cache (~/.nv): __GL_SHADER_DISK_CACHE=0 turns it off so the
# runs isolate wgllama's cache (WGLLAMA_CACHE_DIR); the last run has the driver's cache only.
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
D=.dev/lead; B=$D/wgllama
gunzip -kf $B.gz; chmod +x $B
M=/tmp/tl.gguf
timeout 90 $B synth --threads 16 --preset tinyllama-1.1b --dtype q4_k_m -o $M | tail -1
export WGLLAMA_CACHE_DIR=/tmp/wgcache; rm -rf $WGLLAMA_CACHE_DIR ~/.nv
one() { # LABEL FLAG [VAR=VALUE...]: FLAG "-" for none
    local label=$1 flag=$2; shift 2
    local t0 t1
    [ "$flag" = - ] && flag=
    t0=$(date +%s.%N)
    env "$@" $B run -m $M -p "Once upon a time" -n 8 --temp 0 $flag > /tmp/run.txt 2>&1
    t1=$(date +%s.%N)
    echo "$label: wall $(awk "BEGIN{printf \"%.2f\", $t1 - $t0}") s | $(grep -E "^load" /tmp/run.txt)"
}
one "no caches (first run)" - __GL_SHADER_DISK_CACHE=0
one "wgllama cache warm" - __GL_SHADER_DISK_CACHE=0
one "wgllama cache warm, again" - __GL_SHADER_DISK_CACHE=0
ls -la $WGLLAMA_CACHE_DIR
one "--no-pipeline-cache, no driver cache" --no-pipeline-cache __GL_SHADER_DISK_CACHE=0
one "--no-pipeline-cache, driver cache on (cold)" --no-pipeline-cache
one "--no-pipeline-cache, driver cache on (warm)" --no-pipeline-cache
