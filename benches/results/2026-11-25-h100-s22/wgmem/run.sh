export OUT=$OUT/s22-wgmem
for r in 1 2; do
  echo "== HEAD round $r"
  D=.dev/s22h MODELS="tinyllama-f16 llama2-7b-f16" ROUNDS=1 R=3 PROFILE_ARGS="--pp 1 --tg 128" CONFIGS="-" bash benches/h100_env_sweep.sh 2>&1 | tail -2
  echo "== wgmem build round $r (off, on)"
  D=.dev/s22d MODELS="tinyllama-f16 llama2-7b-f16" ROUNDS=1 R=3 PROFILE_ARGS="--pp 1 --tg 128" CONFIGS="-;WGLLAMA_WGMEM_PROBE=1" bash benches/h100_env_sweep.sh 2>&1 | tail -4
done
