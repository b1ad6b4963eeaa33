#!/usr/bin/env bash
# Decode L2-prefetch sweep on the H100 (engine/src/llama/prefetch.rs): h100_env_sweep.sh over
# WGLLAMA_PREFETCH="A,M,W,S,D" MiB budgets (during attention, merge, Wo, SwiGLU, down).
# Variables: CONFIGS (space-separated; "0" = none; default "0 16"), MODELS, ROUNDS, D.
VAR=WGLLAMA_PREFETCH VALUES=${CONFIGS:-"0 16"} CONFIGS= exec bash "$(dirname "$0")/h100_env_sweep.sh"
